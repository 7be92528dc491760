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

/** Where table pages come from and go back to. */
export interface TablePageSource {
  take(): Pfn;
  give(frame: Pfn): void;
}

export class TablePage {
  readonly entries: Float64Array;
  readonly children: (TablePage | undefined)[] | null;
  constructor(
    readonly level: number,
    /** The granule holding this table (the first one, for concatenated roots). */
    public frame: Pfn,
    entryCount: number = ENTRIES_PER_TABLE,
  ) {
    this.entries = new Float64Array(entryCount);
    this.children = level < LEVEL_PAGE ? new Array<TablePage | undefined>(entryCount) : null;
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

export class TranslationTable {
  readonly startLevel: Level;
  readonly root: TablePage;
  /** Non-root table pages in use. */
  tablePages = 0;
  /** Released TablePage objects by level, reused by splits (saves allocation, not granules). */
  private readonly spare: TablePage[][] = [[], [], [], []];

  constructor(
    readonly ipaBits: number,
    readonly rootFrames: readonly Pfn[],
  ) {
    this.startLevel = startLevel(ipaBits);
    assert(rootFrames.length === rootTableCount(ipaBits), 'root frame count matches the IPA width');
    this.root = new TablePage(this.startLevel, rootFrames[0] as Pfn, ENTRIES_PER_TABLE * rootFrames.length);
  }

  /** Frames of input address space: [0, frameLimit). */
  get frameLimit(): number {
    return 2 ** (this.ipaBits - 12);
  }

  /** The leaf or invalid entry covering `frame`. */
  lookup(frame: number): LeafVisit {
    let t = this.root;
    for (;;) {
      const span = framesPerEntry(t.level);
      const i = t === this.root ? Math.floor(frame / span) : Math.floor(frame / span) % ENTRIES_PER_TABLE;
      const d = t.entries[i] as number;
      if (descIsTable(d, t.level)) {
        t = t.children?.[i] as TablePage;
        continue;
      }
      const base = frame - (frame % span);
      return { start: frame, frames: 1, desc: adjust(d, frame - base), level: t.level };
    }
  }

  /** Visits the leaves and invalid entries covering [base, base+count), clipped, in order. */
  leafRuns(base: number, count: number, visit: (v: LeafVisit) => boolean | void): void {
    let stopped = false;
    const walk = (t: TablePage, tableBase: number, lo: number, hi: number): void => {
      const span = framesPerEntry(t.level);
      const first = Math.floor((lo - tableBase) / span);
      const last = Math.floor((hi - 1 - tableBase) / span);
      for (let i = first; i <= last && !stopped; i++) {
        const eBase = tableBase + i * span;
        const a = Math.max(lo, eBase);
        const b = Math.min(hi, eBase + span);
        const d = t.entries[i] as number;
        if (descIsTable(d, t.level)) walk(t.children?.[i] as TablePage, eBase, a, b);
        else if (visit({ start: a, frames: b - a, desc: adjust(d, a - eBase), level: t.level }) === false) stopped = true;
      }
    };
    if (count > 0) walk(this.root, 0, base, base + count);
  }

  /**
   * Dry run of `rewrite`: how many new table pages it would take. `virtual` carries the tables an
   * earlier range of the same operation would already have created, so a multi-range count is exact.
   */
  tablesNeeded(base: number, count: number, rewrite: LeafRewrite, virtual: Set<string> = new Set()): number {
    let needed = 0;
    const walkDesc = (d: Descriptor, level: number, eBase: number, lo: number, hi: number): void => {
      // A leaf/invalid entry at `level` covering eBase..: rewrite in place or split virtually.
      const span = framesPerEntry(level);
      if (lo === eBase && hi === eBase + span && fitsAt(rewrite(d, eBase, level, span), level, span)) return;
      assert(level < LEVEL_PAGE, 'a page entry always rewrites in place');
      const key = `${level + 1}:${eBase}`;
      if (!virtual.has(key)) {
        virtual.add(key);
        needed++;
      }
      const childSpan = framesPerEntry(level + 1);
      const first = Math.floor((lo - eBase) / childSpan);
      const last = Math.floor((hi - 1 - eBase) / childSpan);
      for (let i = first; i <= last; i++) {
        const cBase = eBase + i * childSpan;
        walkDesc(splitChild(d, i, childSpan, level + 1), level + 1, cBase, Math.max(lo, cBase), Math.min(hi, cBase + childSpan));
      }
    };
    const walk = (t: TablePage, tableBase: number, lo: number, hi: number): void => {
      const span = framesPerEntry(t.level);
      const first = Math.floor((lo - tableBase) / span);
      const last = Math.floor((hi - 1 - tableBase) / span);
      for (let i = first; i <= last; i++) {
        const eBase = tableBase + i * span;
        const a = Math.max(lo, eBase);
        const b = Math.min(hi, eBase + span);
        const d = t.entries[i] as number;
        if (descIsTable(d, t.level)) walk(t.children?.[i] as TablePage, eBase, a, b);
        else walkDesc(d, t.level, eBase, a, b);
      }
    };
    if (count > 0) walk(this.root, 0, base, base + count);
    return needed;
  }

  /**
   * Commit: applies `rewrite` over [base, base+count), splitting blocks with pages from `pages` and
   * folding uniform tables back into `pages`. Cannot fail if `pages` holds `tablesNeeded` pages.
   */
  rewrite(base: number, count: number, rewrite: LeafRewrite, pages: TablePageSource): void {
    const walk = (t: TablePage, tableBase: number, lo: number, hi: number): void => {
      const span = framesPerEntry(t.level);
      const first = Math.floor((lo - tableBase) / span);
      const last = Math.floor((hi - 1 - tableBase) / span);
      for (let i = first; i <= last; i++) {
        const eBase = tableBase + i * span;
        const a = Math.max(lo, eBase);
        const b = Math.min(hi, eBase + span);
        let d = t.entries[i] as number;
        if (!descIsTable(d, t.level)) {
          if (a === eBase && b === eBase + span) {
            const r = rewrite(d, eBase, t.level, span);
            if (fitsAt(r, t.level, span)) {
              t.entries[i] = r as number;
              continue;
            }
          }
          assert(t.level < LEVEL_PAGE, 'a page entry always rewrites in place');
          const child = this.split(d, t.level + 1, pages);
          t.children![i] = child;
          d = tableDesc(child.frame);
          t.entries[i] = d;
        }
        const child = t.children![i] as TablePage;
        walk(child, eBase, a, b);
        const folded = foldedEntry(child, Math.floor((a - eBase) / framesPerEntry(child.level)));
        if (folded !== undefined) {
          t.entries[i] = folded;
          t.children![i] = undefined;
          this.release(child, pages);
        }
      }
    };
    if (count > 0) walk(this.root, 0, base, base + count);
  }

  /** Every table page below the roots, in walk order (for teardown and invariant checks). */
  tables(): TablePage[] {
    const out: TablePage[] = [];
    const walk = (t: TablePage): void => {
      t.children?.forEach((c) => {
        if (c !== undefined) {
          out.push(c);
          walk(c);
        }
      });
    };
    walk(this.root);
    return out;
  }

  private split(d: Descriptor, level: number, pages: TablePageSource): TablePage {
    const frame = pages.take();
    const reused = this.spare[level]!.pop();
    const child = reused ?? new TablePage(level, frame);
    child.frame = frame;
    this.tablePages++;
    const e = child.entries;
    if (!descHasOutput(d)) {
      e.fill(d);
      return child;
    }
    // Consecutive output frames, same attributes: entry i = entry 0 + i * span frames.
    const d0 = descAtLevel(d, level);
    const step = framesPerEntry(level) * OA_UNIT;
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) e[i] = d0 + i * step;
    return child;
  }

  /** Gives a folded table's granule back. A table folds only when it holds no table entries. */
  private release(t: TablePage, pages: TablePageSource): void {
    pages.give(t.frame);
    this.tablePages--;
    this.spare[t.level]!.push(t);
  }
}

/** Descriptor `d` with its output frame moved `offset` frames on (if it has one). */
const adjust = (d: Descriptor, offset: number): Descriptor =>
  offset !== 0 && descHasOutput(d) ? withOutputFrame(d, descOutputFrame(d) + offset) : d;

/** The i-th child of a split block/invalid entry: same attributes, consecutive output frames. */
const splitChild = (d: Descriptor, i: number, childSpan: number, childLevel: number): Descriptor =>
  descHasOutput(d) ? descAtLevel(withOutputFrame(d, descOutputFrame(d) + i * childSpan), childLevel) : d;

/** Whether a rewrite result can stand as one entry at `level` (blocks need L1+ and an aligned output). */
function fitsAt(r: Descriptor | undefined, level: number, span: number): boolean {
  if (r === undefined) return false;
  if (!descHasOutput(r)) return true;
  return leafAllowedAt(level) && descOutputFrame(r) % span === 0;
}

/**
 * The single parent entry a table can fold into, or undefined if its entries are not uniform.
 * `probe` is an entry the caller just rewrote: checking it (and the last entry) first makes the
 * common no-fold answer O(1).
 */
function foldedEntry(t: TablePage, probe: number): Descriptor | undefined {
  const e = t.entries;
  const d0 = e[0] as number;
  if (descIsTable(d0, t.level)) return undefined;
  const parentLevel = t.level - 1;
  if (!descHasOutput(d0)) {
    if (e[probe] !== d0 || e[ENTRIES_PER_TABLE - 1] !== d0) return undefined;
    for (let i = 1; i < ENTRIES_PER_TABLE; i++) if (e[i] !== d0) return undefined;
    return d0 === DESC_INVALID || leafAllowedAt(parentLevel) ? d0 : undefined;
  }
  if (!leafAllowedAt(parentLevel)) return undefined;
  const span = framesPerEntry(t.level);
  if (descOutputFrame(d0) % (span * ENTRIES_PER_TABLE) !== 0) return undefined;
  // Identical attributes and consecutive output frames: entry i = entry 0 + i * span frames.
  const step = span * OA_UNIT;
  if (e[probe] !== d0 + probe * step || e[ENTRIES_PER_TABLE - 1] !== d0 + (ENTRIES_PER_TABLE - 1) * step) return undefined;
  for (let i = 1; i < ENTRIES_PER_TABLE; i++) if (e[i] !== d0 + i * step) return undefined;
  return descAtLevel(d0, parentLevel);
}
