/**
 * The RMM's invariants, recomputed from the granule records, the host's stage 2 and the RMM's
 * objects, independently of the commands that maintain them (stage2-models.md §B2–§B5). Returns
 * every violation found (empty when all hold); the core's checker (invariants.ts) includes them.
 *
 *  1. every granule in an RMM state (not NS) is DRAM owned by HYP, unpinned, unshared, in no grant,
 *     and the host cannot reach it (its host view is NOPAGE: EL3 made it Realm PAS);
 *  2. the granules in state RD, REC, RTT are exactly the realms, RECs and RTTs the RMM holds, and
 *     the granules in state DATA are exactly the PAs of the ASSIGNED entries, each referenced once;
 *  3. each RTT's refcount equals its TABLE and ASSIGNED entries (NS mappings hold none, §B2);
 *  4. the tree is well formed: roots at the start level, each TABLE entry points to an RTT of the
 *     same realm one level down covering that entry's range, each non-root RTT has exactly one
 *     parent entry, ASSIGNED and ASSIGNED_NS entries sit at level >= 1 with aligned PAs, and the
 *     PAR holds no NS entry and the unprotected half no protected one;
 *  5. each RD's refcount is its number of RECs, realm VMIDs are unique, and a REC's pending RIPAS
 *     request lies in its realm's PAR.
 */

import type { RmiGranuleState } from '../memory/granule.js';
import type { GranuleRun } from '../memory/physical-memory.js';
import { mapSizeBytes } from '../s2tt/geometry.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, VMID_HYP, vmidName } from '../types.js';
import { findView } from '../views.js';
import type { Realm, Rtt } from './rmm-state.js';
import { RTTES_PER_RTT, RTT_MIN_BLOCK_LEVEL, RTT_PAGE_LEVEL, rtteIsRefcounted, rtteIsUnassignedFor, rtteKind, rtteName, rttePa } from './rtt-entry.js';

const VIOLATIONS_MAX = 100;
const hex = (n: number): string => `0x${n.toString(16)}`;

/** `records` is the granule record runs (PhysicalMemory.recordRuns), when the caller has them already. */
export function rmiInvariants(s: Stage2, records: readonly GranuleRun[] = s.memory.recordRuns()): string[] {
  const out: string[] = [];
  const report = (msg: string): void => {
    if (out.length < VIOLATIONS_MAX) out.push(`rmi: ${msg}`);
  };
  const byState = granulesByState(s, records, report);
  checkObjects(s, byState, report);
  const dataRanges: [number, number][] = [];
  const parentCount = new Map<number, number>();
  for (const realm of s.rmm.realms.values()) checkRealm(s, realm, report, dataRanges, parentCount);
  for (const rtt of s.rmm.rtts.values()) {
    const isRoot = s.rmm.realms.get(rtt.rd)?.roots.includes(rtt) === true;
    const parents = parentCount.get(rtt.frame) ?? 0;
    if (!isRoot && parents !== 1) report(`RTT ${hex(rtt.frame * GRANULE_SIZE)} (level ${rtt.level}) has ${parents} parent entries`);
  }
  checkData(byState.get('DATA') ?? [], dataRanges, report);
  return out;
}

type Report = (msg: string) => void;
type Runs = [start: number, frames: number][];

