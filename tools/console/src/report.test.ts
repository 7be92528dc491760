import { describe, expect, test } from 'vitest';
import { likelyCause, namedEntities, regionsOf, reportHtml, type ReportEntry, type RunReport } from './report.js';
import type { RunView } from './model.js';

const ACTIONS = new Set(['step']);
const run = (base: number, count: number, kind = 'RAM'): RunView => ({ base, count, kind, owner: 3, host: 'OWNED', hyp: 'NOPAGE', granule: 'NS', grant: '', pins: 0, guestShares: 0 });

describe('likelyCause: the line most likely behind a violation', () => {
  const t: ReportEntry[] = [
    { kind: 'step', step: '#0', text: 'guest.accept parcel 10 ok' },
    { kind: 'fault', step: '#1', rule: 'lose', text: 'fault lose at CLIENT_TO_RM' },
    { kind: 'step', step: '#1', text: 'hlos.lend ERR BUSY' },
    { kind: 'step', step: '#2', text: 'vm.create ok' },
    { kind: 'violation', text: 'final: parcel 0xa survived' },
  ];
  test('the last action naming an entity of the violation (decimal or hex spelling)', () => {
    expect(namedEntities('final: parcel 0xa survived')).toContain('parcel 10');
    expect(likelyCause(t, 'final: parcel 0xa survived', 4, ACTIONS)).toEqual({ at: 0, why: 'the last step line before the failure that names parcel 10' });
  });
  test('else the action the last injected fault hit, saying so', () => {
    expect(likelyCause(t, 'final: parcel 11 survived', 4, ACTIONS)).toEqual({ at: 2, why: 'the last injected fault before the failure (rule lose) hit it; no earlier line names parcel 11' });
  });
  test('else none; lines at or after `before` are not looked at', () => {
    expect(likelyCause(t.slice(3), 'final: VMID 5 survived', 2, ACTIONS)).toBeUndefined();
    expect(likelyCause(t, 'final: parcel 10 survived', 0, ACTIONS)).toBeUndefined();
  });
});

test('regionsOf joins contiguous runs of one kind; a hole or a kind change starts a region', () => {
  expect(regionsOf([run(0, 4, 'MMIO'), run(4, 4, 'RAM'), run(8, 8, 'RAM'), run(32, 1, 'RAM')])).toEqual([
    { kind: 'MMIO', base: 0, count: 4 },
    { kind: 'RAM', base: 4, count: 12 },
    { kind: 'RAM', base: 32, count: 1 },
  ]);
});

test('reportHtml escapes every text and keeps the embedded data inside its script', () => {
  const r: RunReport = {
    title: 'a <b> run',
    command: 'hypmesh sim',
    ok: false,
    summary: [],
    verdicts: [{ check: 'final checks', status: 'fail', details: ['</script><script>alert(1)</script>'] }],
    failure: { violation: 'x & y', where: 'after step #0', at: 0 },
    faults: [],
    maps: [{ moment: 'start', note: '', runs: [run(0, 1)], grants: [{ id: '1', type: '</script>', owner: 3, acl: [], borrowers: [], frames: 1 }] }],
    timeline: [{ kind: 'violation', text: '<img src=x>' }],
  };
  const html = reportHtml(r);
  expect(html).toContain('<title>a &lt;b&gt; run</title>');
  expect(html).toContain('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(html).toContain('&lt;img src=x&gt;');
  expect(html).not.toContain('<img');
  expect(html.match(/<\/script>/g)).toHaveLength(2); // the data's and the code's, nothing from the run
});
