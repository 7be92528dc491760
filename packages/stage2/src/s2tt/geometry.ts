/**
 * Stage-2 translation geometry for the 4 KiB granule (stage2-models.md §A2, §B4).
 *
 * Levels 0..3; a table has 512 entries (stride 9); an entry at level l maps 2^(12 + 9*(3-l)) bytes:
 * L3 = 4 KiB, L2 = 2 MiB, L1 = 1 GiB, L0 = 512 GiB. Blocks are allowed at L1 and L2 only. The start
 * level follows from the IPA width, and up to 16 root tables are concatenated when the width
 * exceeds what one table at the start level covers. LPA2 (level -1, 52-bit IPA) is not modelled.
 */

export const ENTRIES_PER_TABLE = 512; // §B4: stride 9
export const TABLE_STRIDE_BITS = 9;
export const LEVEL_PAGE = 3;
/** Lowest level that may hold a block (S2TT_MIN_BLOCK_LEVEL, §B4). */
export const LEVEL_BLOCK_MIN = 1;
/** IPA widths this model accepts (§B4: 32..48 without LPA2). */
export const IPA_BITS_MIN = 32;
export const IPA_BITS_MAX = 48;
/** At most 16 concatenated root tables (§B4). */
export const ROOT_TABLES_MAX = 16;

export type Level = 0 | 1 | 2 | 3;

/** log2 of the bytes one entry at `level` maps: 9*(4-l)+3, as KVM's RMM_RTT_LEVEL_SHIFT. */
export const levelShift = (level: number): number => TABLE_STRIDE_BITS * (4 - level) + 3;
/** Granules one entry at `level` maps (L3: 1, L2: 512, L1: 262144, L0: 2^27). */
const FRAMES_PER_ENTRY: readonly number[] = [0, 1, 2, 3].map((l) => 2 ** (TABLE_STRIDE_BITS * (LEVEL_PAGE - l)));
export const framesPerEntry = (level: number): number => FRAMES_PER_ENTRY[level] as number;
/** Bytes one entry at `level` maps. */
export const mapSizeBytes = (level: number): number => 2 ** levelShift(level);

/** Start level for an IPA width, as KVM computes it: 4 - ((ia_bits - 8) / 9) (§B4). */
export const startLevel = (ipaBits: number): Level => (4 - Math.floor((ipaBits - 8) / 9)) as Level;

/** Number of concatenated root tables for an IPA width (§B4, s2_num_root_rtts). */
export function rootTableCount(ipaBits: number): number {
  const sl = startLevel(ipaBits);
  const slBits = TABLE_STRIDE_BITS * (3 - sl) + 12 + TABLE_STRIDE_BITS;
  return ipaBits <= slBits ? 1 : 2 ** (ipaBits - slBits);
}

export const isValidIpaBits = (ipaBits: number): boolean =>
  Number.isInteger(ipaBits) && ipaBits >= IPA_BITS_MIN && ipaBits <= IPA_BITS_MAX && rootTableCount(ipaBits) <= ROOT_TABLES_MAX;

/** Index of the entry covering `frame` in a table at `level` (roots: index across the concatenation). */
export const entryIndex = (frame: number, level: number): number =>
  Math.floor(frame / framesPerEntry(level)) % ENTRIES_PER_TABLE;

/** First frame of the entry at `level` that covers `frame`. */
export const entryBase = (frame: number, level: number): number => {
  const span = framesPerEntry(level);
  return frame - (frame % span);
};

/** Whether a leaf may live at `level` (pages at L3, blocks at L1/L2). */
export const leafAllowedAt = (level: number): boolean => level >= LEVEL_BLOCK_MIN;
