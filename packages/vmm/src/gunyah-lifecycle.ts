/**
 * A GUNYAH VM's life cycle (vm-manager.ts LIFECYCLES): VM_ALLOCATE, the L24 start sequence against
 * the RM with the bindings' demand-paged grants (gunyah-rm.md §4.4), forced stop, and teardown in
 * _gunyah_vm_put's order. The module comment of vm-manager.ts says how guest memory is placed.
 */
import { ADDRESS_RANGE_ID, AUTH_MECH, MEM_TYPE, STOP_FLAGS, STOP_REASON } from '@hypmesh/rm-wire';
import type { RmOutcome } from '@hypmesh/rm';
import { HYP_SPACE_IPA_BITS, startLevel } from '@hypmesh/stage2';
import { REG_SETS, RIGHTS, type Binding } from './bindings.js';
import { PAGE_BYTES, type FrameRun } from './host-pages.js';
import { CORE_OUTCOME_UNKNOWN_RULE } from './ports.js';
import { ORPHANED_SESSION, vmmParcelLabel } from './restart-sweep.js';
import type { VmLifecycle, VmOps } from './vm-ops.js';
import { fromCore, fromRm, runsPages, type DemandPagedGrant, type Made, type Vm } from './vm-record.js';
import { vmmFail, vmmOk, type VmmResult } from './vmm-error.js';

const PAGE = BigInt(PAGE_BYTES);
const RWX = RIGHTS.R | RIGHTS.W | RIGHTS.X;
const alignDown = (v: bigint): bigint => v - (v % PAGE);
const alignUp = (v: bigint): bigint => alignDown(v + PAGE - 1n);

/** A run of a binding: `size` bytes at guest address `guest`, backed by host memory at `host`. */
interface BindingPiece {
  readonly guest: bigint;
  readonly host: bigint;
  readonly size: bigint;
}

/**
 * GUNYAH create (gunyah-rm.md §4.2): VM_ALLOCATE(0) makes the VM and, in the core, its stage-2 of
 * the platform's IPA width (HYP builds it from its boot reservation for the RM), so the VMM no
 * longer creates the space; it only tops the pool up with host pages (seed 003's donation flow).
 * A width above the platform's cannot be given: EINVAL ipa_bits_beyond_platform, nothing allocated.
 */
async function createGunyah(ops: VmOps, ipaBits: number, newVm: (vmid: number) => Vm): Promise<Made> {
  if (ipaBits > HYP_SPACE_IPA_BITS)
    return vmmFail('EINVAL', 'ipa_bits_beyond_platform', `ipa_bits ${ipaBits}: the RM gives GUNYAH VMs a ${HYP_SPACE_IPA_BITS}-bit stage-2`);
  const alloc = await ops.rm.vmAllocate({ vmid: 0 });
  if (!alloc.ok) return fromRm(alloc, 'vm_allocate', 'VM_ALLOCATE');
  const vmid = alloc.value.vmid ?? 0;
  const vm = newVm(vmid);
  const topped = await ops.topUp(vm, ops.config.initialPoolPages);
  if (topped.ok) return vmmOk(vm);
  const undone = await ops.rm.vmDeallocate({ vmid });
  if (undone.ok) {
    // The chunks of the top-up the core did take (vm-ops.ts topUp) came back with the stage-2.
    for (const run of vm.poolRuns) ops.pages.freeRun(run);
    vm.poolRuns = [];
    return topped;
  }
  // VM_DEALLOCATE refused (its stage-2 would not go): the VM must not be forgotten (VmManager.create).
  return { ok: false, error: topped.error, unfinished: vm };
}

/** `b` without the guest range [lo, hi) (the DTB parcel's): what its demand-paged grant holds. */
function without(b: Binding, lo: bigint, hi: bigint): BindingPiece[] {
  const out: BindingPiece[] = [];
  const end = b.guestAddr + b.sizeBytes;
  if (hi <= b.guestAddr || lo >= end) return [{ guest: b.guestAddr, host: b.hostAddr, size: b.sizeBytes }];
  if (lo > b.guestAddr) out.push({ guest: b.guestAddr, host: b.hostAddr, size: lo - b.guestAddr });
  if (hi < end) out.push({ guest: hi, host: b.hostAddr + (hi - b.guestAddr), size: end - hi });
  return out;
}

