/**
 * What a restarted VMM takes back (issue 9 §3). A VMM that dies (kill -9) leaves its VMs in the RM,
 * their stage-2s, table pools and demand-paged grants in the core, and its donation region full of
 * pages donated to HYP; the new process knows none of it. Apart from the live leases and their VMs
 * that a VMM with a data dir saved and re-adopts (durable-state.ts; a stream session dies with its
 * stream), everything HLOS holds is orphaned: the new VMM learns it
 * from the RM and the core (their introspection RPCs, `HoldingsPort`) and tears it down with the
 * same teardown a session end runs (gunyah-lifecycle.ts), as Linux releases a dead process's VM
 * fds.
 *
 * The VMM is HLOS's VM manager (DESIGN.md §4): every VM HLOS allocated in the RM is its, whoever
 * asked for it. Not every HLOS parcel is: other HLOS clients (the msgq's other users, a test's
 * workload) share and lend to the VMM's VMs too, and reclaiming their parcels loses an acknowledged
 * share. A reconstructed record therefore holds only what the VMM itself made, told apart
 * unambiguously: its parcels carry the VMM's label for the VM (`vmmParcelLabel`, the MEM_LEND
 * label is the owner's to choose, gunyah-rm.md §3) and name that VM alone; its demand-paged grants
 * are HOST grants that back no parcel and name that VM alone. Its table-pool pages come back with
 * VM_DEALLOCATE, which destroys the stage-2 (gunyah-rm.md §4.2), so the record lists none.
 *
 * The donation region's frames that are not the host's at restart (donated or delegated) are held
 * (never allocated again) until the sweep has run, then those the core reports back with the host
 * are freed. Realms are torn down from the core's ListRealms (RD, roots, RECs) in the RMM's order,
 * and DELEGATED granules of the region that no realm uses are undelegated.
 */
import { VMID_HLOS, type VmStatus } from '@hypmesh/rm';
import type { FrameRun } from './host-pages.js';

/**
 * The label of every parcel the VMM makes for VM `vmid` (its DTB MEM_LEND): 'VM' (0x564d) in the
 * high half, the VMID in the low. The label is the owner's tag and the RM never interprets it
 * (gunyah-rm.md §3), so this is how a restarted VMM knows its parcels from other HLOS clients'
 * (README "Crash-restart tests": other HLOS clients must not use labels 0x564d0000..0x564dffff).
 */
export const vmmParcelLabel = (vmid: number): number => (0x564d_0000 | (vmid & 0xffff)) >>> 0;

/** The VMM's name for the session of VMs found at restart (VmView.session). */
export const ORPHANED_SESSION = 'orphaned-at-restart';

/** An RM VM that HLOS allocated. */
export interface HeldVm {
  readonly vmid: number;
  readonly status: VmStatus | 'UNKNOWN';
}

/** An RM parcel, with its owner, its label, the VMs its ACL names and the core grant that enforces it. */
export interface HeldParcel {
  readonly handle: number;
  readonly ownerVmid: number;
  readonly label: number;
  readonly aclVmids: readonly number[];
  readonly grantId: number;
}

/** A core grant the host owns (the VMM's demand-paged memory), with its ACL and who maps it now. */
export interface HeldGrant {
  readonly grantId: number;
  readonly aclVmids: readonly number[];
  readonly borrowerVmids: readonly number[];
}

/** A realm the RMM holds (the host made it: only HOST issues RMI commands), as realmTearDown needs it. */
export interface HeldRealm {
  readonly rd: number;
  readonly ipaBits: number;
  readonly startLevel: number;
  readonly roots: readonly number[];
  readonly recs: readonly number[];
}

/**
 * A run of the donation region: whether the host may donate it again (owned, unshared,
 * undelegated), or whether it is a DELEGATED granule no realm uses (a realm create that died
 * between GRANULE_DELEGATE and REALM_CREATE), which the sweep undelegates.
 */
export interface RegionRun extends FrameRun {
  readonly hostFree: boolean;
  readonly delegatedUnused: boolean;
}

type Listed<T> = Promise<{ readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string }>;

