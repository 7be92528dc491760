/**
 * Core refusals as RM errors (gunyah-rm.md §1.5), shared by the parcel calls (§3) and the VM calls
 * that change the core (§4.2 VM_ALLOCATE / VM_DEALLOCATE): one table by the core's rule, then one
 * by errno, then the caller's fallback. The RM error's rule is the core's, prefixed `core_`, so a
 * client sees which core check fired.
 */
import type { CoreRefusal } from './core-port.js';
import { rmFail, type RmErrorCode, type RmOutcome } from './rm-outcome.js';

export const CORE_RULE_TO_RM: Readonly<Record<string, RmErrorCode>> = {
  // Creating or extending a parcel over memory the owner does not hold exclusively: not in the
  // owner's extent (§3.2).
  owner_not_exclusive: 'MEM_INVALID',
  // A NORMAL parcel over device memory or an IO parcel over RAM: not the owner's extent of that kind (§3.2).
  grant_memory_type: 'MEM_INVALID',
  ranges_overlap: 'MEM_INVALID',
  ipa_out_of_range: 'MEM_INVALID',
  acl_vmid_unknown: 'VMID_INVALID',
  no_such_vm: 'VMID_INVALID',
  borrower_ipa_in_use: 'MAP_FAILED',
  host_not_identity: 'MAP_FAILED',
  grant_mapped: 'MEM_INUSE',
  table_pool_empty: 'NOMEM',
  grants_exhausted: 'NOMEM',
  ranges_too_many: 'NORESOURCE',
  // VM_ALLOCATE: HYP has no reserved pages left for the VM's stage-2, or the VMID already has a
  // space someone else made: the RM cannot provide the VM (§4.2 NORESOURCE).
  hyp_reservation_empty: 'NORESOURCE',
  vmid_in_use: 'NORESOURCE',
  // VM_DEALLOCATE while the VM still maps memory or a parcel names it: not yet (§1.5 BUSY).
  space_has_mappings: 'BUSY',
  space_in_grant: 'BUSY',
  // The core never gave a definite answer (services/rm core-client: the reply was lost or late on
  // every try): the RM changed nothing and the core may or may not have; the same request again
  // reuses the call's request id and settles it, so "try again" is the honest answer (§1.5 BUSY).
  outcome_unknown: 'BUSY',
};

export const CORE_ERRNO_TO_RM: Readonly<Record<string, RmErrorCode>> = { ENOMEM: 'NOMEM', EBUSY: 'MEM_INUSE', E2BIG: 'NORESOURCE' };

/** The RM error for a core refusal of `what` (a phrase for the message). */
export function fromCore<T>(r: CoreRefusal, fallback: RmErrorCode, what: string): RmOutcome<T> {
  const code = CORE_RULE_TO_RM[r.rule] ?? CORE_ERRNO_TO_RM[r.errno] ?? fallback;
  return rmFail(code, `core_${r.rule}`, `${what}: the core refused (${r.errno} ${r.rule}: ${r.message})`);
}
