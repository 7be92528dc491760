/**
 * What a VMM started with `--data-dir` keeps across its own restart (issue 9 §3: "persist the
 * sessions and leases, so that a lease survives a VMM restart"): every live lease (its id, TTL and
 * expiry) and the record of every VM it acknowledged (handle, session, VMID, bindings, DTB, boot
 * context, parcels, demand-paged grants, donated pool runs, state). The service saves it after every
 * call that changed it and before that call's reply (services/vmm durable.ts), so what a client was
 * told is what the next process finds.
 *
 * What the next process does with it (VmManager.sweepOrphans): a lease whose expiry has not passed
 * is adopted under the same id with the time it has left; each GUNYAH VM of such a lease is
 * re-adopted once the RM still lists its VMID as HLOS's and its saved pool runs are still not the
 * host's in the core; its parcels and grants are taken from what the RM and the core hold now (the
 * saved ones may be a call behind: a kill -9 between the RM acting and the save). Everything else
 * (VMs of stream sessions, whose stream died with the process; of leases that expired meanwhile;
 * realms; anything no saved record names) is torn down by the restart sweep as before.
 *
 * Expiry is saved as wall-clock time (the monotonic clock restarts with the process); the service
 * passes the wall clock in, the domain never reads it.
 */
import type { Binding, RegSet } from './bindings.js';
import type { FrameRun } from './host-pages.js';
import type { DemandPagedGrant, Vm, VmState, VmType } from './vm-record.js';

/** Bumped when what is saved changes meaning (the data dir's `format`). */
export const VMM_DURABLE_FORMAT = '1';

export interface SavedLease {
  readonly sessionId: string;
  readonly ttlMs: number;
  /** Wall-clock milliseconds (Unix epoch) at which the lease ends unless renewed. */
  readonly expiresAtWallMs: number;
  /** The session's next VM handle (handles are numbered per session and never given twice). */
  readonly nextHandle?: number;
}

/** A VM's record as saved: its identity, its configuration and what it holds. */
export interface SavedVm {
  readonly handle: number;
  readonly type: VmType;
  readonly vmid: number;
  readonly ipaBits: number;
  readonly session: string;
  readonly state: VmState;
  readonly startTried: boolean;
  readonly bindings: readonly Binding[];
  readonly dtb: { readonly guestAddr: bigint; readonly sizeBytes: bigint } | undefined;
  readonly boot: readonly (readonly [string, { readonly set: RegSet; readonly index: number; readonly value: bigint }])[];
  readonly parcels: readonly { readonly handle: number; readonly what: string }[];
  readonly demandPaged: readonly DemandPagedGrant[];
  readonly poolRuns: readonly FrameRun[];
}

export interface VmmDurableState {
  /** The next VM record id: ids continue from it, so an id never names two VMs (issue 9 §4). */
  readonly nextHandle: number;
  readonly leases: readonly SavedLease[];
  readonly vms: readonly SavedVm[];
}

export function savedVmOf(vm: Vm): SavedVm {
  return {
    handle: vm.handle,
    type: vm.type,
    vmid: vm.vmid,
    ipaBits: vm.ipaBits,
    session: vm.session,
    state: vm.state,
    startTried: vm.startTried,
    bindings: [...vm.bindings],
    dtb: vm.dtb === undefined ? undefined : { ...vm.dtb },
    boot: [...vm.boot.entries()].map(([k, v]) => [k, { ...v }] as const),
    parcels: vm.parcels.map((p) => ({ ...p })),
    demandPaged: vm.demandPaged.map((g) => ({ ...g })),
    poolRuns: vm.poolRuns.map((r) => ({ ...r })),
  };
}

/**
 * The state a re-adopted VM resumes in: as saved, except that a start the crash cut short (tried,
 * never finished) is START_FAILED, as a start that failed is (its teardown knows the RM's status).
 */
export function resumedState(v: SavedVm): VmState {
  return v.state === 'CREATED' && v.startTried ? 'START_FAILED' : v.state;
}

/**
 * Whether a saved VM may be re-adopted at all: a GUNYAH VM that was not being torn down.
 *
 * A REALM VM is not re-adopted, even in a live lease: it is torn down from the RMM's own view
 * (ListRealms: RD, roots, RECs; the teardown walks the RTTs by RMI, stage2-models.md §B3), which is
 * sound whatever the saved record says. Re-adopting it soundly needs what neither side has today:
 * the saved record keeps no list of the realm's granules (RTTs, DATA; only a count), and the core
 * reports granule states but not which realm a DATA or RTT granule belongs to, so the restarted VMM
 * could neither check the record against the RMM nor tell the realm's frames of the donation
 * region from an orphaned realm's, which the sweep holds and frees when it ends. Until the record
 * lists its granules and the check walks them (RMI_RTT_READ_ENTRY), the lease survives and its
 * realm does not (issue 9 §3; the client sees ENOENT no_such_vm for its handle).
 */
export const readoptable = (v: SavedVm): boolean => v.type === 'GUNYAH' && v.state !== 'DESTROYING' && v.state !== 'DESTROYED';
