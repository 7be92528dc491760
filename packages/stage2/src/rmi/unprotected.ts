/**
 * RMI_RTT_MAP_UNPROTECTED and RMI_RTT_UNMAP_UNPROTECTED (stage2-models.md §B6; R10 rtt.c
 * `map_unmap_ns`): the host maps its own NS memory into the unprotected half of a realm's IPA space
 * (above the PAR). The RMM takes no reference on the NS granule and none on the RTT (the GPT keeps
 * the realm from reaching protected memory through it), so nothing in the ownership map changes.
 *
 * MAP failure conditions, in order:
 *   level_bound     level outside [1, 3] → INPUT (checked before the RD, as R10 does)
 *   rd_*            → INPUT
 *   desc_valid      the host descriptor sets bits other than its output address (aligned to the
 *                   level, below 2^48) and attribute fields, or a reserved MemAttr/SH → INPUT
 *   addr_align, addr_bound  addr not aligned to the level, or beyond the IPA size → INPUT
 *   addr_par        addr inside the PAR → INPUT
 *   rtt_walk        the walk stops short of level → RTT(last level)
 *   rtte_state      the entry is not UNASSIGNED_NS → RTT(level)
 * UNMAP: level_bound, rd_*, addr_align/addr_bound, addr_par → INPUT; rtte_state (walk short, or the
 * entry is not ASSIGNED_NS) → RTT(last level), with top = the next live entry.
 */

import { err, ok, type Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { findRealm, hexAddr, inputError, rttError, type NoOutputs, type Outputs } from './lookup.js';
import { sealPlan, type Realm, type RmiPlan } from './rmm-state.js';
import {
  RTTE_UNASSIGNED_NS,
  RTT_MIN_BLOCK_LEVEL,
  RTT_PAGE_LEVEL,
  hostNsDescIsValid,
  hostNsDescPa,
  rtteAssignedNs,
  rtteKind,
  rtteName,
} from './rtt-entry.js';
import { addrInPar, addressFailure, rttWalk, skipNonLive, type RttWalk } from './rtt-walk.js';
import { rmiError, type RmiError } from './status.js';

const levelInRange = (level: unknown): level is number =>
  typeof level === 'number' && Number.isInteger(level) && level >= RTT_MIN_BLOCK_LEVEL && level <= RTT_PAGE_LEVEL;

/** level_bound (before rd), rd_*, [desc_valid], addr_*, addr_par. */
function checkMapInputs(s: Stage2, rd: unknown, addr: unknown, level: unknown, desc: { value: unknown } | undefined, outputs: Outputs): Result<Realm, RmiError> {
  if (!levelInRange(level)) return inputError('level_bound', `level ${String(level)} is outside [1, 3]`, outputs);
  const realm = findRealm(s, rd);
  if (!realm.ok) return err(rmiError('RMI_ERROR_INPUT', 0, realm.error.rule, realm.error.message, { ...outputs }));
  if (desc !== undefined && !hostNsDescIsValid(desc.value, level))
    return inputError('desc_valid', `host descriptor ${hexAddr(desc.value)} is not a valid level ${level} NS descriptor`, outputs);
  const rule = addressFailure(realm.value, addr, level, 'map');
  if (rule !== undefined) return inputError(rule, `unprotected address ${hexAddr(addr)} level ${level}: ${rule.replace('_', ' ')}`, outputs);
  if (addrInPar(realm.value, addr as number)) return inputError('addr_par', `${hexAddr(addr)} is inside the PAR`, outputs);
  return realm;
}

type MapPlan = RmiPlan<{ readonly walk: RttWalk; readonly desc: number; readonly level: number }>;

function checkMapUnprotected(s: Stage2, rd: unknown, addr: unknown, level: unknown, desc: unknown): Result<MapPlan, RmiError> {
  const realm = checkMapInputs(s, rd, addr, level, { value: desc }, {});
  if (!realm.ok) return realm;
  const a = addr as number;
  const l = level as number;
  const w = rttWalk(s.rmm, realm.value, a, l);
  if (w.level !== l) return rttError(w.level, 'rtt_walk', `no level ${l} RTT for ${hexAddr(a)}: the walk stopped at level ${w.level}`);
  const e = w.rtt.entries[w.index] as number;
  if (rtteKind(e) !== 'UNASSIGNED_NS') return rttError(l, 'rtte_state', `the entry for ${hexAddr(a)} is ${rtteName(e)}, not UNASSIGNED_NS`);
  return ok(sealPlan({ walk: w, desc: desc as number, level: l }));
}

/** Entry = ASSIGNED_NS with the host's output address and attributes. Not refcounted. */
function commitMapUnprotected(p: MapPlan): void {
  p.walk.rtt.entries[p.walk.index] = rtteAssignedNs(hostNsDescPa(p.desc, p.level), p.desc - hostNsDescPa(p.desc, p.level));
}

/** RMI_RTT_MAP_UNPROTECTED(rd, addr, level, desc), §B6. */
export function rttMapUnprotected(s: Stage2, rd: number, addr: number, level: number, desc: number): Result<NoOutputs, RmiError> {
  const plan = checkMapUnprotected(s, rd, addr, level, desc);
  if (!plan.ok) return plan;
  commitMapUnprotected(plan.value);
  return ok({});
}

export interface UnmapUnprotectedOutputs extends Outputs {
  /** x1: the next live entry after addr in the last-level RTT, or its end. */
  readonly top: number;
}

type UnmapPlan = RmiPlan<{ readonly walk: RttWalk; readonly addr: number }>;

function checkUnmapUnprotected(s: Stage2, rd: unknown, addr: unknown, level: unknown): Result<UnmapPlan, RmiError> {
  const realm = checkMapInputs(s, rd, addr, level, undefined, { top: 0 });
  if (!realm.ok) return realm;
  const a = addr as number;
  const l = level as number;
  const w = rttWalk(s.rmm, realm.value, a, l);
  const e = w.rtt.entries[w.index] as number;
  if (w.level !== l || rtteKind(e) !== 'ASSIGNED_NS')
    return rttError(w.level, 'rtte_state', `no level ${l} ASSIGNED_NS entry at ${hexAddr(a)}: the level ${w.level} entry is ${rtteName(e)}`, {
      top: skipNonLive(w, a),
    });
  return ok(sealPlan({ walk: w, addr: a }));
}

/** Entry = UNASSIGNED_NS (+ TLBI). */
function commitUnmapUnprotected(p: UnmapPlan): UnmapUnprotectedOutputs {
  p.walk.rtt.entries[p.walk.index] = RTTE_UNASSIGNED_NS;
  return { top: skipNonLive(p.walk, p.addr) };
}

/** RMI_RTT_UNMAP_UNPROTECTED(rd, addr, level) → { top }, §B6. */
export function rttUnmapUnprotected(s: Stage2, rd: number, addr: number, level: number): Result<UnmapUnprotectedOutputs, RmiError> {
  const plan = checkUnmapUnprotected(s, rd, addr, level);
  if (!plan.ok) return plan;
  return ok(commitUnmapUnprotected(plan.value));
}
