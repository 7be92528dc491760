/**
 * An address space: one component's stage-2 translation table and the pool of HYP-owned granules
 * its table pages come from (pKVM's per-VM memcache, topped up by host_donate_hyp, seed 003).
 *
 * HOST is identity-mapped (IPA = PA) and its pool is the boot carve-out, sized so that its table can
 * map all memory at page granularity (as pKVM sizes host_s2 at boot); it never runs dry. Every other
 * space (RM, guests) gets its root tables and pool pages from host donations or, when the RM
 * created it, from HYP's boot reservation (hyp-reservation.ts), and fails a change
 * with -ENOMEM, changing nothing, when its pool cannot cover the table pages the change needs.
 * HYP's own stage-1 is not modelled: HYP's view lives in the granule records (granule.ts).
 * Realm spaces are RTTs driven by RMI commands (rmi/), not this structure.
 */

import { lastResultMemo, metaUpdate, type GranuleMeta } from './memory/granule.js';
import type { PhysicalMemory } from './memory/physical-memory.js';
import { assert } from './result.js';
import { TranslationTable, type TablePageSource } from './s2tt/translation-table.js';
import { VMID_HOST, type Pfn, type Vmid } from './types.js';

export type AddressSpaceKind = 'HOST' | 'GUEST';

/**
 * A guest's pKVM kind (stage2-models.md §A5): a *protected* VM gets memory only by
 * __pkvm_host_donate_guest, a *non-protected* one only by __pkvm_host_share_guest (the v6.14
 * non-protected-guest series). ANY accepts both: the model's behaviour before VMs had a kind, kept
 * as the default (proto VM_PROTECTION_UNSPECIFIED) so existing clients see no change.
 */
export type VmProtection = 'ANY' | 'PROTECTED' | 'NON_PROTECTED';

/** A pool's and a root's record changes, memoised per record (every space create, top-up and teardown). */
const toStage2Use = metaUpdate({ hypUse: 'STAGE2' });
const toNoUse = metaUpdate({ hypUse: 'NONE' });

/**
 * The pool is a stack of frames (take pops the last one given), kept as runs of consecutive frames:
 * the host's boot pool is one run however much memory it can map, so the invariant checker and a
 * snapshot cost what the pool's shape costs, not its size.
 */
export class TablePool implements TablePageSource {
  /** [start, count] runs, bottom of the stack first; each run is pushed in ascending frame order. */
  private readonly runs: [start: number, count: number][] = [];
  private frameCount = 0;

  constructor(private readonly memory: PhysicalMemory) {}

  get size(): number {
    return this.frameCount;
  }

  /** Adds HYP-owned granules to the pool. */
  add(frames: Iterable<Pfn>): void {
    const mark = lastResultMemo(toStage2Use) as (m: GranuleMeta | null) => GranuleMeta;
    let runStart = -1;
    let runCount = 0;
    for (const f of frames) {
      if (runCount > 0 && f === runStart + runCount) runCount++;
      else {
        if (runCount > 0) this.memory.meta.update(runStart, runCount, mark);
        runStart = f;
        runCount = 1;
      }
      this.push(f);
    }
    if (runCount > 0) this.memory.meta.update(runStart, runCount, mark);
  }

  /** Removes up to `max` pages for return to the host; their records are the caller's to change. */
  remove(max: number): Pfn[] {
    const n = Math.min(Math.max(0, max), this.frameCount);
    const out: Pfn[] = new Array<Pfn>(n);
    for (let i = n - 1; i >= 0; i--) out[i] = this.pop();
    const unmark = lastResultMemo(toNoUse) as (m: GranuleMeta | null) => GranuleMeta;
    // One update per run of consecutive frames (a run pushed by `add` pops back as one).
    for (let i = 0; i < n; ) {
      let k = i + 1;
      while (k < n && out[k] === out[k - 1]! + 1) k++;
      this.memory.meta.update(out[i]!, k - i, unmark);
      i = k;
    }
    return out;
  }

  take(): Pfn {
    assert(this.frameCount > 0, 'the check phase reserved enough table pages');
    return this.pop();
  }

  give(frame: Pfn): void {
    this.push(frame);
  }

  /** The frames, bottom of the stack first. */
  snapshot(): readonly Pfn[] {
    const out: Pfn[] = [];
    for (const [start, count] of this.runs) for (let i = 0; i < count; i++) out.push((start + i) as Pfn);
    return out;
  }

  /** The frames as runs of consecutive frames, in snapshot order (for the invariant checker). */
  frameRuns(): readonly (readonly [start: number, count: number])[] {
    return this.runs;
  }

  private push(frame: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && frame === last[0] + last[1]) last[1]++;
    else this.runs.push([frame, 1]);
    this.frameCount++;
  }

  private pop(): Pfn {
    const last = this.runs[this.runs.length - 1]!;
    const f = (last[0] + last[1] - 1) as Pfn;
    if (--last[1] === 0) this.runs.pop();
    this.frameCount--;
    return f;
  }
}

export class AddressSpace {
  readonly table: TranslationTable;
  readonly pool: TablePool;

  constructor(
    readonly vmid: Vmid,
    readonly kind: AddressSpaceKind,
    ipaBits: number,
    readonly rootFrames: readonly Pfn[],
    memory: PhysicalMemory,
    readonly protection: VmProtection = 'ANY',
    /** Who created the space (hyp-reservation.ts SPACE_CREATORS): only it may destroy it. */
    readonly creator: Vmid = VMID_HOST,
  ) {
    this.table = new TranslationTable(ipaBits, rootFrames);
    this.pool = new TablePool(memory);
    for (const f of rootFrames) memory.meta.update(f, 1, toStage2Use as (m: GranuleMeta | null) => GranuleMeta);
  }

  get ipaBits(): number {
    return this.table.ipaBits;
  }
}
