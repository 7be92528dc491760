import { describe, expect, test } from 'vitest';
import { bytes, rightsArg } from './args.js';

describe('CLI argument parsers', () => {
  test.each([
    ['0x80000000', 0x8000_0000n],
    ['4096', 4096n],
    ['64KiB', 65536n],
    ['3GiB', 3n << 30n],
    ['4m', 4n << 20n],
  ])('bytes %s → %s', (t, n) => expect(bytes(t)).toBe(n));
  test.each([
    ['rwx', [true, true, true]],
    ['rw', [true, true, false]],
    ['r-x', [true, false, true]],
    ['RW-', [true, true, false]],
  ])('rights %s', (t, [r, w, x]) => expect(rightsArg(t)).toEqual({ allowRead: r, allowWrite: w, allowExec: x }));
  test.each(['', '---', 'rwxr', 'rr', 'q'])('rights %j is refused', (t) => expect(() => rightsArg(t)).toThrow(/rights as letters/));
});
