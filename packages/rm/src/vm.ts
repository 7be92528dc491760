/**
 * VM management calls (gunyah-rm.md §4.2) over the state machine of §4.3 (vm-status.ts).
 *
 * Who may call: HLOS allocates; the owner (the VM that allocated) configures, starts, stops, resets
 * and deallocates; a VM reports its own status and exit. HLOS itself is a VM in the RM's table,
 * owned by the RM (§4.1), so a management call naming vmid 3 is DENIED, not VMID_INVALID. Each call
 * checks, in the spec's order, and returns the first failure; a VM moves only along an allowed edge,
 * and each move notifies the owner with VM_STATUS — except VM_ALLOCATE, which creates the VM
 * directly in LOAD and sends nothing (§4.2, open RM `vm_mgnt.c`).
 *
 * VM_SET_ADDRESS_LAYOUT and VM_SET_DEMAND_PAGING ranges are reserved in the VM's IPA allocator: the
 * VMM maps its bindings there without the RM, so no RM-chosen IPA may land on them.
 *
 * VM_RESET replies at once and finishes in the background, as the RM's staged reset does: accepted
 * parcels are released on the VM's behalf (MEM_RELEASED to their owners), then the VM is RESET.
 * VM_START accepts the boot parcels (§3.9): the image parcel from CONFIG_IMAGE (at the IMAGE address
 * layout when one was set), the firmware parcel, and every "private" parcel (ACL = only this VM with
 * RWX, label 0, NORMAL). Not modelled: hypervisor resources (GET_HYP_RESOURCES lists none), image
 * authentication (AUTH_IMAGE accepts any parameters), vdevices, IRQs and the console.
 */
import {
  ACL_RIGHTS,
  ADDRESS_RANGE_ID,
  AUTH_MECH,
  BOOT_CONTEXT_REG_SET,
  EXIT_TYPE,
  MEM_TYPE,
  STOP_FLAGS,
  VM_EXIT_CODE,
  VM_HOST_TYPE,
  VM_STATUS,
  type SglEntry,
} from '@hypmesh/rm-wire';
import { autoAccept, releaseFor, type Parcel } from './parcel.js';
import type { CallTable, ResourceManager } from './resource-manager.js';
import { rmFail, rmOk, type RmErrorCode, type RmOutcome } from './rm-outcome.js';
import { canEnter, type VmStatus } from './vm-status.js';
import { VMID_HLOS, VMID_RM, type RmConfig } from './vmid.js';
import { fromCore } from './core-refusal.js';
import type { IpaHolder } from './ipa-allocator.js';

export interface Vm {
  readonly vmid: number;
  readonly owner: number;
  status: VmStatus;
  osStatus: number;
  appStatus: number;
  image: { readonly handle: number; readonly authMech: number; readonly imageOffset: bigint; readonly imageSize: bigint; readonly dtbOffset: bigint; readonly dtbSize: bigint } | undefined;
  firmware: { readonly handle: number; readonly offset: bigint; readonly size: bigint } | undefined;
  timeBase: { readonly timeBase: bigint; readonly sysTimerRef: bigint } | undefined;
  /** VM_SET_BOOT_CONTEXT registers by `set:index`. */
  readonly bootContext: Map<string, bigint>;
  demandPaging: readonly SglEntry[];
  /** VM_SET_ADDRESS_LAYOUT ranges by range id (0 IMAGE, 1 FIRMWARE). */
  readonly addressLayout: Map<number, SglEntry>;
  /** VMs that receive this VM's VM_STATUS (the owner is always one). */
  readonly peers: Set<number>;
}

type Empty = Record<string, never>;
type Check = [holds: boolean, code: RmErrorCode, rule: string, message: string];
const firstFailure = (checks: readonly Check[]): RmOutcome<never> | undefined => {
  const f = checks.find(([holds]) => holds);
  return f === undefined ? undefined : rmFail(f[1], f[2], f[3]);
};

