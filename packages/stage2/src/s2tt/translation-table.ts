/**
 * A stage-2 translation table: concatenated roots at the start level, 512-entry tables below, leaves
 * as pages at L3 or blocks at L1/L2 (stage2-models.md §A2, §B4). Table pages are real granules taken
 * from the owning address space's pool (pool.ts) and given back to it when a table folds away.
 *
 * Mechanism only: `leafRuns` reads, `tablesNeeded` is the dry run a check phase uses to reserve
 * every table page before any change, and `rewrite` is the commit, which cannot fail once the pool
 * holds what `tablesNeeded` counted. A partial change to a block splits it (one new table per level
 * descended); a table whose entries become uniform folds back into one parent entry: all invalid
 * into an invalid entry, a contiguous aligned run of identical leaves into a block (L1/L2 only).
 * Folding is checked eagerly after every change; a table that still holds its split pattern is
 * known uniform without a scan (TablePage), so a change that is undone costs no 512-entry pass.
 */

import { assert } from '../result.js';
import type { Pfn } from '../types.js';
import {
  DESC_INVALID,
  descAtLevel,
  descHasOutput,
  descIsTable,
  descOutputFrame,
  OA_UNIT,
  tableDesc,
  withOutputFrame,
  type Descriptor,
} from './descriptor.js';
import { ENTRIES_PER_TABLE, LEVEL_PAGE, framesPerEntry, leafAllowedAt, rootTableCount, startLevel, type Level } from './geometry.js';

/** Index within a 512-entry table: `q & INDEX_MASK` is q mod 512 for any integer q below 2^53. */
const INDEX_MASK = ENTRIES_PER_TABLE - 1;

/** Where table pages come from and go back to. */
export interface TablePageSource {
  take(): Pfn;
  give(frame: Pfn): void;
}

/**
 * One table granule's entries. Besides the entries it keeps the pattern its split wrote (entry i =
 * `splitFirst + i * splitStep`: a block's consecutive outputs, or one invalid entry repeated) and
 * how many entries differ from it, so that the fold check after each change is O(1) in the common
 * case where a change is undone (share then unshare). Entries change only through `setEntry`.
 */
export class TablePage {
  readonly entries: Float64Array;
  readonly children: (TablePage | undefined)[] | null;
  /** Entry 0 and the step between entries as the split wrote them (roots: all invalid). */
  splitFirst: Descriptor = DESC_INVALID;
  splitStep = 0;
  /** Entries that differ from the split pattern; 0 means the table is uniform by construction. */
  splitMismatches = 0;
  constructor(
    readonly level: number,
    /** The granule holding this table (the first one, for concatenated roots). */
    public frame: Pfn,
    entryCount: number = ENTRIES_PER_TABLE,
  ) {
    this.entries = new Float64Array(entryCount);
    this.children = level < LEVEL_PAGE ? new Array<TablePage | undefined>(entryCount) : null;
  }

  /** Writes entry i, keeping the count of entries that differ from the split pattern. */
  setEntry(i: number, d: Descriptor): void {
    const expected = this.splitFirst + i * this.splitStep;
    if (this.entries[i] !== expected) this.splitMismatches--;
    if (d !== expected) this.splitMismatches++;
    this.entries[i] = d;
  }
}

/**
 * Rewrites the leaf (or invalid) descriptor `desc` covering [start, start+frames) at `level`.
 * `desc`'s output frame, if any, is already adjusted to `start`. Return the new descriptor, or
 * undefined when the result cannot be expressed at this level (the walk then splits and retries
 * one level down). Must be pure: the dry run calls it too.
 */
export type LeafRewrite = (desc: Descriptor, start: number, level: number, frames: number) => Descriptor | undefined;

export interface LeafVisit {
  /** First frame of the clipped run. */
  readonly start: number;
  readonly frames: number;
  /** Descriptor with its output frame (if any) adjusted to `start`. */
  readonly desc: Descriptor;
  readonly level: number;
}

