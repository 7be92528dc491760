import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { likelyCause } from '@hypmesh/console';
import { loadPlanJson } from '@hypmesh/fault';
import { checkHistory, type History } from '@hypmesh/history';
import { replayOf, runReplay, type SimMoment } from '@hypmesh/sim';
import { checkReport, lookAt, simReport, type CauseFinder, type WorldLook } from './html-report.js';

const PLAN = loadPlanJson(readFileSync(fileURLToPath(new URL('../../../examples/faults/sim-lost-lend-reply.json', import.meta.url)), 'utf8'));
const cause: CauseFinder = (t, v, before) => likelyCause(t, v, before, new Set(['step', 'hlos', 'final', 'invoke', 'ok', 'fail', 'info']));

test('sim: the look sees start, failure and end without changing the run; the report names the final checks and the faulted step', async () => {
  if (!PLAN.ok) throw new Error('plan');
  const replay = replayOf({ seed: 7, steps: 600, checkEvery: 100, plan: PLAN.value });
  const looks = new Map<SimMoment, WorldLook>();
  const order: SimMoment[] = [];
  const r = await runReplay(replay, true, (m, w) => (order.push(m), looks.set(m, lookAt(w))));
  expect(r.logHash).toBe((await runReplay(replay, true)).logHash); // looking changes nothing
  expect(order).toEqual(['start', 'failure', 'end']);
  // At the start the host owns all but HYP's frames; the runs cover memory without overlap.
  const start = looks.get('start')!;
  expect(new Set(start.runs.map((x) => x.owner))).toEqual(new Set([0, 3]));
  for (let i = 1; i < start.runs.length; i++) expect(start.runs[i]!.base).toBeGreaterThanOrEqual(start.runs[i - 1]!.base + start.runs[i - 1]!.count);

  const rep = simReport(r, looks, 'hypmesh sim --seed 7', cause);
  expect(rep.ok).toBe(false);
  expect(rep.verdicts.map((v) => `${v.check}:${v.status}`)).toEqual(['actors:pass', 'step checks:pass', 'core checks:pass', 'final checks:fail']);
  expect(rep.failure!.violation).toMatch(/^final: parcel \d+ \(LEND, owner 3\) survived, unreported$/);
  expect(rep.timeline[rep.failure!.at!]!.kind).toBe('violation');
  const c = rep.timeline[rep.failure!.cause!.at]!;
  expect(c.kind).toBe('step');
  expect(c.text).toMatch(/^hlos\.lend ERR .*lose-lend-reply/);
  expect(rep.faults.map((i) => rep.timeline[i]!.step)).toEqual([c.step]);
  expect(rep.maps.map((m) => m.moment)).toEqual(['start', 'failure', 'end']);
});

test('sim: a passing run has no failure, its final checks pass, and no failure map', async () => {
  const looks = new Map<SimMoment, WorldLook>();
  const r = await runReplay(replayOf({ seed: 1, steps: 100, checkEvery: 50 }), true, (m, w) => looks.set(m, lookAt(w)));
  const rep = simReport(r, looks, 'hypmesh sim --seed 1', cause);
  expect(rep.ok).toBe(true);
  expect(rep.failure).toBeUndefined();
  expect(rep.verdicts.every((v) => v.status === 'pass')).toBe(true);
  expect(rep.maps.map((m) => m.moment)).toEqual(['start', 'end']);
});

test('check: a failing history points at its first violation and the operation on the label it names', () => {
  const obs = (phase: 'boot' | 'run' | 'final', parcels: { handle: number; label: number }[], ownership: string[]) => ({
    type: 'observe' as const,
    phase,
    parcels: parcels.map((p) => ({ ...p, owner: 3, state: 'SHARED', coreGrant: true })),
    ownership,
    invariantViolations: [],
    clientHandles: { '3': parcels.map((p) => p.handle) },
  });
  const h: History = [
    obs('boot', [], ['0x80000+0x100 owner=3 host=OWNED']),
    { type: 'invoke', process: 0, f: 'mem_lend', kind: 'create_parcel', label: 5 },
    { type: 'fail', process: 0, f: 'mem_lend', error: 'UNAVAILABLE msgq_unavailable_fault_drop-it' },
    obs('run', [{ handle: 1, label: 5 }], ['0x80000+0x10 owner=3 host=LENT', '0x80010+0xf0 owner=3 host=OWNED']),
    obs('final', [], ['0x80000+0x100 owner=3 host=OWNED']),
  ];
  const rep = checkReport(h, checkHistory(h), 'hypmesh check h.jsonl', cause);
  expect(rep.ok).toBe(false);
  expect(rep.failure!.violation).toMatch(/^failed_absent: mem_lend of label 5 \(fail\)/);
  expect(rep.failure!.where).toBe('at the run observation (history entry 3)');
  expect(rep.timeline[rep.failure!.cause!.at]).toMatchObject({ kind: 'fail', rule: 'drop-it' });
  expect(rep.faults).toEqual([rep.failure!.cause!.at]);
  expect(rep.maps.map((m) => `${m.moment}:${m.runs.length}`)).toEqual(['start:1', 'failure:2', 'end:1']);
});
