/**
 * VM management, gunyah-rm.md §4.2 over the §4.3 state machine: one named case per rule, the
 * Linux (L24) start sequence of §4.4 with VM_START's boot-parcel acceptance, and the teardown.
 */
import { ACCEPT_FLAGS, ADDRESS_RANGE_ID, AUTH_MECH, EXIT_TYPE, SHARE_FLAGS, VM_STATUS } from '@hypmesh/rm-wire';
import { HYP_SPACE_POOL_PAGES, Stage2, VMID_HOST, checkInvariants, createAddressSpace, ownershipCounts, tablePageCounts, translate, vmid } from '@hypmesh/stage2';
import { beforeEach, describe, expect, test } from 'vitest';
import type { RmOutcome } from './rm-outcome.js';
import { RM_TEST_MEMORY, RW, RWX, acceptReq, createReq, hlosAddr, rmFixture, sgl, type RmFixture, drained, outcome } from './test-support.js';
import { snapshotRm } from './snapshot.js';
import { DEFAULT_RM_CONFIG, VMID_DYNAMIC_FIRST, VMID_HLOS, VMID_RM } from './vmid.js';
import { ResourceManager } from './resource-manager.js';
import { inProcessCore } from './in-process-core.js';
import { rmInvariants } from './invariants.js';
import { RESET_RELEASE_ATTEMPTS_MAX } from './vm.js';

let f: RmFixture;
let A = 0;
beforeEach(async () => {
  f = rmFixture();
  A = await f.vm();
});


const attempt = <T>(call: () => Promise<RmOutcome<T>>): Promise<RmOutcome<T>> => f.attempt(call);
const call = (caller: number, name: Parameters<ResourceManager['call']>[1], req: unknown) => attempt(() => f.rm.call(caller, name, req as never));
const status = (vm: number): string => f.rm.vms.get(vm)?.status ?? 'gone';

/** L24 gunyah_vm_start up to READY (§4.4): lend the DTB, configure, demand paging, layout, init. */
async function toReady(vm: number): Promise<number> {
  const dtb = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: vm, rights: RWX }], [sgl(0x100000, 0x10000)], { label: 0 }));
  const handle = dtb.ok ? (dtb.value as { handle: number }).handle : -1;
  expect(outcome(await call(VMID_HLOS, 'VM_CONFIG_IMAGE', { vmid: vm, authMech: 0, memHandle: handle, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x1000n }))).toBe('OK');
  expect(outcome(await call(VMID_HLOS, 'VM_SET_DEMAND_PAGING', { vmid: vm, ranges: [] }))).toBe('OK');
  expect(outcome(await call(VMID_HLOS, 'VM_SET_ADDRESS_LAYOUT', { vmid: vm, rangeId: ADDRESS_RANGE_ID.IMAGE, base: 0x8000_0000n, size: 0x10000n }))).toBe('OK');
  expect(outcome(await call(VMID_HLOS, 'VM_INIT', { vmid: vm, reserved: 0 }))).toBe('OK');
  expect(outcome(await call(VMID_HLOS, 'VM_SET_CONTEXT', { vmid: vm, regSet: 1, regIndex: 0, value: 0x8000_0000n }))).toBe('OK');
  return handle;
}

