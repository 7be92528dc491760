import { describe, expect, test } from 'vitest';
import { formatBytes, rights } from './format.js';

describe('CLI formatting', () => {
  test.each([
    [4096n, '4 KiB'],
    [3n << 30n, '3 GiB'],
    [6144n, '6 KiB'],
    [1536n * 1024n * 1024n, '1.5 GiB'],
    [100n, '100 B'],
  ])('%s bytes → %s', (n, text) => expect(formatBytes(n)).toBe(text));
  test('rights use the Gunyah/pKVM bits X=1, W=2, R=4', () => {
    expect([rights(7), rights(6), rights(4), rights(5), rights(0)]).toEqual(['RWX', 'RW-', 'R--', 'R-X', '---']);
  });
});
