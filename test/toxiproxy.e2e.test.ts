/**
 * Real network faults (issue 10 item 7): the core, the RM and the VMM as separate processes with a
 * Toxiproxy proxy on every service-to-service link (rm→core, vmm→rm, vmm→core; the test's own
 * calls go direct), and one scenario per fault: latency on every link during a VM life cycle, a
 * blackhole on rm→core during parcel traffic, reset_peer on vmm→rm mid-stream, a partition of
 * vmm↔rm during a teardown and its heal, a slow msgq (bandwidth and slicing).
 *
 * After each: the toxics go, the system recovers, what the scenario made is torn down through the
 * VMM, and then the core's invariants hold, `hypmesh check --live` finds the services agreeing, and
 * every granule is back with the host (boot's ownership counts, no grant, no RM VM), or what is not
 * is listed in the teardown's `leaked`. The last scenario (replies lost on rm→core) is a known bug,
 * `test.fails` (its comment says why).
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, type OwnershipCountsResponse } from '@hypmesh/proto';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterEach, describe, expect, test } from 'vitest';
import { ask, checkLive } from './support/calls.js';
import { healthCheck } from './support/introspection.js';
import { Processes, type Addresses, type Link } from './support/processes.js';
import { ToxiproxyServer, toxiproxyMissing, type ToxiproxyClient } from './support/toxiproxy.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
const LINKS: readonly Link[] = ['rm_core', 'vmm_rm', 'vmm_core'];
/** Short service deadlines (the RM's for the core below the VMM's for the RM), so a fault is found out within a second or two. */
const CORE_TIMEOUT_MS = 1_000;
const RM_TIMEOUT_MS = 2_000;
const SCENARIO_MS = 40_000;

interface Topology {
  readonly processes: Processes;
  readonly toxi: ToxiproxyServer;
  readonly proxies: ToxiproxyClient;
  readonly at: Addresses;
  readonly core: CoreServiceClient;
  readonly rm: RmServiceClient;
  readonly vmm: VmmServiceClient;
  readonly boot: OwnershipCountsResponse;
  readonly sessionId: string;
}

let current: Topology | undefined;

/** Toxiproxy, then the services, each link dialled through a proxy named after it. */
async function topology(env: Record<string, string> = {}): Promise<Topology> {
  const toxi = await ToxiproxyServer.start();
  const processes = new Processes();
  const deadlines = { HYPMESH_CORE_TIMEOUT_MS: String(CORE_TIMEOUT_MS), HYPMESH_RM_TIMEOUT_MS: String(RM_TIMEOUT_MS), HYPMESH_DEPENDENCY_GRACE_MS: '1000', ...env };
  const half = { processes, toxi, proxies: toxi.client };
  current = half as Topology;
  const at = await processes.startServices(['--check-invariants'], { rm: deadlines, vmm: deadlines }, async (link, upstream) => (await toxi.client.createProxy(link, upstream)).listen);
  const core = new CoreServiceClient(at.core, grpc.credentials.createInsecure());
  const rm = new RmServiceClient(at.rm, grpc.credentials.createInsecure());
  const vmm = new VmmServiceClient(at.vmm, grpc.credentials.createInsecure());
  const boot = await ask<OwnershipCountsResponse>(core, core.ownershipCounts, {});
  const sessionId = (await ask<{ lease: { sessionId: string } }>(vmm, vmm.openLease, { ttlMs: 600_000 })).lease.sessionId;
  current = { ...half, at, core, rm, vmm, boot, sessionId };
  return current;
}

afterEach(async () => {
  const t = current;
  current = undefined;
  if (t === undefined) return;
  for (const c of [t.core, t.rm, t.vmm]) c?.close();
  await t.processes.stopAll();
  await t.toxi.stop();
  expect(t.processes.bugs()).toEqual([]);
}, 30_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `f` until it resolves, every 100 ms, for at most `ms`: how long the system took to recover. */
async function recovered<T>(what: string, f: () => Promise<T>, ms = 10_000): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  let last: unknown;
  while (performance.now() - t0 < ms) {
    try {
      return { value: await f(), ms: performance.now() - t0 };
    } catch (e) {
      last = e;
      await sleep(100);
    }
  }
  throw new Error(`${what}: not recovered within ${ms} ms; last: ${last instanceof Error ? last.message : String(last)}`);
}