describe('§4.2 VM_ALLOCATE / VM_DEALLOCATE', () => {
  test('only HLOS allocates; VMID 0 picks the lowest free dynamic VMID; explicit needs a platform VMID', async () => {
    expect(A).toBe(VMID_DYNAMIC_FIRST);
    expect(outcome(await call(A, 'VM_ALLOCATE', { vmid: 0 }))).toBe('DENIED caller_not_hlos');
    expect(outcome(await call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0x20 }))).toBe('NORESOURCE no_free_vmid');
    expect(await call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 })).toEqual({ ok: true, value: { vmid: 0x81 } });
    const rm = new ResourceManager(inProcessCore(f.s), { ...DEFAULT_RM_CONFIG, platformVmids: [0x20] });
    expect(await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0x20 })).toEqual({ ok: true, value: { vmid: null } });
    expect(outcome(await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0x20 }))).toBe('NORESOURCE no_free_vmid');
  });

  test('63 dynamic VMIDs (0x80–0xBE), then NORESOURCE', async () => {
    for (let i = 1; i < 63; i++) expect(outcome(await f.rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 }))).toBe('OK');
    expect(f.rm.vms.has(0xbe)).toBe(true);
    expect(outcome(await call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 }))).toBe('NORESOURCE no_free_vmid');
  });

  test.each([
    ['the VM exists', () => call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: 0x99 }), 'VMID_INVALID vmid_unknown'],
    ['the caller owns it', () => call(VMID_RM, 'VM_DEALLOCATE', { vmid: A }), 'DENIED not_owner'],
  ] as const)('VM_DEALLOCATE: %s', async (_rule, c, expected) => {
    expect(outcome(await c())).toBe(expected);
  });

  test('§4.2 VM_ALLOCATE creates the VM\'s stage-2 in the core: an RM-only client can name the guest in an ACL', async () => {
    // A bare RM over a bare core: nobody calls the core for the VM, as a Linux-driver harness would not.
    const s = new Stage2({ memory: RM_TEST_MEMORY });
    const rm = new ResourceManager(inProcessCore(s));
    const before = s.hypReservation.size;
    const alloc = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    const vm = alloc.ok && alloc.value.vmid !== null ? alloc.value.vmid : -1;
    expect(tablePageCounts(s).find((c) => c.vmid === vm)).toEqual({ vmid: vm, rootPages: 2, tablePages: 0, poolPages: HYP_SPACE_POOL_PAGES });
    expect(s.hypReservation.size).toBe(before - 2 - HYP_SPACE_POOL_PAGES);
    const lend = await rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: vm, rights: RW }], [sgl(0x40000, 0x2000)]));
    expect(outcome(lend)).toBe('OK');
    // The starter pool covers the first mapping, so the guest can accept without a host top-up.
    const accepted = await rm.call(vm, 'MEM_ACCEPT', acceptReq(lend.ok ? lend.value.handle : -1, 'LEND'));
    expect(outcome(accepted)).toBe('OK');
    expect(checkInvariants(s)).toEqual([]);
  });

  test('§4.2 VM_ALLOCATE with HYP\'s reservation empty is NORESOURCE core_hyp_reservation_empty and changes nothing', async () => {
    const s = new Stage2({ memory: RM_TEST_MEMORY, hypReservationPages: 2 + HYP_SPACE_POOL_PAGES });
    const rm = new ResourceManager(inProcessCore(s));
    expect(outcome(await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 }))).toBe('OK');
    const before = snapshotRm(rm, s);
    expect(outcome(await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 }))).toBe('NORESOURCE core_hyp_reservation_empty');
    expect(snapshotRm(rm, s)).toEqual(before);
    expect(rm.vmids.isAllocated(VMID_DYNAMIC_FIRST + 1)).toBe(false);
    // Deallocating the first VM gives its pages back to the reservation, and the next allocate works.
    expect(outcome(await rm.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: VMID_DYNAMIC_FIRST }))).toBe('OK');
    expect(await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 })).toEqual({ ok: true, value: { vmid: VMID_DYNAMIC_FIRST } });
  });

  test('§4.2 VM_ALLOCATE(0) skips a dynamic VMID whose stage-2 the core still has in use (an RM reset, or the host made it)', async () => {
    const s = new Stage2({ memory: RM_TEST_MEMORY });
    expect(createAddressSpace(s, vmid(VMID_DYNAMIC_FIRST), 40, [{ base: Number(hlosAddr(0x800000) / 4096n), count: 2 }] as never).ok).toBe(true);
    const rm = new ResourceManager(inProcessCore(s));
    expect(await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 })).toEqual({ ok: true, value: { vmid: VMID_DYNAMIC_FIRST + 1 } });
    expect(rm.vmids.isAllocated(VMID_DYNAMIC_FIRST)).toBe(false);
    expect(checkInvariants(s)).toEqual([]);
  });

  test('§4.2 VM_DEALLOCATE destroys the VM\'s stage-2: reserved pages back to HYP, donated ones to HLOS', async () => {
    const reserved = f.s.hypReservation.size;
    const hlosFrames = ownershipCounts(f.s).byOwner.get(VMID_HOST)!;
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('OK');
    expect(f.s.spaces.has(vmid(A))).toBe(false);
    expect(f.s.hypReservation.size).toBe(reserved + 2 + HYP_SPACE_POOL_PAGES);
    expect(ownershipCounts(f.s).byOwner.get(VMID_HOST)).toBe(hlosFrames + 64); // the fixture's top-up
  });

  test('§4.2 VM_DEALLOCATE while a parcel names the VM is BUSY and changes nothing', async () => {
    const lend = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x40000, 0x1000)]));
    const handle = lend.ok ? (lend.value as { handle: number }).handle : -1;
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('BUSY core_space_in_grant');
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle, flags: 0 }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('OK');
  });

  test('dealloc_load_releases_accepts: VM_DEALLOCATE from LOAD releases what the VM accepted (MEM_RELEASED to each owner), then tears it down', async () => {
    const lend = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x40000, 0x1000)]));
    const handle = lend.ok ? (lend.value as { handle: number }).handle : -1;
    expect(outcome(await call(A, 'MEM_ACCEPT', acceptReq(handle, 'LEND')))).toBe('OK');
    drained(f.rm, VMID_HLOS);
    // The parcel still names the VM, so the core keeps its space: BUSY, but the accept is released
    // (not `call`, whose refusals must change nothing).
    expect(outcome(await f.rm.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('BUSY core_space_in_grant');
    expect(f.rm.parcels.get(handle)).toMatchObject({ state: 'SHARING' });
    expect(f.rm.parcels.get(handle)?.accepted.size).toBe(0);
    expect(drained(f.rm, VMID_HLOS)).toEqual([{ name: 'MEM_RELEASED', payload: { handle, vmid: A, memInfoTag: 0 } }]);
    // Linux's L24 teardown order from LOAD: reclaim the parcel (the core refuses a mapped grant:
    // it is unmapped), then deallocate (gunyah-rm.md §4.4).
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle, flags: 0 }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('OK');
    expect(f.rm.vms.has(A)).toBe(false);
    expect(rmInvariants(f.rm, f.s)).toEqual([]);
    expect(checkInvariants(f.s)).toEqual([]);
  });

  test('acceptor_reset: a VM in RESET takes no memory (its accept would outlive the reset and block VM_DEALLOCATE); the refusal changes nothing, the parcel reclaims', async () => {
    await toReady(A);
    expect(outcome(await call(VMID_HLOS, 'VM_RESET', { vmid: A }))).toBe('OK');
    expect(status(A)).toBe('RESET');
    const lend = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x40000, 0x1000)]));
    const handle = lend.ok ? (lend.value as { handle: number }).handle : -1;
    expect(outcome(await call(A, 'MEM_ACCEPT', acceptReq(handle, 'LEND')))).toBe('VM_STATE acceptor_reset');
    expect(f.rm.parcels.get(handle)?.accepted.size).toBe(0);
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle, flags: 0 }))).toBe('OK');
    expect(f.rm.parcels.has(handle)).toBe(false);
  });

  test('VM_DEALLOCATE only in LOAD or RESET', async () => {
    await toReady(A);
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('VM_STATE state_not_load_or_reset');
  });
});

