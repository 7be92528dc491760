import { describe, expect, test } from 'vitest';
import { FragmentReorder, corruptFragment } from './fragment.js';

describe('corruptFragment', () => {
  test('flips the drawn offsets with the drawn masks, on a copy', () => {
    const f = new Uint8Array([0, 0, 0, 0]);
    // draw 0x0000ab01: offset 1, mask 0xab; draw 0x00000006: offset 2, mask 0 → 1.
    expect([...corruptFragment(f, [0x0000ab01, 0x00000006])]).toEqual([0, 0xab, 1, 0]);
    expect([...f]).toEqual([0, 0, 0, 0]);
  });

  test('every draw changes its byte', () => {
    const f = new Uint8Array(240).fill(0x5a);
    for (let draw = 0; draw < 5000; draw += 37) {
      const out = corruptFragment(f, [draw]);
      expect(out[draw % 240]).not.toBe(0x5a);
    }
  });

  test('an empty fragment stays empty', () => {
    expect(corruptFragment(new Uint8Array(0), [1, 2]).length).toBe(0);
  });
});

describe('FragmentReorder', () => {
  test('a reordered fragment goes right after the next one', () => {
    const q = new FragmentReorder<string>();
    expect(q.push('a', true)).toEqual([]);
    expect(q.push('b', false)).toEqual(['b', 'a']);
    expect(q.push('c', false)).toEqual(['c']);
  });

  test('a second reorder while one is held does not hold forever', () => {
    const q = new FragmentReorder<string>();
    q.push('a', true);
    expect(q.push('b', true)).toEqual(['b', 'a']);
    expect(q.flush()).toEqual([]);
  });

  test('flush releases what is held', () => {
    const q = new FragmentReorder<string>();
    q.push('a', true);
    expect(q.flush()).toEqual(['a']);
  });
});
