/**
 * shape.ts: the registers of modelled calls take any uint64 (issue 7 #16). Above 2^53 the stand-in
 * must keep what the domain checks: beyond every 52-bit bound, and the same power-of-two alignment.
 */
import { describe, expect, test } from 'vitest';
import { openEnumField, u64Operand, u64Register } from './shape.js';

const alignment = (n: number): number => {
  let tz = 0;
  while (tz < 64 && n % 2 ** (tz + 1) === 0) tz++;
  return tz;
};

describe('u64Operand', () => {
  test('exact below 2^53', () => {
    for (const v of [0n, 1n, 4096n, (1n << 52n) - 4096n, (1n << 53n) - 1n]) expect(u64Operand(v, 'f')).toBe(Number(v));
  });

  test.each([53, 54, 60, 63].flatMap((top) => [0, 1, 11, 12, 21, 30, 39, 51, 52, 53, top].filter((tz) => tz <= top).map((tz) => ({ top, tz }))))(
    '2^$top + 2^$tz: at least 2^52, aligned exactly to 2^$tz',
    ({ top, tz }) => {
      const v = top === tz ? 1n << BigInt(top) : (1n << BigInt(top)) + (1n << BigInt(tz));
      const n = u64Operand(v, 'f');
      expect(n).toBeGreaterThanOrEqual(2 ** 52);
      expect(Number.isInteger(n)).toBe(true);
      expect(alignment(n)).toBe(tz);
    },
  );

  test('uint64 max is accepted; beyond or negative is malformed', () => {
    expect(alignment(u64Operand((1n << 64n) - 1n, 'f'))).toBe(0);
    expect(() => u64Operand(1n << 64n, 'f')).toThrow();
    expect(() => u64Operand(-1n, 'f')).toThrow();
  });
});

describe('u64Register and openEnumField', () => {
  test('flags above 2^53 are never 0 or 1', () => {
    expect(u64Register(1n << 63n, 'flags')).toBeGreaterThan(1);
    expect(u64Register(1n, 'flags')).toBe(1);
  });

  test('UNSPECIFIED is absent, known maps, unknown passes through', () => {
    const table = new Map([[1, 'A']]);
    expect(() => openEnumField(0, table, 'e')).toThrow();
    expect(openEnumField(1, table, 'e')).toBe('A');
    expect(openEnumField(9, table, 'e')).toBe(9);
  });
});