describe('§4.2 configuration calls', () => {
  test.each([
    ['CONFIG_IMAGE: only the owner', (h: number) => call(VMID_RM, 'VM_CONFIG_IMAGE', { vmid: A, authMech: 0, memHandle: h, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 1n }), 'DENIED not_owner'],
    ['INIT: only from INIT', () => call(VMID_HLOS, 'VM_INIT', { vmid: A, reserved: 0 }), 'VM_STATE state_not_init'],
    ['START: only from READY', () => call(VMID_HLOS, 'VM_START', { vmid: A }), 'VM_STATE state_not_ready'],
    ['START: the VM exists', () => call(VMID_HLOS, 'VM_START', { vmid: 0x99 }), 'VMID_INVALID vmid_unknown'],
    ['STOP: a non-owner gets VMID_INVALID', () => call(VMID_RM, 'VM_STOP', { vmid: A, flags: 1, stopReason: 3 }), 'VMID_INVALID not_owner'],
    ['STOP: only RUNNING or PAUSED', () => call(VMID_HLOS, 'VM_STOP', { vmid: A, flags: 1, stopReason: 3 }), 'VM_STATE state_not_running'],
    ['RESET: a non-owner gets VMID_INVALID', () => call(VMID_RM, 'VM_RESET', { vmid: A }), 'VMID_INVALID not_owner'],
    ['RESET: only from EXITED, READY or INIT_FAILED', () => call(VMID_HLOS, 'VM_RESET', { vmid: A }), 'VM_STATE state_not_resettable'],
    ['AUTH_IMAGE: only in AUTH', () => call(VMID_HLOS, 'VM_AUTH_IMAGE', { vmid: A, params: [] }), 'VM_STATE state_not_auth'],
    ['SET_FIRMWARE_MEM: only in INIT', (h: number) => call(VMID_HLOS, 'VM_SET_FIRMWARE_MEM', { vmid: A, reserved: 0, memHandle: h, offset: 0n, size: 0x1000n }), 'VM_STATE state_not_init'],
    ['SET_TIME_BASE: only in INIT or READY', () => call(VMID_HLOS, 'VM_SET_TIME_BASE', { vmid: A, timeBase: 1n, sysTimerRef: 2n }), 'VM_STATE state_not_allowed'],
    ['SET_BOOT_CONTEXT: X index ≤ 31', () => call(VMID_HLOS, 'VM_SET_CONTEXT', { vmid: A, regSet: 0, regIndex: 32, value: 0n }), 'ARGUMENT_INVALID boot_register_invalid'],
    ['SET_BOOT_CONTEXT: PC index 0', () => call(VMID_HLOS, 'VM_SET_CONTEXT', { vmid: A, regSet: 1, regIndex: 1, value: 0n }), 'ARGUMENT_INVALID boot_register_invalid'],
    ['SET_BOOT_CONTEXT: SP index ≤ 2', () => call(VMID_HLOS, 'VM_SET_CONTEXT', { vmid: A, regSet: 2, regIndex: 3, value: 0n }), 'ARGUMENT_INVALID boot_register_invalid'],
    ['SET_ADDRESS_LAYOUT: range 0 IMAGE or 1 FIRMWARE', () => call(VMID_HLOS, 'VM_SET_ADDRESS_LAYOUT', { vmid: A, rangeId: 2, base: 0n, size: 0x1000n }), 'ARGUMENT_INVALID range_id_invalid'],
    ['VM_EXIT: exit code 2 is rejected', () => call(A, 'VM_EXIT', { exitFlags: 0, exitCode: 2, reserved: 0 }), 'MSG_INVALID exit_code_invalid'],
    ['VM_EXIT: only a running VM', () => call(A, 'VM_EXIT', { exitFlags: 0, exitCode: 0, reserved: 0 }), 'VM_STATE state_not_running'],
    ['GET_STATE: unknown VM is NORESOURCE', () => call(VMID_HLOS, 'VM_GET_STATE', { vmid: 0x99 }), 'NORESOURCE vmid_unknown'],
    ['GET_STATE: only self, owner and peers', () => call(VMID_RM, 'VM_GET_STATE', { vmid: A }), 'DENIED not_peer'],
    ['SET_STATUS: only secondary VMs', () => call(VMID_HLOS, 'VM_SET_STATUS', { osStatus: 4, appStatus: 0 }), 'DENIED caller_not_vm'],
  ] as const)('%s', async (_rule, c, expected) => {
    const dtb = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RWX }], [sgl(0x100000, 0x1000)]));
    expect(outcome(await c(dtb.ok ? dtb.value.handle : -1))).toBe(expected);
  });

  test('CONFIG_IMAGE failures leave the VM INIT_FAILED (and it may then be reset)', async () => {
    const r = await f.rm.call(VMID_HLOS, 'VM_CONFIG_IMAGE', { vmid: A, authMech: 0, memHandle: 77, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 1n });
    expect(outcome(r)).toBe('HANDLE_INVALID image_parcel_unknown');
    expect(status(A)).toBe('INIT_FAILED');
    expect(outcome(await call(VMID_HLOS, 'VM_RESET', { vmid: A }))).toBe('OK');
    expect(status(A)).toBe('RESET');
  });

  test('CONFIG_IMAGE with PLATFORM authentication goes through AUTH', async () => {
    const dtb = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RWX }], [sgl(0x100000, 0x1000)]));
    const h = dtb.ok ? dtb.value.handle : -1;
    expect(outcome(await call(VMID_HLOS, 'VM_CONFIG_IMAGE', { vmid: A, authMech: AUTH_MECH.PLATFORM, memHandle: h, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x100n }))).toBe('OK');
    expect(status(A)).toBe('AUTH');
    expect(outcome(await call(VMID_HLOS, 'VM_AUTH_IMAGE', { vmid: A, params: [] }))).toBe('OK');
    expect(status(A)).toBe('INIT');
  });
});