/** The walk's own LeafVisit (visitRuns). */
type MutableLeafVisit = { -readonly [K in keyof LeafVisit]: LeafVisit[K] };

export class TranslationTable {
  readonly startLevel: Level;
  readonly root: TablePage;
  /** Non-root table pages in use. */
  tablePages = 0;
  /**
   * Released TablePage objects by level, reused by splits (saves allocation, not granules). Shared
   * by every table (SPARE_TABLES): a guest's tables fold away before its space can be destroyed, so
   * the next space's splits reuse them instead of allocating.
   */
  private readonly spare: TablePage[][] = SPARE_TABLES;

  constructor(
    readonly ipaBits: number,
    readonly rootFrames: readonly Pfn[],
  ) {
    this.startLevel = startLevel(ipaBits);
    assert(rootFrames.length === rootTableCount(ipaBits), 'root frame count matches the IPA width');
    this.root = spareRoot(this.startLevel, rootFrames[0] as Pfn, ENTRIES_PER_TABLE * rootFrames.length) ?? new TablePage(this.startLevel, rootFrames[0] as Pfn, ENTRIES_PER_TABLE * rootFrames.length);
  }

  /**
   * The table is gone with its address space (spaces.ts destroyAddressSpace): an empty root (every
   * entry invalid, no table below) is kept for the next space of its shape, so a VM's create and
   * destroy do not allocate and collect a root's 8 KiB of entries each time. The table must not be
   * used afterwards.
   */
  discard(): void {
    const r = this.root;
    // The root's split pattern is all invalid: no mismatch means every entry is DESC_INVALID.
    if (this.tablePages !== 0 || r.splitMismatches !== 0 || r.splitFirst !== DESC_INVALID || r.splitStep !== 0) return;
    const spare = SPARE_ROOTS.get(r.entries.length) ?? [];
    if (spare.length === 0) SPARE_ROOTS.set(r.entries.length, spare);
    if (spare.length < SPARE_ROOTS_MAX && !spare.includes(r)) spare.push(r);
  }

  /** Frames of input address space: [0, frameLimit). */
  get frameLimit(): number {
    return 2 ** (this.ipaBits - 12);
  }

  /** The leaf or invalid entry covering `frame`. */
  lookup(frame: number): LeafVisit {
    assert(Number.isInteger(frame) && frame >= 0 && frame < this.frameLimit, 'callers check frames against the IPA width');
    let t = this.root;
    for (;;) {
      const span = framesPerEntry(t.level);
      const q = Math.floor(frame / span);
      const i = t === this.root ? q : q & INDEX_MASK;
      const d = t.entries[i] as number;
      if (descIsTable(d, t.level)) {
        t = t.children?.[i] as TablePage;
        continue;
      }
      return { start: frame, frames: 1, desc: adjust(d, frame - q * span), level: t.level };
    }
  }

  /** Visits the leaves and invalid entries covering [base, base+count), clipped, in order. */
  leafRuns(base: number, count: number, visit: (v: LeafVisit) => boolean | void): void {
    // One frame is one entry: the walk below would visit exactly what lookup returns.
    assert(count <= 0 || (base >= 0 && base + count <= this.frameLimit), 'callers check ranges against the IPA width');
    if (count === 1) visit(this.lookup(base));
    else if (count > 0) this.visitRuns(this.root, 0, base, base + count, visit, { start: 0, frames: 0, desc: DESC_INVALID, level: 0 });
  }

