/**
 * RMI_RTT_INIT_RIPAS and RMI_RTT_SET_RIPAS (stage2-models.md §B5, §B6; R10 rtt.c). Both walk to the
 * deepest entry covering `base` and change consecutive entries of that one RTT, stopping at the end
 * of the table, at `top`, or at the first entry they may not change; x1 returns the progress (`top`
 * output), and the host calls again from there (creating RTTs when an entry straddles the range).
 *
 * RTT_INIT_RIPAS failure conditions:
 *   top_base              top <= base (or not addresses) → INPUT
 *   rd_*                  → INPUT
 *   base_align, top_align base or top not 4 KiB aligned, or beyond the IPA size → INPUT
 *   base_par, top_par     the range leaves the PAR → INPUT
 *   realm_state           realm not NEW → REALM
 *   base_level_align      base is not aligned to the entry it falls in → RTT(level)
 *   no_progress           the first entry is neither UNASSIGNED_EMPTY nor UNASSIGNED_RAM, or it
 *                         straddles top → RTT(level)
 * Effect: UNASSIGNED_EMPTY → UNASSIGNED_RAM; UNASSIGNED_RAM unchanged (each measured; not modelled).
 *
 * RTT_SET_RIPAS failure conditions:
 *   top_base → INPUT; rd_*, rec_* → INPUT; rec_running (REC refcount != 0) → REC;
 *   rec_owner (the REC belongs to another realm) → REC;
 *   request_base (base is not where the REC's pending request continues) → INPUT;
 *   request_top (top beyond the request's top) → INPUT;
 *   base_level_align → RTT(level); no_progress → RTT(level).
 * Effect per entry (update_ripas): to RAM: *_EMPTY → *_RAM, *_DESTROYED → *_RAM only with
 * change_destroyed; to EMPTY: *_RAM → *_EMPTY (TLBI for ASSIGNED_RAM), *_DESTROYED → *_EMPTY only
 * with change_destroyed; already at the target: unchanged but counted as progress. NS and TABLE
 * entries, or a DESTROYED entry without change_destroyed, stop the walk. The REC's request
 * advances to the progress.
 */

import { err, ok, type Result } from '../result.js';
import { mapSizeBytes } from '../s2tt/geometry.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE } from '../types.js';
import { findGranule, findRealm, hexAddr, inputError, isU64, realmError, recError, rttError, type Outputs } from './lookup.js';
import { sealPlan, type Realm, type Rec, type RmiPlan } from './rmm-state.js';
import {
  RTTES_PER_RTT,
  RTT_PAGE_LEVEL,
  rtteAssigned,
  rtteHasRipas,
  rtteKind,
  rttePa,
  rtteRipas,
  rtteUnassigned,
  type Ripas,
  type Rtte,
} from './rtt-entry.js';
import { addrInPar, realmIpaSize, rttWalk, type RttWalk } from './rtt-walk.js';
import { rmiError, type RmiError } from './status.js';

export interface RipasOutputs extends Outputs {
  /** x1: the progress: the changed range is [base, top). */
  readonly top: number;
}

type RipasPlan = RmiPlan<{ readonly walk: RttWalk; readonly updates: readonly (readonly [number, Rtte])[]; readonly top: number; readonly rec?: Rec }>;

function rangeFailure(base: unknown, top: unknown): RmiError | undefined {
  if (isU64(base) && isU64(top) && top > base) return undefined;
  return rmiError('RMI_ERROR_INPUT', 0, 'top_base', `[${hexAddr(base)}, ${hexAddr(top)}) is empty or not a range of addresses`);
}

/**
 * Walks from base and plans the entry updates `update` allows (undefined stops the walk), or the
 * RTT error (base_level_align / no_progress) at the level reached.
 */
function planEntries(
  s: Stage2,
  realm: Realm,
  base: number,
  top: number,
  update: (e: Rtte) => Rtte | undefined,
): Result<{ walk: RttWalk; updates: [number, Rtte][]; top: number }, RmiError> {
  const w = rttWalk(s.rmm, realm, base, RTT_PAGE_LEVEL);
  const size = mapSizeBytes(w.level);
  if (base % size !== 0)
    return rttError(w.level, 'base_level_align', `${hexAddr(base)} is inside a level ${w.level} entry: create the RTTs below it first`);
  const updates: [number, Rtte][] = [];
  let addr = base;
  for (let i = w.index; i < RTTES_PER_RTT; i++) {
    if (addr + size > top) break;
    const e = w.rtt.entries[i] as number;
    const next = update(e);
    if (next === undefined) break;
    if (next !== e) updates.push([i, next]);
    addr += size;
  }
  if (addr === base) return rttError(w.level, 'no_progress', `no level ${w.level} entry from ${hexAddr(base)} can change within [${hexAddr(base)}, ${hexAddr(top)})`);
  return ok({ walk: w, updates, top: addr });
}

