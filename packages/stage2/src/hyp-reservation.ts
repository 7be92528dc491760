/**
 * HYP's boot reservation for the stage-2s HYP creates on its own account (DESIGN.md §4.2 "who
 * creates a VM's stage-2"). In Gunyah the RM asks the hypervisor for a VM's address space at
 * VM_ALLOCATE (gunyah-rm.md §4.2) and the hypervisor builds it from memory it set aside at boot,
 * not from host donations; pKVM's host-driven __pkvm_init_vm (seed 003) is the other way, kept for
 * HOST. The reservation is a pool of HYP-owned granules at the bottom of the boot carve-out, below
 * the host stage-2's tables, marked STAGE2 so hyp_donate_host can never hand them to the host.
 *
 * Sizing: every dynamic VMID (0x80..0xBE, 63 of them, gunyah-rm.md §4.1) can hold a space of the
 * platform's 40-bit IPA width, two concatenated root tables (§B4) plus a starter pool of eight
 * table pages, so an RM-only client can accept a parcel into a fresh VM without a host top-up:
 * 63 × (2 + 8) = 630 pages (2.5 MiB).
 */

import { rootTableCount } from './s2tt/geometry.js';
import { VMID_DYNAMIC_FIRST, VMID_DYNAMIC_LAST, VMID_HOST, VMID_RM, type Pfn, type Vmid } from './types.js';

/** The IPA width of a space HYP creates for the RM (DEFAULT_RM_CONFIG's 2^40 window). */
export const HYP_SPACE_IPA_BITS = 40;
/** Table pages a reserved space starts with besides its roots. */
export const HYP_SPACE_POOL_PAGES = 8;
/** Default size of the reservation, pages (above). */
export const HYP_RESERVATION_PAGES =
  (VMID_DYNAMIC_LAST - VMID_DYNAMIC_FIRST + 1) * (rootTableCount(HYP_SPACE_IPA_BITS) + HYP_SPACE_POOL_PAGES);

/** Where a space's root and first pool pages come from. */
export type TablePageSource = 'HOST_DONATION' | 'HYP_RESERVATION';

export interface SpaceCreator {
  readonly source: TablePageSource;
  /** Pool pages the space starts with from its source, besides the roots (donations bring their own). */
  readonly starterPoolPages: number;
}

/**
 * Who may create (and so destroy) address spaces, and from which pages. HOST creates pKVM-style
 * from the pages it donates in the same call (seed 003); the RM (0xFF) creates Gunyah-style at
 * VM_ALLOCATE from HYP's reservation. Anyone else is EPERM `not_space_creator`.
 */
export const SPACE_CREATORS: ReadonlyMap<Vmid, SpaceCreator> = new Map([
  [VMID_HOST, { source: 'HOST_DONATION', starterPoolPages: 0 }],
  [VMID_RM, { source: 'HYP_RESERVATION', starterPoolPages: HYP_SPACE_POOL_PAGES }],
]);

/** The reservation's frame range [base, base + count): a frame's origin is its address. */
export interface HypReservationRange {
  readonly base: Pfn;
  readonly count: number;
}

export const inReservation = (r: HypReservationRange, frame: number): boolean => frame >= r.base && frame < r.base + r.count;
