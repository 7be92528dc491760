import { describe, expect, test } from 'vitest';
import type { Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE } from '../types.js';
import { dataCreate, dataCreateUnknown, dataDestroy } from './data.js';
import { rmiInvariants } from './invariants.js';
import { realmCreateRttLevels, stage2RmiPort } from './kvm-host.js';
import { realmActivate } from './realm.js';
import { recCreate, recRequestRipasChange } from './rec.js';
import { rttInitRipas, rttSetRipas } from './ripas.js';
import { RMI_RIPAS, type Ripas } from './rtt-entry.js';
import { rttCreate, rttReadEntry } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import type { RmiError } from './status.js';
import { GiB, MiB, TestHost, createTestRealm, delegated, must, newCore, outcome, ram } from './test-support.js';

const PAR_END = 512 * GiB;
const P = GRANULE_SIZE;

function expectFailure(s: Stage2, call: () => Result<unknown, RmiError>, expected: unknown): void {
  const before = rmiSnapshot(s);
  expect(outcome(call())).toEqual(expected);
  expect(rmiSnapshot(s)).toEqual(before);
}
const INPUT = (rule: string) => ({ status: 'RMI_ERROR_INPUT', index: 0, rule });
const RTT = (index: number, rule: string) => ({ status: 'RMI_ERROR_RTT', index, rule });

function fixture() {
  const s = newCore();
  const host = new TestHost();
  const realm = createTestRealm(s, host);
  return { s, host, rd: realm.rd };
}

