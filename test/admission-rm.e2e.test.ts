/**
 * Issue 10's admission findings against the RM and the VMM as separate processes: a rogue HLOS tool
 * talking to the RM directly (`x-hypmesh-client: tool`) takes what its quotas allow and is then
 * refused RESOURCE_EXHAUSTED naming the rule, with nothing changed, and the VMM's CreateVm + StartVm
 * still work (before: 63 VM_ALLOCATEs and every CreateVm was ENODEV; 64 MEM_SHAREs and every StartVm
 * was EPERM). Then the VMM's own quotas (HYPMESH_VMM_QUOTA): sessions (streams and leases), VMs
 * and streams per client, each refused and each released when its object goes.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { MemType, RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type OpenSessionResponse, type Vm, type WatchVmResponse } from '@hypmesh/proto/vmm';
import { ADMISSION_DOMAIN, CALLER_VMID_KEY, CLIENT_KEY, decodeStatusDetails } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Processes, type Addresses } from './support/processes.js';

const HLOS = 3;
const RW = 6;
const RWX = 7;
const MiB = 2 ** 20;
/** HLOS RAM (the default core RAM is 2..18 GiB): the rogue shares pages at 3 GiB, guests get 4 GiB up. */
const RAM = BigInt(3 * 2 ** 30);
const GUEST_RAM = BigInt(4 * 2 ** 30);

const processes = new Processes();
let addrs: Addresses;
let rm: RmServiceClient;
let vmm: VmmServiceClient;
let core: CoreServiceClient;

beforeAll(async () => {
  // The RM with its default quotas; the VMM's small enough to reach in a test, `good` with room.
  addrs = await processes.startServices(['--check-invariants'], { vmm: { HYPMESH_VMM_QUOTA: 'sessions=3,vms=2,streams=5,good:vms=4' } });
  rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
  vmm = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  core = new CoreServiceClient(addrs.core, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  rm?.close();
  vmm?.close();
  core?.close();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

const md = (who?: string): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set(CALLER_VMID_KEY, String(HLOS));
  if (who !== undefined) m.set(CLIENT_KEY, who);
  return m;
};
type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
function ask<Res>(c: grpc.Client, method: unknown, req: object, who?: string): Promise<Res> {
  return new Promise((resolve, reject) => (method as Unary).call(c, req, md(who), { deadline: Date.now() + 20_000 }, (e, r) => (e ? reject(e) : resolve(r as Res))));
}
const refusal = (p: Promise<unknown>): Promise<grpc.ServiceError> =>
  p.then(
    () => expect.fail('expected a refusal, got OK'),
    (e: grpc.ServiceError) => e,
  );
function expectQuota(e: grpc.ServiceError, rule: string, principal: string): void {
  const d = decodeStatusDetails(e);
  expect(grpc.status[d.code], d.message).toBe('RESOURCE_EXHAUSTED');
  expect(d.errorInfo).toMatchObject({ reason: `quota_${rule}`, domain: ADMISSION_DOMAIN, metadata: { principal } });
}

/** An OpenSession stream as `who`: its session id, or the stream's error. */
function session(who: string): Promise<{ stream: grpc.ClientReadableStream<OpenSessionResponse>; sessionId: string } | grpc.ServiceError> {
  const stream = vmm.openSession({}, md(who));
  return new Promise((resolve) => {
    stream.once('data', (m: OpenSessionResponse) => resolve({ stream, sessionId: m.sessionId ?? '' }));
    stream.once('error', (e: grpc.ServiceError) => resolve(e));
  });
}
async function mustSession(who: string): Promise<{ stream: grpc.ClientReadableStream<OpenSessionResponse>; sessionId: string }> {
  const s = await session(who);
  if (s instanceof Error) throw s;
  s.stream.on('error', () => {});
  return s;
}

/** CreateVm, MapMem, SetDtbConfig, SetBootContext, StartVm as `who`: the started VM. */
async function createAndStart(who: string, sessionId: string, slot: number): Promise<Vm> {
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, who)).vm;
  const where = { sessionId, handle: vm.handle };
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM + BigInt(slot * 8 * MiB), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false }, who);
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n }, who);
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }, who);
  return (await ask<{ vm: Vm }>(vmm, vmm.startVm, where, who)).vm;
}