  /**
   * leafRuns below `t`; false once `visit` has asked to stop. One LeafVisit per walk, rewritten for
   * each leaf: a caller keeps a visit only by stopping the walk at it (views.ts findView).
   */
  private visitRuns(t: TablePage, tableBase: number, lo: number, hi: number, visit: (v: LeafVisit) => boolean | void, v: MutableLeafVisit): boolean {
    const span = framesPerEntry(t.level);
    const first = Math.floor((lo - tableBase) / span);
    const last = Math.floor((hi - 1 - tableBase) / span);
    for (let i = first; i <= last; i++) {
      const eBase = tableBase + i * span;
      const a = Math.max(lo, eBase);
      const b = Math.min(hi, eBase + span);
      const d = t.entries[i] as number;
      if (descIsTable(d, t.level)) {
        if (!this.visitRuns(t.children?.[i] as TablePage, eBase, a, b, visit, v)) return false;
      } else {
        v.start = a;
        v.frames = b - a;
        v.desc = adjust(d, a - eBase);
        v.level = t.level;
        if (visit(v) === false) return false;
      }
    }
    return true;
  }

  /**
   * Visits the entries that have an output (valid leaves and LENT annotations) over the whole IPA
   * space, in order, as maximal runs: consecutive entries with the same attributes and consecutive
   * output frames are merged (a split block's 512 pages are one run). Invalid entries are skipped
   * without a callback, so the cost is the entries of the tables that exist (the populated
   * state), never the size of the IPA space. `desc` is the run's first entry, at its level.
   */
  mappedRuns(visit: (start: number, frames: number, desc: Descriptor) => void): void {
    const run: MappedRun = { start: 0, frames: 0, desc: DESC_INVALID, next: DESC_INVALID, last: DESC_INVALID, lastLevel: -1, visit };
    this.mappedBelow(this.root, 0, run);
    if (run.frames > 0) visit(run.start, run.frames, run.desc);
  }

  private mappedBelow(t: TablePage, tableBase: number, run: MappedRun): void {
    const level = t.level;
    const span = framesPerEntry(level);
    const step = span * OA_UNIT;
    const e = t.entries;
    const n = e.length;
    const children = t.children;
    for (let i = 0; i < n; i++) {
      const d = e[i] as number;
      if (d === DESC_INVALID) continue;
      // Fast path: the run's last entry plus one span of output, at the same level, right after it
      // (the same low bits as a leaf, so not a table).
      if (d === run.last + step && run.lastLevel === level && run.frames > 0 && tableBase + i * span === run.start + run.frames) {
        run.frames += span;
        run.last = d;
        run.next += step;
        continue;
      }
      const eBase = tableBase + i * span;
      if (descIsTable(d, level)) {
        this.mappedBelow(children![i] as TablePage, eBase, run);
        continue;
      }
      if (!descHasOutput(d)) continue;
      run.last = d;
      run.lastLevel = level;
      // The same attributes and the next output frame continue the run (compared at page level).
      const atPage = descAtLevel(d, LEVEL_PAGE);
      if (run.frames > 0 && eBase === run.start + run.frames && atPage === run.next) {
        run.frames += span;
        run.next += step;
        continue;
      }
      if (run.frames > 0) run.visit(run.start, run.frames, run.desc);
      run.start = eBase;
      run.frames = span;
      run.desc = d;
      run.next = atPage + step;
    }
  }

  /** The first frame whose entry has an output (mapped or LENT), or undefined; skips invalid entries. */
  firstMapped(): number | undefined {
    let found: number | undefined;
    const walk = (t: TablePage, tableBase: number): boolean => {
      const span = framesPerEntry(t.level);
      const e = t.entries;
      for (let i = 0; i < e.length; i++) {
        const d = e[i] as number;
        if (d === DESC_INVALID) continue;
        if (descIsTable(d, t.level)) {
          if (walk(t.children![i] as TablePage, tableBase + i * span)) return true;
        } else if (descHasOutput(d)) {
          found = tableBase + i * span;
          return true;
        }
      }
      return false;
    };
    walk(this.root, 0);
    return found;
  }

  /**
   * Dry run of `rewrite`: how many new table pages it would take. `virtual` carries the tables an
   * earlier range of the same operation would already have created, so a multi-range count is exact.
   * Without it (a single range) no table can be counted twice: one walk meets each entry once.
   */
  tablesNeeded(base: number, count: number, rewrite: LeafRewrite, virtual: Set<number> | null = null): number {
    return count > 0 ? this.neededBelow(this.root, 0, base, base + count, rewrite, virtual) : 0;
  }