describe('§B6 RMI_RTT_INIT_RIPAS', () => {
  test('failure ladder, each row fixing the previous condition', async () => {
    const { s, host, rd } = fixture();
    const rows: [() => Result<unknown, RmiError>, unknown][] = [
      [() => rttInitRipas(s, rd, P, P), INPUT('top_base')],
      [() => rttInitRipas(s, rd, 2 * P, P), INPUT('top_base')],
      [() => rttInitRipas(s, rd, Number.NaN, P), INPUT('top_base')],
      [() => rttInitRipas(s, ram(3), 0, P), INPUT('rd_state')],
      [() => rttInitRipas(s, rd, 100, P), INPUT('base_align')],
      [() => rttInitRipas(s, rd, 0, P + 1), INPUT('top_align')],
      [() => rttInitRipas(s, rd, PAR_END, PAR_END + P), INPUT('base_par')],
      [() => rttInitRipas(s, rd, 0, PAR_END + P), INPUT('top_par')],
      [() => rttInitRipas(s, rd, P, 2 * P), RTT(1, 'base_level_align')], // inside a 1 GiB root entry
      [() => rttInitRipas(s, rd, 0, P), RTT(1, 'no_progress')], // the 1 GiB entry straddles top
    ];
    for (const [call, expected] of rows) expectFailure(s, call, expected);
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    must(dataCreateUnknown(s, rd, delegated(s, host), 0));
    expectFailure(s, () => rttInitRipas(s, rd, 0, P), RTT(3, 'no_progress')); // ASSIGNED
    expect(rttInitRipas(s, rd, P, 3 * P)).toEqual({ ok: true, value: { top: 3 * P } });
    expect(rttReadEntry(s, rd, 2 * P, 3)).toMatchObject({ value: { state: 0, ripas: RMI_RIPAS.RAM } });
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('realm_state: only a NEW realm', () => {
    const { s, rd } = fixture();
    must(realmActivate(s, rd));
    expectFailure(s, () => rttInitRipas(s, rd, 0, GiB), { status: 'RMI_ERROR_REALM', index: 0, rule: 'realm_state' });
  });

  test('progress stops at the first entry it may not change, and at the end of the table', () => {
    const { s, host, rd } = fixture();
    must(rttCreate(s, rd, delegated(s, host), 2 * GiB, 2));
    expect(rttInitRipas(s, rd, 0, 8 * GiB)).toEqual({ ok: true, value: { top: 2 * GiB } }); // entry 2 is a TABLE
    expect(rttInitRipas(s, rd, 2 * GiB, 8 * GiB)).toEqual({ ok: true, value: { top: 3 * GiB } }); // end of the L2 RTT
    expect(rttInitRipas(s, rd, 0, GiB)).toEqual({ ok: true, value: { top: GiB } }); // RAM stays RAM
    expect(rttReadEntry(s, rd, 2 * GiB + 6 * MiB, 3)).toMatchObject({ value: { walkLevel: 2, ripas: RMI_RIPAS.RAM } });
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B6 RMI_RTT_SET_RIPAS', () => {
  function recFixture() {
    const f = fixture();
    const rec = delegated(f.s, f.host);
    must(recCreate(f.s, f.rd, rec));
    const other = createTestRealm(f.s, f.host);
    const otherRec = delegated(f.s, f.host);
    must(recCreate(f.s, other.rd, otherRec));
    return { ...f, rec, otherRec };
  }

  test('failure ladder, each row fixing the previous condition', async () => {
    const { s, host, rd, rec, otherRec } = recFixture();
    expectFailure(s, () => rttSetRipas(s, rd, rec, P, 0), INPUT('top_base'));
    expectFailure(s, () => rttSetRipas(s, ram(2), rec, 0, P), INPUT('rd_state'));
    expectFailure(s, () => rttSetRipas(s, rd, ram(2), 0, P), INPUT('rec_state'));
    s.rmm.recs.get(rec / P)!.running = true; // as inside REC_ENTER (not modelled)
    expectFailure(s, () => rttSetRipas(s, rd, rec, 0, P), { status: 'RMI_ERROR_REC', index: 0, rule: 'rec_running' });
    s.rmm.recs.get(rec / P)!.running = false;
    expectFailure(s, () => rttSetRipas(s, rd, otherRec, 0, P), { status: 'RMI_ERROR_REC', index: 0, rule: 'rec_owner' });
    expectFailure(s, () => rttSetRipas(s, rd, rec, 0, P), INPUT('request_top')); // no request pending
    must(recRequestRipasChange(s, rec, P, 3 * P, 'RAM', false));
    expectFailure(s, () => rttSetRipas(s, rd, rec, 0, P), INPUT('request_base'));
    expectFailure(s, () => rttSetRipas(s, rd, rec, P, 4 * P), INPUT('request_top'));
    expectFailure(s, () => rttSetRipas(s, rd, rec, P, 3 * P), RTT(1, 'base_level_align'));
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    expect(rttSetRipas(s, rd, rec, P, 2 * P)).toEqual({ ok: true, value: { top: 2 * P } });
    expect(s.rmm.recs.get(rec / P)!.ripasRequest.addr).toBe(2 * P); // the request advances
    expectFailure(s, () => rttSetRipas(s, rd, rec, P, 3 * P), INPUT('request_base'));
    expect(rttSetRipas(s, rd, rec, 2 * P, 3 * P)).toEqual({ ok: true, value: { top: 3 * P } });
    expect(rmiInvariants(s)).toEqual([]);
  });

  type Kind = 'UNASSIGNED_EMPTY' | 'UNASSIGNED_RAM' | 'UNASSIGNED_DESTROYED' | 'ASSIGNED_EMPTY' | 'ASSIGNED_RAM' | 'ASSIGNED_DESTROYED';
  /** Brings the entry at 0 into `kind` with RMI commands only. */
  async function entryIn(s: Stage2, host: TestHost, rd: number, kind: Kind): Promise<void> {
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    const d = delegated(s, host);
    if (kind === 'UNASSIGNED_RAM') must(rttInitRipas(s, rd, 0, P));
    if (kind.endsWith('DESTROYED')) {
      must(dataCreate(s, rd, d, 0, ram(0), 0));
      must(dataDestroy(s, rd, 0));
    }
    if (kind === 'ASSIGNED_RAM') must(dataCreate(s, rd, d, 0, ram(0), 0));
    if (kind === 'ASSIGNED_EMPTY' || kind === 'ASSIGNED_DESTROYED') must(dataCreateUnknown(s, rd, d, 0));
  }

  // update_ripas (R10 rtt.c): [entry, target, change_destroyed] → new RIPAS, or 'stop' (no progress).
  const rows: { kind: Kind; target: Ripas; cd: boolean; result: Ripas | 'stop' }[] = [
    { kind: 'UNASSIGNED_EMPTY', target: 'RAM', cd: false, result: 'RAM' },
    { kind: 'UNASSIGNED_RAM', target: 'RAM', cd: false, result: 'RAM' },
    { kind: 'UNASSIGNED_DESTROYED', target: 'RAM', cd: false, result: 'stop' },
    { kind: 'UNASSIGNED_DESTROYED', target: 'RAM', cd: true, result: 'RAM' },
    { kind: 'ASSIGNED_EMPTY', target: 'RAM', cd: false, result: 'RAM' },
    { kind: 'ASSIGNED_RAM', target: 'RAM', cd: false, result: 'RAM' },
    { kind: 'ASSIGNED_DESTROYED', target: 'RAM', cd: false, result: 'stop' },
    { kind: 'ASSIGNED_DESTROYED', target: 'RAM', cd: true, result: 'RAM' },
    { kind: 'UNASSIGNED_EMPTY', target: 'EMPTY', cd: false, result: 'EMPTY' },
    { kind: 'UNASSIGNED_RAM', target: 'EMPTY', cd: false, result: 'EMPTY' },
    { kind: 'UNASSIGNED_DESTROYED', target: 'EMPTY', cd: false, result: 'stop' },
    { kind: 'UNASSIGNED_DESTROYED', target: 'EMPTY', cd: true, result: 'EMPTY' },
    { kind: 'ASSIGNED_RAM', target: 'EMPTY', cd: false, result: 'EMPTY' },
    { kind: 'ASSIGNED_DESTROYED', target: 'EMPTY', cd: false, result: 'stop' },
    { kind: 'ASSIGNED_DESTROYED', target: 'EMPTY', cd: true, result: 'EMPTY' },
  ];
  test.each(rows)('$kind → $target (change_destroyed $cd): $result', async ({ kind, target, cd, result }) => {
    const { s, host, rd, rec } = recFixture();
    await entryIn(s, host, rd, kind);
    must(recRequestRipasChange(s, rec, 0, P, target, cd));
    const assigned = kind.startsWith('ASSIGNED') ? 1 : 0;
    if (result === 'stop') {
      expectFailure(s, () => rttSetRipas(s, rd, rec, 0, P), RTT(3, 'no_progress'));
    } else {
      expect(rttSetRipas(s, rd, rec, 0, P)).toEqual({ ok: true, value: { top: P } });
      expect(rttReadEntry(s, rd, 0, 3)).toMatchObject({ value: { walkLevel: 3, state: assigned, ripas: RMI_RIPAS[result] } });
    }
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('NS and TABLE entries stop the walk', () => {
    const { s, host, rd, rec } = recFixture();
    must(rttCreate(s, rd, delegated(s, host), GiB, 2));
    must(recRequestRipasChange(s, rec, 0, 4 * GiB, 'RAM', false));
    expect(rttSetRipas(s, rd, rec, 0, 4 * GiB)).toEqual({ ok: true, value: { top: GiB } });
    expect(rttSetRipas(s, rd, rec, GiB, 4 * GiB)).toEqual({ ok: true, value: { top: 2 * GiB } });
  });
});