async function startGunyah(ops: VmOps, vm: Vm): Promise<VmmResult<void>> {
  const vmid = vm.vmid;
  if (vm.dtb === undefined) return vmmFail('EINVAL', 'dtb_not_set', 'GUNYAH_VM_SET_DTB_CONFIG first');
  const lo = alignDown(vm.dtb.guestAddr);
  const hi = alignUp(vm.dtb.guestAddr + vm.dtb.sizeBytes);
  const holder = vm.bindings.find((b) => b.guestAddr <= lo && hi <= b.guestAddr + b.sizeBytes);
  if (holder === undefined) return vmmFail('EINVAL', 'dtb_not_in_binding', 'the DTB must lie inside one binding');
  // 1. Lend the DTB range as a 1-ACL parcel (MEM_LEND), with the VMM's label for the VM: a
  // restarted VMM's sweep reclaims only parcels so labelled (restart-sweep.ts vmmParcelLabel).
  const dtbParcel = await ops.rm.memLend({
    memType: MEM_TYPE.NORMAL,
    flags: 0,
    label: vmmParcelLabel(vmid),
    acl: [{ vmid, rights: RWX }],
    sgl: [{ base: holder.hostAddr + (lo - holder.guestAddr), size: hi - lo }],
    attrs: [],
  });
  if (!dtbParcel.ok) return fromRm(dtbParcel, 'start_dtb_lend', 'MEM_LEND of the DTB');
  vm.parcels.push({ handle: dtbParcel.value.handle, what: 'dtb' });
  // The bindings are no parcels: their memory reaches the guest as demand-paged grants (below).
  if (ops.config.reservePoolAtStart) {
    const need = tablePagesFor(vm, [...vm.bindings.map((b) => b.sizeBytes), hi - lo]);
    const topped = await ops.topUp(vm, need);
    if (!topped.ok) return topped;
  }
  for (let attempt = 1; ; attempt++) {
    const r = await startFromConfig(ops, vm, dtbParcel.value.handle, lo, hi);
    if (r.ok || r.error.cause !== 'NOMEM' || r.error.rule !== 'start_vm_start' || attempt >= ops.config.attemptsMax) return r;
    // VM_START ran out of table pages while mapping the boot parcels; the VM is INIT_FAILED and
    // its demand-paged memory is reclaimed (before the reset, as _gunyah_vm_put does). Top the
    // pool up, reset the VM (RESET may be configured again, §4.3) and run it again.
    const topped = await ops.topUp(vm, ops.config.topUpPages);
    if (!topped.ok) return topped;
    const reset = await ops.rm.vmReset({ vmid });
    if (!reset.ok) return fromRm(reset, 'start_retry_reset', 'VM_RESET before a retried start');
    if (!(await ops.waitRm(vm, (s) => s === 'RESET'))) return vmmFail('EIO', 'start_retry_reset', 'no VM_STATUS RESET');
  }
}

/**
 * CONFIG_IMAGE → SET_DEMAND_PAGING → SET_ADDRESS_LAYOUT → VM_INIT → SET_BOOT_CONTEXT* →
 * GET_HYP_RESOURCES → (the bindings' demand-paged grants, pre-faulted) → VM_START. A failed
 * VM_START reclaims the grants again.
 */
async function startFromConfig(ops: VmOps, vm: Vm, dtbHandle: number, lo: bigint, hi: bigint): Promise<VmmResult<void>> {
  const vmid = vm.vmid;
  const dtb = vm.dtb!;
  const steps: [string, () => Promise<RmOutcome<unknown>>][] = [
    ['vm_config_image', () => ops.rm.vmConfigImage({ vmid, authMech: AUTH_MECH.NONE, memHandle: dtbHandle, imageOffset: 0n, imageSize: 0n, dtbOffset: dtb.guestAddr - lo, dtbSize: dtb.sizeBytes })],
    ['vm_set_demand_paging', () => ops.rm.vmSetDemandPaging({ vmid, ranges: vm.bindings.filter((b) => b.mode === 'LEND').map((b) => ({ base: b.guestAddr, size: b.sizeBytes })) })],
    ['vm_set_address_layout', () => ops.rm.vmSetAddressLayout({ vmid, rangeId: ADDRESS_RANGE_ID.IMAGE, base: lo, size: hi - lo })],
    ['vm_init', () => ops.rm.vmInit({ vmid, reserved: 0 })],
    ...[...vm.boot.values()].map(
      (r): [string, () => Promise<RmOutcome<unknown>>] => [`vm_set_boot_context_${r.set}${r.index}`, () => ops.rm.vmSetBootContext({ vmid, regSet: REG_SETS[r.set].wire, regIndex: r.index, value: r.value })],
    ),
    ['vm_get_hyp_resources', () => ops.rm.vmGetHypResources({ vmid })],
  ];
  for (const [name, run] of steps) {
    const r = await run();
    if (!r.ok) return fromRm(r, `start_${name}`, name.toUpperCase());
  }
  const mapped = await mapDemandPaged(ops, vm, lo, hi);
  if (!mapped.ok) return mapped;
  const started = await ops.rm.vmStart({ vmid });
  if (started.ok) return vmmOk(undefined);
  await reclaimDemandPaged(ops, vm, false);
  return fromRm(started, 'start_vm_start', 'VM_START');
}