  private neededBelow(t: TablePage, tableBase: number, lo: number, hi: number, rewrite: LeafRewrite, virtual: Set<number> | null): number {
    const span = framesPerEntry(t.level);
    const first = Math.floor((lo - tableBase) / span);
    const last = Math.floor((hi - 1 - tableBase) / span);
    let needed = 0;
    for (let i = first; i <= last; i++) {
      const eBase = tableBase + i * span;
      const a = Math.max(lo, eBase);
      const b = Math.min(hi, eBase + span);
      const d = t.entries[i] as number;
      if (descIsTable(d, t.level)) needed += this.neededBelow(t.children?.[i] as TablePage, eBase, a, b, rewrite, virtual);
      else needed += neededAt(d, t.level, eBase, a, b, rewrite, virtual);
    }
    return needed;
  }

  /**
   * Commit: applies `rewrite` over [base, base+count), splitting blocks with pages from `pages` and
   * folding uniform tables back into `pages`. Cannot fail if `pages` holds `tablesNeeded` pages.
   */
  rewrite(base: number, count: number, rewrite: LeafRewrite, pages: TablePageSource): void {
    if (count > 0) this.rewriteBelow(this.root, 0, base, base + count, rewrite, pages);
  }

  private rewriteBelow(t: TablePage, tableBase: number, lo: number, hi: number, rewrite: LeafRewrite, pages: TablePageSource): void {
    const span = framesPerEntry(t.level);
    const first = Math.floor((lo - tableBase) / span);
    const last = Math.floor((hi - 1 - tableBase) / span);
    for (let i = first; i <= last; i++) {
      const eBase = tableBase + i * span;
      const a = Math.max(lo, eBase);
      const b = Math.min(hi, eBase + span);
      const d = t.entries[i] as number;
      if (!descIsTable(d, t.level)) {
        if (a === eBase && b === eBase + span) {
          const r = rewrite(d, eBase, t.level, span);
          if (fitsAt(r, t.level, span)) {
            t.setEntry(i, r as number);
            continue;
          }
        }
        assert(t.level < LEVEL_PAGE, 'a page entry always rewrites in place');
        const child = this.split(d, t.level + 1, pages);
        t.children![i] = child;
        t.setEntry(i, tableDesc(child.frame));
      }
      const child = t.children![i] as TablePage;
      this.rewriteBelow(child, eBase, a, b, rewrite, pages);
      const folded = foldedEntry(child, Math.floor((a - eBase) / framesPerEntry(child.level)));
      if (folded !== undefined) {
        t.setEntry(i, folded);
        t.children![i] = undefined;
        this.release(child, pages);
      }
    }
  }

  /** Every table page below the roots, in walk order (for teardown and invariant checks). */
  tables(): TablePage[] {
    const out: TablePage[] = [];
    const walk = (t: TablePage): void => {
      const children = t.children;
      if (children === null) return;
      for (let i = 0; i < children.length; i++) {
        const c = children[i];
        if (c !== undefined) {
          out.push(c);
          walk(c);
        }
      }
    };
    walk(this.root);
    return out;
  }

  /**
   * Recomputes what the walks keep incrementally, for the invariant checker: each table's count
   * of entries off its split pattern, and that no table was left uniform (fold is eager, §A2).
   */
  problems(tables: readonly TablePage[] = this.tables()): string[] {
    const out: string[] = [];
    for (const t of tables) {
      const at = (): string => `level-${t.level} table at 0x${(t.frame * 4096).toString(16)}`;
      const e = t.entries;
      const first = t.splitFirst;
      const step = t.splitStep;
      let mismatches = 0;
      for (let i = 0; i < ENTRIES_PER_TABLE; i++) if (e[i] !== first + i * step) mismatches++;
      if (mismatches !== t.splitMismatches) out.push(`${at()}: ${mismatches} entries differ from its split pattern, its counter says ${t.splitMismatches}`);
      if (foldedEntry(t, 0, false) !== undefined) out.push(`${at()}: entries are uniform but the table was not folded`);
    }
    return out;
  }

