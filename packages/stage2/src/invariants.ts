/**
 * The core's invariants (DESIGN.md §2), checked independently of the code that maintains them:
 * it recomputes from tables, records, pools and grants, and returns every violation it finds
 * (empty when all hold). CheckInvariants reports it; tests and property runs call it after every
 * mutation, so its cost follows the populated state, never the size of memory or of an IPA space:
 * one pass over the granule record runs (shared by every check), the entries of the tables that
 * exist (invalid entries skipped, a split block's pages merged into one run), table pools as runs,
 * grants and RTTs. Nothing it reads is bookkeeping kept for it: counters are recomputed and compared.
 *
 *  1. one owner per granule, and the owners together hold all memory (no granule lost);
 *  2. a granule is mapped in an address space only if that space owns it (OWNED, SHARED_OWNED) or
 *     borrows it through a live grant within its ACL rights or a host share (SHARED_BORROWED);
 *  3. a lent or donated granule is mapped nowhere in its owner (its owner entry is a LENT annotation);
 *  4. table pages (roots, tables, pool pages) are HYP-owned, marked as such, and counted once; no
 *     table is left uniform (fold is eager) and each table's split-pattern count is right;
 *  5. pin counts and guest share counts agree with the page states that justify them;
 *  6. the host maps identity only; RMM-side granules belong to HYP.
 */

import type { AddressSpace } from './address-space.js';
import type { GranuleMeta } from './memory/granule.js';
import type { GranuleRun } from './memory/physical-memory.js';
import { descIsValid, descOutputFrame, descPerms, descState } from './s2tt/descriptor.js';
import { rmiInvariants } from './rmi/invariants.js';
import type { Stage2 } from './stage2.js';
import { VMID_HOST, VMID_HYP, permsWithin, vmidName } from './types.js';
import { viewState } from './views.js';

const VIOLATIONS_MAX = 100;
const hex = (frame: number): string => `0x${(frame * 4096).toString(16)}`;

export function checkInvariants(s: Stage2): string[] {
  const out: string[] = [];
  const report = (msg: string): void => {
    if (out.length < VIOLATIONS_MAX) out.push(msg);
  };
  const records = s.memory.recordRuns();
  checkOwners(s, records, report);
  const guestShareMaps = new Map<number, number>();
  for (const sp of s.spaces.values()) checkSpace(s, sp, records, report, guestShareMaps);
  checkGrants(s, report);
  checkTablePages(s, records, report);
  checkCounters(s, records, report, guestShareMaps);
  for (const v of rmiInvariants(s, records)) report(v);
  return out;
}

type Report = (msg: string) => void;

function checkOwners(s: Stage2, records: readonly GranuleRun[], report: Report): void {
  let owned = 0;
  for (const { start, frames, m } of records) {
    owned += frames;
    const known = m.owner === VMID_HYP || s.spaces.has(m.owner);
    if (!known) report(`${hex(start)}+${frames}: owner ${m.owner} has no address space`);
    if (m.rmi !== 'NS' && m.owner !== VMID_HYP) report(`${hex(start)}+${frames}: RMM granule (${m.rmi}) owned by ${vmidName(m.owner)}`);
    if (m.hyp === 'OWNED' && m.owner !== VMID_HYP) report(`${hex(start)}+${frames}: HYP sees OWNED but ${vmidName(m.owner)} owns it`);
    if (m.owner === VMID_HYP && m.rmi === 'NS' && m.hyp !== 'OWNED') report(`${hex(start)}+${frames}: HYP owns it but sees ${m.hyp}`);
    if (m.hypUse !== 'NONE' && m.owner !== VMID_HYP) report(`${hex(start)}+${frames}: ${m.hypUse} page not owned by HYP`);
  }
  const regions = s.memory.regions.reduce((n, r) => n + r.count, 0);
  if (owned !== regions) report(`owners hold ${owned} granules, memory has ${regions}`);
}

