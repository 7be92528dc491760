/** sessions.ts: unguessable ids with a secret source, and sessions bound to their opener (issue 11 item 5). */
import { describe, expect, test } from 'vitest';
import { SessionRegistry } from './sessions.js';
import type { VmmClock } from './clock.js';

const clock: VmmClock = { nowMs: () => 0, after: () => () => {} };

describe('SessionRegistry', () => {
  test('without a secret: deterministic ids from the prefix and one counter', () => {
    const r = new SessionRegistry(clock, 'p-', () => {});
    expect(r.openStream()).toBe('session-p-1');
    const lease = r.openLease(60_000);
    expect(lease.ok && lease.value.sessionId).toBe('lease-p-2');
  });

  test('with a secret: the id is the secret; a session is held by its opener only; unbound and unknown ids refuse nobody', () => {
    let n = 0;
    const r = new SessionRegistry(clock, 'p-', () => {}, () => `s${++n}`);
    const mine = r.openStream('3/alice');
    expect(mine).toBe('session-s1');
    const lease = r.openLease(60_000, '3/alice');
    expect(lease.ok && lease.value.sessionId).toBe('lease-s2');
    expect(r.heldBy(mine, '3/alice')).toBe(true);
    expect(r.heldBy(mine, '3/bob')).toBe(false);
    expect(r.heldBy('lease-s2', '128/alice')).toBe(false);
    const unbound = r.openStream();
    expect(r.heldBy(unbound, '3/bob')).toBe(true);
    expect(r.heldBy('session-nope', '3/bob')).toBe(true);
    // Ended: the binding goes with it.
    r.end(mine);
    expect(r.heldBy(mine, '3/bob')).toBe(true);
  });
});
