/**
 * RMI_DATA_CREATE, RMI_DATA_CREATE_UNKNOWN, RMI_DATA_DESTROY (stage2-models.md §B6; R10 rtt.c
 * `data_create`, `smc_data_destroy`). A DATA granule is a delegated granule mapped at one page of
 * a realm's PAR by exactly one ASSIGNED entry, which holds a reference on its RTT.
 *
 * DATA_CREATE failure conditions, in order:
 *   flags_valid           flags not RMI_NO_MEASURE_CONTENT (0) or RMI_MEASURE_CONTENT (1) → INPUT
 *   src_align/_bound/_state  src is not an NS granule of DRAM → INPUT
 *   rd_*, data_*          RD not an RD, data not DELEGATED → INPUT
 *   realm_state           realm not NEW → REALM
 *   addr_par, addr_align  addr outside the PAR or not 4 KiB aligned → INPUT
 *   rtt_walk              the walk stops short of level 3 → RTT(last level)
 *   rtte_state            the entry is not UNASSIGNED (any RIPAS) → RTT(3)
 *   src_read              the NS read of src fails: the host does not own src with read access
 *                         (it is lent, donated or HYP's) → INPUT
 * DATA_CREATE_UNKNOWN: the same without flags, src and realm_state.
 * Contents and measurements are not modelled.
 */

import { ok, type Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, VMID_HOST, type Pfn } from '../types.js';
import { viewIs } from '../views.js';
import { findGranule, findRealm, hexAddr, inputError, realmError, rttError, setGranuleState, type Outputs } from './lookup.js';
import { sealPlan, type Realm, type RmiPlan } from './rmm-state.js';
import { RTT_PAGE_LEVEL, rtteAssigned, rtteKind, rtteName, rttePa, rtteRipas, rtteUnassigned, type Ripas } from './rtt-entry.js';
import { addrInPar, rttWalk, skipNonLive, type RttWalk } from './rtt-walk.js';
import type { RmiError } from './status.js';

/** DATA_CREATE flags (R10 smc-rmi.h). */
export const RMI_NO_MEASURE_CONTENT = 0;
export const RMI_MEASURE_CONTENT = 1;

/** addr_par, then addr_align (R10 validate_data_create_unknown; the IPA-size bound is implied by the PAR). */
function dataAddrFailure(realm: Realm, addr: unknown): 'addr_par' | 'addr_align' | undefined {
  if (typeof addr !== 'number' || !Number.isFinite(addr) || addr < 0 || !addrInPar(realm, addr)) return 'addr_par';
  if (!Number.isInteger(addr) || addr % GRANULE_SIZE !== 0) return 'addr_align';
  return undefined;
}

/** The NS read of src succeeds: the host owns src and can read it. */
const hostCanRead = (s: Stage2, pfn: number): boolean =>
  s.memory.meta.get(pfn)?.owner === VMID_HOST && viewIs(s.host, pfn, 1, 'OWNED', 'SHARED_OWNED');

type DataCreatePlan = RmiPlan<{ readonly data: Pfn; readonly walk: RttWalk; readonly measured: boolean; readonly known: boolean }>;

function checkDataCreate(
  s: Stage2,
  rd: unknown,
  data: unknown,
  addr: unknown,
  src: { readonly addr: unknown; readonly flags: unknown } | undefined,
): Result<DataCreatePlan, RmiError> {
  let srcPfn: Pfn | undefined;
  if (src !== undefined) {
    if (src.flags !== RMI_NO_MEASURE_CONTENT && src.flags !== RMI_MEASURE_CONTENT)
      return inputError('flags_valid', `flags ${String(src.flags)} are neither RMI_NO_MEASURE_CONTENT nor RMI_MEASURE_CONTENT`);
    const g = findGranule(s, src.addr, 'NS', 'src');
    if (!g.ok) return g;
    srcPfn = g.value;
  }
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const d = findGranule(s, data, 'DELEGATED', 'data');
  if (!d.ok) return d;
  if (src !== undefined && realm.value.state !== 'NEW')
    return realmError(0, 'realm_state', `realm ${hexAddr(rd)} is ${realm.value.state}, not NEW`);
  const addrRule = dataAddrFailure(realm.value, addr);
  if (addrRule !== undefined) return inputError(addrRule, `data address ${hexAddr(addr)}: ${addrRule === 'addr_par' ? 'outside the PAR' : 'not 4 KiB aligned'}`);
  const a = addr as number;
  const w = rttWalk(s.rmm, realm.value, a, RTT_PAGE_LEVEL);
  if (w.level !== RTT_PAGE_LEVEL) return rttError(w.level, 'rtt_walk', `no level 3 RTT for ${hexAddr(a)}: the walk stopped at level ${w.level}`);
  const e = w.rtt.entries[w.index] as number;
  if (rtteKind(e) !== 'UNASSIGNED') return rttError(RTT_PAGE_LEVEL, 'rtte_state', `the entry for ${hexAddr(a)} is ${rtteName(e)}, not UNASSIGNED`);
  if (srcPfn !== undefined && !hostCanRead(s, srcPfn))
    return inputError('src_read', `the NS read of src ${hexAddr(src?.addr)} fails: the host does not own it with read access`);
  return ok(sealPlan({ data: d.value, walk: w, measured: src?.flags === RMI_MEASURE_CONTENT, known: src !== undefined }));
}

