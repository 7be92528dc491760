import { describe, expect, test } from 'vitest';
import { FaultEngine, NO_FAULT, rmMessageMethod, type Decision, type FaultEvent, type FaultPoint } from './engine.js';
import { Prng } from './prng.js';
import { BOUNDARIES, type Boundary, type FaultAction, type FaultMatch, type FaultPlan, type FaultRule } from './plan.js';

const DROP: FaultAction = { kind: 'duplicate' };
const rule = (id: string, match: FaultMatch = {}, action: FaultAction = DROP, boundary: Boundary = 'CLIENT_TO_RM'): FaultRule => ({ id, boundary, match, action });

function armed(plan: FaultPlan, seed = 1): FaultEngine {
  let t = 0;
  const e = new FaultEngine({ nowMs: () => (t += 1) });
  const r = e.arm(plan, seed);
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return e;
}

/** Which of `n` identical calls fired (1-based occurrence numbers). */
function firedAt(e: FaultEngine, n: number, point: FaultPoint = { boundary: 'CLIENT_TO_RM', method: 'MemShare' }): number[] {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (e.decide(point).fault) out.push(i);
  return out;
}

const ruleId = (d: Decision): string | undefined => (d.fault ? d.event.ruleId : undefined);

describe('match: where and which calls', () => {
  test('boundary: a rule never fires at another boundary', () => {
    const e = armed({ rules: [rule('a')] });
    expect(e.decide({ boundary: 'CLIENT_TO_CORE', method: 'MemShare' })).toBe(NO_FAULT);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare' }).fault).toBe(true);
  });

  test('method', () => {
    const e = armed({ rules: [rule('a', { method: 'MemLend' })] });
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare' }).fault).toBe(false);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemLend' }).fault).toBe(true);
  });

  test('RM message name: the byte face’s message and the typed RPC named after it', () => {
    const e = armed({ rules: [rule('a', { rmMessage: 'MEM_APPEND' })] });
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'Exchange', rmMessage: 'MEM_SHARE' }).fault).toBe(false);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'Exchange', rmMessage: 'MEM_APPEND' }).fault).toBe(true);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemAppend' }).fault).toBe(true);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare' }).fault).toBe(false);
  });

  test('RM message ID (MEM_RECLAIM 0x51000015)', () => {
    const e = armed({ rules: [rule('a', { rmMessageId: 0x51000015 })] });
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemReclaim' }).fault).toBe(true);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', rmMessage: 'MEM_RECLAIM' }).fault).toBe(true);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', rmMessage: 'MEM_APPEND' }).fault).toBe(false);
  });

  test('typed RPC names follow the RM message names', () => {
    expect(rmMessageMethod('MEM_QCOM_LOOKUP_SGL')).toBe('MemQcomLookupSgl');
    expect(rmMessageMethod('VM_GET_HYP_RESOURCES')).toBe('VmGetHypResources');
  });

  test('caller VMID; a point with no caller does not match a rule that names one', () => {
    const e = armed({ rules: [rule('a', { callerVmid: 3 })] });
    expect(e.decide({ boundary: 'CLIENT_TO_RM', callerVmid: 4 }).fault).toBe(false);
    expect(e.decide({ boundary: 'CLIENT_TO_RM' }).fault).toBe(false);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', callerVmid: 3 }).fault).toBe(true);
  });
});

