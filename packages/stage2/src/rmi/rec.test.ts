import { describe, expect, test } from 'vitest';
import { GRANULE_SIZE } from '../types.js';
import { rmiInvariants } from './invariants.js';
import { realmActivate } from './realm.js';
import { recCreate, recDestroy, recRequestRipasChange } from './rec.js';
import { rmiSnapshot } from './snapshot.js';
import { GiB, TestHost, createTestRealm, delegated, newCore, outcome, ram } from './test-support.js';

function fixture() {
  const s = newCore();
  const host = new TestHost();
  const realm = createTestRealm(s, host);
  const rec = delegated(s, host);
  return { s, host, realm, rec };
}

describe('§B3 RMI_REC_CREATE', () => {
  test('ladder: rd_state, rec_state → INPUT; realm_state → REALM; then success', () => {
    const { s, realm, rec } = fixture();
    const rows: [number, number, unknown][] = [
      [ram(1), rec, { status: 'RMI_ERROR_INPUT', index: 0, rule: 'rd_state' }],
      [realm.rd, ram(1), { status: 'RMI_ERROR_INPUT', index: 0, rule: 'rec_state' }],
      [realm.rd, realm.roots[0]!, { status: 'RMI_ERROR_INPUT', index: 0, rule: 'rec_state' }], // an RTT
    ];
    for (const [rd, r, expected] of rows) {
      const before = rmiSnapshot(s);
      expect(outcome(recCreate(s, rd, r))).toEqual(expected);
      expect(rmiSnapshot(s)).toEqual(before);
    }
    expect(recCreate(s, realm.rd, rec)).toEqual({ ok: true, value: {} });
    expect(s.memory.meta.get(rec / GRANULE_SIZE)!.rmi).toBe('REC');
    expect(s.rmm.realms.get(realm.rd / GRANULE_SIZE)!.recCount).toBe(1);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('realm_state: a REC cannot be created once the realm is ACTIVE', () => {
    const { s, realm, rec } = fixture();
    expect(realmActivate(s, realm.rd).ok).toBe(true);
    const before = rmiSnapshot(s);
    expect(outcome(recCreate(s, realm.rd, rec))).toEqual({ status: 'RMI_ERROR_REALM', index: 0, rule: 'realm_state' });
    expect(rmiSnapshot(s)).toEqual(before);
  });
});

describe('§B2 RMI_REC_DESTROY', () => {
  test('ladder: rec_state → INPUT; rec_running → REC; then success', () => {
    const { s, realm, rec } = fixture();
    expect(recCreate(s, realm.rd, rec).ok).toBe(true);
    let before = rmiSnapshot(s);
    expect(outcome(recDestroy(s, realm.rd))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule: 'rec_state' });
    expect(rmiSnapshot(s)).toEqual(before);
    s.rmm.recs.get(rec / GRANULE_SIZE)!.running = true; // as if in REC_ENTER (not modelled)
    before = rmiSnapshot(s);
    expect(outcome(recDestroy(s, rec))).toEqual({ status: 'RMI_ERROR_REC', index: 0, rule: 'rec_running' });
    expect(rmiSnapshot(s)).toEqual(before);
    s.rmm.recs.get(rec / GRANULE_SIZE)!.running = false;
    expect(recDestroy(s, rec)).toEqual({ ok: true, value: {} });
    expect(s.memory.meta.get(rec / GRANULE_SIZE)!.rmi).toBe('DELEGATED');
    expect(s.rmm.realms.get(realm.rd / GRANULE_SIZE)!.recCount).toBe(0);
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('recRequestRipasChange (RSI_IPA_STATE_SET simulation hook)', () => {
  test.each([
    { rule: 'rec_state', rec: (_r: number) => ram(1), base: 0, top: 4096, ripas: 'RAM' },
    { rule: 'rsi_range', rec: (r: number) => r, base: 4096, top: 4096, ripas: 'RAM' },
    { rule: 'rsi_range', rec: (r: number) => r, base: 100, top: 4096, ripas: 'RAM' },
    { rule: 'rsi_par', rec: (r: number) => r, base: 0, top: 512 * GiB + 4096, ripas: 'RAM' },
    { rule: 'rsi_ripas', rec: (r: number) => r, base: 0, top: 4096, ripas: 'DESTROYED' },
    { rule: 'rsi_ripas', rec: (r: number) => r, base: 0, top: 4096, ripas: 7 }, // an encoding this model does not know
  ] as const)('$rule → INPUT, nothing changed', ({ rule, rec, base, top, ripas }) => {
    const { s, realm, rec: r } = fixture();
    expect(recCreate(s, realm.rd, r).ok).toBe(true);
    const before = rmiSnapshot(s);
    expect(outcome(recRequestRipasChange(s, rec(r), base, top, ripas, false))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule });
    expect(rmiSnapshot(s)).toEqual(before);
  });

  test('records the request on the REC', () => {
    const { s, realm, rec } = fixture();
    expect(recCreate(s, realm.rd, rec).ok).toBe(true);
    expect(recRequestRipasChange(s, rec, 2 * GiB, 3 * GiB, 'RAM', true).ok).toBe(true);
    expect(s.rmm.recs.get(rec / GRANULE_SIZE)!.ripasRequest).toEqual({ addr: 2 * GiB, top: 3 * GiB, ripas: 'RAM', changeDestroyed: true });
    expect(rmiInvariants(s)).toEqual([]);
  });
});