/** Moves `vm` to `to` (an allowed §4.3 edge, proved by the caller's checks) and tells its peers. */
export function enter(rm: ResourceManager, vm: Vm, to: VmStatus): void {
  if (!canEnter(vm.status, to)) throw new Error(`bug: ${vm.status} → ${to} is not a §4.3 edge`);
  vm.status = to;
  statusChanged(rm, vm);
}

function statusChanged(rm: ResourceManager, vm: Vm): void {
  for (const peer of vm.peers) {
    rm.notify(peer, 'VM_STATUS', { vmid: vm.vmid, vmStatus: VM_STATUS[vm.status], osStatus: vm.osStatus, appStatus: vm.appStatus });
  }
}

/**
 * The IPA width of a VM's stage-2: enough for the window the RM allocates parcel IPAs in (RmConfig
 * ipaWindow; 2^40 by default, 40 bits), at least the architectural minimum of 32 (§B4).
 */
export const vmIpaBits = (config: RmConfig): number => Math.max(32, (config.ipaWindow.base + config.ipaWindow.size - 1n).toString(2).length);

/**
 * VM_ALLOCATE (§4.2): takes a VMID and has the core create the VM's empty stage-2, as the real RM
 * creates the VM's address space with the hypervisor; HYP builds it from its boot reservation, so
 * the VM can be named in an ACL at once by a client that only talks to the RM. A core refusal
 * (HYP's reservation empty: NORESOURCE core_hyp_reservation_empty) frees the VMID again.
 */
async function vmAllocate(rm: ResourceManager, caller: number, req: { vmid: number }): Promise<RmOutcome<{ vmid: number | null }>> {
  if (caller !== VMID_HLOS) return rmFail('DENIED', 'caller_not_hlos', 'only HLOS allocates VMs');
  const candidates = req.vmid === 0 ? rm.vmids.freeDynamic() : rm.vmids.explicitAllowed(req.vmid) ? [req.vmid] : [];
  if (candidates.length === 0) return rmFail('NORESOURCE', 'no_free_vmid', req.vmid === 0 ? 'all dynamic VMIDs are in use' : `VMID ${req.vmid} is not a free platform VMID`);
  let vmid = candidates[0]!;
  for (const [i, candidate] of candidates.entries()) {
    vmid = candidate;
    const space = await rm.core.createVmSpace({ vmid, ipaBits: vmIpaBits(rm.config) });
    if (space.ok) break;
    // A dynamic VMID the core still has a stage-2 for in use (made before the RM was reset, or by
    // the host) is not free after all: try the next one rather than fail every VM_ALLOCATE(0).
    const next = req.vmid === 0 && space.error.rule === 'vmid_in_use' && i + 1 < candidates.length;
    if (!next) return fromCore(space.error, 'NORESOURCE', `VM_ALLOCATE of VM ${vmid}: its stage-2`);
  }
  rm.vmids.take(vmid);
  const vm: Vm = {
    vmid,
    owner: caller,
    status: 'LOAD',
    osStatus: 0,
    appStatus: 0,
    image: undefined,
    firmware: undefined,
    timeBase: undefined,
    bootContext: new Map(),
    demandPaging: [],
    addressLayout: new Map(),
    peers: new Set([caller]),
  };
  rm.vms.set(vmid, vm);
  rm.ipaSpace(vmid);
  // No VM_STATUS: the VM is created directly in LOAD and the RM sends no notification (§4.2).
  return rmOk({ vmid: req.vmid === 0 ? vmid : null });
}

/** The owner's VM, or the failure for an unknown VM or a caller that is not its owner. */
function ownedVm(rm: ResourceManager, caller: number, vmid: number, notOwner: RmErrorCode = 'DENIED'): Vm | RmOutcome<never> {
  // HLOS is a VM in the RM's table, owned by the RM (§4.1): nobody else manages it.
  if (vmid === VMID_HLOS) return rmFail('DENIED', 'hlos_owned_by_rm', `VM ${vmid} (HLOS) is owned by the RM (VM ${VMID_RM})`);
  const vm = rm.vms.get(vmid);
  if (vm === undefined) return rmFail('VMID_INVALID', 'vmid_unknown', `VM ${vmid} does not exist`);
  if (vm.owner !== caller) return rmFail(notOwner, 'not_owner', `VM ${caller} does not own VM ${vmid}`);
  return vm;
}
const isVm = (v: Vm | RmOutcome<never>): v is Vm => 'vmid' in v;

