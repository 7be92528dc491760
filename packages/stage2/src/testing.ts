/**
 * Small cores and fixtures for tests and benchmarks (no test-framework dependency).
 */

import type { MemoryConfig } from './memory/physical-memory.js';
import { createAddressSpace } from './spaces.js';
import { Stage2 } from './stage2.js';
import { pfn, type Pfn, type Vmid } from './types.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** 1 GiB of RAM at 1 GiB, 16 MiB of MMIO at 0, 36-bit PA: fast to check exhaustively. */
export const SMALL_MEMORY: MemoryConfig = {
  paBits: 36,
  ram: [{ base: 1 * GiB, sizeBytes: 1 * GiB }],
  mmio: [{ base: 0, sizeBytes: 16 * MiB }],
};

export const smallStage2 = (memory: MemoryConfig = SMALL_MEMORY): Stage2 => new Stage2({ memory });

/** First RAM frame + offset. */
export const ramFrame = (s: Stage2, offset = 0): Pfn => pfn(s.memory.regions.find((r) => r.kind === 'RAM')!.base + offset);

/**
 * Creates a guest address space whose root and `poolPages` pool pages are donated from host RAM
 * at `donorOffset` (frames from the start of RAM). Throws if the fixture itself is refused.
 */
export function addGuest(s: Stage2, id: Vmid, donorOffset: number, poolPages = 16, ipaBits = 40): void {
  const r = createAddressSpace(s, id, ipaBits, [{ base: ramFrame(s, donorOffset), count: 2 + poolPages }]);
  if (!r.ok) throw new Error(`fixture: ${r.error.message}`);
}