/** Invariant 1, and the runs of frames in each RMM state. */
function granulesByState(s: Stage2, records: readonly GranuleRun[], report: Report): Map<RmiGranuleState, Runs> {
  const byState = new Map<RmiGranuleState, Runs>();
  for (const { start, frames, m } of records) {
    if (m.rmi === 'NS') continue;
    let runs = byState.get(m.rmi);
    if (runs === undefined) byState.set(m.rmi, (runs = []));
    runs.push([start, frames]);
    const where = (): string => `${hex(start * GRANULE_SIZE)}+${frames} (${m.rmi})`;
    if (m.kind !== 'RAM') report(`${where()} is ${m.kind}, not DRAM`);
    if (m.owner !== VMID_HYP) report(`${where()} owned by ${vmidName(m.owner)}, not HYP`);
    if (m.pins !== 0 || m.guestShares !== 0) report(`${where()} pinned or shared with a guest`);
    if (m.hypUse !== 'NONE') report(`${where()} used by HYP as ${m.hypUse}`);
    if (s.memory.grantOf.findRun(start, frames, (g) => g === 0) !== undefined) report(`${where()} is part of a grant`);
    const mapped = findView(s.host, start, frames, (st) => st === 'NOPAGE');
    if (mapped !== undefined) report(`${where()}: the host maps ${hex(mapped.start * GRANULE_SIZE)} (${mapped.frames} frames)`);
  }
  return byState;
}

const frameSet = (runs: Runs | undefined): Set<number> => {
  const set = new Set<number>();
  for (const [start, frames] of runs ?? []) for (let f = start; f < start + frames; f++) set.add(f);
  return set;
};

/** Invariant 2 for RD, REC, RTT, and invariant 5. */
function checkObjects(s: Stage2, byState: Map<RmiGranuleState, Runs>, report: Report): void {
  const compare = (state: RmiGranuleState, keys: Iterable<number>): void => {
    const granules = frameSet(byState.get(state));
    const objects = new Set(keys);
    for (const f of granules) if (!objects.has(f)) report(`granule ${hex(f * GRANULE_SIZE)} is ${state} but the RMM holds no such object`);
    for (const f of objects) if (!granules.has(f)) report(`the RMM holds a ${state} at ${hex(f * GRANULE_SIZE)} whose granule is not ${state}`);
  };
  compare('RD', s.rmm.realms.keys());
  compare('REC', s.rmm.recs.keys());
  compare('RTT', s.rmm.rtts.keys());
  const vmids = new Map<number, number>();
  for (const realm of s.rmm.realms.values()) {
    const recs = [...s.rmm.recs.values()].filter((r) => r.rd === realm.rd).length;
    if (realm.recCount !== recs) report(`realm ${hex(realm.rd * GRANULE_SIZE)} RD refcount ${realm.recCount} but ${recs} REC(s)`);
    const other = vmids.get(realm.vmid);
    if (other !== undefined) report(`realms ${hex(other * GRANULE_SIZE)} and ${hex(realm.rd * GRANULE_SIZE)} share VMID ${realm.vmid}`);
    vmids.set(realm.vmid, realm.rd);
    if (!s.rmm.vmids.has(realm.vmid)) report(`realm ${hex(realm.rd * GRANULE_SIZE)} VMID ${realm.vmid} is not reserved`);
  }
  if (s.rmm.vmids.size !== s.rmm.realms.size) report(`${s.rmm.vmids.size} realm VMIDs reserved for ${s.rmm.realms.size} realm(s)`);
  for (const rec of s.rmm.recs.values()) {
    const realm = s.rmm.realms.get(rec.rd);
    if (realm === undefined) {
      report(`REC ${hex(rec.frame * GRANULE_SIZE)} belongs to no realm`);
      continue;
    }
    const req = rec.ripasRequest;
    if (req.top !== 0 && (req.addr > req.top || req.top > 2 ** (realm.ipaBits - 1)))
      report(`REC ${hex(rec.frame * GRANULE_SIZE)} RIPAS request [${hex(req.addr)}, ${hex(req.top)}) is not inside the PAR`);
  }
}

