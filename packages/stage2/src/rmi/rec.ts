/**
 * RMI_REC_CREATE and RMI_REC_DESTROY (stage2-models.md §B2, §B3; R10 runtime/rmi/rec.c), minimal:
 * the REC granule state, the RD's reference per REC, and the pending RIPAS change a REC carries
 * for RMI_RTT_SET_RIPAS. Not modelled: REC parameters (MPIDR, PC, GPRs), auxiliary granules,
 * REC_ENTER and the exits it produces.
 *
 * REC_CREATE failures: rd_* (RD not an RD) → INPUT; rec_* (REC not DELEGATED) → INPUT;
 * realm_state (realm not NEW) → REALM.
 * REC_DESTROY failures: rec_* (not a REC) → INPUT; rec_running (REC refcount != 0) → REC.
 *
 * `recRequestRipasChange` is not an RMI command: it is the simulation hook for what the realm does
 * with RSI_IPA_STATE_SET, whose REC exit reports [base, top) and the target RIPAS to the host, which
 * then drives RTT_SET_RIPAS. It checks what the RMM checks for that RSI call (range inside the PAR,
 * aligned, non-empty; RIPAS EMPTY or RAM) and records the request on the REC.
 */

import { ok, type Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, type Pfn } from '../types.js';
import { findGranule, findRealm, hexAddr, inputError, isU64, realmError, recError, setGranuleState, type NoOutputs } from './lookup.js';
import { NO_RIPAS_REQUEST, sealPlan, type Realm, type Rec, type RmiPlan } from './rmm-state.js';
import type { Ripas } from './rtt-entry.js';
import { addrInPar } from './rtt-walk.js';
import type { RmiError } from './status.js';

type RecCreatePlan = RmiPlan<{ readonly realm: Realm; readonly rec: Pfn }>;

function checkRecCreate(s: Stage2, rd: unknown, rec: unknown): Result<RecCreatePlan, RmiError> {
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const g = findGranule(s, rec, 'DELEGATED', 'rec');
  if (!g.ok) return g;
  if (realm.value.state !== 'NEW') return realmError(0, 'realm_state', `realm ${hexAddr(rd)} is ${realm.value.state}, not NEW`);
  return ok(sealPlan({ realm: realm.value, rec: g.value }));
}

/** REC → REC; RD refcount +1. */
function commitRecCreate(s: Stage2, p: RecCreatePlan): void {
  s.rmm.recs.set(p.rec, { frame: p.rec, rd: p.realm.rd, running: false, ripasRequest: NO_RIPAS_REQUEST });
  p.realm.recCount++;
  setGranuleState(s, p.rec, 'REC');
}

/** RMI_REC_CREATE(rd, rec), §B3. */
export function recCreate(s: Stage2, rd: number, rec: number): Result<NoOutputs, RmiError> {
  const plan = checkRecCreate(s, rd, rec);
  if (!plan.ok) return plan;
  commitRecCreate(s, plan.value);
  return ok({});
}

type RecDestroyPlan = RmiPlan<{ readonly rec: Rec }>;

function checkRecDestroy(s: Stage2, rec: unknown): Result<RecDestroyPlan, RmiError> {
  const g = findGranule(s, rec, 'REC', 'rec');
  if (!g.ok) return g;
  const r = s.rmm.recs.get(g.value);
  if (r === undefined) return inputError('rec_state', `rec ${hexAddr(rec)} holds no REC`);
  if (r.running) return recError('rec_running', `rec ${hexAddr(rec)} is running`);
  return ok(sealPlan({ rec: r }));
}

/** REC zeroed → DELEGATED; RD refcount -1. */
function commitRecDestroy(s: Stage2, p: RecDestroyPlan): void {
  const realm = s.rmm.realms.get(p.rec.rd);
  if (realm !== undefined) realm.recCount--;
  s.rmm.recs.delete(p.rec.frame);
  setGranuleState(s, p.rec.frame, 'DELEGATED');
}

/** RMI_REC_DESTROY(rec), §B2. */
export function recDestroy(s: Stage2, rec: number): Result<NoOutputs, RmiError> {
  const plan = checkRecDestroy(s, rec);
  if (!plan.ok) return plan;
  commitRecDestroy(s, plan.value);
  return ok({});
}

/**
 * Simulation hook, not an RMI command: the realm running on `rec` asks for RIPAS `ripas` over
 * [base, top) (RSI_IPA_STATE_SET), and the REC exit hands the request to the host. Replaces any
 * earlier request of that REC. Refused (RMI_ERROR_INPUT, rules named `rsi_*`) when `rec` is not a
 * REC, the range is empty, unaligned or leaves the PAR, or the RIPAS is not EMPTY or RAM (a number
 * is a RIPAS encoding the caller's build knows and this model does not: rsi_ripas).
 */
export function recRequestRipasChange(
  s: Stage2,
  rec: number,
  base: number,
  top: number,
  ripas: Ripas | number,
  changeDestroyed: boolean,
): Result<NoOutputs, RmiError> {
  const g = findGranule(s, rec, 'REC', 'rec');
  if (!g.ok) return g;
  const r = s.rmm.recs.get(g.value);
  const realm = r === undefined ? undefined : s.rmm.realms.get(r.rd);
  if (r === undefined || realm === undefined) return inputError('rec_state', `rec ${hexAddr(rec)} holds no REC of a live realm`);
  if (!isU64(base) || !isU64(top) || base % GRANULE_SIZE !== 0 || top % GRANULE_SIZE !== 0 || top <= base)
    return inputError('rsi_range', `[${hexAddr(base)}, ${hexAddr(top)}) is not a non-empty 4 KiB aligned range`);
  if (!addrInPar(realm, top - GRANULE_SIZE)) return inputError('rsi_par', `[${hexAddr(base)}, ${hexAddr(top)}) leaves the PAR`);
  if (ripas !== 'EMPTY' && ripas !== 'RAM') return inputError('rsi_ripas', `RIPAS ${String(ripas)} cannot be requested`);
  r.ripasRequest = { addr: base, top, ripas, changeDestroyed: changeDestroyed === true };
  return ok({});
}
