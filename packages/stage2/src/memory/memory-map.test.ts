import { describe, expect, test } from 'vitest';
import { createStage2 } from '../stage2.js';
import { formatMemorySpec, parseBytes, parseMemoryJson, parseMemorySpec } from './memory-map.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('memory map: flag form', () => {
  test('RAM at 0x8000_0000 + 16 GiB and MMIO at 0x1000_0000 + 256 MiB', () => {
    expect(parseMemorySpec('ram@0x80000000:16G,mmio@0x10000000:256M')).toEqual({
      ok: true,
      value: { paBits: 40, ram: [{ base: 0x8000_0000, sizeBytes: 16 * GiB }], mmio: [{ base: 0x1000_0000, sizeBytes: 256 * MiB }] },
    });
  });

  test('two RAM banks, a PA width, decimal and underscores', () => {
    const r = parseMemorySpec('ram@0x8000_0000:2G, ram@0x8_8000_0000:2GiB, mmio@0:16M, pa=36');
    expect(r).toEqual({
      ok: true,
      value: { paBits: 36, ram: [{ base: 2 * GiB, sizeBytes: 2 * GiB }, { base: 0x8_8000_0000, sizeBytes: 2 * GiB }], mmio: [{ base: 0, sizeBytes: 16 * MiB }] },
    });
    // The core boots on it: both banks host-owned.
    expect(createStage2({ memory: r.ok ? r.value : (undefined as never) }).ok).toBe(true);
  });

  test('formatMemorySpec reads back to the same map', () => {
    const c = parseMemorySpec('ram@0x80000000:16G,mmio@0x10000000:256M,pa=40');
    expect(c.ok && parseMemorySpec(formatMemorySpec(c.value))).toEqual(c);
  });

  test.each([
    ['', /empty/],
    ['ram@0x80000000', /expected <ram\|mmio>@<base>:<size>/],
    ['rom@0:4K', /neither ram nor mmio/],
    ['ram@0x80000000:lots', /not a byte count/],
    ['ram@0x80000000:0', /zero size/],
    ['ram@0x80000800:1G', /base not 4 KiB aligned/],
    ['ram@0x80000000:4097', /not a multiple of 4 KiB/],
    ['ram@0xff_0000_0000:8G', /beyond the 40-bit PA space/],
    ['ram@0x80000000:1G,pa=30', /PA width 30 outside 32..48/],
    ['ram@0x80000000:1G,pa=x', /not an integer/],
    ['ram@0x80000000:1G,mmio@0xa0000000:1G', /RAM region at 0x80000000 overlaps MMIO region at 0xa0000000/],
    ['mmio@0:1G', /no RAM region/],
  ])('refused: %j', (text, problem) => {
    const r = parseMemorySpec(text);
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.error.join('\n')).toMatch(problem);
  });
});

describe('memory map: JSON form', () => {
  test('regions with string and number fields', () => {
    expect(parseMemoryJson({ paBits: 44, regions: [{ kind: 'ram', base: '0x80000000', size: '16G' }, { kind: 'MMIO', base: 0x1000_0000, size: 256 * MiB }] })).toEqual({
      ok: true,
      value: { paBits: 44, ram: [{ base: 2 * GiB, sizeBytes: 16 * GiB }], mmio: [{ base: 0x1000_0000, sizeBytes: 256 * MiB }] },
    });
  });

  test.each([
    [null, /JSON object/],
    [{ regions: 3 }, /must be an array/],
    [{ regions: [], extra: 1 }, /unknown key\(s\) extra/],
    [{ regions: [7] }, /regions\[0\]: expected/],
    [{ regions: [{ kind: 'ram', base: '0x80000000', size: 0 }] }, /zero size/],
    [{ regions: [{ kind: 'ram', base: 2 * GiB, size: '1G' }, { kind: 'ram', base: '0x80001000', size: '4K' }] }, /overlaps/],
  ])('refused: %j', (json, problem) => {
    const r = parseMemoryJson(json);
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.error.join('\n')).toMatch(problem);
  });
});

test('parseBytes: units are binary; junk is undefined', () => {
  expect([parseBytes('4K'), parseBytes('0x10M'), parseBytes('1T'), parseBytes('12'), parseBytes('1.5G'), parseBytes('-1')]).toEqual([4096, 16 * MiB, 2 ** 40, 12, undefined, undefined]);
});
