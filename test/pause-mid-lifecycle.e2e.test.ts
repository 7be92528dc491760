/**
 * Issue 9, the pause-mid-start and pause-mid-teardown findings: the RM stops serving (a fault-plan
 * `pause`, armed through FaultService on the RM) when the VMM sends it VM_INIT (StartVm) or VM_RESET
 * (DestroyVm), for longer than the VMM waits for an RM reply (--rm-timeout-ms).
 *
 * Before: at VM_INIT the timeout fired but the VMID stayed in INIT in the RM for ever (VM_DEALLOCATE
 * refused with VM_STATE); at VM_RESET the core unmapped the DTB parcel while the RM still listed it
 * accepted, the RM deallocated the VMID anyway, and the core's address space and grant survived, so
 * every later CreateVm failed. Now: the failed call leaves a VM a teardown can finish, the teardown
 * leaves nothing (no leak, no VM in the RM, no grant in the core), a new VM starts, and
 * `hypmesh check --live` finds the three services agreeing.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ask, checkLive, code, openSession } from './support/calls.js';
import { Processes, type Addresses } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
/** The VMM's wait for one RM reply, and the RM's pause: the pause outlasts it. */
const RM_TIMEOUT_MS = 2_000;
const PAUSE_MS = 6_000;

const processes = new Processes();
let addrs: Addresses;
const streams: grpc.ClientReadableStream<unknown>[] = [];
beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants'], { vmm: { HYPMESH_RM_TIMEOUT_MS: String(RM_TIMEOUT_MS) } });
}, 60_000);
afterAll(async () => {
  for (const s of streams) s.cancel();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

/** A GUNYAH VM bound and configured, not started, in its own session. */
async function configured(vmm: VmmServiceClient, hostOffset: number): Promise<{ where: { sessionId: string; handle: bigint }; vm: Vm }> {
  const { stream, sessionId } = await openSession(vmm);
  streams.push(stream);
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const where = { sessionId, handle: vm.handle };
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM + BigInt(hostOffset), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false });
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
  return { where, vm };
}

/** After the scenario: nothing in the RM or the core, a new VM starts and goes cleanly, the three services agree. */
async function nothingLeftAndCreatesWork(vmm: VmmServiceClient, rm: RmServiceClient, core: CoreServiceClient, gone: number, hostOffset: number): Promise<void> {
  expect((await ask<{ vms: { vmid: number }[] }>(rm, rm.listVms, {})).vms.map((v) => v.vmid)).not.toContain(gone);
  const next = await configured(vmm, hostOffset);
  expect((await ask<{ vm: Vm }>(vmm, vmm.startVm, next.where, 3, 60_000)).vm.state).toBe(VmState.VM_STATE_RUNNING);
  expect((await ask<{ vm: Vm }>(vmm, vmm.destroyVm, next.where, 3, 60_000)).vm.leaked).toEqual([]);
  expect((await ask<{ grants: unknown[] }>(core, core.listGrants, {})).grants).toEqual([]);
  const live = await checkLive(addrs);
  expect({ code: live.code, out: live.out, err: live.err }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n", err: '' });
}

test('the RM paused at VM_INIT past the VMM timeout: StartVm fails, DestroyVm leaves nothing, the next VM starts, check --live agrees', async () => {
  const creds = grpc.credentials.createInsecure();
  const vmm = new VmmServiceClient(addrs.vmm, creds);
  const rm = new RmServiceClient(addrs.rm, creds);
  const core = new CoreServiceClient(addrs.core, creds);
  const faults = new FaultServiceClient(addrs.rm, creds);
  try {
    const first = await configured(vmm, 0);
    await ask(faults, faults.arm, { plan: FaultPlan.fromJSON({ rules: [{ id: 'stall-init', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { rmMessage: 'VM_INIT', nth: 1 }, pause: { durationMs: PAUSE_MS } }] }), seed: 1 });
    expect(await code(ask(vmm, vmm.startVm, first.where, 3, 60_000))).not.toBe('OK');
    expect(processes.logsOf('rm').some((l) => (l['fault'] as { ruleId?: string } | undefined)?.ruleId === 'stall-init')).toBe(true);
    // Past the pause: the RM applies the held VM_INIT.
    await new Promise((r) => setTimeout(r, PAUSE_MS));

    const destroyed = (await ask<{ vm: Vm }>(vmm, vmm.destroyVm, first.where, 3, 60_000)).vm;
    expect({ state: destroyed.state, leaked: destroyed.leaked }).toEqual({ state: VmState.VM_STATE_DESTROYED, leaked: [] });
    await nothingLeftAndCreatesWork(vmm, rm, core, first.vm.vmid, 16 * MiB);
  } finally {
    for (const c of [vmm, rm, core, faults]) c.close();
  }
}, 120_000);

test('the RM paused at VM_RESET (mid-teardown) past the VMM timeout: the teardown still ends with nothing left, the next VM starts, check --live agrees', async () => {
  const creds = grpc.credentials.createInsecure();
  const vmm = new VmmServiceClient(addrs.vmm, creds);
  const rm = new RmServiceClient(addrs.rm, creds);
  const core = new CoreServiceClient(addrs.core, creds);
  const faults = new FaultServiceClient(addrs.rm, creds);
  try {
    const vm = await configured(vmm, 32 * MiB);
    expect((await ask<{ vm: Vm }>(vmm, vmm.startVm, vm.where, 3, 60_000)).vm.state).toBe(VmState.VM_STATE_RUNNING);
    await ask(faults, faults.arm, { plan: FaultPlan.fromJSON({ rules: [{ id: 'stall-reset', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { rmMessage: 'VM_RESET', nth: 1 }, pause: { durationMs: PAUSE_MS } }] }), seed: 1 });
    // The teardown meets the pause at VM_RESET, waits out its RM timeout, and settles what the RM did.
    const destroy = (): Promise<Vm | grpc.ServiceError> => ask<{ vm: Vm }>(vmm, vmm.destroyVm, vm.where, 3, 60_000).then((r) => r.vm, (e: grpc.ServiceError) => e);
    const first = await destroy();
    expect(processes.logsOf('rm').some((l) => (l['fault'] as { ruleId?: string } | undefined)?.ruleId === 'stall-reset')).toBe(true);
    await new Promise((r) => setTimeout(r, PAUSE_MS));
    // An answered teardown is complete; a refused one is finished by a second DestroyVm (NOT_FOUND
    // if the VMM finished it on its own meanwhile). Either way nothing is leaked.
    const done = first instanceof Error ? await destroy() : first;
    if (done instanceof Error) expect(grpc.status[done.code]).toBe('NOT_FOUND');
    else expect({ state: done.state, leaked: done.leaked }).toEqual({ state: VmState.VM_STATE_DESTROYED, leaked: [] });
    await nothingLeftAndCreatesWork(vmm, rm, core, vm.vm.vmid, 48 * MiB);
  } finally {
    for (const c of [vmm, rm, core, faults]) c.close();
  }
}, 120_000);