/**
 * VM_DEALLOCATE (§4.2): the core tears the VM's stage-2 down first; while the VM still maps memory
 * or a parcel names it, that is BUSY (core_space_has_mappings / core_space_in_grant) and nothing
 * changes. A space the core no longer has (the core was reset) is no reason to keep the VMID.
 *
 * A VM in RESET has released every parcel it accepted (the reset's stage). One in LOAD never ran
 * that stage, yet may have accepted parcels (a VM may MEM_ACCEPT in any state, §3.4): the RM
 * releases them first, as the reset does (each owner is sent MEM_RELEASED, §4.2 VM_RESET), since
 * the VM is destroyed with them. Before, they stayed mapped and the deallocate was BUSY for good.
 * A release the core refuses is the answer (nothing else changes; the ones before it stay released).
 */
async function vmDeallocate(rm: ResourceManager, caller: number, req: { vmid: number }): Promise<RmOutcome<Empty>> {
  const vm = ownedVm(rm, caller, req.vmid);
  if (!isVm(vm)) return vm;
  if (vm.status !== 'LOAD' && vm.status !== 'RESET') return rmFail('VM_STATE', 'state_not_load_or_reset', `VM ${vm.vmid} is ${vm.status}`);
  for (const p of [...rm.parcels.values()]) {
    if (!p.accepted.has(vm.vmid)) continue;
    const released = await releaseFor(rm, p, vm.vmid);
    if (!released.ok) return released;
    rm.notify(p.owner, 'MEM_RELEASED', { handle: p.handle, vmid: vm.vmid, memInfoTag: p.memInfoTag ?? 0 });
  }
  const space = await rm.core.destroyVmSpace({ vmid: vm.vmid });
  if (!space.ok && space.error.rule !== 'no_such_vm') return fromCore(space.error, 'BUSY', `VM_DEALLOCATE of VM ${vm.vmid}: its stage-2`);
  // Accepts it recorded without DONE (§3.4 multi-step) go with it.
  for (const p of rm.parcels.values()) p.pending.delete(vm.vmid);
  rm.vms.delete(vm.vmid);
  rm.vmids.release(vm.vmid);
  rm.ipas.delete(vm.vmid);
  return rmOk({});
}

/** A parcel of `owner` whose ACL grants `vmid`, or undefined. */
const parcelFor = (rm: ResourceManager, handle: number, owner: number, vmid: number): Parcel | undefined => {
  const p = rm.parcels.get(handle);
  return p !== undefined && p.owner === owner && p.acl.some((e) => e.vmid === vmid) ? p : undefined;
};
const parcelSize = (p: Parcel): bigint => p.regions.reduce((n, r) => n + r.size, 0n);

