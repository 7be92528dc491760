/**
 * The VM manager against an in-process RM and core: the L24 start sequence (§4.4), teardown in
 * _gunyah_vm_put's order, ENOMEM top-up and retry (seed 003), the realm life cycle (seed 004), and
 * session-bound handles (seed 001). Every scenario ends with all memory back with the host.
 */
import { ResourceManager, VMID_HLOS, inProcessCore, rmFail } from '@hypmesh/rm';
import { MEM_TYPE } from '@hypmesh/rm-wire';
import { DEFAULT_STAGE2_CONFIG, HYP_SPACE_POOL_PAGES, Stage2, drainTablePool, readEntry, tablePageCounts, translate, vmid, VMID_HOST } from '@hypmesh/stage2';
import { describe, expect, test } from 'vitest';
import { RIGHTS } from './bindings.js';
import { donationRegionOf, inProcessCorePort, inProcessRm } from './in-process.js';
import type { RmPort } from './ports.js';
import { bind, GiB, HOST_GUEST_RAM, MiB, timerClock, vmmFixture, type VmmFixture } from './test-support.js';
import { DEFAULT_VMM_CONFIG, VmManager, type VmView } from './vm-manager.js';

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { errno: string; rule: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.errno} ${r.error.rule}: ${r.error.message}`);
  return r.value;
};

/** A GUNYAH VM with a lent 4 MiB binding holding the DTB, a shared 64 KiB one (RW) and two boot registers. */
async function configured(f: VmmFixture): Promise<VmView> {
  const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
  must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
  must(f.vmm.mapMem(vm.handle, bind(0x9000_0000, 8 * MiB, 64 * 1024, 'SHARE', 6)));
  must(f.vmm.setDtbConfig(vm.handle, 0x8000_0000n + 0x10_0010n, 0x2000n));
  must(f.vmm.setBootContext(vm.handle, 'PC', 0, 0x8000_0000n));
  must(f.vmm.setBootContext(vm.handle, 'X', 0, 0x8010_0010n));
  return vm;
}

describe('§4.4 L24 gunyah_vm_start', () => {
  test('the exact RM call order, the demand-paged grants pre-faulted before VM_START; START is idempotent; the VM is RUNNING', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    f.calls.length = 0;
    const started = must(await f.vmm.start(vm.handle));
    const guest = `0x${vm.vmid.toString(16)}`;
    expect(f.calls).toEqual([
      'MEM_LEND', // the DTB range, 1-ACL parcel (the only parcel)
      'VM_CONFIG_IMAGE',
      'VM_SET_DEMAND_PAGING',
      'VM_SET_ADDRESS_LAYOUT',
      'VM_INIT',
      'VM_SET_CONTEXT',
      'VM_SET_CONTEXT',
      'VM_GET_HYP_RESOURCES',
      // L24 demand paging, bypassing the RM, pre-faulted: the host's hypercalls for the guest.
      'CreateGrant LEND as HOST', // the lend binding less the DTB range
      `MapGrant as ${guest}`,
      'CreateGrant SHARE as HOST', // the share binding
      `MapGrant as ${guest}`,
      'VM_START', // maps the DTB parcel at its IMAGE address
    ]);
    expect([started.state, started.rmStatus]).toEqual(['RUNNING', 'RUNNING']);
    expect(f.rm.vms.get(vm.vmid)!.bootContext.get('1:0')).toBe(0x8000_0000n);
    f.calls.length = 0;
    expect(must(await f.vmm.start(vm.handle)).state).toBe('RUNNING');
    expect(f.calls).toEqual([]);
    const late = f.vmm.setBootContext(vm.handle, 'X', 1, 0n);
    expect(late.ok ? 'ok' : `${late.error.errno} ${late.error.rule}`).toBe('EINVAL vm_started');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });

  test('a failing step: START fails with its errno, later STARTs are -ENODEV', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 64 * 1024)));
    must(f.vmm.setDtbConfig(vm.handle, 0x9000_0000n, 0x1000n)); // outside every binding
    const r = await f.vmm.start(vm.handle);
    expect(r.ok ? 'ok' : `${r.error.errno} ${r.error.rule}`).toBe('EINVAL dtb_not_in_binding');
    const again = await f.vmm.start(vm.handle);
    expect(again.ok ? 'ok' : `${again.error.errno} ${again.error.rule}`).toBe('ENODEV not_running');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });
});

describe('§4.4 _gunyah_vm_put: teardown order, every page back', () => {
  test('RUNNING: forced stop, DTB parcel reclaim, demand-paged memory reclaimed, reset and wait, reclaim, dealloc; then the core pages', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    must(await f.vmm.start(vm.handle));
    f.calls.length = 0;
    const done = must(await f.vmm.destroy(vm.handle));
    const guest = `0x${vm.vmid.toString(16)}`;
    expect(f.calls).toEqual([
      'VM_STOP',
      'MEM_RECLAIM', // the DTB parcel: still accepted, refused until the reset releases it
      // "reclaim all demand-paged memory" (reclaim = unmap + donate back), last mapped first
      `UnmapGrant as ${guest}`,
      'DestroyGrant as HOST',
      `UnmapGrant as ${guest}`,
      'DestroyGrant as HOST',
      'VM_RESET',
      'MEM_RECLAIM',
      'VM_DEALLOCATE',
    ]);
    expect(done.state).toBe('DESTROYED');
    expect(done.leaked).toEqual([]);
    expect(done.teardown.every((t) => t.ok)).toBe(true);
    expect(done.teardown.map((t) => t.step)).toEqual([
      'vm_stop',
      'reclaim_demand_paged binding@0x90000000',
      'reclaim_demand_paged binding@0x80000000',
      'vm_reset',
      'mem_reclaim dtb',
      'vm_deallocate', // which destroys the stage-2 too (§4.2)
    ]);
    f.expectAllBack();
  });

  test('stop waits for EXITED; destroy of a never-started VM only deallocates', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    must(await f.vmm.start(vm.handle));
    const stopped = must(await f.vmm.stop(vm.handle));
    expect([stopped.state, stopped.rmStatus]).toEqual(['STOPPED', 'EXITED']);
    must(await f.vmm.destroy(vm.handle));
    const idle = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    f.calls.length = 0;
    must(await f.vmm.destroy(idle.handle));
    expect(f.calls).toEqual(['VM_DEALLOCATE']);
    f.expectAllBack();
  });
});

/** Empties the starter pool VM_ALLOCATE's stage-2 comes with (back to HYP's reservation), so the pool starts empty. */
function drainStarterPool(f: VmmFixture, id: number): void {
  expect(drainTablePool(f.s, vmid(id), HYP_SPACE_POOL_PAGES)).toMatchObject({ ok: true, value: { poolPages: 0 } });
}

describe('seed 003: host donations for the stage-2, ENOMEM top-up and retry', () => {
  test('no pool reserved: MapGrant of a binding answers ENOMEM, the VMM tops the pool up and maps again', async () => {
    const f = vmmFixture({ initialPoolPages: 0, topUpPages: 1, reservePoolAtStart: false, attemptsMax: 6 });
    const vm = await configured(f);
    drainStarterPool(f, vm.vmid);
    const r = must(await f.vmm.start(vm.handle));
    expect(r.rmStatus).toBe('RUNNING');
    expect(f.calls.filter((c) => c.startsWith('MapGrant')).length).toBeGreaterThan(2); // two bindings, at least one mapped again
    expect(f.calls.filter((c) => c.startsWith('CreateGrant')).length).toBe(2);
    expect(translate(f.s, vmid(vm.vmid), 0x8000_0000).ok).toBe(true);
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });

  test('no pool reserved: VM_START answers NOMEM, the VMM reclaims the demand-paged grants, tops up, resets and starts again', async () => {
    const f = vmmFixture({ initialPoolPages: 0, topUpPages: 2, reservePoolAtStart: false, attemptsMax: 6 });
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    drainStarterPool(f, vm.vmid);
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 2 * 4096))); // the DTB's binding: all of it is the DTB parcel
    must(f.vmm.mapMem(vm.handle, bind(0x4000_0000, MiB, 4096))); // another GiB: its own L2 and L3 tables
    must(f.vmm.setDtbConfig(vm.handle, 0x8000_0010n, 0x1000n));
    const r = must(await f.vmm.start(vm.handle));
    expect(r.rmStatus).toBe('RUNNING');
    const guest = `0x${vm.vmid.toString(16)}`;
    const first = f.calls.indexOf('VM_START');
    // The grant's MapGrant took the 2 pages topped up; VM_START needs 2 more for the DTB parcel.
    expect(f.calls.slice(first, first + 4)).toEqual(['VM_START', `UnmapGrant as ${guest}`, 'DestroyGrant as HOST', 'VM_RESET']);
    expect(f.calls.filter((c) => c === 'VM_START').length).toBe(2);
    expect(translate(f.s, vmid(vm.vmid), 0x4000_0000).ok).toBe(true);
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });

  test('§4.2 create: VM_ALLOCATE makes the RM create the stage-2; the VMM only tops its pool up', async () => {
    const f = vmmFixture({ initialPoolPages: 6 });
    const reserved = f.s.hypReservation.size;
    f.calls.length = 0;
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 36)); // a narrower VM fits in the 40-bit stage-2
    expect(f.calls).toEqual(['VM_ALLOCATE']); // no CreateAddressSpace: the RM made the stage-2
    expect(tablePageCounts(f.s).find((c) => c.vmid === vm.vmid)).toEqual({ vmid: vm.vmid, rootPages: 2, tablePages: 0, poolPages: HYP_SPACE_POOL_PAGES + 6 });
    expect(f.s.hypReservation.size).toBe(reserved - 2 - HYP_SPACE_POOL_PAGES);
    expect(vm.hostPages).toBe(6); // only the top-up is the host's
    must(await f.vmm.destroy(vm.handle));
    expect(f.s.spaces.has(vmid(vm.vmid))).toBe(false);
    expect(f.s.hypReservation.size).toBe(reserved);
    f.expectAllBack();
  });

  test('§4.2 create: an IPA width beyond the platform\'s 40 bits is EINVAL ipa_bits_beyond_platform, nothing allocated', async () => {
    const f = vmmFixture();
    f.calls.length = 0;
    const r = await f.vmm.create(f.session, 'GUNYAH', 41);
    expect(r.ok ? 'ok' : `${r.error.errno} ${r.error.rule}`).toBe('EINVAL ipa_bits_beyond_platform');
    expect(f.calls).toEqual([]);
    f.expectAllBack();
  });
});

describe('seed 004: realm VMs over the core RMI', () => {
  test('create, data, activate, destroy: no delegated granule left, every page with the host', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'REALM', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x10_0000, 16 * MiB, 8 * 4096)));
    must(f.vmm.mapMem(vm.handle, bind(GiB + 2 * MiB - 4096, 17 * MiB, 2 * 4096)));
    const r = must(await f.vmm.start(vm.handle));
    expect(r.state).toBe('RUNNING');
    expect(f.s.rmm.realms.size).toBe(1);
    expect([...f.s.rmm.realms.values()][0]!.state).toBe('ACTIVE');
    expect(r.hostPages).toBeGreaterThan(10);
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.leaked).toEqual([]);
    expect(done.hostPages).toBe(0);
    f.expectAllBack();
  });

  test('a realm binding must be lent and protected', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'REALM', 40));
    const r = f.vmm.mapMem(vm.handle, bind(0, 0, 4096, 'SHARE'));
    expect(r.ok ? 'ok' : r.error.rule).toBe('realm_binding_not_private');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });
});

describe('seed 001: handles bound to the client session', () => {
  test('the session ends without DestroyVm: its VMs are torn down in the background', async () => {
    const f = vmmFixture();
    const a = await configured(f);
    must(await f.vmm.start(a.handle));
    const b = must(await f.vmm.create(f.session, 'REALM', 40));
    const other = f.vmm.openSession();
    const c = must(await f.vmm.create(other, 'GUNYAH', 40));
    const states: string[] = [];
    f.vmm.watch((e) => e.kind === 'STATE' && e.handle === a.handle && states.push(e.state));
    f.vmm.endSession(f.session);
    await f.vmm.idle();
    expect(states).toEqual(['DESTROYING', 'DESTROYED']);
    expect(f.vmm.view(a.handle)).toBeUndefined();
    expect(f.vmm.view(b.handle)).toBeUndefined();
    expect(f.vmm.view(c.handle)?.state).toBe('CREATED');
    const r = await f.vmm.create(f.session, 'GUNYAH', 40);
    expect(r.ok ? 'ok' : r.error.rule).toBe('session_unknown');
    expect((await f.vmm.start(c.handle, f.session)).ok).toBe(false); // another session's handle
    f.vmm.endSession(other);
    await f.vmm.idle();
    f.expectAllBack();
  });

  test('handlesPerSession: each session numbers its VMs from 1, a handle names a VM only with its session, events name the session', async () => {
    const f = vmmFixture({ handlesPerSession: true });
    const other = f.vmm.openSession();
    const events: string[] = [];
    f.vmm.watch((e) => e.kind === 'STATE' && events.push(`${e.session === f.session ? 'A' : 'B'}${e.handle} ${e.state}`));
    const a1 = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    const b1 = must(await f.vmm.create(other, 'GUNYAH', 40));
    const a2 = must(await f.vmm.create(f.session, 'REALM', 40));
    expect([a1.handle, b1.handle, a2.handle]).toEqual([1, 1, 2]);
    expect([f.vmm.describe(1, f.session), f.vmm.describe(1, other)].map((r) => (r.ok ? r.value.vmid : r.error.rule))).toEqual([a1.vmid, b1.vmid]);
    expect(must(f.vmm.listVms(other)).map((v) => v.handle)).toEqual([1]);
    const none = f.vmm.describe(2, other);
    expect(none.ok ? 'ok' : none.error.rule).toBe('no_such_vm');
    must(await f.vmm.destroy(1, other));
    expect(must(f.vmm.listVms(f.session)).map((v) => `${v.handle} ${v.type}`)).toEqual(['1 GUNYAH', '2 REALM']);
    expect(events).toEqual(['A1 CREATED', 'B1 CREATED', 'A2 CREATED', 'B1 DESTROYING', 'B1 DESTROYED']);
    // A handle is not reused within its session once destroyed (no fd-style reuse of the lowest).
    must(await f.vmm.destroy(2, f.session));
    expect(must(await f.vmm.create(f.session, 'GUNYAH', 40)).handle).toBe(3);
    f.vmm.endSession(f.session);
    f.vmm.endSession(other);
    await f.vmm.idle();
    f.expectAllBack();
  });
});

describe('§4.4 L24 demand paging bypasses the RM: each binding is a core grant mapped at its guest address (pre-faulted at START)', () => {
  const P = 4096;
  const RX = RIGHTS.R | RIGHTS.X;
  /** The guest's translation of `ipa`, or why there is none. */
  const inGuest = (f: VmmFixture, v: number, ipa: number) => {
    const r = translate(f.s, vmid(v), ipa);
    return r.ok ? r.value : r.error.rule;
  };
  /** The host stage-2 entry of `pa` (identity-mapped). */
  const inHost = (f: VmmFixture, pa: bigint) => must(readEntry(f.s, VMID_HOST, Number(pa)));

  test('a lend binding: mapped at its guest address with its rights, the DTB range by the RM parcel, and the host loses access', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB, 'LEND', RX)));
    must(f.vmm.setDtbConfig(vm.handle, 0x8010_0010n, 0x2000n));
    must(await f.vmm.start(vm.handle));
    for (const off of [0, P, 0x10_0000 - P, 0x10_3000, 4 * MiB - P]) {
      expect(inGuest(f, vm.vmid, 0x8000_0000 + off)).toMatchObject({ pa: Number(HOST_GUEST_RAM) + off, perms: RX, state: 'SHARED_BORROWED' });
      expect(inHost(f, HOST_GUEST_RAM + BigInt(off))).toMatchObject({ valid: false, state: 'LENT' });
    }
    // The DTB range [0x80100000, 0x80103000) is the RM's 1-ACL parcel, mapped RWX by VM_START at its guest address.
    expect(inGuest(f, vm.vmid, 0x8010_0000)).toMatchObject({ pa: Number(HOST_GUEST_RAM) + 0x10_0000, perms: RIGHTS.R | RIGHTS.W | RIGHTS.X });
    expect(inHost(f, HOST_GUEST_RAM + 0x10_0000n)).toMatchObject({ valid: false, state: 'LENT' });
    // Nothing at the IPAs the RM would have chosen for a parcel, and the RM holds only the DTB parcel.
    expect(f.rm.parcels.size).toBe(1);
    expect(inGuest(f, vm.vmid, 0x1_0000_0000)).toBe('not_mapped');
    expect(inGuest(f, vm.vmid, 0x8000_0000 + 4 * MiB)).toBe('not_mapped');
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.leaked).toEqual([]);
    expect(inHost(f, HOST_GUEST_RAM)).toMatchObject({ valid: true, state: 'OWNED', perms: RIGHTS.R | RIGHTS.W | RIGHTS.X });
    f.expectAllBack();
  });

  test('a share binding: mapped at its guest address with its rights, and the host keeps its access', async () => {
    const f = vmmFixture();
    const vm = await configured(f); // share 64 KiB RW at 0x90000000 ← host +8 MiB
    must(await f.vmm.start(vm.handle));
    for (const off of [0, 0x1_0000 - P]) {
      expect(inGuest(f, vm.vmid, 0x9000_0000 + off)).toMatchObject({ pa: Number(HOST_GUEST_RAM) + 8 * MiB + off, perms: RIGHTS.R | RIGHTS.W, state: 'SHARED_BORROWED' });
      expect(inHost(f, HOST_GUEST_RAM + BigInt(8 * MiB + off))).toMatchObject({ valid: true, state: 'SHARED_OWNED', perms: RIGHTS.R | RIGHTS.W | RIGHTS.X });
    }
    expect(inGuest(f, vm.vmid, 0x9000_0000 + 0x1_0000)).toBe('not_mapped');
    must(await f.vmm.destroy(vm.handle));
    expect(inHost(f, HOST_GUEST_RAM + BigInt(8 * MiB))).toMatchObject({ valid: true, state: 'OWNED' });
    f.expectAllBack();
  });

  test('a failure at START (the share binding\'s host memory is in a parcel already) unmaps and destroys what it mapped; later STARTs are -ENODEV', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    // The host lends the share binding's memory elsewhere first: CreateGrant of it is refused.
    const lent = await f.rm.call(VMID_HLOS, 'MEM_LEND', { memType: MEM_TYPE.NORMAL, flags: 0, label: 9, acl: [{ vmid: vm.vmid, rights: RIGHTS.R }], sgl: [{ base: HOST_GUEST_RAM + BigInt(8 * MiB), size: BigInt(P) }], attrs: [] });
    if (!lent.ok) throw new Error(lent.error.rule);
    f.calls.length = 0;
    const r = await f.vmm.start(vm.handle);
    expect(r.ok ? 'ok' : `${r.error.errno} ${r.error.rule} ${r.error.cause}`).toBe('EPERM start_demand_paged_grant EPERM');
    const guest = `0x${vm.vmid.toString(16)}`;
    expect(f.calls.slice(f.calls.indexOf('VM_GET_HYP_RESOURCES') + 1)).toEqual(['CreateGrant LEND as HOST', `MapGrant as ${guest}`, 'CreateGrant SHARE as HOST', `UnmapGrant as ${guest}`, 'DestroyGrant as HOST']);
    expect(f.s.grants.size).toBe(2); // the DTB parcel's and the other parcel's
    expect(inGuest(f, vm.vmid, 0x8000_0000)).toBe('not_mapped');
    expect(inHost(f, HOST_GUEST_RAM)).toMatchObject({ valid: true, state: 'OWNED' });
    const again = await f.vmm.start(vm.handle);
    expect(again.ok ? 'ok' : `${again.error.errno} ${again.error.rule}`).toBe('ENODEV not_running');
    const reclaimed = await f.rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle: lent.value.handle, flags: 0 });
    expect(reclaimed.ok).toBe(true);
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.leaked).toEqual([]);
    expect(done.teardown.map((t) => t.step).filter((t) => t.startsWith('reclaim_demand_paged'))).toEqual([]);
    f.expectAllBack();
  });
});

describe('teardown: the VMID outlives its core address space (simulation bug 2)', () => {
  // Found by `hypmesh sim`: HLOS lent a parcel to a VM; the VM's teardown deallocated the VMID while
  // the core kept the space (space_in_grant); the RM handed the VMID out again and every later
  // create failed EEXIST vmid_in_use. VM_DEALLOCATE now destroys the stage-2 itself and is BUSY
  // while a parcel names the VM (§4.2), so a space that will not go keeps its VMID, reported in `leaked`.
  test('vm_deallocate_refused_keeps_vmid: the next create gets another VMID and succeeds', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    const lent = await f.rm.call(VMID_HLOS, 'MEM_LEND', { memType: MEM_TYPE.NORMAL, flags: 0, label: 0, acl: [{ vmid: vm.vmid, rights: 7 }], sgl: [{ base: HOST_GUEST_RAM + BigInt(64 * MiB), size: 4096n }], attrs: [] });
    if (!lent.ok) throw new Error(lent.error.rule);
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.teardown.map((t) => [t.step, t.ok])).toEqual([['vm_deallocate', false]]);
    expect(done.leaked).toEqual([expect.stringContaining(`VMID ${vm.vmid} (RM status`), expect.stringContaining(`stage-2 pool pages of VM ${vm.vmid}`)]);
    expect(f.rm.vms.has(vm.vmid)).toBe(true);
    const next = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    expect(next.vmid).not.toBe(vm.vmid);
    must(await f.vmm.destroy(next.handle));
    expect((await f.rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle: lent.value.handle, flags: 0 })).ok).toBe(true);
  });
});

describe('a create whose undo is refused is not forgotten (simulation)', () => {
  // Found by `hypmesh sim` with faults on VM_DEALLOCATE's stage-2: the pool top-up failed, the
  // undoing VM_DEALLOCATE was refused, and the VM stayed in the RM and the core with no VMM record,
  // no teardown and nothing reported.
  test('create_undo_refused_is_torn_down: CreateVm fails ENOMEM pool_top_up; the VM is torn down like any other and nothing leaks', async () => {
    const s = new Stage2(DEFAULT_STAGE2_CONFIG);
    const rm = new ResourceManager(inProcessCore(s));
    const port = inProcessRm(rm);
    let deallocRefusals = 1;
    const refusing: RmPort = {
      ...port,
      vmDeallocate: async (req) => (deallocRefusals-- > 0 ? rmFail('BUSY', 'core_space_in_grant', 'test: refused once') : port.vmDeallocate(req)),
    };
    const core = inProcessCorePort(s);
    const vmm = new VmManager(refusing, { ...core, topUpTablePool: async () => ({ ok: false, error: { errno: 'ENOMEM', rule: 'test_no_pages', message: 'test' } }) }, { ...DEFAULT_VMM_CONFIG, donationRegion: donationRegionOf(s) }, timerClock);
    const states: string[] = [];
    vmm.watch((e) => void (e.kind === 'STATE' && states.push(e.state)));
    const session = vmm.openSession();
    const made = await vmm.create(session, 'GUNYAH', 40);
    expect(made.ok ? 'OK' : `${made.error.errno} ${made.error.rule}`).toBe('ENOMEM pool_top_up');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(states).toContain('DESTROYED');
    expect([rm.vms.size, s.spaces.size, vmm.counts().vms]).toEqual([0, 1, 0]);
  });
});

describe('a start that stopped in INIT (issue 9: pause mid-start)', () => {
  // With the RM paused mid-start, the VMM's call after CONFIG_IMAGE timed out: the VM stayed in
  // INIT, which VM_RESET and VM_DEALLOCATE refuse, and its VMID was never freed.
  test('init_stuck_is_torn_down: VM_SET_ADDRESS_LAYOUT refused, the teardown sends VM_INIT, resets and deallocates; nothing leaks', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    const port = (f.vmm as unknown as { ops: { rm: RmPort } }).ops.rm;
    const layout = port.vmSetAddressLayout;
    port.vmSetAddressLayout = async () => rmFail('NORESOURCE', 'test_refused', 'test: refused once');
    const r = await f.vmm.start(vm.handle);
    expect(r.ok ? 'ok' : `${r.error.errno} ${r.error.rule}`).toBe('ENODEV start_vm_set_address_layout');
    port.vmSetAddressLayout = layout;
    expect(f.rm.vms.get(vm.vmid)?.status).toBe('INIT');
    f.calls.length = 0;
    const done = must(await f.vmm.destroy(vm.handle));
    expect(f.calls).toEqual(['MEM_RECLAIM', 'VM_INIT', 'VM_RESET', 'VM_DEALLOCATE']);
    expect(done.leaked).toEqual([]);
    f.expectAllBack();
  });
});

describe('a teardown waits for an in-flight start (simulation bug 3)', () => {
  // Found by `hypmesh sim`: a destroy arriving while the start sequence waited on the RM tore the
  // VM down, then the start went on: it lent the DTB after the teardown had reclaimed (an orphan
  // parcel nobody reported) or left START_FAILED over DESTROYING while the core space was gone.
  test('destroy_during_start_waits_for_it: the start is refused, the teardown leaks nothing', async () => {
    const s = new Stage2(DEFAULT_STAGE2_CONFIG);
    const rm = new ResourceManager(inProcessCore(s));
    const port = inProcessRm(rm);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const gated: RmPort = { ...port, vmGetHypResources: async (req) => (await gate, port.vmGetHypResources(req)) };
    const vmm = new VmManager(gated, inProcessCorePort(s), { ...DEFAULT_VMM_CONFIG, donationRegion: donationRegionOf(s), waitMs: 1_000 }, timerClock);
    const session = vmm.openSession();
    const vm = must(await vmm.create(session, 'GUNYAH', 40));
    must(vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(vmm.setDtbConfig(vm.handle, 0x8000_0000n, 0x1000n));
    const starting = vmm.start(vm.handle);
    await new Promise((resolve) => setImmediate(resolve));
    const destroying = vmm.destroy(vm.handle);
    open();
    const started = await starting;
    const done = must(await destroying);
    expect(started.ok ? 'OK' : `${started.error.errno} ${started.error.rule}`).toBe('ENODEV vm_destroying');
    expect(done.state).toBe('DESTROYED');
    expect(done.leaked).toEqual([]);
    expect([s.grants.size, rm.parcels.size, rm.vms.size, s.spaces.size]).toEqual([0, 0, 0, 1]);
  });
});