describe('match: which occurrences', () => {
  test('nth: only the nth matching occurrence', () => {
    expect(firedAt(armed({ rules: [rule('a', { nth: 3 })] }), 10)).toEqual([3]);
  });

  test('nth counts the rule’s own matches, not every call at the boundary', () => {
    const e = armed({ rules: [rule('a', { method: 'MemAppend', nth: 2 })] });
    const seq = ['MemShare', 'MemAppend', 'MemShare', 'MemAppend', 'MemAppend'];
    expect(seq.map((method) => e.decide({ boundary: 'CLIENT_TO_RM', method }).fault)).toEqual([false, false, false, true, false]);
  });

  test('every kth', () => {
    expect(firedAt(armed({ rules: [rule('a', { every: 3 })] }), 10)).toEqual([3, 6, 9]);
  });

  test('probability 0 never fires, 1 always fires', () => {
    expect(firedAt(armed({ rules: [rule('a', { probability: 0 })] }), 100)).toEqual([]);
    expect(firedAt(armed({ rules: [rule('a', { probability: 1 })] }), 100)).toHaveLength(100);
  });

  test('probability p fires about p of the time, at the same occurrences for the same seed', () => {
    const a = firedAt(armed({ rules: [rule('a', { probability: 0.3 })] }, 7), 2000);
    expect(a.length).toBeGreaterThan(500);
    expect(a.length).toBeLessThan(700);
    expect(firedAt(armed({ rules: [rule('a', { probability: 0.3 })] }, 7), 2000)).toEqual(a);
    expect(firedAt(armed({ rules: [rule('a', { probability: 0.3 })] }, 8), 2000)).not.toEqual(a);
  });

  test('op window: strictly after afterOp, strictly before beforeOp', () => {
    expect(firedAt(armed({ rules: [rule('a', { afterOp: 3, beforeOp: 7 })] }), 10)).toEqual([4, 5, 6]);
    expect(firedAt(armed({ rules: [rule('a', { afterOp: 8 })] }), 10)).toEqual([9, 10]);
    expect(firedAt(armed({ rules: [rule('a', { beforeOp: 3 })] }), 10)).toEqual([1, 2]);
  });

  test('op indices count per boundary: calls elsewhere do not move the window', () => {
    const e = armed({ rules: [rule('a', { afterOp: 2 })] });
    for (let i = 0; i < 5; i++) e.decide({ boundary: 'CLIENT_TO_CORE' });
    expect(firedAt(e, 4)).toEqual([3, 4]);
  });

  test('calls of methods no rule names still count ops: an afterOp window of a named rule sees them', () => {
    const e = armed({ rules: [rule('a', { method: 'MemLend', afterOp: 3 })] });
    for (let i = 0; i < 3; i++) expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare' })).toBe(NO_FAULT);
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemLend' }).fault).toBe(true);
    expect(e.list().rules[0]!.matched).toBe(1);
  });

  test('timesMax: fires at most that many times', () => {
    expect(firedAt(armed({ rules: [rule('a', { timesMax: 2 })] }), 10)).toEqual([1, 2]);
    expect(firedAt(armed({ rules: [rule('a', { every: 2, timesMax: 2 })] }), 10)).toEqual([2, 4]);
  });
});

describe('evaluation order', () => {
  test('the first rule that fires wins; a later one does not spend its timesMax', () => {
    const e = armed({ rules: [rule('first', { nth: 1 }), rule('second', { timesMax: 1 })] });
    expect(ruleId(e.decide({ boundary: 'CLIENT_TO_RM' }))).toBe('first');
    expect(ruleId(e.decide({ boundary: 'CLIENT_TO_RM' }))).toBe('second');
    expect(e.decide({ boundary: 'CLIENT_TO_RM' })).toBe(NO_FAULT);
    expect(e.list().rules.map((r) => [r.rule.id, r.matched, r.fired])).toEqual([
      ['first', 3, 1],
      ['second', 3, 1],
    ]);
  });

  test('a rule’s draws depend only on its own matches: removing another rule leaves its faults in place (shrinking)', () => {
    const target = rule('target', { probability: 0.2 }, { kind: 'delay', fixedMs: 10, jitterMs: 9 });
    const other = rule('other', { probability: 0.5 });
    const solo = armed({ rules: [target] }, 99);
    const both = armed({ rules: [other, target] }, 99);
    const delays = (e: FaultEngine): (number | undefined)[] =>
      Array.from({ length: 300 }, () => {
        const d = e.decide({ boundary: 'CLIENT_TO_RM' });
        return d.fault && d.event.ruleId === 'target' && d.event.action.kind === 'delay' ? d.event.action.delayMs : undefined;
      });
    const soloDelays = delays(solo);
    const bothDelays = delays(both);
    // Where `other` did not win, `target` fired exactly where and as it did alone.
    bothDelays.forEach((d, i) => {
      if (d !== undefined) expect(soloDelays[i]).toBe(d);
    });
    expect(bothDelays.filter((d) => d !== undefined).length).toBeGreaterThan(10);
  });
});