/**
 * Every mapped or lent run of the space (mappedRuns merges a split block's pages and skips invalid
 * entries, so this costs the space's tables, not its IPA size), cut where the granule records or
 * the grant marks change, each piece checked as one mapping.
 */
function checkSpace(s: Stage2, sp: AddressSpace, records: readonly GranuleRun[], report: Report, guestShareMaps: Map<number, number>): void {
  const name = vmidName(sp.vmid);
  sp.table.mappedRuns((start, frames, desc) => {
    const pa = descOutputFrame(desc);
    if (sp.kind === 'HOST' && pa !== start) report(`${name}: IPA ${hex(start)} maps PA ${hex(pa)}, not identity`);
    const st = viewState(desc);
    const perms = descPerms(desc);
    let offset = 0;
    recordsOver(records, pa, frames, (mStart, mFrames, m) => {
      const ipa = start + offset;
      offset += mFrames;
      if (m === null) {
        report(`${name}: IPA ${hex(ipa)} maps ${hex(mStart)}, which is not memory`);
        return;
      }
      s.memory.grantOf.runs(mStart, mFrames, (gStart, gFrames, grantId) => {
        checkMapping(s, sp, report, { ipa: ipa + (gStart - mStart), pa: gStart, frames: gFrames, m, grantId, st, perms }, guestShareMaps);
      });
    });
  });
}

/**
 * Visits [pa, pa+frames) as `records` (PhysicalMemory.recordRuns: sorted, disjoint, maximal runs)
 * cover it, clipped, with null for holes: what meta.runs over the range would visit, without a
 * second walk of the record map.
 */
function recordsOver(records: readonly GranuleRun[], pa: number, frames: number, visit: (start: number, frames: number, m: GranuleMeta | null) => void): void {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const r = records[mid]!;
    if (r.start + r.frames <= pa) lo = mid + 1;
    else hi = mid;
  }
  const end = pa + frames;
  let at = pa;
  for (let i = lo; i < records.length && at < end; i++) {
    const r = records[i]!;
    if (r.start > at) {
      const gapEnd = Math.min(r.start, end);
      visit(at, gapEnd - at, null);
      at = gapEnd;
      if (at >= end) break;
    }
    const runEnd = Math.min(r.start + r.frames, end);
    visit(at, runEnd - at, r.m);
    at = runEnd;
  }
  if (at < end) visit(at, end - at, null);
}

interface Mapping {
  readonly ipa: number;
  readonly pa: number;
  readonly frames: number;
  readonly m: GranuleMeta;
  readonly grantId: number;
  readonly st: ReturnType<typeof viewState>;
  readonly perms: number;
}

function checkMapping(s: Stage2, sp: AddressSpace, report: Report, x: Mapping, guestShareMaps: Map<number, number>): void {
  const name = vmidName(sp.vmid);
  // Built only when something is reported: this runs for every mapped run of every space.
  const at = (): string => `${name}: IPA ${hex(x.ipa)}+${x.frames} (PA ${hex(x.pa)}, ${x.st})`;
  const grant = x.grantId === 0 ? undefined : s.grants.get(x.grantId);
  if (x.grantId !== 0 && grant === undefined) report(`${at()}: marked with dead grant ${x.grantId}`);
  switch (x.st) {
    case 'OWNED':
      if (x.m.owner !== sp.vmid) report(`${at()}: mapped OWNED but owned by ${vmidName(x.m.owner)}`);
      if (x.grantId !== 0) report(`${at()}: mapped OWNED while in grant ${x.grantId}`);
      break;
    case 'SHARED_OWNED':
      if (x.m.owner !== sp.vmid) report(`${at()}: mapped SHARED_OWNED but owned by ${vmidName(x.m.owner)}`);
      break;
    case 'LENT':
      if (x.m.owner !== sp.vmid) report(`${at()}: LENT annotation but owned by ${vmidName(x.m.owner)}`);
      if (grant === undefined || grant.type === 'SHARE' || grant.owner !== sp.vmid) report(`${at()}: LENT without a live LEND/DONATE grant of ${name}`);
      break;
    case 'SHARED_BORROWED': {
      if (x.m.owner === sp.vmid) report(`${at()}: borrows its own granule`);
      const viaGrant = grant?.borrowers.get(sp.vmid);
      if (viaGrant !== undefined) {
        if (!permsWithin(x.perms, grant!.acl.find((e) => e.vmid === sp.vmid)?.perms ?? 0)) report(`${at()}: rights beyond its ACL entry`);
      } else if (sp.kind === 'GUEST' && x.m.owner === VMID_HOST && x.m.guestShares > 0) {
        for (let i = 0; i < x.frames; i++) guestShareMaps.set(x.pa + i, (guestShareMaps.get(x.pa + i) ?? 0) + 1);
      } else if (!(sp.kind === 'HOST' && s.spaces.get(x.m.owner)?.kind === 'GUEST')) {
        report(`${at()}: SHARED_BORROWED without a grant or share that allows it`);
      }
      break;
    }
    default:
      break;
  }
}