/**
 * Pre-faults every binding (less the DTB range [lo, hi)) as L24's demand paging would on the
 * guest's first touch (§4.4 last bullet): CreateGrant as HOST (LEND or SHARE, ACL = the guest
 * with the binding's rights), then MapGrant as the guest at the binding's guest address with
 * those rights. ENOMEM from MapGrant (the guest's table pool) tops the pool up and maps again
 * (seed 003). Any other failure unmaps and destroys what this call made, and reports it.
 */
async function mapDemandPaged(ops: VmOps, vm: Vm, lo: bigint, hi: bigint): Promise<VmmResult<void>> {
  const frames = (pieces: readonly BindingPiece[], at: 'guest' | 'host'): FrameRun[] => pieces.map((p) => ({ base: Number(p[at] / PAGE), count: Number(p.size / PAGE) }));
  const fail = async (r: VmmResult<never>): Promise<VmmResult<void>> => {
    await reclaimDemandPaged(ops, vm, false);
    return r;
  };
  for (const b of vm.bindings) {
    const pieces = without(b, lo, hi);
    if (pieces.length === 0) continue;
    const what = `binding@0x${b.guestAddr.toString(16)}`;
    const c = await ops.core.createGrant({ type: b.mode, ranges: frames(pieces, 'host'), acl: [{ vmid: vm.vmid, perms: b.rights }] });
    if (!c.ok) {
      if (c.error.rule === CORE_OUTCOME_UNKNOWN_RULE) vm.unknownGrants++;
      return fail(fromCore(c, 'start_demand_paged_grant', `CreateGrant ${b.mode} of the ${what}`));
    }
    const g: DemandPagedGrant = { grantId: c.value.grantId, what, mapped: false };
    vm.demandPaged.push(g);
    for (let attempt = 1; !g.mapped; attempt++) {
      const m = await ops.core.mapGrant({ grantId: g.grantId, borrower: vm.vmid, perms: b.rights, ranges: frames(pieces, 'guest') });
      if (m.ok) g.mapped = true;
      else if (m.error.errno !== 'ENOMEM' || attempt >= ops.config.attemptsMax) return fail(fromCore(m, 'start_demand_paged_map', `MapGrant ${g.grantId} of the ${what}`));
      else {
        const topped = await ops.topUp(vm, ops.config.topUpPages);
        if (!topped.ok) return fail(topped);
      }
    }
  }
  return vmmOk(undefined);
}

/**
 * Reclaims one demand-paged grant (L24 "reclaim = unmap + donate back"): UnmapGrant as the guest,
 * DestroyGrant as HOST. Safe to repeat: a grant the guest no longer maps (not_mapped) or that is
 * gone (no_such_grant, a reply lost after the core acted) counts as done.
 */
async function reclaimGrant(ops: VmOps, vm: Vm, g: DemandPagedGrant): Promise<VmmResult<void>> {
  if (g.mapped) {
    const u = await ops.core.unmapGrant({ grantId: g.grantId, borrower: vm.vmid });
    if (!u.ok && u.error.rule !== 'not_mapped' && u.error.rule !== 'no_such_grant') return fromCore(u, 'demand_paged_unmap', `UnmapGrant ${g.grantId} (${g.what})`);
    g.mapped = false;
  }
  const d = await ops.core.destroyGrant({ grantId: g.grantId });
  if (!d.ok && d.error.rule !== 'no_such_grant') return fromCore(d, 'demand_paged_destroy', `DestroyGrant ${g.grantId} (${g.what})`);
  vm.demandPaged = vm.demandPaged.filter((x) => x !== g);
  return vmmOk(undefined);
}

