/**
 * RMI_RTT_CREATE, RMI_RTT_DESTROY, RMI_RTT_FOLD, RMI_RTT_READ_ENTRY (stage2-models.md §B4–§B6;
 * R10 runtime/rmi/rtt.c). Structure commands work on the RTT at `level` whose parent entry, at
 * level-1, covers `addr`; READ_ENTRY reads the entry at `level`.
 *
 * Check order of every command (R10): the granules (rd_*, then the new RTT's rtt_*) → INPUT; the
 * address validation of §B4 (level_bound, addr_align, addr_bound) → INPUT; then the walk, whose
 * failures are RMI_ERROR_RTT with the level the walk stopped at or of the entry in the wrong state:
 *
 *   RTT_CREATE   rtt_walk (walk short of level-1) → RTT(last level);
 *                rtt_exists (parent entry already TABLE) → RTT(level-1).
 *   RTT_DESTROY  rtt_missing (walk short, or parent not TABLE) → RTT(last level), top = the next
 *                live entry after addr in that table ("Missing RTT", KVM skips to top);
 *                rtt_live (the RTT's refcount != 0) → RTT(level), top = addr.
 *   RTT_FOLD     rtt_walk → RTT(last level); rtt_missing (parent not TABLE) → RTT(level-1);
 *                fold_level (a block would sit at level 0 or below) → RTT(level-1);
 *                rtt_not_homogeneous (entries cannot fold into one) → RTT(level).
 *   READ_ENTRY   only INPUT.
 *
 * Refcounts (§B2): an RTT holds one reference per TABLE or ASSIGNED entry; NS entries hold none.
 * RTT_CREATE under an UNASSIGNED* or ASSIGNED_NS parent entry adds the parent's reference for the
 * new TABLE entry; under an ASSIGNED block it splits the block into 512 entries (the child holds
 * 512 references, the parent keeps the one it had for the block).
 */

import { err, ok, type Result } from '../result.js';
import { mapSizeBytes } from '../s2tt/geometry.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, type Pfn } from '../types.js';
import { findGranule, findRealm, hexAddr, inputError, rttError, setGranuleState, type Outputs } from './lookup.js';
import { Rtt, sealPlan, type Realm, type RmiPlan } from './rmm-state.js';
import {
  RMI_RIPAS,
  RMI_RTT_STATE,
  RTTES_PER_RTT,
  RTTE_UNASSIGNED_NS,
  RTT_MIN_BLOCK_LEVEL,
  rtteHostDesc,
  rtteKind,
  rtteName,
  rttePa,
  rtteRipas,
  rtteTable,
  rtteUnassigned,
  rtteWithPa,
  type Rtte,
} from './rtt-entry.js';
import { addrInPar, addressFailure, rttWalk, skipNonLive, type RttWalk } from './rtt-walk.js';
import { rmiError, type RmiError } from './status.js';

const rttOf = (s: Stage2, e: Rtte): Rtt => s.rmm.rtts.get(rttePa(e) / GRANULE_SIZE) as Rtt;

function checkAddress(realm: Realm, addr: unknown, level: unknown, kind: 'structure' | 'entry', outputs: Outputs = {}): RmiError | undefined {
  const rule = addressFailure(realm, addr, level, kind);
  if (rule === undefined) return undefined;
  return rmiError('RMI_ERROR_INPUT', 0, rule, `${kind} command at ${hexAddr(addr)} level ${String(level)}: ${rule.replace('_', ' ')}`, { ...outputs });
}

// ---------------------------------------------------------------------------------------------
// RTT_CREATE

type RttCreatePlan = RmiPlan<{ readonly realm: Realm; readonly rtt: Pfn; readonly addr: number; readonly level: number; readonly parent: RttWalk }>;

