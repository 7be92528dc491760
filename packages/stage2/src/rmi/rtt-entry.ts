/**
 * RTT entries (RTTEs) of a realm's stage 2, stage2-models.md §B5, as TF-RMM's lib/s2tt encodes
 * them (R10 s2tt_pvt_defs.h), in one number below 2^53 so an RTT is a Float64Array of 512 entries.
 *
 * An RTTE's state is HIPAS x RIPAS, plus the NS kinds and TABLE:
 *
 *   kind           levels  holds a PA   live  refcounted  READ_ENTRY (state, ripas, x3)
 *   UNASSIGNED     any     no           no    no          UNASSIGNED, its RIPAS, 0
 *   ASSIGNED       1-3     DATA PA      yes   yes         ASSIGNED, its RIPAS, PA (0 if DESTROYED)
 *   UNASSIGNED_NS  any     no           no    no          UNASSIGNED, EMPTY, 0
 *   ASSIGNED_NS    1-3     host PA      yes   no          ASSIGNED, EMPTY, the host descriptor
 *   TABLE          0-2     RTT PA       yes   yes         TABLE, EMPTY, RTT PA
 *
 * "Live" is what `s2tt_skip_non_live_entries` skips over (an entry that holds a PA, §B5).
 * "Refcounted" is what an RTT granule's refcount counts (§B2, §B6): TF-RMM takes no reference for
 * an NS mapping (RTT_CREATE "NS not counted", MAP_UNPROTECTED "not refcounted").
 *
 * Encoding (ours; the PA sits where the hardware puts it, the rest in the low 12 bits):
 *
 *   bits [2:0]   kind: 0 UNASSIGNED, 1 ASSIGNED, 2 UNASSIGNED_NS, 3 ASSIGNED_NS, 4 TABLE
 *   bits [4:3]   RIPAS of UNASSIGNED/ASSIGNED: 0 EMPTY, 1 RAM, 2 DESTROYED (RMI values, §B5)
 *   bits [10:3]  ASSIGNED_NS only (instead of RIPAS): the host's attribute fields, descriptor bits
 *                [9:2] shifted up one
 *   bits 12+     the PA (ASSIGNED, ASSIGNED_NS, TABLE), granule aligned
 *
 * Zero is UNASSIGNED_EMPTY, as in TF-RMM, so a fresh table is all UNASSIGNED_EMPTY.
 */

import { GRANULE_SIZE } from '../types.js';
import { levelShift } from '../s2tt/geometry.js';

export type Rtte = number;

export type Ripas = 'EMPTY' | 'RAM' | 'DESTROYED';
/** RMI RIPAS values (§B5: EMPTY(0), RAM(1), DESTROYED(2)). */
export const RMI_RIPAS = { EMPTY: 0, RAM: 1, DESTROYED: 2 } as const satisfies Record<Ripas, number>;
const RIPAS_BY_CODE: readonly Ripas[] = ['EMPTY', 'RAM', 'DESTROYED'];

/** RTT_READ_ENTRY state values (§B5: UNASSIGNED(0), ASSIGNED(1), TABLE(2)). */
export const RMI_RTT_STATE = { UNASSIGNED: 0, ASSIGNED: 1, TABLE: 2 } as const;
export type RmiRttState = keyof typeof RMI_RTT_STATE;

export type RtteKind = 'UNASSIGNED' | 'ASSIGNED' | 'UNASSIGNED_NS' | 'ASSIGNED_NS' | 'TABLE';
const KIND_CODES: readonly RtteKind[] = ['UNASSIGNED', 'ASSIGNED', 'UNASSIGNED_NS', 'ASSIGNED_NS', 'TABLE'];
const KIND_MASK = 0b111;
const RIPAS_SHIFT = 3;
const NS_ATTR_SHIFT = 1;
const LOW = GRANULE_SIZE;

/** Lowest level that may hold an ASSIGNED or ASSIGNED_NS block (S2TT_MIN_BLOCK_LEVEL, §B4/§B5). */
export const RTT_MIN_BLOCK_LEVEL = 1;
/** The page level. */
export const RTT_PAGE_LEVEL = 3;
/** Entries per RTT (§B4: 512, stride 9; level -1 of LPA2 is not modelled). */
export const RTTES_PER_RTT = 512;
/** Output addresses are at most 48 bits without LPA2 (S2TTE_OA_BITS, R10 s2tt_pvt_defs.h). */
export const RTT_OA_BITS = 48;

// Host descriptor attribute fields accepted by RTT_MAP_UNPROTECTED (R10 s2tt_pvt_defs.h, HCR_EL2.FWB).
export const S2TTE_MEMATTR_MASK = 0x7 << 2;
export const S2TTE_MEMATTR_FWB_NORMAL_WB = (1 << 4) | (2 << 2);
export const S2TTE_MEMATTR_FWB_RESERVED = (1 << 4) | (0 << 2);
export const S2TTE_AP_MASK = 0x3 << 6;
export const S2TTE_AP_RW = 0x3 << 6;
export const S2TTE_SH_MASK = 0x3 << 8;
export const S2TTE_SH_RESERVED = 0x1 << 8;
export const S2TTE_SH_IS = 0x3 << 8;
/** The fields of a host descriptor the host controls (S2TTE_NS_ATTR_MASK). */
export const S2TTE_NS_ATTR_MASK = S2TTE_MEMATTR_MASK | S2TTE_AP_MASK | S2TTE_SH_MASK;
/** A typical host descriptor's attributes: normal write-back, RW, inner shareable. */
export const HOST_NS_ATTRS_DEFAULT = S2TTE_MEMATTR_FWB_NORMAL_WB | S2TTE_AP_RW | S2TTE_SH_IS;