/**
 * Settles the VM's demand-paged CreateGrants whose outcome stayed unknown (`vm.unknownGrants`) by
 * query (issue 9 item 2: the VMM never records a state it has not confirmed, and the grant of such
 * a create, if the core made it, would keep VM_DEALLOCATE from destroying the VM's stage-2): every
 * HOST grant that backs no parcel, names this VM alone and is not one the VM lists is one of them,
 * as the restart sweep tells the VMM's grants (restart-sweep.ts orphansOf). Holdings that cannot be
 * read leave them unknown: VM_DEALLOCATE then fails on them and the VMID is reported leaked.
 */
async function settleUnknownGrants(ops: VmOps, vm: Vm): Promise<void> {
  if (vm.unknownGrants === 0 || ops.holdings === undefined) return;
  const [grants, parcels] = await Promise.all([ops.holdings.hostGrants(), ops.holdings.rmParcels()]);
  if (!grants.ok || !parcels.ok) return;
  const parcelGrants = new Set(parcels.value.map((p) => p.grantId));
  const listed = new Set(vm.demandPaged.map((g) => g.grantId));
  for (const g of grants.value) {
    if (parcelGrants.has(g.grantId) || listed.has(g.grantId) || g.aclVmids.length !== 1 || g.aclVmids[0] !== vm.vmid) continue;
    vm.demandPaged.push({ grantId: g.grantId, what: `grant ${g.grantId} (a CreateGrant whose reply was lost)`, mapped: g.borrowerVmids.includes(vm.vmid) });
  }
  vm.unknownGrants = 0;
}

/**
 * Every demand-paged grant of `vm`, last first. `final` (teardown): each is retried as a teardown
 * step and reported, and one that never comes back is listed in `leaked`; otherwise (a failed
 * START rolling back) one try each, and what is left stays for the teardown.
 */
async function reclaimDemandPaged(ops: VmOps, vm: Vm, final: boolean): Promise<void> {
  if (final) await settleUnknownGrants(ops, vm);
  for (const g of [...vm.demandPaged].reverse()) {
    if (!final) {
      await reclaimGrant(ops, vm, g);
      continue;
    }
    const ok = await ops.attempt(vm, `reclaim_demand_paged ${g.what}`, () => reclaimGrant(ops, vm, g));
    if (!ok) vm.leaked.push(`grant ${g.grantId} (${g.what}${g.mapped ? ', still mapped by the guest' : ''}): the host has no access to a lent binding until it is destroyed`);
  }
}

/** Table pages that mapping ranges of these sizes can take at most (a straddle per level). */
function tablePagesFor(vm: Vm, sizes: readonly bigint[]): number {
  // A GUNYAH VM's stage-2 has the platform's width whatever the VMM asked (createGunyah).
  const sl = startLevel(vm.type === 'GUNYAH' ? HYP_SPACE_IPA_BITS : vm.ipaBits);
  let n = 0;
  for (const size of sizes) for (let l = sl + 1; l <= 3; l++) n += Number(size / BigInt(2 ** (12 + 9 * (4 - l)))) + 2;
  return n;
}

async function forceStop(ops: VmOps, vm: Vm): Promise<VmmResult<void>> {
  const r = await ops.rm.vmStop({ vmid: vm.vmid, flags: STOP_FLAGS.FORCE, stopReason: STOP_REASON.FORCE_STOP });
  // Refused because the VM is no longer running (an earlier attempt's stop whose notice was lost,
  // re-read since): it is stopped, which is what was asked.
  if (!r.ok && (vm.rmStatus === 'RUNNING' || vm.rmStatus === 'PAUSED')) return fromRm(r, 'vm_stop', 'VM_STOP');
  if (!(await ops.waitRm(vm, (s) => s !== 'RUNNING' && s !== 'PAUSED'))) return vmmFail('EIO', 'vm_stop_wait', 'the VM did not leave RUNNING');
  return vmmOk(undefined);
}

async function reclaimAll(ops: VmOps, vm: Vm, final: boolean): Promise<void> {
  for (const p of [...vm.parcels]) {
    const r = await ops.rm.memReclaim({ handle: p.handle, flags: 0 });
    if (r.ok) {
      vm.parcels = vm.parcels.filter((q) => q !== p);
      vm.teardown.push({ step: `mem_reclaim ${p.what}`, attempts: 1, ok: true });
    } else if (final) {
      const ok = await ops.attempt(vm, `mem_reclaim ${p.what}`, async () => {
        const again = await ops.rm.memReclaim({ handle: p.handle, flags: 0 });
        return again.ok ? vmmOk(undefined) : fromRm(again, 'mem_reclaim', `MEM_RECLAIM ${p.handle}`);
      });
      if (ok) vm.parcels = vm.parcels.filter((q) => q !== p);
      else vm.leaked.push(`parcel ${p.handle} (${p.what}): ${r.error.rmError}`);
    }
  }
}