function checkRttCreate(s: Stage2, rd: unknown, rtt: unknown, addr: unknown, level: unknown): Result<RttCreatePlan, RmiError> {
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const g = findGranule(s, rtt, 'DELEGATED', 'rtt');
  if (!g.ok) return g;
  const bad = checkAddress(realm.value, addr, level, 'structure');
  if (bad !== undefined) return err(bad);
  const a = addr as number;
  const l = level as number;
  const w = rttWalk(s.rmm, realm.value, a, l - 1);
  if (w.level !== l - 1) return rttError(w.level, 'rtt_walk', `no RTT at level ${l - 1} for ${hexAddr(a)}: the walk stopped at level ${w.level}`);
  if (rtteKind(w.rtt.entries[w.index] as number) === 'TABLE')
    return rttError(l - 1, 'rtt_exists', `the level ${l - 1} entry for ${hexAddr(a)} is already a TABLE`);
  return ok(sealPlan({ realm: realm.value, rtt: g.value, addr: a, level: l, parent: w }));
}

/** Builds the child from the parent entry (R10 smc_rtt_create), then makes the parent a TABLE. */
function commitRttCreate(s: Stage2, p: RttCreatePlan): void {
  const parentEntry = p.parent.rtt.entries[p.parent.index] as number;
  const base = p.addr - (p.addr % mapSizeBytes(p.level - 1));
  const child = new Rtt(p.rtt, p.realm.rd, p.level, base);
  const kind = rtteKind(parentEntry);
  if (kind === 'ASSIGNED' || kind === 'ASSIGNED_NS') {
    // Split the block into 512 consecutive PAs (with break-before-make and TLBI for valid ones).
    const pa0 = rttePa(parentEntry);
    const size = mapSizeBytes(p.level);
    for (let i = 0; i < RTTES_PER_RTT; i++) child.entries[i] = rtteWithPa(parentEntry, pa0 + i * size);
    if (kind === 'ASSIGNED') child.refcount = RTTES_PER_RTT;
    else p.parent.rtt.refcount++; // the NS block held no reference; the new TABLE entry does
  } else {
    child.entries.fill(parentEntry); // UNASSIGNED_{EMPTY,RAM,DESTROYED} or UNASSIGNED_NS replicated
    p.parent.rtt.refcount++;
  }
  p.parent.rtt.entries[p.parent.index] = rtteTable(p.rtt * GRANULE_SIZE);
  s.rmm.rtts.set(p.rtt, child);
  setGranuleState(s, p.rtt, 'RTT');
}

/** RMI_RTT_CREATE(rd, rtt, addr, level), §B6. */
export function rttCreate(s: Stage2, rd: number, rtt: number, addr: number, level: number): Result<Outputs, RmiError> {
  const plan = checkRttCreate(s, rd, rtt, addr, level);
  if (!plan.ok) return plan;
  commitRttCreate(s, plan.value);
  return ok({});
}

// ---------------------------------------------------------------------------------------------
// RTT_DESTROY

export interface RttDestroyOutputs extends Outputs {
  /** x1: PA of the destroyed RTT. */
  readonly rtt: number;
  /** x2: where the host should continue: the next live entry after addr in the parent, or its end. */
  readonly top: number;
}

type RttDestroyPlan = RmiPlan<{ readonly realm: Realm; readonly addr: number; readonly parent: RttWalk; readonly child: Rtt }>;

function checkRttDestroy(s: Stage2, rd: unknown, addr: unknown, level: unknown): Result<RttDestroyPlan, RmiError> {
  const noOutputs = { rtt: 0, top: 0 };
  const realm = findRealm(s, rd);
  if (!realm.ok) return inputError(realm.error.rule, realm.error.message, noOutputs);
  const bad = checkAddress(realm.value, addr, level, 'structure', noOutputs);
  if (bad !== undefined) return err(bad);
  const a = addr as number;
  const l = level as number;
  const w = rttWalk(s.rmm, realm.value, a, l - 1);
  const parentEntry = w.rtt.entries[w.index] as number;
  if (w.level !== l - 1 || rtteKind(parentEntry) !== 'TABLE')
    return rttError(w.level, 'rtt_missing', `no level ${l} RTT at ${hexAddr(a)}: the level ${w.level} entry is ${rtteName(parentEntry)}`, {
      rtt: 0,
      top: skipNonLive(w, a),
    });
  const child = rttOf(s, parentEntry);
  if (child.refcount !== 0)
    return rttError(l, 'rtt_live', `the level ${l} RTT at ${hexAddr(a)} still holds ${child.refcount} live entries`, { rtt: 0, top: a });
  return ok(sealPlan({ realm: realm.value, addr: a, parent: w, child }));
}