function checkGrants(s: Stage2, report: Report): void {
  for (const g of s.grants.values()) {
    const owner = s.spaces.get(g.owner);
    if (owner === undefined) {
      report(`grant ${g.id}: owner ${g.owner} has no address space`);
      continue;
    }
    for (const c of g.constituents) {
      if (s.memory.grantOf.findRun(c.pfn, c.count, (id) => id === g.id) !== undefined) report(`grant ${g.id}: PA ${hex(c.pfn)}+${c.count} not marked`);
      owner.table.leafRuns(c.gfn, c.count, (v) => {
        const want = g.type === 'SHARE' ? 'SHARED_OWNED' : 'LENT';
        if (viewState(v.desc) !== want) report(`grant ${g.id}: owner ${vmidName(g.owner)} sees ${hex(v.start)} as ${viewState(v.desc)}, not ${want}`);
        if (descOutputFrame(v.desc) !== c.pfn + (v.start - c.gfn)) report(`grant ${g.id}: owner mapping of ${hex(v.start)} moved`);
      });
    }
    for (const [vmid, b] of g.borrowers) {
      const sp = s.spaces.get(vmid);
      if (sp === undefined) {
        report(`grant ${g.id}: borrower ${vmid} has no address space`);
        continue;
      }
      for (const p of b.placements) {
        sp.table.leafRuns(p.gfn, p.count, (v) => {
          if (!descIsValid(v.desc) || descState(v.desc) !== 'SHARED_BORROWED' || descOutputFrame(v.desc) !== p.pfn + (v.start - p.gfn))
            report(`grant ${g.id}: borrower ${vmidName(vmid)} does not map ${hex(v.start)} as recorded`);
        });
      }
    }
  }
}

/**
 * Invariant 4 for table pages. Each space's roots, tables and pool are ranges of frames (the pool
 * keeps its frames as runs: the host's boot pool is one run, however much memory it maps), checked
 * against the granule records run by run. Pages counted twice show as overlapping ranges; only then
 * does the check fall back to counting frame by frame, to name each duplicate.
 */
