/**
 * The services as containers (docker-compose.yml): all three answer grpc.health.v1 SERVING through
 * the image's own probe, reflection lists each one's service (the images carry proto/), and two
 * flows cross the container boundaries:
 *
 * - a parcel: the RM (its container) shares host memory with a guest, the guest accepts, and the
 *   mapping is then visible in the core (its own container), i.e. the RM reached the core at
 *   HYPMESH_CORE_ADDR (its dial address; it listens at HYPMESH_RM_LISTEN);
 * - a GUNYAH VM's life through the VMM (seed 001): session, create, bind (lend), DTB, boot context,
 *   start → RUNNING (the L24 sequence over the RM's Exchange stream as HLOS), destroy; then the core
 *   (asked directly) owns every frame as before the VM and CheckInvariants is empty, i.e. the VMM
 *   reached both the RM and the core at their addresses and its teardown gave everything back.
 *
 * It needs a running stack, so it runs only with HYPMESH_CONTAINER_TEST=1; scripts/container-test.sh
 * starts the engine, builds the images, brings the stack up, runs this file and tears it all down.
 * Addresses: HYPMESH_TEST_CORE_ADDR, HYPMESH_TEST_RM_ADDR and HYPMESH_TEST_VMM_ADDR (default
 * 127.0.0.1:50051 / :50052 / :50053).
 */

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, type OwnershipCountsResponse } from '@hypmesh/proto';
import {
  MemAcceptRequest,
  MemNotifyKind,
  MemNotifyRequest,
  MemReclaimRequest,
  MemReleaseRequest,
  MemShareRequest,
  MemType,
  RmServiceClient,
  TransType,
  VmAllocateRequest,
  VmDeallocateRequest,
  type MemShareResponse,
  type VmAllocateResponse,
} from '@hypmesh/proto/rm';
import {
  BindMode,
  CreateVmRequest,
  DestroyVmRequest,
  MapMemRequest,
  RegSet,
  SetBootContextRequest,
  SetDtbConfigRequest,
  StartVmRequest,
  VmState,
  VmType,
  VmmServiceClient,
  type CreateVmResponse,
  type DestroyVmResponse,
  type OpenSessionResponse,
  type StartVmResponse,
} from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Reflection } from './support/introspection.js';

const enabled = process.env.HYPMESH_CONTAINER_TEST === '1';
const CORE = process.env.HYPMESH_TEST_CORE_ADDR ?? '127.0.0.1:50051';
const RM = process.env.HYPMESH_TEST_RM_ADDR ?? '127.0.0.1:50052';
const VMM = process.env.HYPMESH_TEST_VMM_ADDR ?? '127.0.0.1:50053';
/** How long the VMM's background work (teardown steps, RM notices) may take to show at the core. */
const SETTLE_TIMEOUT_MS = 15_000;
const MiB = 2 ** 20;
const PROBE = fileURLToPath(new URL('../scripts/health-probe.mjs', import.meta.url));

const GiB = 2 ** 30;
const PAGE = 0x1000;
const HOST = 3;
const RW = 6;
const RWX = 7;
/** The core's default memory (services/core main.ts): RAM from 2 GiB. */
const ram = (offset: number): bigint => BigInt(2 * GiB + offset);

const md = (caller: number): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set(CALLER_VMID_KEY, String(caller));
  return m;
};

/** A stable text of a response (bigints as decimal) to compare whole snapshots. */
const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));

/** A unary call on a ts-proto grpc-js client, as a promise. */
function unary<Req, Res>(fn: (req: Req, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown, req: Req, caller = HOST): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md(caller), (e, r) => (e ? reject(e) : resolve(r))));
}