describe('§4.4 the Linux start sequence, VM_START boot parcels, stop and teardown', () => {
  test('start accepts the DTB parcel at the IMAGE layout and private parcels; forced stop, reset, reclaim, deallocate', async () => {
    const dtb = await toReady(A);
    const priv = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RWX }], [sgl(0x200000, 0x2000)]));
    f.rm.queue(VMID_HLOS).drain();
    expect(outcome(await call(VMID_HLOS, 'VM_START', { vmid: A }))).toBe('OK');
    expect(status(A)).toBe('RUNNING');
    expect(translate(f.s, vmid(A), 0x8000_0000)).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x100000)), state: 'SHARED_BORROWED' } });
    expect(f.rm.parcels.get(priv.ok ? (priv.value as { handle: number }).handle : -1)?.accepted.has(A)).toBe(true);
    expect(drained(f.rm, VMID_HLOS)).toEqual([{ name: 'VM_STATUS', payload: { vmid: A, vmStatus: VM_STATUS.RUNNING, osStatus: 0, appStatus: 0 } }]);

    expect(outcome(await call(A, 'VM_SET_STATUS', { osStatus: 4, appStatus: 7 }))).toBe('OK');
    expect(await call(VMID_HLOS, 'VM_GET_STATE', { vmid: A })).toEqual({ ok: true, value: { vmStatus: VM_STATUS.RUNNING, osStatus: 4, appStatus: 7 } });
    expect(await call(A, 'VM_GET_VMID', {})).toEqual({ ok: true, value: { vmid: A } });

    // Teardown, Linux order (§4.4): forced stop, reset (releases accepted parcels), reclaim, deallocate.
    expect(outcome(await call(VMID_HLOS, 'VM_RECLAIM' as never, {}))).toBe('UNIMPLEMENTED message_unhandled');
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle: dtb, flags: 0 }))).toBe('MEM_INUSE parcel_accepted');
    f.rm.queue(VMID_HLOS).drain();
    expect(outcome(await call(VMID_HLOS, 'VM_STOP', { vmid: A, flags: 1, stopReason: 3 }))).toBe('OK');
    expect(status(A)).toBe('EXITED');
    expect(drained(f.rm, VMID_HLOS)).toContainEqual({ name: 'VM_EXITED', payload: { vmid: A, exitType: EXIT_TYPE.VM_STOP_FORCED, reason: new Uint8Array([0, 0, 0, 0]) } });
    expect(outcome(await call(VMID_HLOS, 'VM_RESET', { vmid: A }))).toBe('OK');
    expect(status(A)).toBe('RESET');
    const notes = drained(f.rm, VMID_HLOS);
    expect(notes.filter((n) => n.name === 'MEM_RELEASED').map((n) => n.payload)).toHaveLength(2);
    expect(notes.at(-1)).toEqual({ name: 'VM_STATUS', payload: { vmid: A, vmStatus: VM_STATUS.RESET, osStatus: 4, appStatus: 7 } });
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle: dtb, flags: 0 }))).toBe('OK');
    // The private parcel still names the VM: its stage-2 cannot go yet (VM_DEALLOCATE destroys it).
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('BUSY core_space_in_grant');
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle: priv.ok ? (priv.value as { handle: number }).handle : -1, flags: 0 }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('OK');
    expect(f.rm.vmids.isAllocated(A)).toBe(false);
  });

  test('a graceful stop asks the guest with VM_SHUTDOWN; its VM_EXIT tells the owner', async () => {
    await toReady(A);
    expect(outcome(await call(VMID_HLOS, 'VM_START', { vmid: A }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_STOP', { vmid: A, flags: 0, stopReason: 0 }))).toBe('OK');
    expect(drained(f.rm, A)).toEqual([{ name: 'VM_SHUTDOWN', payload: { stopReason: 0 } }]);
    f.rm.queue(VMID_HLOS).drain();
    expect(outcome(await call(A, 'VM_EXIT', { exitFlags: 1, exitCode: 1, reserved: 0 }))).toBe('OK');
    expect(drained(f.rm, VMID_HLOS)).toContainEqual({ name: 'VM_EXITED', payload: { vmid: A, exitType: EXIT_TYPE.VM_EXIT, reason: new Uint8Array([1, 0, 1, 0]) } });
  });

  test('a boot parcel the core cannot map fails VM_START with INIT_FAILED and leaves nothing mapped', async () => {
    const dtb = await toReady(A);
    // Occupy the IMAGE address with another parcel accepted there first.
    const other = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x300000, 0x1000)], { label: 9 }));
    const h = other.ok ? other.value.handle : -1;
    // A mapping there that the RM does not know of (as a VMM binding would be): lift the layout
    // reservation, accept, then forget the IPAs, so only the core sees the clash.
    f.rm.ipas.get(A)!.free({ kind: 'layout', id: `address_layout:${ADDRESS_RANGE_ID.IMAGE}` });
    expect(outcome(await f.rm.call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND', { flags: ACCEPT_FLAGS.DONE, sgl: [{ base: 0x8000_0000n, size: 0x1000n }] })))).toBe('OK');
    f.rm.ipas.get(A)!.free({ kind: 'accepted', handle: h });
    const r = await f.rm.call(VMID_HLOS, 'VM_START', { vmid: A });
    expect(outcome(r)).toBe('MAP_FAILED boot_parcel_core_borrower_ipa_in_use');
    expect(status(A)).toBe('INIT_FAILED');
    expect(f.rm.parcels.get(dtb)?.accepted.has(A)).toBe(false);
    expect(checkInvariants(f.s)).toEqual([]);
  });

  test('a SHARED notify to a READY VM accepts for it and tells the owner MEM_ACCEPTED', async () => {
    await toReady(A);
    const p = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x400000, 0x1000)], { label: 3, flags: SHARE_FLAGS.SANITIZE }));
    const h = p.ok ? p.value.handle : -1;
    f.rm.queue(VMID_HLOS).drain();
    expect(outcome(await call(VMID_HLOS, 'MEM_NOTIFY', { handle: h, flags: 1, memInfoTag: 11, vmids: [{ vmid: A }] }))).toBe('OK');
    expect(drained(f.rm, VMID_HLOS)).toEqual([{ name: 'MEM_ACCEPTED', payload: { handle: h, vmid: A, memInfoTag: 11 } }]);
    expect(f.rm.queue(A).length).toBe(0);
  });
});