function commitRipas(p: RipasPlan): RipasOutputs {
  for (const [i, e] of p.updates) p.walk.rtt.entries[i] = e;
  if (p.rec !== undefined) p.rec.ripasRequest = { ...p.rec.ripasRequest, addr: p.top };
  return { top: p.top };
}

// ---------------------------------------------------------------------------------------------
// RTT_INIT_RIPAS

/** INIT_RIPAS per entry: UNASSIGNED_EMPTY → UNASSIGNED_RAM, UNASSIGNED_RAM stays, anything else stops. */
const initRipasUpdate = (e: Rtte): Rtte | undefined =>
  rtteKind(e) !== 'UNASSIGNED' ? undefined : rtteRipas(e) === 'EMPTY' ? rtteUnassigned('RAM') : rtteRipas(e) === 'RAM' ? e : undefined;

function checkInitRipas(s: Stage2, rd: unknown, base: unknown, top: unknown): Result<RipasPlan, RmiError> {
  const bad = rangeFailure(base, top);
  if (bad !== undefined) return err(bad);
  const b = base as number;
  const t = top as number;
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const r = realm.value;
  if (b % GRANULE_SIZE !== 0 || b >= realmIpaSize(r)) return inputError('base_align', `base ${hexAddr(b)} is not a 4 KiB aligned IPA`);
  if (t % GRANULE_SIZE !== 0 || t >= realmIpaSize(r)) return inputError('top_align', `top ${hexAddr(t)} is not a 4 KiB aligned IPA`);
  if (!addrInPar(r, b)) return inputError('base_par', `base ${hexAddr(b)} is outside the PAR`);
  if (!addrInPar(r, t - GRANULE_SIZE)) return inputError('top_par', `top ${hexAddr(t)} is beyond the PAR`);
  if (r.state !== 'NEW') return realmError(0, 'realm_state', `realm ${hexAddr(rd)} is ${r.state}, not NEW`);
  const entries = planEntries(s, r, b, t, initRipasUpdate);
  if (!entries.ok) return entries;
  return ok(sealPlan(entries.value));
}

/** RMI_RTT_INIT_RIPAS(rd, base, top) → { top: progress }, §B6. */
export function rttInitRipas(s: Stage2, rd: number, base: number, top: number): Result<RipasOutputs, RmiError> {
  const plan = checkInitRipas(s, rd, base, top);
  if (!plan.ok) return plan;
  return ok(commitRipas(plan.value));
}

// ---------------------------------------------------------------------------------------------
// RTT_SET_RIPAS

/** update_ripas (R10 rtt.c): the new entry, the same entry (no action), or undefined (stop). */
export function setRipasUpdate(e: Rtte, target: Ripas, changeDestroyed: boolean): Rtte | undefined {
  if (!rtteHasRipas(e)) return undefined;
  const from = rtteRipas(e);
  if (from === target) return e;
  if (from === 'DESTROYED' && !changeDestroyed) return undefined;
  return rtteKind(e) === 'ASSIGNED' ? rtteAssigned(rttePa(e), target) : rtteUnassigned(target);
}

function checkSetRipas(s: Stage2, rd: unknown, rec: unknown, base: unknown, top: unknown): Result<RipasPlan, RmiError> {
  const bad = rangeFailure(base, top);
  if (bad !== undefined) return err(bad);
  const b = base as number;
  const t = top as number;
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const g = findGranule(s, rec, 'REC', 'rec');
  if (!g.ok) return g;
  const r = s.rmm.recs.get(g.value);
  if (r === undefined) return inputError('rec_state', `rec ${hexAddr(rec)} holds no REC`);
  if (r.running) return recError('rec_running', `rec ${hexAddr(rec)} is running`);
  if (r.rd !== realm.value.rd) return recError('rec_owner', `rec ${hexAddr(rec)} belongs to another realm`);
  const req = r.ripasRequest;
  if (b !== req.addr) return inputError('request_base', `base ${hexAddr(b)} is not where the REC's RIPAS request continues (${hexAddr(req.addr)})`);
  if (t > req.top) return inputError('request_top', `top ${hexAddr(t)} is beyond the REC's RIPAS request (${hexAddr(req.top)})`);
  const entries = planEntries(s, realm.value, b, t, (e) => setRipasUpdate(e, req.ripas, req.changeDestroyed));
  if (!entries.ok) return entries;
  return ok(sealPlan({ ...entries.value, rec: r }));
}

/** RMI_RTT_SET_RIPAS(rd, rec, base, top) → { top: progress }, §B6. */
export function rttSetRipas(s: Stage2, rd: number, rec: number, base: number, top: number): Result<RipasOutputs, RmiError> {
  const plan = checkSetRipas(s, rd, rec, base, top);
  if (!plan.ok) return plan;
  return ok(commitRipas(plan.value));
}