function vmConfigImage(
  rm: ResourceManager,
  caller: number,
  req: { vmid: number; authMech: number; memHandle: number; imageOffset: bigint; imageSize: bigint; dtbOffset: bigint; dtbSize: bigint },
): RmOutcome<Empty> {
  const vm = ownedVm(rm, caller, req.vmid);
  if (!isVm(vm)) return vm;
  const refused = firstFailure([
    [caller !== VMID_HLOS, 'DENIED', 'caller_not_hlos', 'only HLOS configures VM images'],
    // The image can be configured where AUTH could be entered: LOAD or RESET (§4.2).
    [!canEnter(vm.status, 'AUTH'), 'VM_STATE', 'state_not_load_or_reset', `VM ${vm.vmid} is ${vm.status}`],
  ]);
  if (refused !== undefined) return refused;
  const p = parcelFor(rm, req.memHandle, caller, vm.vmid);
  const failed = firstFailure([
    [p === undefined, 'HANDLE_INVALID', 'image_parcel_unknown', `parcel ${req.memHandle} is not the owner's parcel for VM ${vm.vmid}`],
    [!(Object.values(AUTH_MECH) as number[]).includes(req.authMech), 'ARGUMENT_INVALID', 'auth_mech_invalid', `auth mechanism ${req.authMech}`],
    [
      p !== undefined && (req.imageOffset + req.imageSize > parcelSize(p) || req.dtbOffset + req.dtbSize > parcelSize(p) || req.dtbSize === 0n),
      'ARGUMENT_INVALID',
      'image_outside_parcel',
      'the image or DTB lies outside the parcel',
    ],
  ]);
  if (failed !== undefined) {
    // A failed configuration leaves the VM INIT_FAILED (§4.2).
    enter(rm, vm, 'INIT_FAILED');
    return failed;
  }
  vm.image = { handle: req.memHandle, authMech: req.authMech, imageOffset: req.imageOffset, imageSize: req.imageSize, dtbOffset: req.dtbOffset, dtbSize: req.dtbSize };
  enter(rm, vm, req.authMech === AUTH_MECH.PLATFORM ? 'AUTH' : 'INIT');
  return rmOk({});
}

function vmAuthImage(rm: ResourceManager, caller: number, req: { vmid: number }): RmOutcome<Empty> {
  const vm = ownedVm(rm, caller, req.vmid);
  if (!isVm(vm)) return vm;
  if (vm.status !== 'AUTH') return rmFail('VM_STATE', 'state_not_auth', `VM ${vm.vmid} is ${vm.status}`);
  enter(rm, vm, 'INIT');
  return rmOk({});
}

function vmInit(rm: ResourceManager, caller: number, req: { vmid: number; reserved: number }): RmOutcome<Empty> {
  const vm = ownedVm(rm, caller, req.vmid);
  if (!isVm(vm)) return vm;
  const failed = firstFailure([
    [caller !== VMID_HLOS, 'DENIED', 'caller_not_hlos', 'only HLOS initialises VMs'],
    // A malformed request, not a bad argument (§4.2 VM_INIT: reserved ≠ 0 is MSG_INVALID).
    [req.reserved !== 0, 'MSG_INVALID', 'reserved_not_zero', 'the reserved half-word must be 0'],
    [vm.status !== 'INIT', 'VM_STATE', 'state_not_init', `VM ${vm.vmid} is ${vm.status}`],
  ]);
  if (failed !== undefined) return failed;
  enter(rm, vm, 'READY');
  return rmOk({});
}

/** Boot parcels VM_START accepts for `vm` (§3.9), each with its IPA if the layout fixes one. */
type BootAt = { base: bigint; layout: IpaHolder } | undefined;
const layoutHolder = (rangeId: number): IpaHolder => ({ kind: 'layout', id: `address_layout:${rangeId}` });
const DEMAND_PAGING: IpaHolder = { kind: 'layout', id: 'demand_paging' };
const layoutAt = (vm: Vm, rangeId: number): BootAt => {
  const r = vm.addressLayout.get(rangeId);
  return r === undefined ? undefined : { base: r.base, layout: layoutHolder(rangeId) };
};

function bootParcels(rm: ResourceManager, vm: Vm): { parcel: Parcel; at: BootAt }[] {
  const out: { parcel: Parcel; at: BootAt }[] = [];
  const add = (p: Parcel | undefined, at: BootAt): void => {
    if (p !== undefined && !p.accepted.has(vm.vmid) && !out.some((o) => o.parcel === p)) out.push({ parcel: p, at });
  };
  if (vm.image !== undefined) add(rm.parcels.get(vm.image.handle), layoutAt(vm, ADDRESS_RANGE_ID.IMAGE));
  if (vm.firmware !== undefined) add(rm.parcels.get(vm.firmware.handle), layoutAt(vm, ADDRESS_RANGE_ID.FIRMWARE));
  for (const p of rm.parcels.values()) {
    const privateParcel =
      p.state === 'SHARING' && p.label === 0 && p.memType === MEM_TYPE.NORMAL && p.acl.length === 1 && p.acl[0]!.vmid === vm.vmid && p.acl[0]!.rights === (ACL_RIGHTS.R | ACL_RIGHTS.W | ACL_RIGHTS.X);
    if (privateParcel) add(p, undefined);
  }
  return out;
}

