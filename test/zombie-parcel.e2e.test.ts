/**
 * Issue 9 item 2, the zombie parcel, against separate processes: HLOS shares a parcel, then
 * MEM_RECLAIM while the core applies DestroyGrant but the RM never hears it. Before, the RM answered
 * MEM_INUSE and kept a parcel whose grant was gone (never reclaimable, core_no_such_grant, still
 * counted against the parcel limit). Now every core call carries a request id (x-hypmesh-request-id)
 * and the core answers a repeat with its first outcome, so the parcel ends gone with its grant, or
 * the RM says the outcome is unknown (BUSY core_outcome_unknown) and the next MEM_RECLAIM of it
 * reuses the id and completes. Never a parcel without its grant after that; `hypmesh check --live`
 * exits 0.
 *
 *   fail_after on RM_TO_CORE DestroyGrant, once   the RM's retry with the same id hears OK
 *   fail_after on every DestroyGrant              unknown outcome; disarmed, the second reclaim completes
 *   SIGSTOP the core past --core-timeout-ms       unknown outcome; SIGCONT, the second reclaim completes
 *
 * and the same ambiguity on UnmapGrant in VM_RESET's teardown (the "SIGSTOP the RM at
 * RESETTING" finding: the core unmapped the DTB parcel, the RM still listed it accepted): the first
 * UnmapGrant's reply lost, the RM's retry hears OK and the VM is destroyed with nothing leaked.
 */

import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { MemShareRequest, MemType, RmServiceClient, type ListParcelsResponse } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { decodeStatusDetails } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, checkLive, HOST, openSession } from './support/calls.js';
import { Processes, type Addresses } from './support/processes.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const PAGE = 4096;
/** The RM's whole budget for one core call, retries included: short, so a paused core costs little. */
const CORE_TIMEOUT_MS = 1_500;

const processes = new Processes();
let at: Addresses;
let rm: RmServiceClient;
let core: CoreServiceClient;
let rmFaults: FaultServiceClient;
let vmm: VmmServiceClient;
let guest: number;
const streams: grpc.ClientReadableStream<unknown>[] = [];

beforeAll(async () => {
  at = await processes.startServices(['--check-invariants'], { rm: { HYPMESH_CORE_TIMEOUT_MS: String(CORE_TIMEOUT_MS) } });
  rm = new RmServiceClient(at.rm, grpc.credentials.createInsecure());
  core = new CoreServiceClient(at.core, grpc.credentials.createInsecure());
  rmFaults = new FaultServiceClient(at.rm, grpc.credentials.createInsecure());
  vmm = new VmmServiceClient(at.vmm, grpc.credentials.createInsecure());
  guest = (await ask<{ vmid: number }>(rm, rm.vmAllocate, { vmid: 0 })).vmid;
}, 60_000);

afterAll(async () => {
  for (const st of streams) st.cancel();
  for (const c of [rm, core, rmFaults, vmm]) c?.close();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

async function share(page: number): Promise<number> {
  const base = BigInt(2 * GiB + (0x3000 + page) * PAGE);
  const req = MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: page, acl: [{ vmid: guest, rights: 6 }, { vmid: HOST, rights: 7 }], sgl: [{ base, size: BigInt(PAGE) }] });
  return (await ask<{ handle: number }>(rm, rm.memShare, req)).handle;
}

const parcelCount = async (): Promise<number> => (await ask<ListParcelsResponse>(rm, rm.listParcels, { allVms: true })).parcels.length;
const grantCount = async (): Promise<number> => (await ask<{ grants: unknown[] }>(core, core.listGrants, {})).grants.length;
const reclaim = (handle: number): Promise<grpc.ServiceError | undefined> => ask(rm, rm.memReclaim, { handle }).then(
  () => undefined,
  (e: grpc.ServiceError) => e,
);

async function arm(rules: unknown[]): Promise<void> {
  await ask(rmFaults, rmFaults.arm, { plan: FaultPlan.fromJSON({ rules }), seed: 1 });
}
const disarm = () => ask(rmFaults, rmFaults.disarm, { all: true, ruleIds: [] });

