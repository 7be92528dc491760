import { describe, expect, test } from 'vitest';
import { checkHistory, formatReport, type CheckName } from './checker.js';
import { historyToJsonLines, parseHistory, parseOwnershipRun, type HistoryEntry, type Observation, type ObservedParcel } from './history.js';

const HOST = 3;
const BOOT_MAP = ['0x80000+0x10000 owner=3 host=OWNED'];
const parcel = (handle: number, label: number, extra: Partial<ObservedParcel> = {}): ObservedParcel => ({ handle, owner: HOST, label, state: 'SHARED', coreGrant: true, ...extra });
const observe = (phase: Observation['phase'], parcels: ObservedParcel[] = [], extra: Partial<Observation> = {}): Observation => ({
  type: 'observe',
  phase,
  parcels,
  ownership: BOOT_MAP,
  invariantViolations: [],
  clientHandles: { [HOST]: parcels.map((p) => p.handle) },
  ...extra,
});
const lend = (process: number, label: number, outcome: 'ok' | 'fail' | 'info'): HistoryEntry[] => [
  { type: 'invoke', process, f: 'mem_lend', kind: 'create_parcel', label },
  { type: outcome, process, f: 'mem_lend', ...(outcome === 'ok' ? { value: { handle: label } } : { error: 'UNAVAILABLE' }) },
];
const reclaim = (process: number, label: number, outcome: 'ok' | 'fail' | 'info'): HistoryEntry[] => [
  { type: 'invoke', process, f: 'mem_reclaim', kind: 'reclaim_parcel', label },
  { type: outcome, process, f: 'mem_reclaim' },
];
const verdictOf = (h: HistoryEntry[], check: CheckName) => checkHistory(h).verdicts.find((v) => v.check === check)!;

/** Each check: a history that passes it and one that violates it (and only it fails). */
const cases: { check: CheckName; passing: HistoryEntry[]; violating: HistoryEntry[] }[] = [
  {
    check: 'ok_visible',
    passing: [observe('boot'), ...lend(0, 1, 'ok'), ...lend(0, 2, 'ok'), ...reclaim(0, 2, 'ok'), observe('run', [parcel(1, 1)]), observe('final')],
    violating: [observe('boot'), ...lend(0, 1, 'ok'), observe('run', []), observe('final')],
  },
  {
    check: 'failed_absent',
    passing: [observe('boot'), ...lend(0, 1, 'fail'), ...lend(0, 2, 'ok'), ...reclaim(0, 2, 'fail'), observe('run', [parcel(2, 2)]), observe('final')],
    violating: [observe('boot'), ...lend(0, 1, 'fail'), observe('run', [parcel(1, 1)]), observe('final')],
  },
  {
    check: 'info_at_most_once',
    passing: [observe('boot'), ...lend(0, 1, 'info'), observe('run', [parcel(1, 1)]), observe('final')],
    violating: [observe('boot'), ...lend(0, 1, 'info'), observe('run', [parcel(1, 1), parcel(2, 1)]), observe('final')],
  },
  {
    check: 'ownership_equals_boot',
    passing: [observe('boot'), ...lend(0, 1, 'ok'), observe('run', [parcel(1, 1)]), observe('final')],
    violating: [observe('boot'), observe('run'), observe('final', [], { ownership: ['0x80000+0x1 owner=3 host=LENT', '0x80001+0xffff owner=3 host=OWNED'] })],
  },
  {
    check: 'invariants_hold',
    passing: [observe('boot'), observe('run'), observe('final')],
    violating: [observe('boot'), observe('run', [], { invariantViolations: ['rm: parcel 0x1 has no core grant'] }), observe('final')],
  },
  {
    check: 'no_orphaned_parcel',
    passing: [observe('boot'), ...lend(0, 1, 'ok'), observe('run', [parcel(1, 1)]), observe('final')],
    violating: [observe('boot'), ...lend(0, 1, 'ok'), observe('run', [parcel(1, 1)], { clientHandles: { [HOST]: [] } }), observe('final')],
  },
];

