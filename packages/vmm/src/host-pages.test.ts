import { describe, expect, test } from 'vitest';
import { donationRegionFrom, donationRegionProblem } from './host-pages.js';

const GiB = 2 ** 18; // in frames
const MiB64 = 16384;

describe('donation region from the core memory map', () => {
  test('top of the highest RAM bank, below HYP’s carve-out', () => {
    const map = { ram: [{ base: 8 * GiB, count: 2 * GiB }, { base: 2 * GiB, count: 2 * GiB }], hypCarveout: { base: 10 * GiB - 100, count: 100 } };
    expect(donationRegionFrom(map)).toEqual({ base: 10 * GiB - 100 - MiB64, count: MiB64 });
  });
  test('a carve-out elsewhere does not shorten it; a size is honoured', () => {
    expect(donationRegionFrom({ ram: [{ base: 0x80000, count: 4 * GiB }], hypCarveout: { base: 0, count: 0 } }, 1024)).toEqual({ base: 0x80000 + 4 * GiB - 1024, count: 1024 });
  });
  test('a region smaller than the size gives what is left; none left is undefined', () => {
    expect(donationRegionFrom({ ram: [{ base: 0x100, count: 300 }], hypCarveout: { base: 0x100 + 200, count: 100 } })).toEqual({ base: 0x100, count: 200 });
    expect(donationRegionFrom({ ram: [{ base: 0x100, count: 100 }], hypCarveout: { base: 0x100, count: 100 } })).toBeUndefined();
    expect(donationRegionFrom({ ram: [], hypCarveout: { base: 0, count: 0 } })).toBeUndefined();
  });
});

describe('a configured donation region is checked against the core map (issue 10)', () => {
  const map = { ram: [{ base: 0x80000, count: 4 * GiB }], hypCarveout: { base: 0x80000 + 4 * GiB - 100, count: 100 } };
  test('inside RAM and clear of the carve-out: no problem', () => {
    expect(donationRegionProblem(map, donationRegionFrom(map)!)).toBeUndefined();
  });
  test("overlapping HYP's carve-out, or outside RAM: named", () => {
    expect(donationRegionProblem(map, { base: 0x80000 + 4 * GiB - 200, count: 150 })).toMatch(/overlaps HYP's carve-out/);
    expect(donationRegionProblem(map, { base: 0x10, count: 16 })).toMatch(/is not inside one RAM region/);
  });
});
