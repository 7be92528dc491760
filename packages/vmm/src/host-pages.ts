/**
 * The VMM's host-page allocator: the region of host RAM it may donate to HYP (stage-2 table pages,
 * seed 003) and delegate to the RMM (realm RDs, RTTs and DATA granules, seed 004). The region is
 * configuration (`VmmConfig.donationRegion`); the VMM never touches host memory outside it except
 * what clients bind as guest memory, and binding memory inside the region is refused.
 *
 * First fit over a bitmap of the region's frames; runs are contiguous (realm roots and stage-2
 * roots must be). Every page handed out is accounted until freed, so teardown can prove that every
 * page came back (`inUse() === 0`).
 */
export interface FrameRun {
  readonly base: number;
  readonly count: number;
}

export const PAGE_BYTES = 4096;

/**
 * Pages one TopUpTablePool may donate: the core's frames_per_call cap (services/core admission.ts,
 * issue 10), so a large pool reservation goes in several calls and never stalls the core's other clients.
 */
export const TOP_UP_PAGES_PER_CALL = 1024;

export class HostPageAllocator {
  private readonly used: Uint8Array;
  private busy = 0;

  constructor(readonly region: FrameRun) {
    this.used = new Uint8Array(region.count);
  }

  /** A contiguous run of `count` free frames, now in use; undefined when no run fits. */
  allocRun(count: number): FrameRun | undefined {
    if (count <= 0) return undefined;
    let start = 0;
    for (let i = 0; i < this.used.length; i++) {
      if (this.used[i] !== 0) {
        start = i + 1;
        continue;
      }
      if (i - start + 1 === count) {
        this.used.fill(1, start, start + count);
        this.busy += count;
        return { base: this.region.base + start, count };
      }
    }
    return undefined;
  }

  /** One free frame's byte address, or undefined. */
  allocPage(): number | undefined {
    const r = this.allocRun(1);
    return r === undefined ? undefined : r.base * PAGE_BYTES;
  }

  /**
   * Marks a run in use that was not handed out here: frames a previous VMM process donated or
   * delegated (restart-sweep.ts). The part of the run inside the region is held and returned;
   * `freeRun` releases it.
   */
  hold(run: FrameRun): FrameRun | undefined {
    const lo = Math.max(run.base, this.region.base);
    const hi = Math.min(run.base + run.count, this.region.base + this.region.count);
    if (lo >= hi) return undefined;
    for (let f = lo; f < hi; f++) {
      if (this.used[f - this.region.base] !== 0) throw new Error(`bug: frame 0x${f.toString(16)} held while in use`);
      this.used[f - this.region.base] = 1;
    }
    this.busy += hi - lo;
    return { base: lo, count: hi - lo };
  }

  /**
   * Holds the frames of `run` inside the region that are not in use yet (restart-sweep.ts: the
   * region's frames that are not the host's, less the pool runs of re-adopted VMs already held).
   */
  holdUnused(run: FrameRun): FrameRun[] {
    const lo = Math.max(run.base, this.region.base);
    const hi = Math.min(run.base + run.count, this.region.base + this.region.count);
    const out: FrameRun[] = [];
    let start = -1;
    for (let f = lo; f <= hi; f++) {
      const free = f < hi && this.used[f - this.region.base] === 0;
      if (free && start < 0) start = f;
      if (!free && start >= 0) {
        out.push(this.hold({ base: start, count: f - start })!);
        start = -1;
      }
    }
    return out;
  }

  freeRun(run: FrameRun): void {
    const off = run.base - this.region.base;
    for (let i = off; i < off + run.count; i++) {
      if (i < 0 || i >= this.used.length || this.used[i] === 0) throw new Error(`bug: frame 0x${(this.region.base + i).toString(16)} freed twice or outside the region`);
      this.used[i] = 0;
    }
    this.busy -= run.count;
  }

  freePage(addr: number): void {
    this.freeRun({ base: addr / PAGE_BYTES, count: 1 });
  }

  /** Frames handed out and not yet freed. */
  inUse(): number {
    return this.busy;
  }

  /** Whether byte range [addr, addr + size) intersects the region. */
  overlaps(addr: bigint, size: bigint): boolean {
    const lo = BigInt(this.region.base) * BigInt(PAGE_BYTES);
    const hi = lo + BigInt(this.region.count) * BigInt(PAGE_BYTES);
    return addr < hi && lo < addr + size;
  }
}

/** The core's memory map as the VMM needs it (CoreService.GetMemoryMap): RAM regions and HYP's carve-out, in frames. */
export interface RamMapView {
  readonly ram: readonly FrameRun[];
  /** HYP's boot carve-out (the host stage-2), at the top of the highest RAM region; never donatable. */
  readonly hypCarveout: FrameRun;
}

/** Default size of a derived donation region: 64 MiB. */
export const DONATION_REGION_PAGES_DEFAULT = (64 * 2 ** 20) / PAGE_BYTES;

/**
 * The donation region taken from the core's map: the top `pages` frames of the highest RAM region,
 * below HYP's carve-out where the carve-out sits at that region's top (it does: stage2.ts boots it
 * there), and no more than the region holds. Undefined when the region has no frame left.
 */
export function donationRegionFrom(map: RamMapView, pages: number = DONATION_REGION_PAGES_DEFAULT): FrameRun | undefined {
  const top = [...map.ram].sort((a, b) => a.base - b.base).at(-1);
  if (top === undefined) return undefined;
  const end = top.base + top.count;
  const c = map.hypCarveout;
  const limit = c.count > 0 && c.base >= top.base && c.base < end ? c.base : end;
  const count = Math.min(pages, limit - top.base);
  return count > 0 ? { base: limit - count, count } : undefined;
}

/**
 * Why a configured donation region cannot be used with the core's map, or undefined: it must lie
 * inside one RAM region and clear of HYP's carve-out, or the VMM would donate memory the host does
 * not own (issue 10).
 */
export function donationRegionProblem(map: RamMapView, region: FrameRun): string | undefined {
  const end = region.base + region.count;
  const hex = (f: number): string => `0x${(f * PAGE_BYTES).toString(16)}`;
  if (!map.ram.some((r) => r.base <= region.base && end <= r.base + r.count)) return `${hex(region.base)}..${hex(end)} is not inside one RAM region of the core`;
  const c = map.hypCarveout;
  if (region.base < c.base + c.count && c.base < end) return `${hex(region.base)}..${hex(end)} overlaps HYP's carve-out ${hex(c.base)}..${hex(c.base + c.count)}`;
  return undefined;
}