async function vmStart(rm: ResourceManager, caller: number, req: { vmid: number }): Promise<RmOutcome<Empty>> {
  const vm = ownedVm(rm, caller, req.vmid);
  if (!isVm(vm)) return vm;
  if (vm.status !== 'READY') return rmFail('VM_STATE', 'state_not_ready', `VM ${vm.vmid} is ${vm.status}`);
  const accepted: Parcel[] = [];
  for (const { parcel, at } of bootParcels(rm, vm)) {
    const r = await autoAccept(rm, vm.vmid, parcel, at);
    if (!r.ok) {
      // Undo the boot parcels accepted so far; the VM did not start.
      for (const p of accepted) if (p.accepted.has(vm.vmid)) await releaseFor(rm, p, vm.vmid);
      enter(rm, vm, 'INIT_FAILED');
      return rmFail(r.error.rmError, `boot_parcel_${r.error.rule}`, `VM_START: boot parcel ${parcel.handle}: ${r.error.message}`);
    }
    accepted.push(parcel);
  }
  enter(rm, vm, 'RUNNING');
  return rmOk({});
}

function vmStop(rm: ResourceManager, caller: number, req: { vmid: number; flags: number; stopReason: number }): RmOutcome<Empty> {
  // A non-owner gets VMID_INVALID here, not DENIED (§4.2, §8 item 2).
  const vm = ownedVm(rm, caller, req.vmid, 'VMID_INVALID');
  if (!isVm(vm)) return vm;
  const failed = firstFailure([
    [(req.flags & ~STOP_FLAGS.FORCE) !== 0, 'ARGUMENT_INVALID', 'flags_invalid', `flags 0x${req.flags.toString(16)}`],
    [vm.status !== 'RUNNING' && vm.status !== 'PAUSED', 'VM_STATE', 'state_not_running', `VM ${vm.vmid} is ${vm.status}`],
  ]);
  if (failed !== undefined) return failed;
  if ((req.flags & STOP_FLAGS.FORCE) !== 0) {
    enter(rm, vm, 'EXITED');
    // The reason is exit flags 0 and exit code NORMAL; the stop_reason is not copied (§4.2, open RM `vm_mgnt.c`).
    rm.notify(vm.owner, 'VM_EXITED', { vmid: vm.vmid, exitType: EXIT_TYPE.VM_STOP_FORCED, reason: u32le(0 + (VM_EXIT_CODE.NORMAL << 16)) });
  } else {
    // A graceful stop asks the guest, which should answer with VM_EXIT.
    rm.notify(vm.vmid, 'VM_SHUTDOWN', { stopReason: req.stopReason });
  }
  return rmOk({});
}

/** Tries of each accepted parcel's release (a core UnmapGrant) during a staged reset. */
export const RESET_RELEASE_ATTEMPTS_MAX = 4;

function vmReset(rm: ResourceManager, caller: number, req: { vmid: number }): RmOutcome<Empty> {
  const vm = ownedVm(rm, caller, req.vmid, 'VMID_INVALID');
  if (!isVm(vm)) return vm;
  if (!canEnter(vm.status, 'RESETTING')) return rmFail('VM_STATE', 'state_not_resettable', `VM ${vm.vmid} is ${vm.status}`);
  enter(rm, vm, 'RESETTING');
  // The staged reset runs after this reply, before the next call (the RM's async reset, §4.2).
  rm.afterCall(() => resetStage(rm, vm));
  return rmOk({});
}

