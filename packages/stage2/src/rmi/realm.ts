/**
 * RMI_REALM_CREATE, RMI_REALM_ACTIVATE, RMI_REALM_DESTROY (stage2-models.md §B3, §B4; R10
 * runtime/rmi/realm.c).
 *
 * Life cycle: (DELEGATED granules) --REALM_CREATE--> NEW --REALM_ACTIVATE--> ACTIVE; SYSTEM_OFF is
 * entered by the realm (PSCI), not modelled here. REALM_DESTROY returns RD and roots to DELEGATED.
 *
 * REALM_CREATE failure conditions, all RMI_ERROR_INPUT, in R10's order (params validation, then
 * aliasing, then the granules):
 *   params_s2sz             s2sz outside [32, the PA width] (RMI_FEATURE_REGISTER_0.S2SZ)
 *   params_rtt_level_start  (s2sz, rtt_level_start) inconsistent (§B4 validity), or level 0 below
 *                           a 44-bit PA
 *   params_rtt_num_start    rtt_num_start is not the root count s2sz and the level need
 *   params_hash_algorithm   not SHA-256 or SHA-512
 *   params_vmid             the VMID is out of range or in use by another realm (vmid_reserve)
 *   alias                   the RD lies inside the root RTT range
 *   rd_align/_bound/_state  the RD is not a DELEGATED granule
 *   rtt_align/_bound/_state a root RTT (rtt_base + i * 4 KiB) is not a DELEGATED granule
 * Not modelled: the NS read of the params granule (params arrive as a value), LPA2, SVE, PMU,
 * breakpoints, measurements, REC auxiliary granules.
 */

import { ok, type Result } from '../result.js';
import { mapSizeBytes } from '../s2tt/geometry.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, type Pfn } from '../types.js';
import { findGranule, findRealm, hexAddr, inputError, isU64, realmError, setGranuleState, type NoOutputs } from './lookup.js';
import { Rtt, sealPlan, type HashAlgorithm, type Realm, type RmiPlan } from './rmm-state.js';
import { RTTES_PER_RTT, RTTE_UNASSIGNED_EMPTY, RTTE_UNASSIGNED_NS } from './rtt-entry.js';
import type { RmiError } from './status.js';

/** RMI_FEATURE_MIN_IPA_SIZE = PARANGE_0000_WIDTH (R10 realm.c). */
export const REALM_S2SZ_MIN = 32;
/** S2TT_MAX_IPA_BITS without LPA2. */
export const REALM_S2SZ_MAX = 48;
/** Starting level 0 needs a PA width of at least 44 bits (R10 validate_ipa_bits_and_sl). */
export const REALM_SL0_PA_BITS_MIN = 44;
/** VMID16: realm VMIDs are below 2^16 (vmid_reserve). */
export const REALM_VMID_LIMIT = 2 ** 16;
/** At most 16 concatenated root RTTs (§B4). */
export const REALM_ROOT_RTTS_MAX = 16;

/** The realm parameters this model reads (RmiRealmParams, §B3). */
export interface RealmParams {
  /** IPA width in bits. */
  readonly s2sz: number;
  readonly rttLevelStart: number;
  readonly rttNumStart: number;
  /** PA of the first root RTT; the roots are consecutive granules. */
  readonly rttBase: number;
  /**
   * Realm VMID. RMI requires the host to choose it; when omitted, this model picks the lowest free
   * one from 1 (a convenience for callers that do not track realm VMIDs).
   */
  readonly vmid?: number;
  /**
   * Measurement algorithm; default SHA-256. A number is an encoding this model does not know,
   * refused as params_hash_algorithm (§B3), as the RMM refuses an unknown RMI_HASH_* value.
   */
  readonly hashAlgorithm?: HashAlgorithm | number;
}

/** s2_inconsistent_sl (R10): whether (ipa_bits, sl) cannot be translated with 4 KiB granules. */
function inconsistentStartLevel(ipaBits: number, sl: number): boolean {
  const minBits = (3 - sl) * 9 + 12 + 1;
  let maxBits = minBits + 8;
  if (sl > 0) maxBits += 4; // up to 16 concatenated tables
  return ipaBits < minBits || ipaBits > maxBits;
}