/** Nothing half: the RM and the core agree, and the live check says so. */
async function consistent(): Promise<void> {
  // The VM allocated at the start has no parcel; a VMM's VM would show its own.
  expect(await parcelCount()).toBe(0);
  expect(await grantCount()).toBe(0);
  const check = await checkLive(at);
  expect({ code: check.code, out: check.out }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n" });
}

function expectOutcomeUnknown(e: grpc.ServiceError | undefined): void {
  if (e === undefined) throw new Error('expected the reclaim to fail with an unknown outcome');
  expect(decodeStatusDetails(e).errorDetail).toMatchObject({ domain: 'rm', codeName: 'BUSY', rule: 'core_outcome_unknown' });
}

describe('the zombie parcel (issue 9 item 2)', () => {
  test('DestroyGrant applied, its reply lost once: the RM retries with the same request id and hears OK; parcel and grant gone', async () => {
    const handle = await share(1);
    await arm([{ id: 'lost-destroy', boundary: 'BOUNDARY_RM_TO_CORE', match: { method: 'DestroyGrant', nth: 1 }, failAfter: { code: 'UNAVAILABLE' } }]);
    try {
      expect(await reclaim(handle)).toBeUndefined();
    } finally {
      await disarm();
    }
    await consistent();
  });

  test('every DestroyGrant reply lost: the RM answers BUSY core_outcome_unknown and keeps the parcel; the next MEM_RECLAIM reuses the id and completes', async () => {
    const handle = await share(2);
    await arm([{ id: 'lost-destroys', boundary: 'BOUNDARY_RM_TO_CORE', match: { method: 'DestroyGrant' }, failAfter: { code: 'UNAVAILABLE' } }]);
    let first: grpc.ServiceError | undefined;
    try {
      first = await reclaim(handle);
    } finally {
      await disarm();
    }
    expectOutcomeUnknown(first);
    expect(first!.code).toBe(grpc.status.UNAVAILABLE);
    // The RM gave up at its own budget, after retrying with the same id (its message says so).
    expect(first!.details).toMatch(new RegExp(`no definite answer in ([2-9]|\\d{2,}) attempt\\(s\\) within ${CORE_TIMEOUT_MS} ms`));
    // The core did destroy the grant; the RM, not knowing, still lists the parcel, whole.
    expect(await grantCount()).toBe(0);
    expect(await parcelCount()).toBe(1);
    // OK only because the core answers the remembered outcome: applied afresh, it would refuse (no such grant).
    expect(await reclaim(handle)).toBeUndefined();
    await consistent();
  });

  test('every CreateGrant reply lost: MEM_SHARE is BUSY core_outcome_unknown with no parcel, and once replies come back the RM settles the create: the grant the core made is destroyed', async () => {
    await arm([{ id: 'lost-creates', boundary: 'BOUNDARY_RM_TO_CORE', match: { method: 'CreateGrant' }, failAfter: { code: 'UNAVAILABLE' } }]);
    let refused: grpc.ServiceError | undefined;
    try {
      refused = await share(4).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expectOutcomeUnknown(refused);
      // The core made the grant; the RM records no parcel for it.
      expect(await grantCount()).toBe(1);
      expect(await parcelCount()).toBe(0);
    } finally {
      await disarm();
    }
    for (let i = 0; i < 100 && (await grantCount()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    await consistent();
  });

  test('the core SIGSTOPped past --core-timeout-ms: unknown outcome; after SIGCONT the next MEM_RECLAIM completes', async () => {
    const handle = await share(3);
    const coreProc = processes.all.find((p) => p.name === 'core')!.child;
    coreProc.kill('SIGSTOP');
    let first: grpc.ServiceError | undefined;
    try {
      first = await reclaim(handle);
    } finally {
      coreProc.kill('SIGCONT');
    }
    expectOutcomeUnknown(first);
    expect(first!.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // Whether the resumed core applied the late DestroyGrant or dropped it, the retry settles it.
    expect(await reclaim(handle)).toBeUndefined();
    await consistent();
  });

  test('VM_RESET teardown: the first UnmapGrant applied, its reply lost: the retry hears OK, the VM is destroyed with nothing leaked', async () => {
    const { stream, sessionId } = await openSession(vmm);
    streams.push(stream);
    const created = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
    const where = { sessionId, handle: created.handle };
    const binding = { guestAddr: 0x8000_0000n, hostAddr: BigInt(3 * GiB), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
    await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false });
    await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
    await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
    expect((await ask<{ vm: Vm }>(vmm, vmm.startVm, where)).vm.state).toBe(VmState.VM_STATE_RUNNING);
    await arm([{ id: 'lost-unmap', boundary: 'BOUNDARY_RM_TO_CORE', match: { method: 'UnmapGrant', nth: 1 }, failAfter: { code: 'UNAVAILABLE' } }]);
    let destroyed: Vm;
    try {
      destroyed = (await ask<{ vm: Vm }>(vmm, vmm.destroyVm, where)).vm;
    } finally {
      await disarm();
    }
    expect(processes.logsOf('rm').some((l) => (l['fault'] as { ruleId?: string } | undefined)?.ruleId === 'lost-unmap')).toBe(true);
    expect(destroyed.leaked).toEqual([]);
    expect(destroyed.teardown.every((t) => t.ok)).toBe(true);
    await consistent();
  });
});