describe('issue 7: divergences from the open RM', () => {
  test('§4.2 VM_ALLOCATE sends no notification (open RM vm_mgnt.c: created directly in LOAD)', async () => {
    f.rm.queue(VMID_HLOS).drain();
    const r = await call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    expect(r.ok).toBe(true);
    expect(status(0x81)).toBe('LOAD');
    expect(drained(f.rm, VMID_HLOS)).toEqual([]);
  });

  test('§4.2 a forced VM_STOP sends VM_EXITED with exit flags 0 and exit code NORMAL, not the stop_reason (open RM vm_mgnt.c)', async () => {
    await toReady(A);
    expect(outcome(await call(VMID_HLOS, 'VM_START', { vmid: A }))).toBe('OK');
    f.rm.queue(VMID_HLOS).drain();
    expect(outcome(await call(VMID_HLOS, 'VM_STOP', { vmid: A, flags: 1, stopReason: 2 }))).toBe('OK');
    const exited = drained(f.rm, VMID_HLOS).filter((n) => n.name === 'VM_EXITED');
    expect(exited).toEqual([{ name: 'VM_EXITED', payload: { vmid: A, exitType: EXIT_TYPE.VM_STOP_FORCED, reason: new Uint8Array([0, 0, 0, 0]) } }]);
  });

  test('§4.2 VM_INIT with reserved ≠ 0 is MSG_INVALID and changes nothing', async () => {
    const dtb = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RWX }], [sgl(0x100000, 0x1000)]));
    const h = dtb.ok ? (dtb.value as { handle: number }).handle : -1;
    expect(outcome(await call(VMID_HLOS, 'VM_CONFIG_IMAGE', { vmid: A, authMech: 0, memHandle: h, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x100n }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_INIT', { vmid: A, reserved: 1 }))).toBe('MSG_INVALID reserved_not_zero');
    expect(status(A)).toBe('INIT');
  });

  test.each([
    ['VM_CONFIG_IMAGE', { vmid: VMID_HLOS, authMech: 0, memHandle: 0, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x100n }],
    ['VM_INIT', { vmid: VMID_HLOS, reserved: 0 }],
    ['VM_START', { vmid: VMID_HLOS }],
    ['VM_STOP', { vmid: VMID_HLOS, flags: 1, stopReason: 3 }],
    ['VM_RESET', { vmid: VMID_HLOS }],
    ['VM_DEALLOCATE', { vmid: VMID_HLOS }],
    ['VM_SET_ADDRESS_LAYOUT', { vmid: VMID_HLOS, rangeId: 0, base: 0n, size: 0x1000n }],
    ['VM_GET_HYP_RESOURCES', { vmid: VMID_HLOS }],
  ] as const)('§4.1 HLOS is owned by the RM: %s naming vmid 3 is DENIED, not VMID_INVALID', async (name, req) => {
    expect(outcome(await call(VMID_HLOS, name, req))).toBe('DENIED hlos_owned_by_rm');
  });

  test('§2.1 VM_HOST_GET_TYPE answers 0x01000164 (AArch64, Gunyah+RM, version 1) to any caller', async () => {
    expect(await call(VMID_HLOS, 'VM_HOST_GET_TYPE', {})).toEqual({ ok: true, value: { hostType: 0x0100_0164 } });
    expect(await call(A, 'VM_HOST_GET_TYPE', {})).toEqual({ ok: true, value: { hostType: 0x0100_0164 } });
  });

  test('§3.4/§4.2 (open RM vm_ipa.c) address-layout and demand-paging ranges are reserved: RM-chosen IPAs avoid them, given ones there are NORESOURCE', async () => {
    expect(outcome(await call(VMID_HLOS, 'VM_SET_ADDRESS_LAYOUT', { vmid: A, rangeId: ADDRESS_RANGE_ID.IMAGE, base: 0n, size: 0x2000n }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_SET_DEMAND_PAGING', { vmid: A, ranges: [{ base: 0x2000n, size: 0x1000n }] }))).toBe('OK');
    const p = await call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x500000, 0x1000)], { label: 5 }));
    const h = p.ok ? (p.value as { handle: number }).handle : -1;
    expect(outcome(await call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND', { sgl: [{ base: 0x2000n, size: 0x1000n }] })))).toBe('NORESOURCE ipa_in_use');
    expect(outcome(await call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND', { sgl: [{ base: 0x1000n, size: 0x1000n }] })))).toBe('NORESOURCE ipa_in_use');
    expect(await call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND'))).toEqual({ ok: true, value: { kind: 'rm_chosen_ipas', sgl: [{ base: 0x3000n, size: 0x1000n }], incomplete: false } });
    // A layout over memory already accepted is NORESOURCE too, and changes nothing.
    expect(outcome(await call(VMID_HLOS, 'VM_SET_ADDRESS_LAYOUT', { vmid: A, rangeId: ADDRESS_RANGE_ID.FIRMWARE, base: 0x3000n, size: 0x1000n }))).toBe('NORESOURCE ipa_in_use');
  });
});

describe('§1.3 notification queue per client', () => {
  test('256 pending per client, the oldest dropped and counted', async () => {
    for (let i = 0; i < 300; i++) await f.rm.call(A, 'VM_SET_STATUS', { osStatus: 1, appStatus: i });
    const q = f.rm.queue(VMID_HLOS);
    expect(q.length).toBe(256);
    expect(q.dropped).toBeGreaterThanOrEqual(300 - 256);
  });
});

describe('§4.2 VM_RESET when the core refuses to unmap (simulation bug 1)', () => {
  // Found by `hypmesh sim`: the core refused UnmapGrant inside VM_RESET, the reset completed with the
  // parcel still accepted, VM_DEALLOCATE then freed the VM's IPA bookkeeping and rmInvariants fired.
  async function runningThenExited(): Promise<number> {
    const dtb = await toReady(A);
    expect(outcome(await call(VMID_HLOS, 'VM_START', { vmid: A }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_STOP', { vmid: A, flags: 1, stopReason: 3 }))).toBe('OK');
    return dtb;
  }
  /** The RM's core port refuses the next `n` UnmapGrant calls. */
  function refuseUnmaps(n: number): void {
    const core = f.rm.core as { unmapGrant: ResourceManager['core']['unmapGrant'] };
    const inner = core.unmapGrant;
    let left = n;
    core.unmapGrant = (a) => (left-- > 0 ? Promise.resolve({ ok: false, error: { errno: 'EBUSY', rule: 'injected', message: 'refused by the test' } }) : inner(a));
  }

  test('reset_unmap_refused_stays_resetting: the VM never reaches RESET, VM_DEALLOCATE is refused, the RM stays consistent', async () => {
    await runningThenExited();
    refuseUnmaps(1_000);
    expect(outcome(await call(VMID_HLOS, 'VM_RESET', { vmid: A }))).toBe('OK');
    await f.rm.idle();
    expect(status(A)).toBe('RESETTING');
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('VM_STATE state_not_load_or_reset');
    expect(rmInvariants(f.rm, f.s)).toEqual([]);
  });

  test('reset_grant_of_another_generation: a grant the core refuses as of another boot generation is gone: RESET, reclaim and deallocate complete (issue 9 §4)', async () => {
    const dtb = await runningThenExited();
    // The core restarted without its state: it never had the grant, nor the VM's stage-2.
    const core = f.rm.core as { [K in 'unmapGrant' | 'destroyGrant' | 'destroyVmSpace']: ResourceManager['core'][K] };
    const fenced = (rule: string) => () => Promise.resolve({ ok: false as const, error: { errno: 'ENOENT', rule, message: 'no live grant 7: it is of boot generation 1, this core booted as generation 2' } });
    core.unmapGrant = fenced('no_such_grant');
    core.destroyGrant = fenced('no_such_grant');
    core.destroyVmSpace = fenced('no_such_vm');
    drained(f.rm, VMID_HLOS);
    expect(outcome(await f.rm.call(VMID_HLOS, 'VM_RESET', { vmid: A }))).toBe('OK');
    await f.rm.idle();
    expect(status(A)).toBe('RESET');
    expect(drained(f.rm, VMID_HLOS).map((n) => n.name)).toEqual(['VM_STATUS', 'MEM_RELEASED', 'VM_STATUS']);
    expect(outcome(await f.rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle: dtb, flags: 0 }))).toBe('OK');
    expect(f.rm.parcels.has(dtb)).toBe(false);
    expect(outcome(await f.rm.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('OK');
    expect(f.rm.vms.has(A)).toBe(false);
  });

  test('reset_unmap_refused_transiently_completes: a refusal fewer than RESET_RELEASE_ATTEMPTS_MAX times is retried', async () => {
    const dtb = await runningThenExited();
    refuseUnmaps(RESET_RELEASE_ATTEMPTS_MAX - 1);
    expect(outcome(await call(VMID_HLOS, 'VM_RESET', { vmid: A }))).toBe('OK');
    await f.rm.idle();
    expect(status(A)).toBe('RESET');
    expect(outcome(await call(VMID_HLOS, 'MEM_RECLAIM', { handle: dtb, flags: 0 }))).toBe('OK');
    expect(outcome(await call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: A }))).toBe('OK');
    expect(rmInvariants(f.rm, f.s)).toEqual([]);
  });
});