  private split(d: Descriptor, level: number, pages: TablePageSource): TablePage {
    const frame = pages.take();
    const reused = this.spare[level]!.pop();
    const child = reused ?? new TablePage(level, frame);
    child.frame = frame;
    this.tablePages++;
    const e = child.entries;
    child.splitMismatches = 0;
    if (!descHasOutput(d)) {
      e.fill(d);
      child.splitFirst = d;
      child.splitStep = 0;
      return child;
    }
    // Consecutive output frames, same attributes: entry i = entry 0 + i * span frames. Every
    // partial change of a block writes 512 of these; unrolled by 8 the loop runs about twice as
    // fast in V8 (it does not vectorise it). ENTRIES_PER_TABLE is a multiple of 8.
    const d0 = descAtLevel(d, level);
    const step = framesPerEntry(level) * OA_UNIT;
    for (let i = 0; i < ENTRIES_PER_TABLE; i += 8) {
      const v = d0 + i * step;
      e[i] = v;
      e[i + 1] = v + step;
      e[i + 2] = v + 2 * step;
      e[i + 3] = v + 3 * step;
      e[i + 4] = v + 4 * step;
      e[i + 5] = v + 5 * step;
      e[i + 6] = v + 6 * step;
      e[i + 7] = v + 7 * step;
    }
    child.splitFirst = d0;
    child.splitStep = step;
    return child;
  }

  /** Gives a folded table's granule back. A table folds only when it holds no table entries. */
  private release(t: TablePage, pages: TablePageSource): void {
    pages.give(t.frame);
    this.tablePages--;
    // Keep a few objects for the next splits; the rest go to the garbage collector (RSS bar, §6).
    if (this.spare[t.level]!.length < SPARE_TABLES_MAX) this.spare[t.level]!.push(t);
  }
}

/** The run `mappedRuns` is merging; `next` is the page-level descriptor that would continue it. */
interface MappedRun {
  start: number;
  frames: number;
  desc: Descriptor;
  next: Descriptor;
  /** The last entry merged and its level, for the fast path (same table, next output). */
  last: Descriptor;
  lastLevel: number;
  readonly visit: (start: number, frames: number, desc: Descriptor) => void;
}

/** Empty roots of destroyed spaces by entry count, and how many of each are kept (TranslationTable.discard). */
const SPARE_ROOTS = new Map<number, TablePage[]>();
const SPARE_ROOTS_MAX = 16;

/** A kept empty root of `entryCount` entries, at `level`, now holding `frame`; undefined when none is kept. */
function spareRoot(level: number, frame: Pfn, entryCount: number): TablePage | undefined {
  const spare = SPARE_ROOTS.get(entryCount);
  if (spare === undefined) return undefined;
  for (let k = spare.length - 1; k >= 0; k--) {
    const r = spare[k]!;
    if (r.level !== level) continue;
    spare.splice(k, 1);
    r.frame = frame;
    return r;
  }
  return undefined;
}

/** Released table objects kept per level for reuse. */
const SPARE_TABLES_MAX = 16;
/**
 * The spare TablePage objects of every table, by level. A released object belongs to no table (its
 * parent entry was folded and its child slot cleared), and a split rewrites every field it reads.
 */
const SPARE_TABLES: TablePage[][] = [[], [], [], []];

/** Descriptor `d` with its output frame moved `offset` frames on (if it has one). */
const adjust = (d: Descriptor, offset: number): Descriptor =>
  offset !== 0 && descHasOutput(d) ? withOutputFrame(d, descOutputFrame(d) + offset) : d;

/**
 * Tables a leaf/invalid entry `d` at `level` covering eBase.. would need for the clipped part
 * [lo, hi): none if the rewrite stands in place, else one for the split plus what its children need.
 */