/**
 * e % LOW for an entry (a non-negative integer below 2^53), without a float modulo: V8 compiles `%`
 * on doubles to a libm fmod call, and every command and the checker read entries' low bits.
 * Division by a power of two and the product are exact.
 */
const low = (e: Rtte): number => e - Math.floor(e / LOW) * LOW;

export const RTTE_UNASSIGNED_EMPTY: Rtte = 0;
export const RTTE_UNASSIGNED_NS: Rtte = 2;

export const rtteUnassigned = (ripas: Ripas): Rtte => RMI_RIPAS[ripas] << RIPAS_SHIFT;
export const rtteAssigned = (pa: number, ripas: Ripas): Rtte => pa + 1 + (RMI_RIPAS[ripas] << RIPAS_SHIFT);
export const rtteAssignedNs = (pa: number, nsAttrs: number): Rtte => pa + 3 + ((nsAttrs & S2TTE_NS_ATTR_MASK) << NS_ATTR_SHIFT);
export const rtteTable = (pa: number): Rtte => pa + 4;

export const rtteKind = (e: Rtte): RtteKind => KIND_CODES[low(e) & KIND_MASK] as RtteKind;
/** RIPAS of an UNASSIGNED or ASSIGNED entry; EMPTY for the others (as READ_ENTRY reports). */
export const rtteRipas = (e: Rtte): Ripas => (rtteHasRipas(e) ? (RIPAS_BY_CODE[(low(e) >> RIPAS_SHIFT) & 0b11] as Ripas) : 'EMPTY');
/** The PA an entry holds (ASSIGNED, ASSIGNED_NS, TABLE), else 0. */
export const rttePa = (e: Rtte): number => e - low(e);
export const rtteNsAttrs = (e: Rtte): number => (low(e) >> NS_ATTR_SHIFT) & S2TTE_NS_ATTR_MASK;

/**
 * Whether `e` is an unassigned entry without decoding it: UNASSIGNED of any RIPAS when `inPar`,
 * else UNASSIGNED_NS. Such entries hold no PA, so their low bits are the whole value.
 */
export const rtteIsUnassignedFor = (e: Rtte, inPar: boolean): boolean => e < LOW && (e & KIND_MASK) === (inPar ? 0 : 2);

/** s2tte_has_ripas: UNASSIGNED and ASSIGNED entries (not NS, not TABLE). */
export const rtteHasRipas = (e: Rtte): boolean => {
  const k = low(e) & KIND_MASK;
  return k === 0 || k === 1;
};
/** s2tte_is_live (§B5): the entry holds a PA. */
export const rtteIsLive = (e: Rtte): boolean => {
  const k = low(e) & KIND_MASK;
  return k === 1 || k === 3 || k === 4;
};
/** The entry holds a reference on its RTT (§B2): TABLE, or ASSIGNED of any RIPAS. */
export const rtteIsRefcounted = (e: Rtte): boolean => {
  const k = low(e) & KIND_MASK;
  return k === 1 || k === 4;
};
export const rtteIsAssigned = (e: Rtte, ripas?: Ripas): boolean =>
  rtteKind(e) === 'ASSIGNED' && (ripas === undefined || rtteRipas(e) === ripas);
export const rtteIsUnassigned = (e: Rtte, ripas?: Ripas): boolean =>
  rtteKind(e) === 'UNASSIGNED' && (ripas === undefined || rtteRipas(e) === ripas);

/** The same kind and RIPAS (and NS attributes) with another PA, for splitting and folding blocks. */
export const rtteWithPa = (e: Rtte, pa: number): Rtte => pa + low(e);

/** The host descriptor RTT_READ_ENTRY returns for an ASSIGNED_NS entry (host_ns_s2tte). */
export const rtteHostDesc = (e: Rtte): number => rttePa(e) + rtteNsAttrs(e);

/**
 * host_ns_s2tte_is_valid (R10 s2tt.c): the host's descriptor for RTT_MAP_UNPROTECTED sets only
 * the output address, aligned to `level` and below 2^48, and the host-controlled attribute fields,
 * and uses neither the reserved MemAttr nor the reserved shareability encoding.
 */
export function hostNsDescIsValid(desc: unknown, level: number): desc is number {
  if (typeof desc !== 'number' || !Number.isSafeInteger(desc) || desc < 0 || desc >= 2 ** RTT_OA_BITS) return false;
  const below = desc % 2 ** levelShift(level);
  if (below > 0x3ff || (below & ~S2TTE_NS_ATTR_MASK) !== 0) return false;
  if ((below & S2TTE_MEMATTR_MASK) === S2TTE_MEMATTR_FWB_RESERVED) return false;
  if ((below & S2TTE_SH_MASK) === S2TTE_SH_RESERVED) return false;
  return true;
}

/** Output address of a valid host descriptor at `level`. */
export const hostNsDescPa = (desc: number, level: number): number => desc - (desc % 2 ** levelShift(level));

export function rtteName(e: Rtte): string {
  const k = rtteKind(e);
  if (k === 'UNASSIGNED' || k === 'ASSIGNED') return `${k}_${rtteRipas(e)}`;
  return k;
}