describe('checker: each check passes a good history and catches its violation', () => {
  test.each(cases)('$check passes', ({ check, passing }) => {
    const r = checkHistory(passing);
    expect(verdictOf(passing, check)).toEqual({ check, status: 'pass', details: [] });
    expect(r.valid).toBe(true);
  });
  test.each(cases)('$check catches its violation, and only it fails', ({ check, violating }) => {
    const r = checkHistory(violating);
    expect(r.valid).toBe(false);
    expect(r.verdicts.filter((v) => v.status === 'fail').map((v) => v.check)).toEqual([check]);
    expect(verdictOf(violating, check).details.length).toBeGreaterThan(0);
  });
});

describe('checker: outcomes the checker must not judge', () => {
  test('an info create may or may not have happened: both observations pass', () => {
    for (const run of [observe('run', []), observe('run', [parcel(1, 1)])]) {
      expect(checkHistory([observe('boot'), ...lend(0, 1, 'info'), run, observe('final')]).valid).toBe(true);
    }
  });
  test('an info reclaim after an ok create leaves presence open', () => {
    for (const run of [observe('run', []), observe('run', [parcel(1, 1)])]) {
      expect(checkHistory([observe('boot'), ...lend(0, 1, 'ok'), ...reclaim(0, 1, 'info'), run, observe('final')]).valid).toBe(true);
    }
  });
  test('a parcel whose core grant is gone is orphaned even if its owner knows it', () => {
    const h = [observe('boot'), ...lend(0, 1, 'ok'), observe('run', [parcel(1, 1, { coreGrant: false })]), observe('final')];
    expect(verdictOf(h, 'no_orphaned_parcel').details).toEqual(['run: parcel 0x1 (label 1) of VM 3: RM still holds it (SHARED), its core grant is gone']);
  });
  test('a history without observations skips the checks that need them', () => {
    const r = checkHistory(lend(0, 1, 'ok'));
    expect(r.verdicts.map((v) => v.status)).toEqual(['skipped', 'skipped', 'pass', 'skipped', 'skipped', 'skipped']);
    expect(r.valid).toBe(true);
  });
  test('a completion without an invoke makes the history malformed', () => {
    const r = checkHistory([{ type: 'ok', process: 0, f: 'mem_lend' }]);
    expect(r.malformed).toEqual(['entry 0: ok of mem_lend for process 0 without an invoke']);
    expect(r.valid).toBe(false);
  });
});

describe('JSON lines', () => {
  test('round trip', () => {
    const h = cases[5]!.violating;
    const parsed = parseHistory(historyToJsonLines(h));
    expect(parsed).toEqual({ ok: true, value: h });
  });
  test('bad lines are reported by number', () => {
    expect(parseHistory('{"type":"invoke","process":0,"f":"x","kind":"other"}\nnope\n{"type":"weird"}\n')).toEqual({
      ok: false,
      error: [expect.stringMatching(/^line 2: not JSON/), 'line 3: type must be one of invoke, ok, fail, info, observe'],
    });
  });
  test('the printed report names every check', () => {
    const out = formatReport(checkHistory(cases[5]!.violating));
    expect(out).toContain('FAIL  no_orphaned_parcel');
    expect(out).toContain('VM 3 no longer knows the handle');
    expect(out.trimEnd().endsWith('history INVALID')).toBe(true);
  });
});

test('parseOwnershipRun reads both recorded spellings and refuses the rest', () => {
  expect(parseOwnershipRun('0x80000+0x10 owner=3 host=LENT')).toEqual({ base: 0x80000, count: 16, owner: 3, host: 'LENT' });
  expect(parseOwnershipRun('0x80000-0x8ffff owner=128 host=OWNED')).toEqual({ base: 0x80000, count: 0x10000, owner: 128, host: 'OWNED' });
  expect(parseOwnershipRun('junk')).toBeUndefined();
  expect(parseOwnershipRun('0x1+0x0 owner=3 host=OWNED')).toBeUndefined();
});