/** The RM's and the core's introspection, as the sweep needs it. */
export interface HoldingsPort {
  /** RM ListVms: every VM HLOS allocated (not HLOS itself). */
  rmVms(): Listed<readonly HeldVm[]>;
  /** RM ListParcels(all_vms): every parcel with its label (their grants are the RM's to reclaim, not the sweep's). */
  rmParcels(): Listed<readonly HeldParcel[]>;
  /** Core ListGrants: the grants HOST owns. */
  hostGrants(): Listed<readonly HeldGrant[]>;
  /** Core ListRealms: every realm. */
  realms(): Listed<readonly HeldRealm[]>;
  /** Core OwnershipMap over `run`, as runs that are or are not the host's to donate. */
  regionRuns(run: FrameRun): Listed<readonly RegionRun[]>;
}

/** One orphaned VM as the sweep rebuilds it. */
export interface Orphan {
  readonly vmid: number;
  readonly status: VmStatus | 'UNKNOWN';
  /** The VMM's parcels for it: HLOS's, with its `vmmParcelLabel`, naming it alone. */
  readonly parcels: readonly number[];
  /** HOST grants that back no parcel and name it alone (its demand-paged memory), and whether it maps them. */
  readonly grants: readonly { readonly grantId: number; readonly mapped: boolean }[];
}

/**
 * Each orphan with what the VMM made for it (module header): its parcels (HLOS's, the VMM's label
 * for it, naming it alone) and its demand-paged grants (HOST's, backing no parcel, naming it
 * alone; a parcel's grant is the RM's: it unmaps it at VM_RESET and destroys it at MEM_RECLAIM).
 * Everything else is left alone, whoever's VM it names: another HLOS client's parcel for a swept VM
 * is that client's to reclaim.
 */
export function orphansOf(vms: readonly HeldVm[], parcels: readonly HeldParcel[], grants: readonly HeldGrant[]): Orphan[] {
  const known = new Set(vms.map((v) => v.vmid));
  const parcelGrants = new Set(parcels.map((p) => p.grantId));
  const only = (acl: readonly number[]): number | undefined => (acl.length === 1 && known.has(acl[0]!) ? acl[0] : undefined);
  const parcelsOf = new Map<number, number[]>();
  for (const p of parcels) {
    const vmid = only(p.aclVmids);
    if (p.ownerVmid !== VMID_HLOS || vmid === undefined || p.label !== vmmParcelLabel(vmid)) continue;
    parcelsOf.set(vmid, [...(parcelsOf.get(vmid) ?? []), p.handle]);
  }
  const grantsOf = new Map<number, { grantId: number; mapped: boolean }[]>();
  for (const g of grants) {
    const vmid = only(g.aclVmids);
    if (parcelGrants.has(g.grantId) || vmid === undefined) continue;
    grantsOf.set(vmid, [...(grantsOf.get(vmid) ?? []), { grantId: g.grantId, mapped: g.borrowerVmids.includes(vmid) }]);
  }
  return [...vms]
    .sort((a, b) => a.vmid - b.vmid)
    .map((v) => ({ vmid: v.vmid, status: v.status, parcels: parcelsOf.get(v.vmid) ?? [], grants: grantsOf.get(v.vmid) ?? [] }));
}

/** What a sweep found at once (GUNYAH VMIDs, realm RDs), and its report when every teardown has ended. */
export interface SweepOutcome {
  readonly orphans: readonly number[];
  /** VMIDs of saved lease VMs taken back as they were (durable-state.ts; empty without a data dir). */
  readonly adopted: readonly number[];
  readonly realms: readonly number[];
  readonly swept: Promise<SweepReport>;
}

/** What a sweep found and did, for the VMM's log and RecoverVms-style reports. */
export interface SweepReport {
  /** VMIDs torn down (GUNYAH), realms torn down (RD addresses), and what each teardown that left something could not take back (VmView.leaked, by VMID; 0 for a realm), with its failed steps' last errors. */
  readonly tornDown: readonly number[];
  readonly realmsTornDown: readonly number[];
  readonly leaked: readonly { readonly vmid: number; readonly what: readonly string[]; readonly why: readonly string[] }[];
  /** Donation-region frames held at restart, and how many of them are still not the host's after the sweep. */
  readonly framesHeld: number;
  readonly framesStillHeld: number;
}
