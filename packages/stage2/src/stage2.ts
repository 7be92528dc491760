/**
 * The whole stage-2 core state (DESIGN.md §2): physical memory, every address space, live grants
 * and the RMM's realm objects, and the boot that gives the host all of memory.
 *
 * Boot, as pKVM's hyp init does: a carve-out at the top of the last RAM region becomes HYP-owned
 * and holds the host stage-2's root tables plus a pool big enough to map all memory at page
 * granularity (so host changes never fail for table pages); the host then owns every other granule,
 * identity-mapped RWX for RAM and RW for MMIO, with blocks wherever alignment allows.
 */

import { AddressSpace, TablePool } from './address-space.js';
import { HYP_RESERVATION_PAGES, type HypReservationRange } from './hyp-reservation.js';
import type { Grant } from './grant/grant.js';
import { withMeta } from './memory/granule.js';
import { DEFAULT_MEMORY_CONFIG, PhysicalMemory, memoryConfigProblems, type MemoryConfig } from './memory/physical-memory.js';
import { err, ok, type Result } from './result.js';
import { RmmState } from './rmi/rmm-state.js';
import { leafDesc, DESC_INVALID } from './s2tt/descriptor.js';
import { ENTRIES_PER_TABLE, LEVEL_PAGE, framesPerEntry, rootTableCount, startLevel } from './s2tt/geometry.js';
import { PERM_RW, PERM_RWX, VMID_HOST, VMID_HYP, type Pfn, type Vmid } from './types.js';

export interface Stage2Config {
  readonly memory: MemoryConfig;
  /** Pages of HYP's boot reservation for HYP-created spaces (hyp-reservation.ts); default HYP_RESERVATION_PAGES. */
  readonly hypReservationPages?: number;
  /**
   * This boot's generation, 0..BOOT_GENERATION_MAX (default 0): grant ids are generation × 2^32 + n,
   * so an id kept from an earlier boot never names a grant of this one (issue 9 §4 fencing). The
   * service draws it at random per boot (or keeps it in its data dir); the domain stays
   * deterministic.
   */
  readonly bootGeneration?: number;
}

/** Grant ids of one boot generation: the low 32 bits count, the bits above name the generation. */
export const GRANT_IDS_PER_GENERATION = 2 ** 32;
/** Generations fit in 20 bits, so every grant id stays a safe integer (< 2^52). */
export const BOOT_GENERATION_MAX = 2 ** 20 - 1;
/** The boot generation a grant id belongs to. */
export const grantGeneration = (id: number): number => Math.floor(id / GRANT_IDS_PER_GENERATION);

export const DEFAULT_STAGE2_CONFIG: Stage2Config = { memory: DEFAULT_MEMORY_CONFIG };

export class Stage2 {
  readonly memory: PhysicalMemory;
  readonly spaces = new Map<Vmid, AddressSpace>();
  readonly grants = new Map<number, Grant>();
  nextGrantId: number;
  readonly rmm: RmmState;
  /**
   * The boot carve-out [base, base+count): HYP's reservation for the spaces it creates (at the
   * bottom) and the host stage-2's tables. Host donations must come from below it.
   */
  readonly hostCarveout: { readonly base: Pfn; readonly count: number };
  /** HYP's reservation's frames (a prefix of the carve-out) and its unused pages (hyp-reservation.ts). */
  readonly hypReservationRange: HypReservationRange;
  readonly hypReservation: TablePool;

  constructor(readonly config: Stage2Config) {
    this.nextGrantId = (config.bootGeneration ?? 0) * GRANT_IDS_PER_GENERATION + 1;
    this.memory = new PhysicalMemory(config.memory);
    this.rmm = new RmmState();
    const paBits = config.memory.paBits;
    const reserved = config.hypReservationPages ?? HYP_RESERVATION_PAGES;
    const count = hostTablePagesMax(this.memory, paBits);
    const ram = this.memory.regions.filter((r) => r.kind === 'RAM');
    const last = ram[ram.length - 1]!;
    const carveBase = (last.base + last.count - count - reserved) as Pfn;
    const base = (carveBase + reserved) as Pfn;
    this.hostCarveout = { base: carveBase, count: count + reserved };
    this.memory.meta.update(carveBase, count + reserved, (m) => withMeta(m!, { owner: VMID_HYP, hyp: 'OWNED' }));
    this.hypReservationRange = { base: carveBase, count: reserved };
    this.hypReservation = new TablePool(this.memory);
    this.hypReservation.add(Array.from({ length: reserved }, (_, i) => (carveBase + i) as Pfn));

    const frames = Array.from({ length: count }, (_, i) => (base + i) as Pfn);
    const roots = frames.slice(0, rootTableCount(paBits));
    const host = new AddressSpace(VMID_HOST, 'HOST', paBits, roots, this.memory);
    host.pool.add(frames.slice(roots.length));
    this.spaces.set(VMID_HOST, host);
    for (const r of this.memory.regions) {
      const attrs = { perms: r.kind === 'RAM' ? PERM_RWX : PERM_RW, state: 'OWNED', device: r.kind === 'MMIO' } as const;
      host.table.rewrite(r.base, r.count, (_d, start, level) => leafDesc(start, level, attrs), host.pool);
    }
    host.table.rewrite(carveBase, count + reserved, () => DESC_INVALID, host.pool);
  }

  get host(): AddressSpace {
    return this.spaces.get(VMID_HOST)!;
  }
}

/** Builds the core, or lists what is wrong with the configuration. */
export function createStage2(config: Stage2Config = DEFAULT_STAGE2_CONFIG): Result<Stage2, string[]> {
  const g = config.bootGeneration;
  const problems = [...memoryConfigProblems(config.memory), ...(g === undefined || (Number.isInteger(g) && g >= 0 && g <= BOOT_GENERATION_MAX) ? [] : [`boot generation ${g} is not an integer in 0..${BOOT_GENERATION_MAX}`])];
  if (problems.length > 0) return err(problems);
  const s = new Stage2(config);
  return ok(s);
}

/**
 * Upper bound on the host stage-2 table pages: enough tables at every level below the start level
 * to map each region at page granularity (pKVM's host_s2_pgtable_pages), plus the roots.
 */
function hostTablePagesMax(memory: PhysicalMemory, paBits: number): number {
  let pages = rootTableCount(paBits);
  for (let level = startLevel(paBits) + 1; level <= LEVEL_PAGE; level++) {
    const tableSpan = framesPerEntry(level) * ENTRIES_PER_TABLE;
    for (const r of memory.regions) pages += Math.floor((r.base + r.count - 1) / tableSpan) - Math.floor(r.base / tableSpan) + 1;
  }
  return pages;
}
