import { describe, expect, test } from 'vitest';
import { OperationKeys, RETRY_BACKOFF_MS, retryAmbiguous, type RetryClock } from './keyed-retry.js';

/** A clock that only moves when slept on, or when an attempt says it took time. */
function fakeClock(): RetryClock & { t: number; slept: number[] } {
  const c = { t: 0, slept: [] as number[], now: () => c.t, sleep: (ms: number) => ((c.t += ms), c.slept.push(ms), Promise.resolve()) };
  return c;
}

describe('OperationKeys', () => {
  test('one key per operation while it is unsettled; a new one after a definite answer; distinct operations distinct keys', () => {
    const k = new OperationKeys('rm-x');
    const a = k.keyFor('destroy 7');
    expect(k.keyFor('destroy 7')).toBe(a);
    expect(k.keyFor('destroy 8')).not.toBe(a);
    k.settled('destroy 7');
    expect(k.keyFor('destroy 7')).not.toBe(a);
    expect(a.startsWith('rm-x-')).toBe(true);
  });

  test('bounded: the oldest open key is forgotten', () => {
    const k = new OperationKeys('p', 2);
    const a = k.keyFor('a');
    k.keyFor('b');
    k.keyFor('c');
    expect(k.unsettled).toBe(2);
    expect(k.keyFor('a')).not.toBe(a);
  });
});

describe('retryAmbiguous', () => {
  test('a definite answer at once: one attempt, no sleep', async () => {
    const clock = fakeClock();
    const r = await retryAmbiguous(() => Promise.resolve({ result: 'ok', ambiguous: false }), 1_000, clock);
    expect(r).toEqual({ result: 'ok', attempts: 1, ambiguous: false });
    expect(clock.slept).toEqual([]);
  });

  test('ambiguous, then definite: retried with a doubling back-off, every attempt given the same deadline', async () => {
    const clock = fakeClock();
    const deadlines: number[] = [];
    let n = 0;
    const r = await retryAmbiguous(
      (deadline) => {
        deadlines.push(deadline);
        return Promise.resolve(++n < 4 ? { result: 'lost', ambiguous: true } : { result: 'ok', ambiguous: false });
      },
      5_000,
      clock,
    );
    expect(r).toEqual({ result: 'ok', attempts: 4, ambiguous: false });
    expect(clock.slept).toEqual([RETRY_BACKOFF_MS.first, RETRY_BACKOFF_MS.first * 2, RETRY_BACKOFF_MS.first * 4]);
    expect(new Set(deadlines)).toEqual(new Set([5_000]));
  });

  test('ambiguous to the end: stops within the budget and says so', async () => {
    const clock = fakeClock();
    const r = await retryAmbiguous(() => Promise.resolve({ result: 'lost', ambiguous: true }), 3_000, clock);
    expect(r.ambiguous).toBe(true);
    expect(clock.t).toBeLessThanOrEqual(3_000);
    expect(clock.slept.every((ms) => ms <= RETRY_BACKOFF_MS.max)).toBe(true);
    expect(r.attempts).toBe(clock.slept.length + 1);
  });
});