describe('actions resolve their draws', () => {
  test('delay: fixed ± jitter, floored at 0, integer ms', () => {
    const e = armed({ rules: [rule('a', {}, { kind: 'delay', fixedMs: 2, jitterMs: 5 })] });
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const d = e.decide({ boundary: 'CLIENT_TO_RM' });
      if (d.fault && d.event.action.kind === 'delay') seen.add(d.event.action.delayMs);
    }
    expect([...seen].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test('delay without jitter is exactly fixed', () => {
    const d = armed({ rules: [rule('a', {}, { kind: 'delay', fixedMs: 25, jitterMs: 0 })] }).decide({ boundary: 'CLIENT_TO_RM' });
    expect(d.fault && d.event.action).toEqual({ kind: 'delay', delayMs: 25 });
  });

  test('corrupt: one draw per byte', () => {
    const d = armed({ rules: [rule('a', {}, { kind: 'corrupt', byteCount: 3 }, 'VMM_TO_RM_FRAGMENT')] }).decide({ boundary: 'VMM_TO_RM_FRAGMENT' });
    expect(d.fault && d.event.action.kind === 'corrupt' && d.event.action.draws.length).toBe(3);
  });

  const passThrough: readonly FaultAction[] = [
    { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } },
    { kind: 'fail_after', code: 'DEADLINE_EXCEEDED' },
    { kind: 'duplicate' },
    { kind: 'crash', point: 'AFTER_COMMIT' },
    { kind: 'pause', durationMs: 30 },
  ];
  test.each(passThrough)('$kind is applied as written', (action) => {
    const d = armed({ rules: [rule('a', {}, action)] }).decide({ boundary: 'CLIENT_TO_RM' });
    expect(d.fault && d.event.action).toEqual(action);
  });

  test.each([
    ['drop', 'RM_NOTIFICATION'],
    ['reorder', 'VMM_TO_RM_FRAGMENT'],
  ] as const)('%s at %s', (kind, boundary) => {
    const d = armed({ rules: [rule('a', {}, { kind }, boundary)] }).decide({ boundary });
    expect(d.fault && d.event.action).toEqual({ kind });
  });
});

describe('events', () => {
  test('every fault is one event with rule, boundary, method, op indices, seed, action and time', () => {
    const e = armed({ rules: [rule('a', { nth: 2 })] }, 1234);
    const events: FaultEvent[] = [];
    e.subscribe((ev) => events.push(ev));
    e.decide({ boundary: 'CLIENT_TO_CORE' });
    e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare', callerVmid: 3 });
    e.decide({ boundary: 'CLIENT_TO_RM', method: 'Exchange', rmMessage: 'MEM_APPEND', callerVmid: 3 });
    expect(events).toEqual([
      { ruleId: 'a', boundary: 'CLIENT_TO_RM', method: 'Exchange', rmMessage: 'MEM_APPEND', callerVmid: 3, opIndex: 2, globalOpIndex: 3, seed: 1234, action: { kind: 'duplicate' }, timeMs: 1 },
    ]);
  });

  test('unsubscribe stops delivery', () => {
    const e = armed({ rules: [rule('a')] });
    let n = 0;
    const off = e.subscribe(() => n++);
    e.decide({ boundary: 'CLIENT_TO_RM' });
    off();
    e.decide({ boundary: 'CLIENT_TO_RM' });
    expect(n).toBe(1);
  });
});

describe('arm, disarm, list', () => {
  test('arm refuses an invalid plan and keeps the armed one', () => {
    const e = armed({ rules: [rule('a')] });
    const r = e.arm({ rules: [rule('b', { probability: 2 })] }, 1);
    expect(r.ok).toBe(false);
    expect(e.list().rules.map((x) => x.rule.id)).toEqual(['a']);
  });

  test('arm replaces the plan and resets op counters', () => {
    const e = armed({ rules: [rule('a', { nth: 2 })] });
    e.decide({ boundary: 'CLIENT_TO_RM' });
    e.arm({ rules: [rule('b', { nth: 2 })] }, 5);
    expect(e.decide({ boundary: 'CLIENT_TO_RM' }).fault).toBe(false);
    const d = e.decide({ boundary: 'CLIENT_TO_RM' });
    expect(d.fault && [d.event.ruleId, d.event.opIndex, d.event.globalOpIndex, d.event.seed]).toEqual(['b', 2, 2, 5]);
  });

  test('disarm by id keeps the others and their counters; unknown ids change nothing', () => {
    const e = armed({ rules: [rule('a', { nth: 1 }), rule('b', { nth: 2 })] });
    e.decide({ boundary: 'CLIENT_TO_RM' });
    expect(e.disarm(['a', 'zz'])).toEqual({ ok: false, error: { unknownIds: ['zz'] } });
    expect(e.list().rules).toHaveLength(2);
    expect(e.disarm(['a'])).toEqual({ ok: true, value: 1 });
    expect(ruleId(e.decide({ boundary: 'CLIENT_TO_RM' }))).toBe('b');
  });

  test('a method seen before arm or disarm is matched against the rules armed now', () => {
    const e = armed({ rules: [rule('a', { method: 'MemLend' }), rule('b', { method: 'MemShare', nth: 2 })] });
    expect(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare' })).toBe(NO_FAULT);
    e.disarm(['b']);
    expect(firedAt(e, 3)).toEqual([]);
    e.arm({ rules: [rule('c', { method: 'MemShare' })] }, 1);
    expect(ruleId(e.decide({ boundary: 'CLIENT_TO_RM', method: 'MemShare' }))).toBe('c');
  });

  test('disarm all', () => {
    const e = armed({ rules: [rule('a'), rule('b')] });
    expect(e.disarm('all')).toEqual({ ok: true, value: 2 });
    expect(e.decide({ boundary: 'CLIENT_TO_RM' })).toBe(NO_FAULT);
    expect(e.armedAt('CLIENT_TO_RM')).toBe(false);
  });

  test('an unarmed engine injects nothing', () => {
    const e = new FaultEngine({ nowMs: () => 0 });
    expect(BOUNDARIES.map((boundary) => e.decide({ boundary }))).toEqual(BOUNDARIES.map(() => NO_FAULT));
  });
});

describe('determinism', () => {
  const plan: FaultPlan = {
    rules: [
      rule('delay', { probability: 0.3 }, { kind: 'delay', fixedMs: 10, jitterMs: 10 }),
      rule('lost', { method: 'MemLend', probability: 0.5 }, { kind: 'fail_after', code: 'UNAVAILABLE' }),
      rule('frag', { probability: 0.2 }, { kind: 'corrupt', byteCount: 2 }, 'VMM_TO_RM_FRAGMENT'),
      rule('notif', { every: 3 }, { kind: 'drop' }, 'RM_NOTIFICATION'),
      rule('late', { afterOp: 50, probability: 0.1 }, { kind: 'crash', point: 'BEFORE_COMMIT' }, 'CLIENT_TO_CORE'),
    ],
  };
  /** A pseudo-random but fixed sequence of points over every boundary. */
  const points = (n: number): FaultPoint[] => {
    const p = new Prng(2024);
    const methods = ['MemShare', 'MemLend', 'MemAppend', 'CreateGrant'];
    return Array.from({ length: n }, () => ({
      boundary: BOUNDARIES[p.nextU32() % BOUNDARIES.length]!,
      method: methods[p.nextU32() % methods.length]!,
      callerVmid: 3 + (p.nextU32() % 3),
    }));
  };
  const run = (seed: number): FaultEvent[] => {
    const e = armed(plan, seed);
    const events: FaultEvent[] = [];
    e.subscribe((ev) => events.push(ev));
    const decisions = points(2000).map((pt) => e.decide(pt));
    expect(decisions.filter((d) => d.fault).map((d) => d.fault && d.event)).toEqual(events);
    return events;
  };

  test('same plan + seed + points → the same decisions and events', () => {
    const a = run(42);
    expect(a.length).toBeGreaterThan(100);
    expect(JSON.stringify(run(42))).toBe(JSON.stringify(a));
  });

  test('another seed → other faults', () => {
    expect(JSON.stringify(run(43))).not.toBe(JSON.stringify(run(42)));
  });
});
