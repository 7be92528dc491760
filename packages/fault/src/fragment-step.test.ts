import { describe, expect, test } from 'vitest';
import { FaultEngine, type Decision } from './engine.js';
import { FragmentReorder } from './fragment.js';
import { fragmentStep } from './fragment-step.js';
import type { FaultAction } from './plan.js';

const f = (b: number): Uint8Array => Uint8Array.of(b, b, b, b);

/** The decision of a one-rule plan that always fires `action` at VMM_TO_RM_FRAGMENT. */
function decided(action: FaultAction): Decision {
  const e = new FaultEngine({ nowMs: () => 0 });
  const armed = e.arm({ rules: [{ id: 'r', boundary: 'VMM_TO_RM_FRAGMENT', match: {}, action }] }, 7);
  if (!armed.ok) throw new Error(JSON.stringify(armed.error));
  return e.decide({ boundary: 'VMM_TO_RM_FRAGMENT', rmMessage: 'MEM_LEND' });
}

describe('fragmentStep: one fragment through each fragment action', () => {
  const cases: { name: string; action: FaultAction; send: number; holdMs: number; crash: boolean }[] = [
    { name: 'delay holds the queue', action: { kind: 'delay', fixedMs: 30, jitterMs: 0 }, send: 1, holdMs: 30, crash: false },
    { name: 'pause holds the queue', action: { kind: 'pause', durationMs: 40 }, send: 1, holdMs: 40, crash: false },
    { name: 'duplicate sends it twice', action: { kind: 'duplicate' }, send: 2, holdMs: 0, crash: false },
    { name: 'drop sends nothing', action: { kind: 'drop' }, send: 0, holdMs: 0, crash: false },
    { name: 'corrupt sends one damaged copy', action: { kind: 'corrupt', byteCount: 1 }, send: 1, holdMs: 0, crash: false },
    { name: 'reorder holds it back', action: { kind: 'reorder' }, send: 0, holdMs: 0, crash: false },
    { name: 'crash before commit sends nothing', action: { kind: 'crash', point: 'BEFORE_COMMIT' }, send: 0, holdMs: 0, crash: true },
    { name: 'crash after commit sends it first', action: { kind: 'crash', point: 'AFTER_COMMIT' }, send: 1, holdMs: 0, crash: true },
  ];
  test.each(cases)('$name', ({ action, send, holdMs, crash }) => {
    const step = fragmentStep(decided(action), f(1), new FragmentReorder());
    expect(step.send.length).toBe(send);
    expect(step.holdMs).toBe(holdMs);
    expect(step.crash !== undefined).toBe(crash);
  });

  test('corrupt changes the bytes, not the original', () => {
    const original = f(1);
    const step = fragmentStep(decided({ kind: 'corrupt', byteCount: 2 }), original, new FragmentReorder());
    expect(step.send[0]).not.toEqual(original);
    expect(original).toEqual(f(1));
  });

  test('a reordered fragment goes right after the next one', () => {
    const buffer = new FragmentReorder<Uint8Array>();
    expect(fragmentStep(decided({ kind: 'reorder' }), f(1), buffer).send).toEqual([]);
    expect(fragmentStep({ fault: false }, f(2), buffer).send).toEqual([f(2), f(1)]);
  });

  test('no fault: sent as is', () => {
    expect(fragmentStep({ fault: false }, f(3), new FragmentReorder())).toEqual({ send: [f(3)], holdMs: 0 });
  });
});