/** Parent → UNASSIGNED_DESTROYED in the PAR, UNASSIGNED_NS above; parent refcount -1; RTT zeroed → DELEGATED. */
function commitRttDestroy(s: Stage2, p: RttDestroyPlan): RttDestroyOutputs {
  p.parent.rtt.entries[p.parent.index] = addrInPar(p.realm, p.addr) ? rtteUnassigned('DESTROYED') : RTTE_UNASSIGNED_NS;
  p.parent.rtt.refcount--;
  s.rmm.rtts.delete(p.child.frame);
  setGranuleState(s, p.child.frame, 'DELEGATED');
  return { rtt: p.child.frame * GRANULE_SIZE, top: skipNonLive(p.parent, p.addr) };
}

/** RMI_RTT_DESTROY(rd, addr, level) → { rtt, top }, §B6. */
export function rttDestroy(s: Stage2, rd: number, addr: number, level: number): Result<RttDestroyOutputs, RmiError> {
  const plan = checkRttDestroy(s, rd, addr, level);
  if (!plan.ok) return plan;
  return ok(commitRttDestroy(s, plan.value));
}

// ---------------------------------------------------------------------------------------------
// RTT_FOLD

export interface RttFoldOutputs extends Outputs {
  /** x1: PA of the folded (now DELEGATED) RTT. */
  readonly rtt: number;
}

type RttFoldPlan = RmiPlan<{ readonly parent: RttWalk; readonly child: Rtt; readonly folded: Rtte }>;

/** All 512 entries equal (s2tt_is_unassigned_*_block). */
const allEqual = (t: Rtt): boolean => t.entries.every((e) => e === t.entries[0]);

/**
 * table_maps_block (R10 s2tt.c): every entry of `kind`, with the same RIPAS / NS attributes, mapping
 * consecutive PAs from a PA aligned to the parent level.
 */
function mapsBlock(t: Rtt, kind: 'ASSIGNED' | 'ASSIGNED_NS'): boolean {
  const e0 = t.entries[0] as number;
  if (rtteKind(e0) !== kind) return false;
  const pa0 = rttePa(e0);
  if (pa0 % mapSizeBytes(t.level - 1) !== 0) return false;
  const size = mapSizeBytes(t.level);
  for (let i = 1; i < RTTES_PER_RTT; i++) if (t.entries[i] !== rtteWithPa(e0, pa0 + i * size)) return false;
  return true;
}

function checkRttFold(s: Stage2, rd: unknown, addr: unknown, level: unknown): Result<RttFoldPlan, RmiError> {
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const bad = checkAddress(realm.value, addr, level, 'structure');
  if (bad !== undefined) return err(bad);
  const a = addr as number;
  const l = level as number;
  const w = rttWalk(s.rmm, realm.value, a, l - 1);
  if (w.level !== l - 1) return rttError(w.level, 'rtt_walk', `no RTT at level ${l - 1} for ${hexAddr(a)}: the walk stopped at level ${w.level}`);
  const parentEntry = w.rtt.entries[w.index] as number;
  if (rtteKind(parentEntry) !== 'TABLE') return rttError(l - 1, 'rtt_missing', `no level ${l} RTT at ${hexAddr(a)}`);
  const child = rttOf(s, parentEntry);
  const notHomogeneous = (): Result<never, RmiError> =>
    rttError(l, 'rtt_not_homogeneous', `the level ${l} RTT at ${hexAddr(a)} holds entries that do not fold into one`);
  const blockBelowMin = (): Result<never, RmiError> =>
    rttError(l - 1, 'fold_level', `folding the level ${l} RTT at ${hexAddr(a)} would make a level ${l - 1} block`);
  const e0 = child.entries[0] as number;
  if (child.refcount === 0) {
    // Unassigned (one RIPAS) or UNASSIGNED_NS fold to themselves; an ASSIGNED_NS run to an NS block.
    if (allEqual(child) && (rtteKind(e0) === 'UNASSIGNED' || rtteKind(e0) === 'UNASSIGNED_NS'))
      return ok(sealPlan({ parent: w, child, folded: e0 }));
    if (mapsBlock(child, 'ASSIGNED_NS')) {
      if (l <= RTT_MIN_BLOCK_LEVEL) return blockBelowMin();
      return ok(sealPlan({ parent: w, child, folded: e0 }));
    }
    return notHomogeneous();
  }
  if (child.refcount === RTTES_PER_RTT) {
    if (l <= RTT_MIN_BLOCK_LEVEL) return blockBelowMin();
    if (mapsBlock(child, 'ASSIGNED')) return ok(sealPlan({ parent: w, child, folded: e0 }));
    return notHomogeneous();
  }
  return notHomogeneous();
}