/**
 * _gunyah_vm_put (§4.4): forced stop if RUNNING, wait until not RUNNING; reclaim the DTB parcel
 * (parcels nobody accepted go now, accepted ones after the reset has released them); reclaim all
 * demand-paged memory; VM_RESET if EXITED/READY/INIT_FAILED and wait for RESET; DEALLOC_VMID.
 * VM_DEALLOCATE also destroys the VM's stage-2 in the core, which gives the donated pool pages back (seed 003).
 *
 * A start that failed after CONFIG_IMAGE and before VM_INIT answered (a refused step, a lost
 * reply) leaves the VM in INIT, which neither VM_RESET nor VM_DEALLOCATE accepts (§4.3: INIT is
 * left only by VM_INIT): Linux's teardown leaks the VMID there. This one sends VM_INIT first, so
 * the VM is READY (or INIT_FAILED) and can be reset.
 */
async function tearDownGunyah(ops: VmOps, vm: Vm): Promise<void> {
  const vmid = vm.vmid;
  // The status as the RM has it now: a notification lost in an RM restart must not decide the steps.
  await ops.refreshStatus(vm);
  if (vm.rmStatus === 'RUNNING' || vm.rmStatus === 'PAUSED') await ops.attempt(vm, 'vm_stop', () => forceStop(ops, vm));
  await reclaimAll(ops, vm, false);
  await reclaimDemandPaged(ops, vm, true);
  if (vm.rmStatus === 'INIT') {
    await ops.attempt(vm, 'vm_init_before_reset', async () => {
      const r = await ops.rm.vmInit({ vmid, reserved: 0 });
      if (!r.ok && vm.rmStatus === 'INIT') return fromRm(r, 'vm_init_before_reset', 'VM_INIT');
      return (await ops.waitRm(vm, (s) => s !== 'INIT')) ? vmmOk(undefined) : vmmFail('EIO', 'vm_init_wait', 'no VM_STATUS after VM_INIT');
    });
  }
  if (vm.rmStatus === 'EXITED' || vm.rmStatus === 'READY' || vm.rmStatus === 'INIT_FAILED') {
    await ops.attempt(vm, 'vm_reset', async () => {
      const r = await ops.rm.vmReset({ vmid });
      if (!r.ok && vm.rmStatus !== 'RESETTING' && vm.rmStatus !== 'RESET') return fromRm(r, 'vm_reset', 'VM_RESET');
      return (await ops.waitRm(vm, (s) => s === 'RESET')) ? vmmOk(undefined) : vmmFail('EIO', 'vm_reset_wait', 'no VM_STATUS RESET');
    });
  }
  await reclaimAll(ops, vm, true);
  // Other HLOS clients' parcels naming a VM found at restart are theirs to reclaim (restart-sweep.ts):
  // the sweep, which no client waits for, waits for them. A client's own teardown does not (its
  // DESTROY answers promptly): VM_DEALLOCATE then fails and the VMID is reported leaked.
  if (vm.session === ORPHANED_SESSION && !(await ops.othersLetGo(vm))) vm.teardown.push({ step: 'others_let_go', attempts: 1, ok: false, error: `parcels of other HLOS clients still name VM ${vmid} after ${ops.config.othersWaitMs} ms` });
  // VM_DEALLOCATE destroys the VM's stage-2 in the core (§4.2): the pages the VMM donated to its
  // pool come back to the host with it, so they are free again only once it succeeded.
  const dealloc = await ops.attempt(vm, 'vm_deallocate', async () => {
    const r = await ops.rm.vmDeallocate({ vmid });
    return r.ok ? vmmOk(undefined) : fromRm(r, 'vm_deallocate', 'VM_DEALLOCATE');
  });
  if (dealloc) {
    for (const run of vm.poolRuns) ops.pages.freeRun(run);
    vm.poolRuns = [];
  } else {
    vm.leaked.push(`VMID ${vmid} (RM status ${vm.rmStatus})`);
    vm.leaked.push(`${runsPages(vm.poolRuns)} stage-2 pool pages of VM ${vmid} (its stage-2 goes with VM_DEALLOCATE)`);
  }
}

export const GUNYAH_LIFECYCLE: VmLifecycle = {
  rmTracked: true,
  create: createGunyah,
  refuseBinding: () => undefined,
  start: startGunyah,
  stop: forceStop,
  tearDown: tearDownGunyah,
};
