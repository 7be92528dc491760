/**
 * The simulation's own guarantees (issue 8 item 3): the same seed gives a byte-identical event
 * log, a replay file reproduces a run, a failure is found, reported with its seed, and shrunk.
 */
import { describe, expect, test } from 'vitest';
import type { FaultPlan } from '@hypmesh/fault';
import { replayOf, runReplay, runSim, shrink } from './simulation.js';

/** HLOS's MEM_LEND replies lost: HLOS never learns the handles, so the parcels are orphans nobody reports. */
const ORPHAN_PLAN: FaultPlan = { rules: [{ id: 'lose-lend-reply', boundary: 'CLIENT_TO_RM', match: { rmMessage: 'MEM_LEND', callerVmid: 3, nth: 2 }, action: { kind: 'fail_after', code: 'UNAVAILABLE' } }] };

describe('determinism', () => {
  test('same_seed_same_log: two runs of one seed, with random faults, give byte-identical event logs', async () => {
    const a = await runSim({ seed: 42, steps: 1_500, faultRate: 0.02, checkEvery: 100, keepLog: true });
    const b = await runSim({ seed: 42, steps: 1_500, faultRate: 0.02, checkEvery: 100, keepLog: true });
    expect(a.ok, a.failure?.violations.join('\n')).toBe(true);
    expect(a.faultsInjected).toBeGreaterThan(0);
    expect(b.log.join('\n')).toBe(a.log.join('\n'));
    expect(b.logHash).toBe(a.logHash);
  });

  test('other_seed_other_log: a different seed gives a different schedule', async () => {
    const a = await runSim({ seed: 1, steps: 300, checkEvery: 100 });
    const b = await runSim({ seed: 2, steps: 300, checkEvery: 100 });
    expect(a.logHash).not.toBe(b.logHash);
  });
});

describe('checkers, replay and shrinking', () => {
  test('unreported_orphan_parcel_fails: a lost MEM_LEND reply orphans a parcel and the final check names it', async () => {
    const r = await runSim({ seed: 7, steps: 600, checkEvery: 100, plan: ORPHAN_PLAN });
    expect(r.ok).toBe(false);
    expect(r.failure!.violations.some((v) => /final: parcel \d+ \(LEND, owner 3\) survived, unreported/.test(v))).toBe(true);
  });

  test('replay_reproduces: the replay file of a failing run fails the same way with the same log', async () => {
    const first = await runSim({ seed: 7, steps: 600, checkEvery: 100, plan: ORPHAN_PLAN, keepLog: true });
    const again = await runReplay(JSON.parse(JSON.stringify(first.replay)), true);
    expect(again.log).toEqual(first.log);
    expect(again.failure).toEqual(first.failure);
  });

  test('shrink_minimal_schedule: shrinking keeps the failure and leaves only a few steps', async () => {
    const replay = replayOf({ seed: 7, steps: 600, checkEvery: 100, plan: ORPHAN_PLAN });
    const { replay: small, result } = await shrink(replay);
    expect(result.ok).toBe(false);
    expect(small.schedule.length).toBeLessThan(40);
    expect(small.plan.rules.map((r) => r.id)).toEqual(['lose-lend-reply']);
    expect((await runReplay(small)).ok).toBe(false);
  }, 120_000);
});