/** The parent entry takes the folded state (a block keeps the first entry's PA); RTT → DELEGATED. */
function commitRttFold(s: Stage2, p: RttFoldPlan): RttFoldOutputs {
  const parent = p.parent.rtt;
  parent.entries[p.parent.index] = p.folded;
  // A table that folds to an ASSIGNED block keeps the parent's one reference; any other drops it.
  if (rtteKind(p.folded) !== 'ASSIGNED') parent.refcount--;
  s.rmm.rtts.delete(p.child.frame);
  setGranuleState(s, p.child.frame, 'DELEGATED');
  return { rtt: p.child.frame * GRANULE_SIZE };
}

/** RMI_RTT_FOLD(rd, addr, level) → { rtt }, §B6. */
export function rttFold(s: Stage2, rd: number, addr: number, level: number): Result<RttFoldOutputs, RmiError> {
  const plan = checkRttFold(s, rd, addr, level);
  if (!plan.ok) return plan;
  return ok(commitRttFold(s, plan.value));
}

// ---------------------------------------------------------------------------------------------
// RTT_READ_ENTRY

export interface RttReadEntryOutputs extends Outputs {
  /** x1: the level the walk reached (may be shallower than asked). */
  readonly walkLevel: number;
  /** x2: RMI_RTT_STATE: UNASSIGNED 0, ASSIGNED 1, TABLE 2. */
  readonly state: number;
  /** x3: the PA (ASSIGNED EMPTY/RAM, TABLE), the host descriptor (ASSIGNED_NS), else 0. */
  readonly desc: number;
  /** x4: RMI_RIPAS: EMPTY 0, RAM 1, DESTROYED 2. */
  readonly ripas: number;
}

/** What READ_ENTRY reports for an entry (§B5 table). */
export function readEntryOf(e: Rtte, walkLevel: number): RttReadEntryOutputs {
  const ripas = RMI_RIPAS[rtteRipas(e)];
  switch (rtteKind(e)) {
    case 'UNASSIGNED':
      return { walkLevel, state: RMI_RTT_STATE.UNASSIGNED, desc: 0, ripas };
    case 'ASSIGNED':
      // §B5: x3 = PA, except 0 for ASSIGNED_DESTROYED.
      return { walkLevel, state: RMI_RTT_STATE.ASSIGNED, desc: rtteRipas(e) === 'DESTROYED' ? 0 : rttePa(e), ripas };
    case 'UNASSIGNED_NS':
      return { walkLevel, state: RMI_RTT_STATE.UNASSIGNED, desc: 0, ripas: RMI_RIPAS.EMPTY };
    case 'ASSIGNED_NS':
      return { walkLevel, state: RMI_RTT_STATE.ASSIGNED, desc: rtteHostDesc(e), ripas: RMI_RIPAS.EMPTY };
    case 'TABLE':
      return { walkLevel, state: RMI_RTT_STATE.TABLE, desc: rttePa(e), ripas: RMI_RIPAS.EMPTY };
  }
}

/** RMI_RTT_READ_ENTRY(rd, addr, level) → { walkLevel, state, desc, ripas }, §B5/§B6. */
export function rttReadEntry(s: Stage2, rd: number, addr: number, level: number): Result<RttReadEntryOutputs, RmiError> {
  const realm = findRealm(s, rd);
  if (!realm.ok) return realm;
  const bad = checkAddress(realm.value, addr, level, 'entry');
  if (bad !== undefined) return err(bad);
  const w = rttWalk(s.rmm, realm.value, addr, level);
  return ok(readEntryOf(w.rtt.entries[w.index] as number, w.level));
}