/** The gRPC code of a call that must fail, and its message. */
const refusal = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`,
  );

const binding = (i: number) => ({ guestAddr: 0x8000_0000n + BigInt(i * 4 * MiB), hostAddr: GUEST_RAM + BigInt(i * 4 * MiB), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true });

/** A GUNYAH VM with `bindings` 4 MiB lent bindings, a DTB (in the first) and a boot PC, not started. */
async function prepareVm(t: Topology, bindings = 1): Promise<{ sessionId: string; handle: bigint }> {
  const { vmm, sessionId } = t;
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const where = { sessionId, handle: vm.handle };
  for (let i = 0; i < bindings; i++) await ask(vmm, vmm.mapMem, { ...where, binding: binding(i), unmap: false });
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
  return where;
}

const start = async (t: Topology, where: object): Promise<Vm> => (await ask<{ vm: Vm }>(t.vmm, t.vmm.startVm, where)).vm;
const destroy = async (t: Topology, where: object): Promise<Vm> => (await ask<{ vm: Vm }>(t.vmm, t.vmm.destroyVm, where)).vm;

/** Create, map, start, destroy: the destroyed VM and how long it all took. */
async function lifeCycle(t: Topology): Promise<{ vm: Vm; ms: number }> {
  const t0 = performance.now();
  const where = await prepareVm(t);
  expect((await start(t, where)).state).toBe(VmState.VM_STATE_RUNNING);
  return { vm: await destroy(t, where), ms: performance.now() - t0 };
}

/**
 * The end state after a scenario whose VMs were all destroyed, `leaked` being everything their
 * teardowns reported: the core's invariants hold, `check --live` finds the three agreeing, and with
 * nothing leaked every granule is back with the host (boot's counts), no grant and no RM VM is left.
 */
async function assertClean(t: Topology, leaked: readonly string[] = []): Promise<void> {
  await t.proxies.reset();
  // Every dependency answering again (health SERVING), so the checks below see the recovered system.
  await recovered('VMM health', async () => expect(await healthCheck(t.at.vmm, '')).toBe('SERVING'));
  await recovered('RM health', async () => expect(await healthCheck(t.at.rm, '')).toBe('SERVING'));
  expect((await ask<{ violations: string[] }>(t.core, t.core.checkInvariants, {})).violations).toEqual([]);
  const check = await checkLive(t.at);
  expect({ code: check.code, out: check.out, err: check.err }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n", err: '' });
  if (leaked.length > 0) return;
  expect((await ask<{ grants: unknown[] }>(t.core, t.core.listGrants, {})).grants).toEqual([]);
  expect((await ask<{ vms: unknown[] }>(t.rm, t.rm.listVms, {})).vms).toEqual([]);
  expect((await ask<OwnershipCountsResponse>(t.core, t.core.ownershipCounts, {})).byOwner).toEqual(t.boot.byOwner);
}

const skip = toxiproxyMissing();
if (skip !== undefined) console.warn(`toxiproxy.e2e: SKIPPED — ${skip}`);

describe.skipIf(skip !== undefined)('real network faults through Toxiproxy on every service-to-service link', () => {
  test('latency on every link (40 ms each way): a VM life cycle completes, slower, and nothing is left', async () => {
    const t = await topology();
    const clean = await lifeCycle(t);
    for (const link of LINKS) for (const stream of ['upstream', 'downstream'] as const) await t.proxies.addToxic(link, { type: 'latency', stream, attributes: { latency: 40, jitter: 0 } });
    const { vm, ms: slow } = await lifeCycle(t);
    console.log(`latency: a VM life cycle took ${slow.toFixed(0)} ms with 40 ms each way on every link, ${clean.ms.toFixed(0)} ms without`);
    expect(clean.vm.leaked).toEqual([]);
    expect(vm.leaked).toEqual([]);
    expect(vm.teardown.every((s) => s.ok)).toBe(true);
    // Every msgq message pays 80 ms on vmm→rm; a life cycle is more than 20 messages.
    expect(slow).toBeGreaterThan(20 * 80);
    await assertClean(t);
  }, SCENARIO_MS);

  test('a blackhole on rm→core during parcel traffic: StartVm (its MEM_LENDs) answers DEADLINE_EXCEEDED naming the core, the RM reports the core NOT_SERVING, all works once it is lifted; nothing is left', async () => {
    const t = await topology();
    // StartVm lends each binding and the DTB through the RM, each lend a CreateGrant in the core.
    const where = await prepareVm(t, 3);
    // timeout 0: every byte either way is dropped, the connection held open.
    for (const stream of ['upstream', 'downstream'] as const) await t.proxies.addToxic('rm_core', { name: `blackhole_${stream}`, type: 'timeout', stream, attributes: { timeout: 0 } });
    const during = await refusal(start(t, where));
    console.log(`blackhole: StartVm under it: ${during}`);
    expect(during).toMatch(/^DEADLINE_EXCEEDED: .*core/);
    // The RM's health check of the core goes the same way: NOT_SERVING after --dependency-grace-ms.
    await recovered('RM health of the core NOT_SERVING', async () => expect(await healthCheck(t.at.rm, 'hypmesh.rm.v1.RmService/core')).toBe('NOT_SERVING'));
    for (const stream of ['upstream', 'downstream'] as const) await t.proxies.removeToxic('rm_core', `blackhole_${stream}`);
    // A failed start is final (START_FAILED, as Linux's): the VM is torn down, and a new one runs.
    const failed = await destroy(t, where);
    console.log(`blackhole: teardown of the failed VM right after the lift: ${JSON.stringify(failed.teardown)} leaked ${JSON.stringify(failed.leaked)}`);
    expect(failed.leaked).toEqual([]);
    expect((await lifeCycle(t)).vm.leaked).toEqual([]);
    await assertClean(t);
  }, SCENARIO_MS);

  test('reset_peer on vmm→rm mid-stream under a RUNNING VM: StopVm answers UNAVAILABLE naming the RM, the msgq stream reconnects once it is lifted; nothing is left', async () => {
    const t = await topology();
    const where = await prepareVm(t);
    expect((await start(t, where)).state).toBe(VmState.VM_STATE_RUNNING);
    // The next bytes the VMM sends the RM reset the connection its msgq stream is on (RST).
    await t.proxies.addToxic('vmm_rm', { name: 'reset', type: 'reset_peer', stream: 'upstream', attributes: { timeout: 0 } });
    const stop = () => ask<{ vm: Vm }>(t.vmm, t.vmm.stopVm, where);
    const during = await refusal(stop());
    console.log(`reset_peer: StopVm under it: ${during}`);
    expect(during).toMatch(/^UNAVAILABLE: rm /);
    await t.proxies.removeToxic('vmm_rm', 'reset');
    // StopVm waits for the RM's VM_STATUS, so it also shows notifications flowing on the new stream.
    const after = await recovered('StopVm after reset_peer', stop);
    console.log(`reset_peer: StopVm succeeded ${after.ms.toFixed(0)} ms after it was lifted`);
    expect(after.value.vm.state).not.toBe(VmState.VM_STATE_RUNNING);
    expect((await destroy(t, where)).leaked).toEqual([]);
    expect((await lifeCycle(t)).vm.leaked).toEqual([]);
    await assertClean(t);
  }, SCENARIO_MS);

  test('a partition of vmm↔rm during a teardown, healed 1.5 s later: the teardown retries across it and leaves nothing', async () => {
    const t = await topology();
    const where = await prepareVm(t);
    expect((await start(t, where)).state).toBe(VmState.VM_STATE_RUNNING);
    // Disabled: the proxy's listener closes and the connection under the msgq stream is cut.
    await t.proxies.setEnabled('vmm_rm', false);
    const t0 = performance.now();
    const destroying = destroy(t, where);
    await sleep(1_500);
    await t.proxies.setEnabled('vmm_rm', true);
    const vm = await destroying;
    console.log(`partition: DestroyVm took ${(performance.now() - t0).toFixed(0)} ms; teardown ${JSON.stringify(vm.teardown)}`);
    expect(vm.leaked).toEqual([]);
    expect(vm.teardown.every((s) => s.ok)).toBe(true);
    expect(vm.teardown.some((s) => s.attempts > 1)).toBe(true);
    expect((await lifeCycle(t)).vm.leaked).toEqual([]);
    await assertClean(t);
  }, SCENARIO_MS);

  test('a slow msgq (vmm→rm at 1 KB/s each way, replies sliced into 8-byte pieces): a VM life cycle completes, slower, and nothing is left', async () => {
    const t = await topology();
    const clean = await lifeCycle(t);
    for (const stream of ['upstream', 'downstream'] as const) await t.proxies.addToxic('vmm_rm', { type: 'bandwidth', stream, attributes: { rate: 1 } });
    await t.proxies.addToxic('vmm_rm', { type: 'slicer', stream: 'downstream', attributes: { average_size: 8, size_variation: 4, delay: 200 } });
    const { vm, ms: slow } = await lifeCycle(t);
    console.log(`slow msgq: a VM life cycle took ${slow.toFixed(0)} ms, ${clean.ms.toFixed(0)} ms without`);
    expect(clean.vm.leaked).toEqual([]);
    expect(vm.leaked).toEqual([]);
    expect(vm.teardown.every((s) => s.ok)).toBe(true);
    // The toxic sleeps per byte, so the added time is the life cycle's msgq bytes at 1 KB/s (~1 s).
    expect(slow).toBeGreaterThan(clean.ms + 500);
    await assertClean(t);
  }, SCENARIO_MS);

  // The RM's CreateGrant reaches the core and every reply is lost for longer than the RM's
  // --core-timeout-ms, retries with the same request id included: the RM answers MEM_LEND BUSY
  // core_outcome_unknown and records no parcel, and the core holds a grant nobody names (a LEND of
  // the DTB's 2 host frames to the VM). The RM settles such a create once the core answers again
  // (the same id, then a DestroyGrant of what it made: services/rm core-client.ts), so after the
  // link heals the grant goes, the VM's teardown can deallocate it, and nothing is left. Before,
  // the grant stayed for good, and the teardown reported the VMID and its pool pages but not it.
  test('a lost reply on rm→core (downstream blackhole) during StartVm\'s lends: the RM settles the unknown create once the link heals; nothing is left', async () => {
    const t = await topology();
    const where = await prepareVm(t, 3);
    await t.proxies.addToxic('rm_core', { name: 'lost_replies', type: 'timeout', stream: 'downstream', attributes: { timeout: 0 } });
    expect(await refusal(start(t, where))).toMatch(/^DEADLINE_EXCEEDED: .*core/);
    await t.proxies.removeToxic('rm_core', 'lost_replies');
    const vm = await destroy(t, where);
    expect(vm.leaked).toEqual([]);
    await assertClean(t);
  }, SCENARIO_MS);
});