/** data → DATA; entry = ASSIGNED_RAM (DATA_CREATE) or ASSIGNED with its RIPAS kept (UNKNOWN); RTT refcount +1. */
function commitDataCreate(s: Stage2, p: DataCreatePlan): void {
  const e = p.walk.rtt.entries[p.walk.index] as number;
  const ripas: Ripas = p.known ? 'RAM' : rtteRipas(e);
  p.walk.rtt.entries[p.walk.index] = rtteAssigned(p.data * GRANULE_SIZE, ripas);
  p.walk.rtt.refcount++;
  setGranuleState(s, p.data, 'DATA');
}

/** RMI_DATA_CREATE(rd, data, addr, src, flags), §B6. */
export function dataCreate(s: Stage2, rd: number, data: number, addr: number, src: number, flags: number): Result<Outputs, RmiError> {
  const plan = checkDataCreate(s, rd, data, addr, { addr: src, flags });
  if (!plan.ok) return plan;
  commitDataCreate(s, plan.value);
  return ok({});
}

/** RMI_DATA_CREATE_UNKNOWN(rd, data, addr), §B6. */
export function dataCreateUnknown(s: Stage2, rd: number, data: number, addr: number): Result<Outputs, RmiError> {
  const plan = checkDataCreate(s, rd, data, addr, undefined);
  if (!plan.ok) return plan;
  commitDataCreate(s, plan.value);
  return ok({});
}

export interface DataDestroyOutputs extends Outputs {
  /** x1: PA of the destroyed (now DELEGATED) DATA granule. */
  readonly data: number;
  /** x2: the next live entry after addr in the last-level RTT, or its end. */
  readonly top: number;
}

type DataDestroyPlan = RmiPlan<{ readonly walk: RttWalk; readonly addr: number }>;

function checkDataDestroy(s: Stage2, rd: unknown, addr: unknown): Result<DataDestroyPlan, RmiError> {
  const none = { data: 0, top: 0 };
  const realm = findRealm(s, rd);
  if (!realm.ok) return inputError(realm.error.rule, realm.error.message, none);
  const addrRule = dataAddrFailure(realm.value, addr);
  if (addrRule !== undefined) return inputError(addrRule, `data address ${hexAddr(addr)}: ${addrRule === 'addr_par' ? 'outside the PAR' : 'not 4 KiB aligned'}`, none);
  const a = addr as number;
  const w = rttWalk(s.rmm, realm.value, a, RTT_PAGE_LEVEL);
  if (w.level !== RTT_PAGE_LEVEL)
    return rttError(w.level, 'rtt_walk', `no level 3 RTT for ${hexAddr(a)}: the walk stopped at level ${w.level}`, { data: 0, top: skipNonLive(w, a) });
  const e = w.rtt.entries[w.index] as number;
  if (rtteKind(e) !== 'ASSIGNED')
    return rttError(RTT_PAGE_LEVEL, 'rtte_state', `the entry for ${hexAddr(a)} is ${rtteName(e)}, not ASSIGNED`, { data: 0, top: skipNonLive(w, a) });
  return ok(sealPlan({ walk: w, addr: a }));
}

/**
 * ASSIGNED_RAM → UNASSIGNED_DESTROYED (TLBI); ASSIGNED_EMPTY → UNASSIGNED_EMPTY; ASSIGNED_DESTROYED →
 * UNASSIGNED_DESTROYED. RTT refcount -1; data zeroed → DELEGATED.
 */
function commitDataDestroy(s: Stage2, p: DataDestroyPlan): DataDestroyOutputs {
  const t = p.walk.rtt;
  const e = t.entries[p.walk.index] as number;
  const pa = rttePa(e);
  t.entries[p.walk.index] = rtteUnassigned(rtteRipas(e) === 'EMPTY' ? 'EMPTY' : 'DESTROYED');
  t.refcount--;
  setGranuleState(s, pa / GRANULE_SIZE, 'DELEGATED');
  return { data: pa, top: skipNonLive(p.walk, p.addr) };
}

/** RMI_DATA_DESTROY(rd, addr) → { data, top }, §B6. */
export function dataDestroy(s: Stage2, rd: number, addr: number): Result<DataDestroyOutputs, RmiError> {
  const plan = checkDataDestroy(s, rd, addr);
  if (!plan.ok) return plan;
  return ok(commitDataDestroy(s, plan.value));
}

