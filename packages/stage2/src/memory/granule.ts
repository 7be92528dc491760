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
 * - `hypUse`: what HYP holds an owned granule for: STAGE2 for a stage-2 table page or a page in an
 *   address space's table-page pool (the memcache the host tops up, seed 003), NONE for a plain
 *   host_donate_hyp. hyp_donate_host refuses granules in use. Whether a STAGE2 page is a live
 *   table or waits in a pool is the pool's and table's business, so splits and folds never touch
 *   the records.
 *
 * Records are interned, so equal records are one object and uniform ranges fold in the RadixMap.
 * Grant membership is a separate frame map of grant ids (physical-memory.ts), so the intern table
 * stays bounded however many grants come and go.
 */

import type { Vmid } from '../types.js';

export type PageState = 'OWNED' | 'SHARED_OWNED' | 'SHARED_BORROWED' | 'NOPAGE';
export type MemoryKind = 'RAM' | 'MMIO';
export type RmiGranuleState = 'NS' | 'DELEGATED' | 'RD' | 'REC' | 'DATA' | 'RTT';
export type HypUse = 'NONE' | 'STAGE2';

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

/**
 * withMeta for a change fixed in advance, as an update function with its own memo of results per
 * record: the hot transitions (share/unshare) then skip building a change key on every call.
 */
export function metaUpdate(changes: Partial<GranuleMeta>): (m: GranuleMeta) => GranuleMeta {
  const results = new Map<GranuleMeta, GranuleMeta>();
  return (m) => {
    let next = results.get(m);
    if (next === undefined) {
      next = granuleMeta({ ...m, ...changes });
      results.set(m, next);
    }
    return next;
  };
}

/** Results of withMeta per (record, change), so hot single-field transitions skip the intern key. */
const transitions = new WeakMap<GranuleMeta, Map<string, GranuleMeta>>();

/** A copy of `m` with `changes` applied, interned. */
export function withMeta(m: GranuleMeta, changes: Partial<GranuleMeta>): GranuleMeta {
  let cache = transitions.get(m);
  if (cache === undefined) transitions.set(m, (cache = new Map()));
  let key = '';
  for (const k in changes) key += `${k}=${String(changes[k as keyof GranuleMeta])};`;
  let next = cache.get(key);
  if (next === undefined) {
    next = granuleMeta({ ...m, ...changes });
    cache.set(key, next);
  }
  return next;
}

/**
 * `update` with a memo of its last input and result. A range update meets the same record in run
 * after run (a donated run is one record, split over radix slots), so the memo answers most calls
 * without building withMeta's change key. `update` must be a pure function of the record.
 */
export function lastResultMemo(update: (m: GranuleMeta) => GranuleMeta): (m: GranuleMeta) => GranuleMeta {
  let lastIn: GranuleMeta | undefined;
  let lastOut: GranuleMeta | undefined;
  return (m) => {
    if (m !== lastIn) {
      lastOut = update(m);
      lastIn = m;
    }
    return lastOut!;
  };
}
