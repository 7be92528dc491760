/**
 * What each service believes, as plain data (issue 9 item 5). A live check fills these from the
 * services' introspection RPCs (`hypmesh check --live`); the deterministic simulation can fill them
 * from its in-process domains (packages/sim World), so both judge with the same rules.
 *
 * VMIDs are numbers; frame numbers are PA >> 12 (4 KiB frames). Nothing here is a live object: a
 * snapshot is taken service by service, so a check that runs while a mutation is in flight may see
 * a disagreement that the next snapshot no longer has (run it on a quiet system).
 */

/** A run of 4 KiB physical frames: [base, base + count). */
export interface FrameRunView {
  readonly base: number;
  readonly count: number;
}

/** One VM handle of the VMM (every session's), with the host frames it donated to HYP. */
export interface VmmVmView {
  readonly handle: number;
  /** The RM's VMID (GUNYAH); 0 for a REALM (the VMM does not track the RMM's VMID). */
  readonly vmid: number;
  readonly type: 'GUNYAH' | 'REALM';
  /** The handle's state: CREATED, RUNNING, ..., DESTROYING, DESTROYED. */
  readonly state: string;
  /** Frames donated to HYP for the VM's stage-2 table pool (__pkvm_host_donate_hyp): HYP-owned while the VM lives. */
  readonly donatedRuns: readonly FrameRunView[];
}

/** One VM the RM has allocated (VM_ALLOCATE), not the fixed ones (HLOS, the RM itself). */
export interface RmVmView {
  readonly vmid: number;
  /** The VM that allocated it (HLOS, 3). */
  readonly owner: number;
  /** Its §4.3 status name (LOAD, READY, RUNNING, EXITED, RESETTING, RESET, ...). */
  readonly state: string;
}

/** One RM memory parcel and the core grant that enforces it. */
export interface RmParcelView {
  readonly handle: number;
  readonly owner: number;
  readonly transType: 'SHARE' | 'LEND' | 'DONATE';
  readonly grantId: number;
  /** VMIDs that accepted it (mapped it through the core). */
  readonly acceptors: readonly number[];
}

/** One live core grant. */
export interface CoreGrantView {
  readonly id: number;
  readonly owner: number;
  readonly type: 'SHARE' | 'LEND' | 'DONATE';
  /** VMIDs that map it now. */
  readonly borrowers: readonly number[];
}

/** The owner of a run of frames in the core (OwnershipMap). */
export interface OwnershipRunView extends FrameRunView {
  readonly owner: number;
}

export interface VmmSnapshot {
  readonly vms: readonly VmmVmView[];
}

export interface RmSnapshot {
  readonly vms: readonly RmVmView[];
  readonly parcels: readonly RmParcelView[];
}

export interface CoreSnapshot {
  /** VMIDs of every address space, HOST's included. */
  readonly spaces: readonly number[];
  readonly grants: readonly CoreGrantView[];
  /**
   * Ownership of (at least) the frames the VMM says it donated; a donated frame no run covers is
   * reported as owned by nobody. Collect it with `donatedRuns(vmm)` as the OwnershipMap query.
   */
  readonly ownership: readonly OwnershipRunView[];
}

export interface Views {
  readonly vmm: VmmSnapshot;
  readonly rm: RmSnapshot;
  readonly core: CoreSnapshot;
}

/** Every frame run the VMM says it donated, so a caller can ask the core who owns exactly those. */
export function donatedRuns(vmm: VmmSnapshot): FrameRunView[] {
  return vmm.vms.filter(isLive).flatMap((vm) => vm.donatedRuns);
}

/** A handle being torn down (or gone) may legitimately have let go of its VMID, space and pages. */
export function isLive(vm: VmmVmView): boolean {
  return vm.state !== 'DESTROYING' && vm.state !== 'DESTROYED';
}
