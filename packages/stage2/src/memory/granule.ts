/**
 * The per-granule record: what pKVM keeps in `struct hyp_page` (hyp_vmemmap) and the RMM in its
 * granule descriptors (stage2-models.md §A2, §A6, §B2), plus the owner.
 *
 * - `owner`: exactly one component owns each granule (DESIGN.md §2). A lent granule keeps its owner.
 * - `hyp`: the hypervisor's own view, stored here as in L-new's `__hyp_state_comp`. HOST and guest
 *   views live in their stage-2 entries (software bits), see s2tt/descriptor.ts.
 * - `pins`: hyp_page.refcount from hyp_pin_shared_mem (u16, §A6); unshare_hyp is -EBUSY while > 0.
 * - `guestShares`: host_share_guest_count (u32, §A6).
 * - `rmi`: the RMM granule state (§B2); anything but NS is owned by HYP (the RMM side).
 * - `hypUse`: what HYP holds an owned granule for: a stage-2 table page, a page waiting in an
 *   address space's table-page pool (the memcache the host tops up, seed 003), or nothing in
 *   particular (plain host_donate_hyp). hyp_donate_host refuses granules in use.
 *
 * Records are interned, so equal records are one object and uniform ranges fold in the RadixMap.
 * Grant membership is a separate frame map of grant ids (physical-memory.ts), so the intern table
 * stays bounded however many grants come and go.
 */

import type { Vmid } from '../types.js';

export type PageState = 'OWNED' | 'SHARED_OWNED' | 'SHARED_BORROWED' | 'NOPAGE';
export type MemoryKind = 'RAM' | 'MMIO';
export type RmiGranuleState = 'NS' | 'DELEGATED' | 'RD' | 'REC' | 'DATA' | 'RTT';
export type HypUse = 'NONE' | 'TABLE' | 'TABLE_POOL';

/** u16 refcount: pKVM BUGs on overflow (§A2); we refuse the pin instead. */
export const PIN_COUNT_MAX = 0xffff;
/** u32 host_share_guest_count: -EBUSY at U32_MAX (§A5). */
export const GUEST_SHARE_COUNT_MAX = 0xffffffff;

export interface GranuleMeta {
  readonly kind: MemoryKind;
  readonly owner: Vmid;
  readonly hyp: PageState;
  readonly pins: number;
  readonly guestShares: number;
  readonly rmi: RmiGranuleState;
  readonly hypUse: HypUse;
}

const interned = new Map<string, GranuleMeta>();

/** The canonical record with these fields. */
export function granuleMeta(m: GranuleMeta): GranuleMeta {
  const key = `${m.kind}|${m.owner}|${m.hyp}|${m.pins}|${m.guestShares}|${m.rmi}|${m.hypUse}`;
  let found = interned.get(key);
  if (found === undefined) {
    found = Object.freeze({ ...m });
    interned.set(key, found);
  }
  return found;
}

/** A copy of `m` with `changes` applied, interned. */
export const withMeta = (m: GranuleMeta, changes: Partial<GranuleMeta>): GranuleMeta => granuleMeta({ ...m, ...changes });