/** s2_num_root_rtts (R10): root RTTs the (ipa_bits, sl) pair needs. */
export function realmRootRttCount(ipaBits: number, sl: number): number {
  const slBits = (3 - sl) * 9 + 12 + 9;
  return slBits >= ipaBits ? 1 : 2 ** (ipaBits - slBits);
}

/** The lowest realm VMID not in use, from 1. */
function freeVmid(s: Stage2): number | undefined {
  for (let v = 1; v < REALM_VMID_LIMIT; v++) if (!s.rmm.vmids.has(v)) return v;
  return undefined;
}

type RealmCreatePlan = RmiPlan<{
  readonly rd: Pfn;
  readonly roots: readonly Pfn[];
  readonly s2sz: number;
  readonly sl: number;
  readonly vmid: number;
  readonly hashAlgorithm: HashAlgorithm;
}>;

function checkRealmCreate(s: Stage2, rdAddr: unknown, params: RealmParams): Result<RealmCreatePlan, RmiError> {
  const p = (typeof params === 'object' && params !== null ? params : {}) as Partial<RealmParams>;
  const paBits = s.memory.config.paBits;
  const s2sz = p.s2sz;
  if (!isU64(s2sz) || s2sz < REALM_S2SZ_MIN || s2sz > Math.min(paBits, REALM_S2SZ_MAX))
    return inputError('params_s2sz', `s2sz ${String(s2sz)} outside [${REALM_S2SZ_MIN}, ${Math.min(paBits, REALM_S2SZ_MAX)}]`);
  const sl = p.rttLevelStart;
  if (!isU64(sl) || sl > 3 || (sl === 0 && paBits < REALM_SL0_PA_BITS_MIN) || inconsistentStartLevel(s2sz, sl))
    return inputError('params_rtt_level_start', `rtt_level_start ${String(sl)} cannot translate a ${s2sz}-bit IPA space`);
  const rootCount = realmRootRttCount(s2sz, sl);
  if (p.rttNumStart !== rootCount)
    return inputError('params_rtt_num_start', `rtt_num_start ${String(p.rttNumStart)} but s2sz ${s2sz} at level ${sl} needs ${rootCount}`);
  const hashAlgorithm = p.hashAlgorithm ?? 'SHA_256';
  if (hashAlgorithm !== 'SHA_256' && hashAlgorithm !== 'SHA_512')
    return inputError('params_hash_algorithm', `hash algorithm ${String(hashAlgorithm)} is neither SHA_256 nor SHA_512`);
  const vmid = p.vmid === undefined ? freeVmid(s) : p.vmid;
  if (!isU64(vmid) || vmid >= REALM_VMID_LIMIT || s.rmm.vmids.has(vmid))
    return inputError('params_vmid', `realm VMID ${String(vmid)} is out of range or in use`);
  const rttBase = p.rttBase;
  if (isU64(rttBase) && isU64(rdAddr) && rdAddr >= rttBase && rdAddr < rttBase + rootCount * GRANULE_SIZE)
    return inputError('alias', `rd ${hexAddr(rdAddr)} lies inside the root RTTs at ${hexAddr(rttBase)}`);
  const rd = findGranule(s, rdAddr, 'DELEGATED', 'rd');
  if (!rd.ok) return rd;
  const roots: Pfn[] = [];
  for (let i = 0; i < rootCount; i++) {
    const addr = isU64(rttBase) ? rttBase + i * GRANULE_SIZE : rttBase;
    const root = findGranule(s, addr, 'DELEGATED', 'rtt');
    if (!root.ok) return root;
    roots.push(root.value);
  }
  return ok(sealPlan({ rd: rd.value, roots, s2sz, sl, vmid, hashAlgorithm }));
}

/**
 * RD → RD (state NEW, no RECs); roots → RTT, their entries UNASSIGNED_EMPTY in the PAR and
 * UNASSIGNED_NS above it, up to the IPA size (init_s2_starting_level).
 */
