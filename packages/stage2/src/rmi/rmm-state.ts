/**
 * The RMM's objects (stage2-models.md §B2–§B5): realms by RD granule, RECs, and RTTs, each keyed by
 * the frame number of the granule that holds it. The granule states themselves live in the granule
 * records (memory/granule.ts `rmi`); this is what the RMM keeps inside those granules.
 *
 * Who holds references, and what must be zero before a state can change (R10 granule_types.h):
 * - RD: one reference per REC of the realm (`recCount`). REALM_DESTROY needs it zero, and the sum
 *   of the root RTTs' refcounts zero.
 * - REC: refcount 1 while the REC runs (`running`); REC_DESTROY and RTT_SET_RIPAS need it zero.
 *   This model has no REC_ENTER, so nothing sets `running` except tests.
 * - RTT: one reference per TABLE or ASSIGNED entry it holds (`refcount`; NS mappings take none).
 *   RTT_DESTROY needs it zero; RTT_FOLD needs it zero (unassigned/NS) or 512 (assigned block).
 * - DATA: referenced by exactly one ASSIGNED entry (a block entry references all its granules).
 *
 * Realm VMIDs are the RMM's own namespace (`vmid_reserve` in R10), not the hypervisor's VMIDs: the
 * realm's granules are owned by HYP (the RMM side) in the core's ownership map.
 */

import type { Pfn } from '../types.js';
import type { Ripas } from './rtt-entry.js';
import { RTTES_PER_RTT } from './rtt-entry.js';

/** §B3: REALM_NEW=0 → REALM_ACTIVE=1 → REALM_SYSTEM_OFF=2. */
export type RealmState = 'NEW' | 'ACTIVE' | 'SYSTEM_OFF';
export type HashAlgorithm = 'SHA_256' | 'SHA_512';

/** One RTT granule: 512 entries at `level`, mapping [baseIpa, baseIpa + 512 * map size). */
export class Rtt {
  readonly entries = new Float64Array(RTTES_PER_RTT);
  /** Number of TABLE and ASSIGNED entries (§B2). */
  refcount = 0;
  constructor(
    readonly frame: Pfn,
    readonly rd: Pfn,
    readonly level: number,
    readonly baseIpa: number,
  ) {}
}

export interface Realm {
  readonly rd: Pfn;
  state: RealmState;
  /** IPA width in bits (s2sz). The PAR is [0, 2^(s2sz-1)). */
  readonly ipaBits: number;
  readonly startLevel: number;
  /** The concatenated root RTTs, consecutive granules from rtt_base. */
  readonly roots: readonly Rtt[];
  readonly vmid: number;
  readonly hashAlgorithm: HashAlgorithm;
  /** RD refcount: one per REC. */
  recCount: number;
}

/**
 * A pending RIPAS change, as the realm requests it with RSI_IPA_STATE_SET and the REC exit reports
 * it to the host (rec->set_ripas in R10): RTT_SET_RIPAS must continue from `addr` and stay below `top`.
 * addr = top = 0 means none.
 */
export interface RipasRequest {
  addr: number;
  readonly top: number;
  readonly ripas: Ripas;
  readonly changeDestroyed: boolean;
}

export interface Rec {
  readonly frame: Pfn;
  readonly rd: Pfn;
  /** REC granule refcount is 1 while the REC runs (§B2). */
  running: boolean;
  ripasRequest: RipasRequest;
}

export const NO_RIPAS_REQUEST: RipasRequest = Object.freeze({ addr: 0, top: 0, ripas: 'EMPTY', changeDestroyed: false });

export class RmmState {
  readonly realms = new Map<number, Realm>();
  readonly recs = new Map<number, Rec>();
  /** Every RTT granule, roots included. */
  readonly rtts = new Map<number, Rtt>();
  /** Realm VMIDs in use (vmid_reserve / vmid_free). */
  readonly vmids = new Set<number>();
}

declare const planBrand: unique symbol;
/**
 * What a check phase proved: only `check*` functions build one (via `sealPlan`), and only `commit*`
 * functions accept it, so a commit never runs on unchecked input (STYLE.md: check, then commit).
 */
export type RmiPlan<T> = T & { readonly [planBrand]: true };
export const sealPlan = <T>(t: T): RmiPlan<T> => t as RmiPlan<T>;
