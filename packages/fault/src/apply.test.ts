import { describe, expect, test } from 'vitest';
import { applyAt, type ApplyPorts, type OutcomeAdapter } from './apply.js';
import { NO_FAULT, type AppliedAction, type Decision, type FaultEvent } from './engine.js';

type Outcome = { readonly kind: 'ok'; readonly n: number } | { readonly kind: 'refused'; readonly why: string } | { readonly kind: 'lost'; readonly code: string; readonly message: string };

const outcome: OutcomeAdapter<Outcome> = {
  refused: (f) => ({ kind: 'refused', why: f.kind === 'grpc' ? f.code : f.error.family }),
  lost: (code, message) => ({ kind: 'lost', code, message }),
};

function harness() {
  const log: string[] = [];
  let applied = 0;
  const call = async (): Promise<Outcome> => {
    applied++;
    log.push(`call ${applied}`);
    return { kind: 'ok', n: applied };
  };
  const ports: ApplyPorts = {
    sleep: async (ms) => void log.push(`sleep ${ms}`),
    pause: async (ms) => void log.push(`pause ${ms}`),
    crash: (e) => void log.push(`crash ${e.ruleId}`),
  };
  return { log, call, ports, applied: () => applied };
}

const decision = (action: AppliedAction): Decision => {
  const event: FaultEvent = { ruleId: 'r', boundary: 'CLIENT_TO_RM', opIndex: 1, globalOpIndex: 1, seed: 0, action, timeMs: 0 };
  return { fault: true, event };
};

describe('applyAt', () => {
  test('no fault: just the call', async () => {
    const h = harness();
    expect(await applyAt(NO_FAULT, h.call, outcome, h.ports)).toEqual({ kind: 'ok', n: 1 });
    expect(h.log).toEqual(['call 1']);
  });

  test('delay: sleep on the injected clock, then call', async () => {
    const h = harness();
    expect(await applyAt(decision({ kind: 'delay', delayMs: 12 }), h.call, outcome, h.ports)).toEqual({ kind: 'ok', n: 1 });
    expect(h.log).toEqual(['sleep 12', 'call 1']);
  });

  test('pause: the pause port, then call; falls back to sleep', async () => {
    const h = harness();
    await applyAt(decision({ kind: 'pause', durationMs: 40 }), h.call, outcome, h.ports);
    expect(h.log).toEqual(['pause 40', 'call 1']);
    const g = harness();
    await applyAt(decision({ kind: 'pause', durationMs: 40 }), g.call, outcome, { sleep: g.ports.sleep, crash: g.ports.crash });
    expect(g.log).toEqual(['sleep 40', 'call 1']);
  });

  test('fail_before: refused, never applied', async () => {
    const h = harness();
    const r = await applyAt(decision({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } }), h.call, outcome, h.ports);
    expect(r).toEqual({ kind: 'refused', why: 'rm' });
    expect(h.applied()).toBe(0);
  });

  test('fail_after: applied, then the reply is lost', async () => {
    const h = harness();
    const r = await applyAt(decision({ kind: 'fail_after', code: 'DEADLINE_EXCEEDED' }), h.call, outcome, h.ports);
    expect(r).toEqual({ kind: 'lost', code: 'DEADLINE_EXCEEDED', message: 'fault injected by rule r: reply lost' });
    expect(h.applied()).toBe(1);
  });

  test('fail_after keeps its own message', async () => {
    const h = harness();
    const r = await applyAt(decision({ kind: 'fail_after', code: 'UNAVAILABLE', message: 'link down' }), h.call, outcome, h.ports);
    expect(r).toEqual({ kind: 'lost', code: 'UNAVAILABLE', message: 'link down' });
  });

  test('duplicate: applied twice, the caller sees the first outcome', async () => {
    const h = harness();
    expect(await applyAt(decision({ kind: 'duplicate' }), h.call, outcome, h.ports)).toEqual({ kind: 'ok', n: 1 });
    expect(h.log).toEqual(['call 1', 'call 2']);
  });

  test('drop: never applied, the caller times out', async () => {
    const h = harness();
    const r = await applyAt(decision({ kind: 'drop' }), h.call, outcome, h.ports);
    expect(r).toMatchObject({ kind: 'lost', code: 'DEADLINE_EXCEEDED' });
    expect(h.applied()).toBe(0);
  });

  test('crash before commit: crash without applying', async () => {
    const h = harness();
    const r = await applyAt(decision({ kind: 'crash', point: 'BEFORE_COMMIT' }), h.call, outcome, h.ports);
    expect(h.log).toEqual(['crash r']);
    expect(r).toMatchObject({ kind: 'lost', code: 'UNAVAILABLE' });
  });

  test('crash after commit: apply, then crash before the reply', async () => {
    const h = harness();
    const r = await applyAt(decision({ kind: 'crash', point: 'AFTER_COMMIT' }), h.call, outcome, h.ports);
    expect(h.log).toEqual(['call 1', 'crash r']);
    expect(r).toMatchObject({ kind: 'lost', code: 'UNAVAILABLE' });
  });

  test.each([{ kind: 'corrupt', draws: [1] } as const, { kind: 'reorder' } as const])('$kind at a call boundary is a bug (the validator refuses it)', async (action) => {
    const h = harness();
    await expect(applyAt(decision(action), h.call, outcome, h.ports)).rejects.toThrow(/fragment action/);
    expect(h.applied()).toBe(0);
  });
});