const rmVms = async (): Promise<number> => (await ask<{ vms: unknown[] }>(rm, rm.listVms, {})).vms.length;
const rmParcels = async (): Promise<number> => (await ask<{ parcels: unknown[] }>(rm, rm.listParcels, { allVms: true })).parcels.length;

describe('a rogue tool at the RM no longer starves the VMM', () => {
  test('63 VM_ALLOCATEs and 64 MEM_SHAREs: 31 and 32 are taken, the rest refused naming the rule with nothing changed; the VMM still creates and starts a VM', async () => {
    let vmids = 0;
    let last: grpc.ServiceError | undefined;
    for (let i = 0; i < 63; i++) {
      try {
        await ask(rm, rm.vmAllocate, { vmid: 0 }, 'tool');
        vmids++;
      } catch (e) {
        last = e as grpc.ServiceError;
      }
    }
    expect(vmids).toBe(31);
    expectQuota(last!, 'vmids', '3/tool');
    expect(await rmVms()).toBe(31);

    const target = (await ask<{ vms: { vmid: number }[] }>(rm, rm.listVms, {})).vms[0]!.vmid;
    let parcels = 0;
    for (let i = 0; i < 64; i++) {
      try {
        await ask(rm, rm.memShare, { memType: MemType.MEM_TYPE_NORMAL, sanitize: false, append: false, label: 9, acl: [{ vmid: target, rights: RW }, { vmid: HLOS, rights: RWX }], sgl: [{ base: RAM + BigInt(i * 0x1000), size: 0x1000n }], attrs: [] }, 'tool');
        parcels++;
      } catch (e) {
        last = e as grpc.ServiceError;
      }
    }
    expect(parcels).toBe(32);
    expectQuota(last!, 'parcels', '3/tool');
    expect(await rmParcels()).toBe(32);

    const { stream, sessionId } = await mustSession('good');
    const vm = await createAndStart('good', sessionId, 0);
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);
    expect(await rmVms()).toBe(32);
    await ask(vmm, vmm.destroyVm, { sessionId, handle: vm.handle }, 'good');
    stream.cancel();
    expect((await ask<{ violations: string[] }>(core, core.checkInvariants, {})).violations).toEqual([]);
  }, 120_000);
});