function checkTablePages(s: Stage2, records: readonly GranuleRun[], report: Report): void {
  const ranges: TablePageRange[] = [];
  for (const sp of s.spaces.values()) {
    const who = vmidName(sp.vmid);
    const tables = sp.table.tables();
    if (tables.length !== sp.table.tablePages) report(`${who}: ${tables.length} table pages in use, counter says ${sp.table.tablePages}`);
    for (const p of sp.table.problems(tables)) report(`${who}: ${p}`);
    for (const f of sp.rootFrames) ranges.push({ start: f, count: 1, who });
    for (const t of tables) ranges.push({ start: t.frame, count: 1, who });
    for (const [start, count] of sp.pool.frameRuns()) ranges.push({ start, count, who });
  }
  // HYP's reservation (hyp-reservation.ts) is a pool too: HYP-owned, marked, and only its own range.
  const reservation = s.hypReservationRange;
  for (const [start, count] of s.hypReservation.frameRuns()) {
    ranges.push({ start, count, who: 'HYP reservation' });
    if (start < reservation.base || start + count > reservation.base + reservation.count)
      report(`HYP reservation: pages ${hex(start)}+${count} are outside its range`);
  }
  const seen = countOnce(ranges, report);
  for (const r of ranges) {
    s.memory.meta.runs(r.start, r.count, (start, frames, m) => {
      if (m !== null && m.owner === VMID_HYP && m.hyp === 'OWNED' && m.hypUse === 'STAGE2') return;
      // One line per page, as many as the report keeps.
      for (let f = start; f < start + Math.min(frames, VIOLATIONS_MAX); f++)
        report(`${r.who}: table page ${hex(f)} is ${m === null ? 'not memory' : `${vmidName(m.owner)}/${m.hyp}/${m.hypUse}`}, expected HYP/OWNED/STAGE2`);
    });
  }
  let marked = 0;
  for (const { frames, m } of records) if (m.hypUse !== 'NONE') marked += frames;
  if (marked !== seen) report(`${marked} granules are marked as table pages, ${seen} are in tables or pools`);
}

interface TablePageRange {
  readonly start: number;
  readonly count: number;
  /** The space whose roots, tables or pool hold the range. */
  readonly who: string;
}

/**
 * How many distinct frames the ranges hold, reporting each frame met a second time (in `ranges`
 * order, naming the space that met it again). Sorting finds whether any ranges overlap; only then
 * are frames counted one by one.
 */
function countOnce(ranges: readonly TablePageRange[], report: Report): number {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  let total = 0;
  let overlap = false;
  for (let i = 0; i < sorted.length; i++) {
    const r = sorted[i]!;
    total += r.count;
    if (i > 0 && sorted[i - 1]!.start + sorted[i - 1]!.count > r.start) overlap = true;
  }
  if (!overlap) return total;
  const seen = new Set<number>();
  for (const r of ranges) {
    for (let f = r.start; f < r.start + r.count; f++) {
      if (seen.has(f)) report(`${r.who}: table page ${hex(f)} counted twice`);
      seen.add(f);
    }
  }
  return seen.size;
}

function checkCounters(s: Stage2, records: readonly GranuleRun[], report: Report, guestShareMaps: Map<number, number>): void {
  for (const { start, frames, m } of records) {
    const hostView = (): string[] => {
      const states = new Set<string>();
      s.host.table.leafRuns(start, frames, (v) => void states.add(viewState(v.desc)));
      return [...states];
    };
    if (m.pins > 0 && m.hyp !== 'SHARED_BORROWED') report(`${hex(start)}+${frames}: pinned ${m.pins} but HYP sees ${m.hyp}`);
    if (m.hyp === 'SHARED_BORROWED' && (m.owner !== VMID_HOST || hostView().some((v) => v !== 'SHARED_OWNED')))
      report(`${hex(start)}+${frames}: HYP borrows it but the host does not share it (${hostView().join(',')})`);
    if (m.guestShares > 0) {
      if (hostView().some((v) => v !== 'SHARED_OWNED')) report(`${hex(start)}+${frames}: shared with guests but the host sees ${hostView().join(',')}`);
      for (let i = 0; i < frames; i++) {
        const mapped = guestShareMaps.get(start + i) ?? 0;
        if (mapped !== m.guestShares) {
          report(`${hex(start + i)}: guest share count ${m.guestShares}, guests map it ${mapped} time(s)`);
          break;
        }
      }
    }
  }
  for (const [frame, n] of guestShareMaps) {
    const m = s.memory.meta.get(frame);
    if ((m?.guestShares ?? 0) !== n) report(`${hex(frame)}: guests map it ${n} time(s), share count ${m?.guestShares ?? 0}`);
  }
}