/**
 * A restarted RM finishes the resets it was killed in (a VM is RESETTING only while its stage runs,
 * or after the core kept refusing an unmap): each stage runs again, after every intent is settled
 * (intents.ts), so its owner sees RESET and can reclaim and deallocate (issue 9 item 2).
 */
export function resumeResets(rm: ResourceManager): void {
  for (const vm of rm.vms.values()) if (vm.status === 'RESETTING') rm.afterCall(() => resetStage(rm, vm));
}

/** VM_RESET's background stage: release what the VM accepted, then RESET. */
async function resetStage(rm: ResourceManager, vm: Vm): Promise<void> {
  if (rm.vms.get(vm.vmid) !== vm || vm.status !== 'RESETTING') return;
  let kept = 0;
  for (const p of [...rm.parcels.values()]) {
    if (!p.accepted.has(vm.vmid)) continue;
    let released = await releaseFor(rm, p, vm.vmid);
    for (let n = 1; !released.ok && n < RESET_RELEASE_ATTEMPTS_MAX; n++) released = await releaseFor(rm, p, vm.vmid);
    if (released.ok) rm.notify(p.owner, 'MEM_RELEASED', { handle: p.handle, vmid: vm.vmid, memInfoTag: p.memInfoTag ?? 0 });
    else kept++;
  }
  // The core kept refusing to unmap a parcel: the VM still holds memory, so it must not reach
  // RESET (which lets VM_DEALLOCATE free its IPA bookkeeping under a parcel still accepted, and
  // its VMID be reused). It stays RESETTING; its owner sees no RESET and reports the VM leaked.
  // Found by the simulation (README "Deterministic simulation", bug 1).
  if (kept > 0) return;
  for (const p of rm.parcels.values()) p.pending.delete(vm.vmid);
  // The VM's memory is gone: only the VMM's layout reservations stay in its IPA space.
  rm.ipas.get(vm.vmid)?.freeParcels();
  vm.peers.clear();
  vm.peers.add(vm.owner);
  enter(rm, vm, 'RESET');
}

function vmExit(rm: ResourceManager, caller: number, req: { exitFlags: number; exitCode: number; reserved: number }): RmOutcome<Empty> {
  const vm = rm.vms.get(caller);
  const failed = firstFailure([
    [!(Object.values(VM_EXIT_CODE) as number[]).includes(req.exitCode), 'MSG_INVALID', 'exit_code_invalid', `exit code ${req.exitCode}`],
    [req.reserved !== 0, 'MSG_INVALID', 'reserved_not_zero', 'the reserved byte must be 0'],
    [vm === undefined, 'DENIED', 'caller_not_vm', `VM ${caller} is not an RM-managed VM`],
    [vm !== undefined && vm.status !== 'RUNNING' && vm.status !== 'PAUSED', 'VM_STATE', 'state_not_running', `VM ${caller} is ${vm?.status}`],
  ]);
  if (failed !== undefined) return failed;
  enter(rm, vm!, 'EXITED');
  rm.notify(vm!.owner, 'VM_EXITED', { vmid: caller, exitType: EXIT_TYPE.VM_EXIT, reason: u32le(req.exitFlags + (req.exitCode << 16)) });
  return rmOk({});
}

function vmGetState(rm: ResourceManager, caller: number, req: { vmid: number }): RmOutcome<{ vmStatus: number; osStatus: number; appStatus: number }> {
  const vmid = req.vmid === 0 ? caller : req.vmid;
  const vm = rm.vms.get(vmid);
  if (vm === undefined) return rmFail('NORESOURCE', 'vmid_unknown', `VM ${vmid} does not exist`);
  if (caller !== vmid && caller !== vm.owner && !vm.peers.has(caller)) return rmFail('DENIED', 'not_peer', `VM ${caller} may not see VM ${vmid}`);
  return rmOk({ vmStatus: VM_STATUS[vm.status], osStatus: vm.osStatus, appStatus: vm.appStatus });
}