function neededAt(d: Descriptor, level: number, eBase: number, lo: number, hi: number, rewrite: LeafRewrite, virtual: Set<number> | null): number {
  const span = framesPerEntry(level);
  if (lo === eBase && hi === eBase + span && fitsAt(rewrite(d, eBase, level, span), level, span)) return 0;
  assert(level < LEVEL_PAGE, 'a page entry always rewrites in place');
  let needed = 0;
  // The new table at level+1 is named by its first frame and level: a number key, exact below 2^53.
  const key = eBase * VIRTUAL_KEY_LEVELS + level + 1;
  if (virtual === null) needed++;
  else if (!virtual.has(key)) {
    virtual.add(key);
    needed++;
  }
  const childSpan = framesPerEntry(level + 1);
  const first = Math.floor((lo - eBase) / childSpan);
  const last = Math.floor((hi - 1 - eBase) / childSpan);
  for (let i = first; i <= last; i++) {
    const cBase = eBase + i * childSpan;
    needed += neededAt(splitChild(d, i, childSpan, level + 1), level + 1, cBase, Math.max(lo, cBase), Math.min(hi, cBase + childSpan), rewrite, virtual);
  }
  return needed;
}

/** Levels 0..3 fit in a key's lowest digit (see neededAt). */
const VIRTUAL_KEY_LEVELS = 4;

/** The i-th child of a split block/invalid entry: same attributes, consecutive output frames. */
const splitChild = (d: Descriptor, i: number, childSpan: number, childLevel: number): Descriptor =>
  descHasOutput(d) ? descAtLevel(withOutputFrame(d, descOutputFrame(d) + i * childSpan), childLevel) : d;

/** `frame % span === 0` for a power-of-two span, without a float modulo (frames exceed 2^31). */
const isAligned = (frame: number, span: number): boolean => Math.floor(frame / span) * span === frame;

/** Whether a rewrite result can stand as one entry at `level` (blocks need L1+ and an aligned output). */
function fitsAt(r: Descriptor | undefined, level: number, span: number): boolean {
  if (r === undefined) return false;
  if (!descHasOutput(r)) return true;
  return leafAllowedAt(level) && isAligned(descOutputFrame(r), span);
}

/**
 * The single parent entry a table can fold into, or undefined if its entries are not uniform.
 * A table that still matches its split pattern is uniform without a scan. Otherwise `probe`, an
 * entry the caller just rewrote, is checked first (with the last entry): that makes the common
 * no-fold answer O(1).
 */
function foldedEntry(t: TablePage, probe: number, asSplit: boolean = t.splitMismatches === 0): Descriptor | undefined {
  const e = t.entries;
  const d0 = e[0] as number;
  if (descIsTable(d0, t.level)) return undefined;
  const parentLevel = t.level - 1;
  // (asSplit) A split pattern comes from one leaf or invalid entry: uniform as checked below.
  if (!descHasOutput(d0)) {
    if (!asSplit) {
      if (e[probe] !== d0 || e[ENTRIES_PER_TABLE - 1] !== d0) return undefined;
      for (let i = 1; i < ENTRIES_PER_TABLE; i++) if (e[i] !== d0) return undefined;
    }
    return d0 === DESC_INVALID || leafAllowedAt(parentLevel) ? d0 : undefined;
  }
  if (!leafAllowedAt(parentLevel)) return undefined;
  const span = framesPerEntry(t.level);
  if (!isAligned(descOutputFrame(d0), span * ENTRIES_PER_TABLE)) return undefined;
  if (!asSplit) {
    // Identical attributes and consecutive output frames: entry i = entry 0 + i * span frames.
    const step = span * OA_UNIT;
    if (e[probe] !== d0 + probe * step || e[ENTRIES_PER_TABLE - 1] !== d0 + (ENTRIES_PER_TABLE - 1) * step) return undefined;
    for (let i = 1; i < ENTRIES_PER_TABLE; i++) if (e[i] !== d0 + i * step) return undefined;
  }
  return descAtLevel(d0, parentLevel);
}