/** Invariants 3 and 4 over one realm's tree, collecting the ASSIGNED PA ranges. */
function checkRealm(s: Stage2, realm: Realm, report: Report, dataRanges: [number, number][], parentCount: Map<number, number>): void {
  const par = 2 ** (realm.ipaBits - 1);
  const ipaSize = 2 ** realm.ipaBits;
  const visit = (rtt: Rtt, expectLevel: number, expectBase: number): void => {
    // Names are built only when something is reported: this runs for every entry of every RTT.
    const name = (): string => `RTT ${hex(rtt.frame * GRANULE_SIZE)} (level ${rtt.level}, IPA ${hex(rtt.baseIpa)})`;
    if (rtt.rd !== realm.rd) report(`${name()} belongs to another realm`);
    if (rtt.level !== expectLevel || rtt.baseIpa !== expectBase) report(`${name()} sits at level ${expectLevel}, IPA ${hex(expectBase)}`);
    const size = mapSizeBytes(rtt.level);
    const entries = rtt.entries;
    const at = (i: number, e: number): string => `${name()} entry ${i} (${rtteName(e)})`;
    let refs = 0;
    for (let i = 0; i < RTTES_PER_RTT; i++) {
      const e = entries[i] as number;
      const ipa = rtt.baseIpa + i * size;
      if (ipa >= ipaSize) continue;
      // The common entry, unassigned on its own side of the PAR boundary, has nothing to check.
      if (rtteIsUnassignedFor(e, ipa < par)) continue;
      const kind = rtteKind(e);
      if (rtteIsRefcounted(e)) refs++;
      const ns = kind === 'UNASSIGNED_NS' || kind === 'ASSIGNED_NS';
      if (ipa < par && ns) report(`${at(i, e)} is NS inside the PAR`);
      if (ipa >= par && (kind === 'UNASSIGNED' || kind === 'ASSIGNED')) report(`${at(i, e)} is protected outside the PAR`);
      if ((kind === 'ASSIGNED' || kind === 'ASSIGNED_NS') && (rtt.level < RTT_MIN_BLOCK_LEVEL || rttePa(e) % size !== 0))
        report(`${at(i, e)} maps ${hex(rttePa(e))}, not a level ${rtt.level} block`);
      if (kind === 'ASSIGNED') dataRanges.push([rttePa(e) / GRANULE_SIZE, size / GRANULE_SIZE]);
      if (kind === 'TABLE') {
        const childFrame = rttePa(e) / GRANULE_SIZE;
        parentCount.set(childFrame, (parentCount.get(childFrame) ?? 0) + 1);
        const child = s.rmm.rtts.get(childFrame);
        if (rtt.level >= RTT_PAGE_LEVEL || child === undefined) report(`${at(i, e)} points to ${hex(rttePa(e))}, not an RTT`);
        else visit(child, rtt.level + 1, ipa);
      }
    }
    if (refs !== rtt.refcount) report(`${name()} refcount ${rtt.refcount} but ${refs} TABLE/ASSIGNED entries`);
  };
  const rootSpan = mapSizeBytes(realm.startLevel) * RTTES_PER_RTT;
  realm.roots.forEach((root, i) => visit(root, realm.startLevel, i * rootSpan));
}

/** Invariant 2 for DATA: ASSIGNED PAs, as sorted disjoint runs, are exactly the DATA granules. */
function checkData(dataRuns: Runs, assigned: [number, number][], report: Report): void {
  assigned.sort((a, b) => a[0] - b[0]);
  const merged: Runs = [];
  for (const [start, frames] of assigned) {
    const last = merged[merged.length - 1];
    if (last !== undefined && start < last[0] + last[1]) {
      report(`DATA ${hex(start * GRANULE_SIZE)} is mapped by more than one ASSIGNED entry`);
      continue;
    }
    if (last !== undefined && start === last[0] + last[1]) last[1] += frames;
    else merged.push([start, frames]);
  }
  const key = (r: Runs): string => r.map(([a, n]) => `${hex(a * GRANULE_SIZE)}+${n}`).join(',');
  const granules: Runs = [];
  for (const [start, frames] of dataRuns) {
    const last = granules[granules.length - 1];
    if (last !== undefined && start === last[0] + last[1]) last[1] += frames;
    else granules.push([start, frames]);
  }
  if (key(merged) !== key(granules)) report(`DATA granules [${key(granules)}] differ from the ASSIGNED PAs [${key(merged)}]`);
}