describe('the VMM\'s quotas (HYPMESH_VMM_QUOTA=sessions=3,vms=2,streams=5,good:vms=4)', () => {
  test('sessions: OpenSession and OpenLease count together; the next is refused; an ended session or an expired lease frees its place', async () => {
    const a = await mustSession('rogue');
    const b = await mustSession('rogue');
    const lease = await ask<{ lease: { sessionId: string } }>(vmm, vmm.openLease, { ttlMs: 1_000 }, 'rogue');
    expect(lease.lease.sessionId).toMatch(/^lease-/);
    const more = await session('rogue');
    expectQuota(more as grpc.ServiceError, 'sessions', '3/rogue');
    expectQuota(await refusal(ask(vmm, vmm.openLease, { ttlMs: 1_000 }, 'rogue')), 'sessions', '3/rogue');
    // Another client is not affected.
    (await mustSession('other')).stream.cancel();

    // The lease expires (1 s without a renewal): its place is free again.
    let again: Awaited<ReturnType<typeof session>> | undefined;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      again = await session('rogue');
      if (!(again instanceof Error)) break;
    }
    expect(again).not.toBeInstanceOf(Error);
    (again as { stream: grpc.ClientReadableStream<OpenSessionResponse> }).stream.cancel();
    a.stream.cancel();
    b.stream.cancel();
  }, 30_000);

  test('vms: the third CreateVm of a client is refused with nothing made; a destroy frees its place', async () => {
    const { stream, sessionId } = await mustSession('rogue2');
    const made = [];
    for (let i = 0; i < 2; i++) made.push((await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, 'rogue2')).vm);
    const before = (await ask<{ vms: unknown[] }>(vmm, vmm.listAllVms, {})).vms.length;
    const rmBefore = await rmVms();
    expectQuota(await refusal(ask(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, 'rogue2')), 'vms', '3/rogue2');
    expect((await ask<{ vms: unknown[] }>(vmm, vmm.listAllVms, {})).vms.length).toBe(before);
    expect(await rmVms()).toBe(rmBefore);
    await ask(vmm, vmm.destroyVm, { sessionId, handle: made[0]!.handle }, 'rogue2');
    const third = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, 'rogue2')).vm;
    expect(third.handle).toBeGreaterThan(0);
    stream.cancel();
  }, 30_000);

  test('five CreateVms at once cannot overshoot vms=2: two are made, three refused', async () => {
    const { stream, sessionId } = await mustSession('burst');
    const all = await Promise.all(
      Array.from({ length: 5 }, () =>
        ask(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, 'burst').then(
          () => 'OK',
          (e: grpc.ServiceError) => decodeStatusDetails(e).errorInfo?.reason,
        ),
      ),
    );
    expect(all.filter((r) => r === 'OK')).toHaveLength(2);
    expect(all.filter((r) => r !== 'OK')).toEqual(['quota_vms', 'quota_vms', 'quota_vms']);
    expect((await ask<{ vms: unknown[] }>(vmm, vmm.listVms, { sessionId }, 'burst')).vms).toHaveLength(2);
    stream.cancel();
  }, 30_000);

  test('streams: OpenSession and WatchVm count together; the next WatchVm is refused; a watch ending frees its place', async () => {
    const { stream, sessionId } = await mustSession('watcher');
    const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, 'watcher')).vm;
    const watch = (): Promise<grpc.ClientReadableStream<WatchVmResponse> | grpc.ServiceError> => {
      const w = vmm.watchVm({ sessionId, handle: vm.handle }, md('watcher'));
      return new Promise((resolve) => {
        w.once('data', () => resolve(w));
        w.once('error', (e: grpc.ServiceError) => resolve(e));
      });
    };
    const watches = [];
    for (let i = 0; i < 4; i++) {
      const w = await watch();
      if (w instanceof Error) throw w;
      w.on('error', () => {});
      watches.push(w);
    }
    expectQuota((await watch()) as grpc.ServiceError, 'streams', '3/watcher');
    watches[0]!.cancel();
    let again: Awaited<ReturnType<typeof watch>> | undefined;
    for (let i = 0; i < 50 && (again === undefined || again instanceof Error); i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = await watch();
    }
    expect(again).not.toBeInstanceOf(Error);
    (again as grpc.ClientReadableStream<WatchVmResponse>).on('error', () => {});
    stream.cancel();
    for (const w of [...watches, again as grpc.ClientReadableStream<WatchVmResponse>]) w.cancel();
  }, 30_000);
});

describe('the VMM\'s cap on one VM\'s memory (memory_bytes_per_vm, default 8 GiB)', () => {
  test('a MapMem past 8 GiB bound is RESOURCE_EXHAUSTED cap_memory_bytes_per_vm and binds nothing; within it, it binds', async () => {
    const { stream, sessionId } = await mustSession('big');
    const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, 'big')).vm;
    const where = { sessionId, handle: vm.handle };
    const bind = (guestAddr: bigint, hostAddr: bigint, size: bigint): object => ({ ...where, unmap: false, binding: { guestAddr, hostAddr, size, mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true } });
    await ask(vmm, vmm.mapMem, bind(0x8000_0000n, GUEST_RAM, BigInt(4 * MiB)), 'big');
    const e = await refusal(ask(vmm, vmm.mapMem, bind(0x1_0000_0000n, GUEST_RAM + BigInt(2 ** 30), BigInt(8 * 2 ** 30)), 'big'));
    const d = decodeStatusDetails(e);
    expect(grpc.status[d.code]).toBe('RESOURCE_EXHAUSTED');
    expect(d.errorInfo).toMatchObject({ reason: 'cap_memory_bytes_per_vm', metadata: { principal: '3/big', bound: String(4 * MiB), limit: String(8 * 2 ** 30) } });
    const view = (await ask<{ vm: Vm }>(vmm, vmm.getVm, where, 'big')).vm;
    expect(view.bindings).toHaveLength(1);
    await ask(vmm, vmm.mapMem, bind(0x1_0000_0000n, GUEST_RAM + BigInt(2 ** 30), BigInt(2 ** 30)), 'big');
    stream.cancel();
  }, 30_000);
});