function vmSetStatus(rm: ResourceManager, caller: number, req: { osStatus: number; appStatus: number }): RmOutcome<Empty> {
  const vm = rm.vms.get(caller);
  if (vm === undefined) return rmFail('DENIED', 'caller_not_vm', 'only secondary VMs report a status');
  if (req.osStatus !== 0) vm.osStatus = req.osStatus;
  vm.appStatus = req.appStatus;
  statusChanged(rm, vm);
  return rmOk({});
}

/** Calls that only record configuration in some states: the state rule and the record step. */
function configure<R extends { vmid: number }>(
  allowed: readonly VmStatus[],
  validate: (req: R) => Check | undefined,
  record: (vm: Vm, req: R, rm: ResourceManager) => Check | void,
): (rm: ResourceManager, caller: number, req: R) => RmOutcome<Empty> {
  return (rm, caller, req) => {
    const vm = ownedVm(rm, caller, req.vmid);
    if (!isVm(vm)) return vm;
    const invalid = validate(req);
    const failed = firstFailure([
      ...(invalid !== undefined ? [invalid] : []),
      [!allowed.includes(vm.status), 'VM_STATE', 'state_not_allowed', `VM ${vm.vmid} is ${vm.status}, the call needs ${allowed.join(' or ')}`],
    ]);
    if (failed !== undefined) return failed;
    const refused = record(vm, req, rm);
    return refused === undefined ? rmOk({}) : (firstFailure([refused]) as RmOutcome<Empty>);
  };
}

/**
 * Reserves `ranges` for `holder` in the VM's IPA allocator, replacing what it held (all or nothing).
 * Layout ranges may overlap each other (the VMM declares them all); a range over a parcel already
 * accepted there is NORESOURCE: the open RM's allocator cannot reserve it (spec silent; §3.4's allocation failure).
 */
function reserveIpas(rm: ResourceManager, vmid: number, holder: IpaHolder, ranges: readonly SglEntry[]): Check | undefined {
  const space = rm.ipaSpace(vmid);
  const saved = space.save();
  space.free(holder);
  for (const r of ranges) {
    if (!space.isFree(r.base, r.size, holder)) {
      space.restore(saved);
      return [true, 'NORESOURCE', 'ipa_in_use', `IPA 0x${r.base.toString(16)}+0x${r.size.toString(16)} of VM ${vmid} is in use or outside its IPA space`];
    }
    space.take(r.base, r.size, holder, holder);
  }
  return undefined;
}

const BOOT_CONTEXT_INDEX_MAX: Readonly<Record<number, number>> = { [BOOT_CONTEXT_REG_SET.X]: 31, [BOOT_CONTEXT_REG_SET.PC]: 0, [BOOT_CONTEXT_REG_SET.SP]: 2 };
const BEFORE_START: readonly VmStatus[] = ['LOAD', 'AUTH', 'INIT', 'READY'];

const u32le = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};

