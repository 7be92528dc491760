/**
 * Physical memory: the configured RAM and MMIO regions, cut into 4 KiB granules, each with one
 * record (granule.ts) and at most one live grant. Addresses outside every region hold no granule.
 *
 * Defaults (DESIGN.md §2): 16 GiB of RAM at 2 GiB, 1 GiB of MMIO at 0, a 40-bit physical address
 * space (a host stage-2 with start level 1 and two concatenated roots, §B4).
 */

import { err, ok, type Result } from '../result.js';
import { GRANULE_SIZE, VMID_HOST, type FrameRange, type Pfn } from '../types.js';
import { granuleMeta, type GranuleMeta, type MemoryKind } from './granule.js';
import { RadixMap } from './radix-map.js';

export interface MemoryRegion {
  /** Physical base address in bytes, 4 KiB aligned. */
  readonly base: number;
  /** Size in bytes, a non-zero multiple of 4 KiB. */
  readonly sizeBytes: number;
}

export interface MemoryConfig {
  /** Physical address width; also the host's IPA width (identity map). 32..48. */
  readonly paBits: number;
  readonly ram: readonly MemoryRegion[];
  readonly mmio: readonly MemoryRegion[];
}

const GiB = 2 ** 30;
export const DEFAULT_MEMORY_CONFIG: MemoryConfig = {
  paBits: 40,
  ram: [{ base: 2 * GiB, sizeBytes: 16 * GiB }],
  mmio: [{ base: 0, sizeBytes: 1 * GiB }],
};

export interface MemoryRegionFrames extends FrameRange<Pfn> {
  readonly kind: MemoryKind;
}

/** Granules [start, start+frames) that share the record `m`. */
export interface GranuleRun {
  readonly start: number;
  readonly frames: number;
  readonly m: GranuleMeta;
}

export class PhysicalMemory {
  /** Per-granule records; null where there is no memory. */
  readonly meta: RadixMap<GranuleMeta | null>;
  /** Id of the live grant covering each granule; 0 where none. */
  readonly grantOf: RadixMap<number>;
  readonly regions: readonly MemoryRegionFrames[];
  readonly frameCount: number;
  readonly ramFrames: number;

  constructor(readonly config: MemoryConfig) {
    const frameBits = config.paBits - 12;
    this.meta = new RadixMap<GranuleMeta | null>(frameBits, null);
    this.grantOf = new RadixMap<number>(frameBits, 0);
    this.frameCount = 2 ** frameBits;
    const regions: MemoryRegionFrames[] = [];
    for (const [kind, list] of [['RAM', config.ram], ['MMIO', config.mmio]] as const) {
      for (const r of list) regions.push({ kind, base: (r.base / GRANULE_SIZE) as Pfn, count: r.sizeBytes / GRANULE_SIZE });
    }
    regions.sort((a, b) => a.base - b.base);
    this.regions = regions;
    this.ramFrames = regions.filter((r) => r.kind === 'RAM').reduce((n, r) => n + r.count, 0);
    for (const r of regions) {
      const initial = granuleMeta({ kind: r.kind, owner: VMID_HOST, hyp: 'NOPAGE', pins: 0, guestShares: 0, rmi: 'NS', hypUse: 'NONE' });
      this.meta.update(r.base, r.count, () => initial);
    }
  }

  /**
   * Every run of granules with one record, in frame order, holes left out: one pass over the record
   * map, whose cost is the runs it holds, not the frames. The invariant checkers share it.
   */
  recordRuns(): GranuleRun[] {
    const out: GranuleRun[] = [];
    this.meta.runs(0, this.frameCount, (start, frames, m) => {
      if (m !== null) out.push({ start, frames, m });
    });
    return out;
  }

  /** The region holding `frame`, if any. */
  regionOf(frame: number): MemoryRegionFrames | undefined {
    // A loop rather than find(): every transition's range checks call this, with few regions.
    for (const r of this.regions) if (frame >= r.base && frame < r.base + r.count) return r;
    return undefined;
  }

  /**
   * pfn_range_is_valid + check_range_allowed_memory (§A3): 'ok' when the range lies inside one
   * region; 'outside' the PA space (or malformed) → -EINVAL; 'straddles' when it covers part of a
   * region and something else (a hole or another region) → -EINVAL; 'hole' when it touches no
   * memory at all → -EPERM in pKVM's terms.
   */
  classifyRange(base: number, count: number): 'ok' | 'outside' | 'straddles' | 'hole' {
    if (!Number.isInteger(base) || !Number.isInteger(count) || base < 0 || count <= 0) return 'outside';
    if (base + count > this.frameCount) return 'outside';
    const region = this.regionOf(base);
    if (region !== undefined && base + count <= region.base + region.count) return 'ok';
    const touches = this.regions.some((r) => r.base < base + count && base < r.base + r.count);
    return touches ? 'straddles' : 'hole';
  }

  /** Whole-frame-range validation shared by commands that take (pfn, nr_pages). */
  checkRange(base: number, count: number): Result<MemoryRegionFrames, 'outside' | 'straddles' | 'hole'> {
    const c = this.classifyRange(base, count);
    if (c !== 'ok') return err(c);
    return ok(this.regionOf(base) as MemoryRegionFrames);
  }
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Validates a memory configuration; returns a list of problems (empty when usable), each naming
 * the region by kind and base: zero size, base or size not 4 KiB aligned, beyond the PA width,
 * overlapping another region, no RAM at all, a PA width outside 32..48 (§B4: the host's IPA
 * width is the PA width, and the host stage-2 needs 32..48).
 */
export function memoryConfigProblems(c: MemoryConfig): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(c.paBits) || c.paBits < 32 || c.paBits > 48) problems.push(`PA width ${c.paBits} outside 32..48 bits`);
  const all = [...c.ram.map((r) => ({ ...r, kind: 'RAM' })), ...c.mmio.map((r) => ({ ...r, kind: 'MMIO' }))];
  if (c.ram.length === 0) problems.push('no RAM region');
  for (const r of all) {
    const name = `${r.kind} region at ${Number.isSafeInteger(r.base) ? hex(r.base) : String(r.base)}`;
    if (!Number.isSafeInteger(r.base) || r.base < 0 || r.base % GRANULE_SIZE !== 0) problems.push(`${name}: base not 4 KiB aligned`);
    if (r.sizeBytes === 0) problems.push(`${name}: zero size`);
    else if (!Number.isSafeInteger(r.sizeBytes) || r.sizeBytes < 0 || r.sizeBytes % GRANULE_SIZE !== 0) problems.push(`${name}: size ${r.sizeBytes} not a multiple of 4 KiB`);
    else if (Number.isInteger(c.paBits) && r.base + r.sizeBytes > 2 ** c.paBits)
      problems.push(`${name}: ends at ${hex(r.base + r.sizeBytes)}, beyond the ${c.paBits}-bit PA space (${hex(2 ** c.paBits)})`);
  }
  const sorted = [...all].sort((a, b) => a.base - b.base);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const q = sorted[i]!;
    if (p.base + p.sizeBytes > q.base) problems.push(`${p.kind} region at ${hex(p.base)} overlaps ${q.kind} region at ${hex(q.base)}`);
  }
  return problems;
}
