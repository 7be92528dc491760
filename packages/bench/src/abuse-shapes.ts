/**
 * The maximal admitted requests of the abuse figure (abuse-bench.ts, abuse-rogue.ts): for each cap of
 * the core (services/core admission.ts defaults), the largest request it admits, in the costliest
 * shape: `ranges_per_call` runs with one-frame gaps (none merges, none aligns to a block).
 */
import { CORE_ADMISSION } from '@hypmesh/core-service';

export const ROGUE_GUEST = 0x90;
/** The default map's RAM starts at 2 GiB (frame 0x80000); each request kind has its own 256 MiB. */
const RAM = 0x80000;
export const REGION = { space: RAM + 0x10000, topUp: RAM + 0x20000, grant: RAM + 0x30000, donate: RAM + 0x40000 } as const;

export const MAX_RANGES = CORE_ADMISSION.ranges_per_call.limit;
export const MAX_PAGES = CORE_ADMISSION.pages_per_call.limit;
export const MAX_FRAMES = CORE_ADMISSION.frames_per_call.limit;

/** `total` frames in `ranges` runs from `base`, a one-frame gap between runs. */
export function scattered(base: number, ranges: number, total: number): { base: number; count: number }[] {
  const per = Math.floor(total / ranges);
  return Array.from({ length: ranges }, (_, i) => ({ base: base + i * (per + 1), count: i === ranges - 1 ? total - per * (ranges - 1) : per }));
}

export const SPACE_DONATED = scattered(REGION.space, MAX_RANGES, MAX_FRAMES);
/**
 * Top-ups after the space's own donation until the rogue holds its whole donated_pages quota, so
 * the space's teardown is the largest the quota admits.
 */
export const TOP_UPS = Array.from({ length: Math.max(0, Math.floor(CORE_ADMISSION.donated_pages.limit / MAX_FRAMES) - 1) }, (_, k) => scattered(REGION.topUp + k * 0x2000, MAX_RANGES, MAX_FRAMES));
export const GRANT_RANGES = scattered(REGION.grant, MAX_RANGES, MAX_PAGES);
/** Borrower IPA runs from an odd frame: no 2 MiB block fits, every page is its own entry. */
export const IPA_RANGES = scattered(0x101, MAX_RANGES, MAX_PAGES);
