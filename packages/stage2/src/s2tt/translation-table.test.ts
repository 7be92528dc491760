/**
 * Stage-2 table mechanism (stage2-models.md §A2, §B4): geometry, split on partial change, fold
 * when uniform, and the dry run that reserves table pages before a commit.
 */
import { describe, expect, test } from 'vitest';
import { pfn, PERM_RW, PERM_RWX, type Pfn } from '../types.js';
import { DESC_INVALID, descIsLent, descOutputFrame, leafDesc, lentDesc, type LeafAttrs } from './descriptor.js';
import { framesPerEntry, isValidIpaBits, levelShift, rootTableCount, startLevel } from './geometry.js';
import { TranslationTable, type LeafRewrite, type TablePageSource } from './translation-table.js';

describe('§B4 geometry', () => {
  test.each([
    [48, 0, 1],
    [44, 0, 1],
    [42, 1, 8],
    [40, 1, 2],
    [39, 1, 1],
    [36, 1, 1],
    [33, 2, 8],
    [32, 2, 4],
  ])('IPA %i bits: start level %i, %i root table(s)', (bits, sl, roots) => {
    expect(startLevel(bits)).toBe(sl);
    expect(rootTableCount(bits)).toBe(roots);
  });
  test('map sizes per level: L3 4 KiB, L2 2 MiB, L1 1 GiB, L0 512 GiB', () => {
    expect([0, 1, 2, 3].map((l) => 2 ** levelShift(l))).toEqual([2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12]);
    expect([0, 1, 2, 3].map(framesPerEntry)).toEqual([2 ** 27, 2 ** 18, 512, 1]);
  });
  test('IPA widths outside 32..48 are refused', () => {
    expect([31, 32, 44, 45, 48, 49, 40.5].map(isValidIpaBits)).toEqual([false, true, true, true, true, false, false]);
  });
});

/** A pool of fake granules counting what was taken and given back. */
function pool(size: number): TablePageSource & { taken: number; given: number; left: () => number } {
  const frames = Array.from({ length: size }, (_, i) => pfn(0x100000 + i));
  const p = {
    taken: 0,
    given: 0,
    left: () => frames.length,
    take: (): Pfn => {
      p.taken++;
      return frames.pop()!;
    },
    give: (f: Pfn): void => {
      p.given++;
      frames.push(f);
    },
  };
  return p;
}

const RWX: LeafAttrs = { perms: PERM_RWX, state: 'OWNED', device: false };
const identity: LeafRewrite = (_d, start, level) => leafDesc(start, level, RWX);
const shared: LeafRewrite = (_d, start, level) => leafDesc(start, level, { ...RWX, state: 'SHARED_OWNED' });
const GB = 2 ** 18; // frames per 1 GiB

function leaves(t: TranslationTable, base: number, count: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  t.leafRuns(base, count, (v) => void out.push([v.start, v.frames, v.level]));
  return out;
}

describe('split and fold', () => {
  test('an aligned 1 GiB identity range is one L1 block; no table pages', () => {
    const t = new TranslationTable(40, [pfn(1), pfn(2)]);
    const p = pool(8);
    expect(t.tablesNeeded(GB, GB, identity)).toBe(0);
    t.rewrite(GB, GB, identity, p);
    expect(leaves(t, GB, GB)).toEqual([[GB, GB, 1]]);
    expect(t.tablePages).toBe(0);
  });

  test('changing one page of an L1 block splits L1 → L2 → L3 (two tables), and folds back', () => {
    const t = new TranslationTable(40, [pfn(1), pfn(2)]);
    const p = pool(8);
    t.rewrite(GB, GB, identity, p);
    const page = GB + 512 * 7 + 5;
    expect(t.tablesNeeded(page, 1, shared)).toBe(2);
    t.rewrite(page, 1, shared, p);
    expect(t.tablePages).toBe(2);
    expect(t.lookup(page).level).toBe(3);
    expect(t.lookup(page + 1).level).toBe(3);
    expect(t.lookup(page + 512).level).toBe(2);
    t.rewrite(page, 1, identity, p);
    expect(t.tablePages).toBe(0);
    expect(p.given).toBe(2);
    expect(leaves(t, GB, GB)).toEqual([[GB, GB, 1]]);
  });

  test('an unaligned output frame maps pages, never a misaligned block', () => {
    const t = new TranslationTable(40, [pfn(1), pfn(2)]);
    const p = pool(8);
    const shifted: LeafRewrite = (_d, start, level) => leafDesc(start + 1, level, RWX);
    t.rewrite(0, 512, shifted, p);
    expect(t.lookup(0).level).toBe(3);
    expect(descOutputFrame(t.lookup(511).desc)).toBe(512);
  });

  test('unmapping every page of a table frees it; unmapping the rest frees the parent', () => {
    const t = new TranslationTable(40, [pfn(1), pfn(2)]);
    const p = pool(8);
    t.rewrite(3, 2, identity, p);
    expect(t.tablePages).toBe(2);
    t.rewrite(0, 8, () => DESC_INVALID, p);
    expect(t.tablePages).toBe(0);
    expect(p.left()).toBe(8);
  });

  test('lent annotations keep their output frames through split and fold', () => {
    const t = new TranslationTable(40, [pfn(1), pfn(2)]);
    const p = pool(8);
    t.rewrite(GB, GB, identity, p);
    t.rewrite(GB, GB, (d) => lentDesc(d), p);
    expect(t.lookup(GB + 77).level).toBe(1);
    expect(descIsLent(t.lookup(GB + 77).desc)).toBe(true);
    expect(descOutputFrame(t.lookup(GB + 77).desc)).toBe(GB + 77);
    t.rewrite(GB + 77, 1, (_d, start, level) => leafDesc(start, level, { ...RWX, perms: PERM_RW }), p);
    expect(descOutputFrame(t.lookup(GB + 78).desc)).toBe(GB + 78);
    expect(t.tablePages).toBe(2);
  });
});

describe('dry run (check phase) counts exactly what the commit takes', () => {
  test.each([
    ['one page in a 1 GiB block', [[GB + 3, 1]], 2],
    ['two pages in the same 2 MiB block share the tables', [[GB + 3, 1], [GB + 9, 1]], 2],
    ['two 2 MiB blocks apart share the L2 table', [[GB + 3, 1], [GB + 512 * 9 + 1, 1]], 3],
    ['two different 1 GiB blocks', [[GB + 3, 1], [2 * GB + 3, 1]], 4],
    ['a whole aligned 2 MiB block needs only the L2 table', [[GB + 512, 512]], 1],
  ] as const)('%s: %i table pages', (_what, ranges, expected) => {
    const t = new TranslationTable(40, [pfn(1), pfn(2)]);
    const p = pool(16);
    t.rewrite(GB, 2 * GB, identity, p);
    const virtual = new Set<number>();
    const needed = ranges.reduce((n, [b, c]) => n + t.tablesNeeded(b, c, shared, virtual), 0);
    expect(needed).toBe(expected);
    const before = p.taken;
    for (const [b, c] of ranges) t.rewrite(b, c, shared, p);
    expect(p.taken - before).toBe(expected);
  });
});