describe.skipIf(!enabled)('containers: the compose stack (set HYPMESH_CONTAINER_TEST=1 and run scripts/container-test.sh; needs a Docker engine)', () => {
  let core: CoreServiceClient;
  let rm: RmServiceClient;
  let vmm: VmmServiceClient;

  beforeAll(() => {
    core = new CoreServiceClient(CORE, grpc.credentials.createInsecure());
    rm = new RmServiceClient(RM, grpc.credentials.createInsecure());
    vmm = new VmmServiceClient(VMM, grpc.credentials.createInsecure());
  });
  afterAll(() => {
    core?.close();
    rm?.close();
    vmm?.close();
  });

  test.each([
    ['core', CORE, 'hypmesh.core.v1.CoreService'],
    ['rm', RM, 'hypmesh.rm.v1.RmService'],
    ['vmm', VMM, 'hypmesh.vmm.v1.VmmService'],
    ['core (whole server)', CORE, ''],
    ['rm (whole server)', RM, ''],
    ['vmm (whole server)', VMM, ''],
  ])('%s answers grpc.health.v1 SERVING through the image health probe', async (_name, addr, service) => {
    const { stdout } = await promisify(execFile)(process.execPath, [PROBE, `--addr=${addr}`, `--service=${service}`]);
    expect(stdout).toContain('status SERVING');
  });

  test.each([
    ['core', CORE, 'hypmesh.core.v1.CoreService'],
    ['rm', RM, 'hypmesh.rm.v1.RmService'],
    ['vmm', VMM, 'hypmesh.vmm.v1.VmmService'],
  ])('%s: reflection (list_services) names %s', async (_name, addr, service) => {
    const reflection = new Reflection(addr);
    try {
      expect(await reflection.listServices()).toContain(service);
    } finally {
      reflection.close();
    }
  });

  test('the probe fails (exit 3, as grpc_health_probe) for a service the server does not know', async () => {
    const run = promisify(execFile)(process.execPath, [PROBE, `--addr=${CORE}`, '--service=hypmesh.nope.v1.Nope']);
    await expect(run).rejects.toMatchObject({ code: 3 });
  });

  test('a parcel shared through the RM container is mapped in the core container', async () => {
    const { vmid: guest } = await unary<VmAllocateRequest, VmAllocateResponse>(rm.vmAllocate.bind(rm), VmAllocateRequest.fromPartial({ vmid: 0 }));
    // VM_ALLOCATE made the guest's stage-2 in the core (§4.2); the VM manager tops its pool up (64 host pages).
    const tables = BigInt((2 * GiB) / PAGE + 0x30000);
    await unary(core.topUpTablePool.bind(core), { vmid: guest, frames: [{ base: tables, count: 64n }] });

    const base = ram(0x400000);
    const { handle } = await unary<MemShareRequest, MemShareResponse>(
      rm.memShare.bind(rm),
      MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 0x1234, acl: [{ vmid: guest, rights: RW }, { vmid: HOST, rights: RWX }], sgl: [{ base, size: 0x4000n }] }),
    );
    await unary(rm.memNotify.bind(rm), MemNotifyRequest.fromPartial({ handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_SHARED, memInfoTag: 9, vmids: [guest] }));

    const ipa = 0x4000_0000n;
    const accept = MemAcceptRequest.fromPartial({ handle, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_SHARE, done: true, sgl: [{ base: ipa, size: 0x4000n }] });
    await unary(rm.memAccept.bind(rm), accept, guest);
    expect(await translate(guest, ipa + 0x1000n)).toBe(base + 0x1000n);

    await unary(rm.memRelease.bind(rm), MemReleaseRequest.fromPartial({ handle }), guest);
    expect(await translate(guest, ipa)).toBeUndefined();
    await unary(rm.memReclaim.bind(rm), MemReclaimRequest.fromPartial({ handle }));
    // VM_DEALLOCATE destroys the stage-2 in the core as well.
    await unary(rm.vmDeallocate.bind(rm), VmDeallocateRequest.fromPartial({ vmid: guest }));
  });

  test('a GUNYAH VM through the VMM container: start → RUNNING, destroy; the core has every frame back and no violation', async () => {
    const before = await ownershipCounts();
    const session = vmm.openSession({});
    session.on('error', () => {}); // cancelled below
    try {
      const sessionId = await new Promise<string>((resolve, reject) => {
        session.once('data', (m: OpenSessionResponse) => (m.sessionId ? resolve(m.sessionId) : reject(new Error('first message is not the session id'))));
        session.once('error', reject);
      });
      const { vm: created } = await unary<CreateVmRequest, CreateVmResponse>(vmm.createVm.bind(vmm), CreateVmRequest.fromPartial({ sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
      expect([created?.state, created?.rmStatus]).toEqual([VmState.VM_STATE_CREATED, 'LOAD']);
      const at = { sessionId, handle: created!.handle };
      // 4 MiB of host RAM at 3 GiB lent to the guest at IPA 2 GiB, its DTB inside it.
      const binding = { guestAddr: 0x8000_0000n, hostAddr: ram(GiB), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
      await unary(vmm.mapMem.bind(vmm), MapMemRequest.fromPartial({ ...at, binding }));
      await unary(vmm.setDtbConfig.bind(vmm), SetDtbConfigRequest.fromPartial({ ...at, guestAddr: 0x8010_0000n, size: 0x1000n }));
      await unary(vmm.setBootContext.bind(vmm), SetBootContextRequest.fromPartial({ ...at, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));

      const { vm: started } = await unary<StartVmRequest, StartVmResponse>(vmm.startVm.bind(vmm), StartVmRequest.fromPartial(at));
      expect([started?.state, started?.rmStatus]).toEqual([VmState.VM_STATE_RUNNING, 'RUNNING']);
      // The lent RAM left the host: the core (its own container) saw the VMM's and the RM's calls.
      expect(text((await ownershipCounts()).byOwner)).not.toBe(text(before.byOwner));

      const { vm: destroyed } = await unary<DestroyVmRequest, DestroyVmResponse>(vmm.destroyVm.bind(vmm), DestroyVmRequest.fromPartial(at));
      if (destroyed === undefined) throw new Error('DestroyVm answered no vm');
      expect(destroyed.state).toBe(VmState.VM_STATE_DESTROYED);
      expect(destroyed.leaked).toEqual([]);
      expect(destroyed.teardown.filter((t) => !t.ok)).toEqual([]);
      expect(Number(destroyed.hostPages)).toBe(0);
    } finally {
      session.cancel();
    }

    // Every frame is owned (and in the state) it was before the VM; the invariant checker agrees.
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    let after = await ownershipCounts();
    while (text(after) !== text(before) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await ownershipCounts();
    }
    expect(after.byOwner).toEqual(before.byOwner);
    expect(after.byState).toEqual(before.byState);
    const { violations } = await unary<object, { violations: unknown[] }>(core.checkInvariants.bind(core), {});
    expect(violations).toEqual([]);
  });

  function ownershipCounts(): Promise<OwnershipCountsResponse> {
    return unary<object, OwnershipCountsResponse>(core.ownershipCounts.bind(core), {});
  }

  /** The core's translation of `ipa` in `vmid`'s stage-2 table, or undefined where nothing is mapped. */
  function translate(vmid: number, ipa: bigint): Promise<bigint | undefined> {
    return new Promise((resolve) => core.translate({ vmid, ipa }, md(HOST), (e, r) => resolve(e ? undefined : r?.pa)));
  }
});