export const VM_CALLS: CallTable = {
  VM_ALLOCATE: vmAllocate,
  VM_DEALLOCATE: vmDeallocate,
  VM_CONFIG_IMAGE: vmConfigImage,
  VM_AUTH_IMAGE: vmAuthImage,
  VM_INIT: vmInit,
  VM_START: vmStart,
  VM_STOP: vmStop,
  VM_RESET: vmReset,
  VM_EXIT: vmExit,
  VM_GET_STATE: vmGetState,
  VM_SET_STATUS: vmSetStatus,
  VM_GET_VMID: (_rm, caller) => rmOk({ vmid: caller }),
  // Any caller; the RM's fixed host type (§2.1: AArch64, "Gunyah+RM", version 1).
  VM_HOST_GET_TYPE: () => rmOk({ hostType: VM_HOST_TYPE }),
  VM_GET_HYP_RESOURCES: (rm, caller, req) => {
    if (req.vmid === VMID_HLOS) return rmFail('DENIED', 'hlos_owned_by_rm', `VM ${req.vmid} (HLOS) is owned by the RM`);
    const vm = rm.vms.get(req.vmid);
    if (vm === undefined) return rmFail('VMID_INVALID', 'vmid_unknown', `VM ${req.vmid} does not exist`);
    if (caller !== vm.owner && caller !== vm.vmid) return rmFail('DENIED', 'not_owner', `VM ${caller} does not own VM ${req.vmid}`);
    return rmOk({ resources: [] });
  },
  VM_SET_FIRMWARE_MEM: (rm, caller, req) => {
    const vm = ownedVm(rm, caller, req.vmid);
    if (!isVm(vm)) return vm;
    const p = parcelFor(rm, req.memHandle, caller, vm.vmid);
    const failed = firstFailure([
      [req.reserved !== 0, 'ARGUMENT_INVALID', 'reserved_not_zero', 'the reserved half-word must be 0'],
      [vm.status !== 'INIT', 'VM_STATE', 'state_not_init', `VM ${vm.vmid} is ${vm.status}`],
      [p === undefined, 'HANDLE_INVALID', 'firmware_parcel_unknown', `parcel ${req.memHandle} is not the owner's parcel for VM ${vm.vmid}`],
      [p !== undefined && req.offset + req.size > parcelSize(p), 'ARGUMENT_INVALID', 'firmware_outside_parcel', 'the firmware lies outside the parcel'],
    ]);
    if (failed !== undefined) return failed;
    vm.firmware = { handle: req.memHandle, offset: req.offset, size: req.size };
    return rmOk({});
  },
  VM_SET_TIME_BASE: configure<{ vmid: number; timeBase: bigint; sysTimerRef: bigint }>(['INIT', 'READY'], () => undefined, (vm, req) => {
    vm.timeBase = { timeBase: req.timeBase, sysTimerRef: req.sysTimerRef };
  }),
  VM_SET_CONTEXT: configure<{ vmid: number; regSet: number; regIndex: number; value: bigint }>(
    BEFORE_START,
    (req) => {
      const max = BOOT_CONTEXT_INDEX_MAX[req.regSet];
      return max === undefined || req.regIndex > max ? [true, 'ARGUMENT_INVALID', 'boot_register_invalid', `register set ${req.regSet} index ${req.regIndex}`] : undefined;
    },
    (vm, req) => {
      vm.bootContext.set(`${req.regSet}:${req.regIndex}`, req.value);
    },
  ),
  VM_SET_DEMAND_PAGING: configure<{ vmid: number; ranges: readonly { base: bigint; size: bigint }[] }>(
    BEFORE_START,
    (req) => (req.ranges.some((r) => r.size === 0n || r.base % 4096n !== 0n || r.size % 4096n !== 0n) ? [true, 'ARGUMENT_INVALID', 'range_invalid', 'ranges must be 4 KiB aligned and non-empty'] : undefined),
    (vm, req, rm) => {
      const ranges = req.ranges.map((r) => ({ base: r.base, size: r.size }));
      const refused = reserveIpas(rm, vm.vmid, DEMAND_PAGING, ranges);
      if (refused !== undefined) return refused;
      vm.demandPaging = ranges;
    },
  ),
  VM_SET_ADDRESS_LAYOUT: configure<{ vmid: number; rangeId: number; base: bigint; size: bigint }>(
    BEFORE_START,
    (req) =>
      !(Object.values(ADDRESS_RANGE_ID) as number[]).includes(req.rangeId)
        ? [true, 'ARGUMENT_INVALID', 'range_id_invalid', `range id ${req.rangeId}`]
        : req.base % 4096n !== 0n || req.size % 4096n !== 0n
          ? [true, 'ARGUMENT_INVALID', 'range_invalid', 'the range must be 4 KiB aligned']
          : undefined,
    (vm, req, rm) => {
      const refused = reserveIpas(rm, vm.vmid, layoutHolder(req.rangeId), [{ base: req.base, size: req.size }]);
      if (refused !== undefined) return refused;
      vm.addressLayout.set(req.rangeId, { base: req.base, size: req.size });
    },
  ),
};