function commitRealmCreate(s: Stage2, p: RealmCreatePlan): void {
  const entrySize = mapSizeBytes(p.sl);
  const ipaSize = 2 ** p.s2sz;
  const par = 2 ** (p.s2sz - 1);
  const roots = p.roots.map((frame, i) => {
    const rtt = new Rtt(frame, p.rd, p.sl, i * entrySize * RTTES_PER_RTT);
    for (let e = 0; e < RTTES_PER_RTT; e++) {
      const ipa = rtt.baseIpa + e * entrySize;
      if (ipa >= ipaSize) break;
      rtt.entries[e] = ipa < par ? RTTE_UNASSIGNED_EMPTY : RTTE_UNASSIGNED_NS;
    }
    return rtt;
  });
  const realm: Realm = {
    rd: p.rd,
    state: 'NEW',
    ipaBits: p.s2sz,
    startLevel: p.sl,
    roots,
    vmid: p.vmid,
    hashAlgorithm: p.hashAlgorithm,
    recCount: 0,
  };
  s.rmm.realms.set(p.rd, realm);
  s.rmm.vmids.add(p.vmid);
  setGranuleState(s, p.rd, 'RD');
  for (const r of roots) {
    s.rmm.rtts.set(r.frame, r);
    setGranuleState(s, r.frame, 'RTT');
  }
}

/** RMI_REALM_CREATE(rd, params), §B3. */
export function realmCreate(s: Stage2, rd: number, params: RealmParams): Result<NoOutputs, RmiError> {
  const plan = checkRealmCreate(s, rd, params);
  if (!plan.ok) return plan;
  commitRealmCreate(s, plan.value);
  return ok({});
}

/**
 * RMI_REALM_ACTIVATE(rd), §B3: rd_* (not an RD) → INPUT; realm_state (not NEW) → REALM; NEW → ACTIVE.
 */
export function realmActivate(s: Stage2, rd: number): Result<NoOutputs, RmiError> {
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  if (realm.value.state !== 'NEW') return realmError(0, 'realm_state', `realm ${hexAddr(rd)} is ${realm.value.state}, not NEW`);
  realm.value.state = 'ACTIVE';
  return ok({});
}

type RealmDestroyPlan = RmiPlan<{ readonly realm: Realm }>;

function checkRealmDestroy(s: Stage2, rd: unknown): Result<RealmDestroyPlan, RmiError> {
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const r = realm.value;
  if (r.recCount !== 0) return realmError(0, 'realm_recs', `realm ${hexAddr(rd)} still has ${r.recCount} REC(s)`);
  const live = r.roots.reduce((n, root) => n + root.refcount, 0);
  if (live !== 0) return realmError(0, 'realm_live', `realm ${hexAddr(rd)} root RTTs still hold ${live} live entries`);
  return ok(sealPlan({ realm: r }));
}

/** VMID freed; roots zeroed → DELEGATED; RD zeroed → DELEGATED. */
function commitRealmDestroy(s: Stage2, p: RealmDestroyPlan): void {
  const r = p.realm;
  s.rmm.vmids.delete(r.vmid);
  for (const root of r.roots) {
    s.rmm.rtts.delete(root.frame);
    setGranuleState(s, root.frame, 'DELEGATED');
  }
  s.rmm.realms.delete(r.rd);
  setGranuleState(s, r.rd, 'DELEGATED');
}

/**
 * RMI_REALM_DESTROY(rd), §B3: rd_* → INPUT; realm_recs (RD refcount != 0) → REALM; realm_live (the
 * root RTTs' refcounts sum to non-zero: `failure_realm_live` in tb_rmi_realm_destroy.c) → REALM.
 */
export function realmDestroy(s: Stage2, rd: number): Result<NoOutputs, RmiError> {
  const plan = checkRealmDestroy(s, rd);
  if (!plan.ok) return plan;
  commitRealmDestroy(s, plan.value);
  return ok({});
}
