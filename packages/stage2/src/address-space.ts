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

import { withMeta } from './memory/granule.js';
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

export class TablePool implements TablePageSource {
  private readonly frames: Pfn[] = [];

  constructor(private readonly memory: PhysicalMemory) {}

  get size(): number {
    return this.frames.length;
  }

  /** Adds HYP-owned granules to the pool. */
  add(frames: Iterable<Pfn>): void {
    for (const f of frames) {
      this.memory.meta.update(f, 1, (m) => withMeta(m!, { hypUse: 'STAGE2' }));
      this.frames.push(f);
    }
  }

  /** Removes up to `max` pages for return to the host; their records are the caller's to change. */
  remove(max: number): Pfn[] {
    const out = this.frames.splice(Math.max(0, this.frames.length - max), max);
    for (const f of out) this.memory.meta.update(f, 1, (m) => withMeta(m!, { hypUse: 'NONE' }));
    return out;
  }

  take(): Pfn {
    const f = this.frames.pop();
    assert(f !== undefined, 'the check phase reserved enough table pages');
    return f;
  }

  give(frame: Pfn): void {
    this.frames.push(frame);
  }

  snapshot(): readonly Pfn[] {
    return [...this.frames];
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
    for (const f of rootFrames) memory.meta.update(f, 1, (m) => withMeta(m!, { hypUse: 'STAGE2' }));
  }

  get ipaBits(): number {
    return this.table.ipaBits;
  }
}
