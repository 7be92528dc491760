import { describe, expect, test } from 'vitest';
import { decodeState, encodeState } from './state-codec.js';

describe('state codec', () => {
  test('bigint, Map, Set and bytes round-trip, nested', () => {
    const value = {
      n: 1,
      big: 2n ** 64n - 1n,
      m: new Map<number, unknown>([[1, { s: new Set(['a', 'b']), b: Uint8Array.of(0, 255, 7) }]]),
      list: [new Map([['k', -3n]])],
      text: 'x',
      none: null,
    };
    expect(decodeState(encodeState(value))).toEqual(value);
  });

  test('undefined properties read back as absent, and an object with an ordinary key is left alone', () => {
    expect(decodeState(encodeState({ a: undefined, b: { $other: 1 } }))).toEqual({ b: { $other: 1 } });
  });
});
