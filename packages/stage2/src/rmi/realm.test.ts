import { describe, expect, test } from 'vitest';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE } from '../types.js';
import { granuleUndelegate } from './granule.js';
import { rmiInvariants } from './invariants.js';
import { realmActivate, realmCreate, realmDestroy, realmRootRttCount, type RealmParams } from './realm.js';
import { recCreate, recDestroy } from './rec.js';
import { RMI_RIPAS, RMI_RTT_STATE } from './rtt-entry.js';
import { rttCreate, rttDestroy, rttReadEntry } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import { GiB, MMIO_BASE, TestHost, createTestRealm, delegated, newCore, outcome, ram } from './test-support.js';

interface CreateCase {
  readonly s: Stage2;
  rd: number;
  params: RealmParams;
}

/** A core with an RD and two consecutive roots delegated, and params that would succeed. */
function createFixture(): CreateCase {
  const s = newCore();
  const host = new TestHost();
  const rd = delegated(s, host);
  const r0 = delegated(s, host);
  delegated(s, host);
  // A second realm already holds VMID 9.
  createTestRealm(s, host, 40, 1, 9);
  return { s, rd, params: { s2sz: 40, rttLevelStart: 1, rttNumStart: 2, rttBase: r0, vmid: 5 } };
}

describe('§B3 RMI_REALM_CREATE', () => {
  // Each row breaks one condition with every earlier one fixed (R10 realm.c check order).
  const ladder: { rule: string; break: (c: CreateCase) => void }[] = [
    { rule: 'params_s2sz', break: (c) => (c.params = { ...c.params, s2sz: 31 }) },
    { rule: 'params_s2sz', break: (c) => (c.params = { ...c.params, s2sz: 41 }) }, // beyond the 40-bit PA (FEAT S2SZ)
    { rule: 'params_s2sz', break: (c) => (c.params = { ...c.params, s2sz: Number.NaN }) },
    { rule: 'params_rtt_level_start', break: (c) => (c.params = { ...c.params, rttLevelStart: 0 }) }, // level 0 needs PA >= 44
    { rule: 'params_rtt_level_start', break: (c) => (c.params = { ...c.params, rttLevelStart: 2 }) }, // 40 bits at level 2: 16+ roots
    { rule: 'params_rtt_level_start', break: (c) => (c.params = { ...c.params, rttLevelStart: -1 }) },
    { rule: 'params_rtt_num_start', break: (c) => (c.params = { ...c.params, rttNumStart: 1 }) },
    { rule: 'params_hash_algorithm', break: (c) => (c.params = { ...c.params, hashAlgorithm: 'MD5' as 'SHA_256' }) },
    { rule: 'params_vmid', break: (c) => (c.params = { ...c.params, vmid: 9 }) }, // in use
    { rule: 'params_vmid', break: (c) => (c.params = { ...c.params, vmid: 0x10000 }) },
    // Issue 7 #16: an encoding the API does not know reaches the domain as its number.
    { rule: 'params_hash_algorithm', break: (c) => (c.params = { ...c.params, hashAlgorithm: 3 }) },
    { rule: 'params_vmid', break: (c) => (c.params = { ...c.params, vmid: 0xffffffff }) }, // uint32 max
    { rule: 'alias', break: (c) => (c.rd = c.params.rttBase + GRANULE_SIZE) },
    { rule: 'rd_align', break: (c) => (c.rd += 8) },
    { rule: 'rd_bound', break: (c) => (c.rd = MMIO_BASE) },
    { rule: 'rd_state', break: (c) => (c.rd = ram(3)) }, // NS
    { rule: 'rtt_align', break: (c) => (c.params = { ...c.params, rttBase: c.params.rttBase + 1 }) },
    { rule: 'rtt_state', break: (c) => (c.params = { ...c.params, rttBase: c.params.rttBase + GRANULE_SIZE }) }, // 2nd root NS
  ];
  test.each(ladder)('$rule → RMI_ERROR_INPUT, nothing changed', ({ rule, break: breakIt }) => {
    const c = createFixture();
    breakIt(c);
    const before = rmiSnapshot(c.s);
    expect(outcome(realmCreate(c.s, c.rd, c.params))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule });
    expect(rmiSnapshot(c.s)).toEqual(before);
  });

  test('garbage params are INPUT, never a throw', () => {
    const c = createFixture();
    const before = rmiSnapshot(c.s);
    for (const p of [null, undefined, 42, {}, { s2sz: '40' }] as unknown as RealmParams[]) {
      expect(outcome(realmCreate(c.s, c.rd, p))).toMatchObject({ status: 'RMI_ERROR_INPUT' });
    }
    expect(rmiSnapshot(c.s)).toEqual(before);
  });

  test('success: RD → RD (NEW), roots → RTT, PAR UNASSIGNED_EMPTY and the rest UNASSIGNED_NS', () => {
    const c = createFixture();
    expect(realmCreate(c.s, c.rd, c.params)).toEqual({ ok: true, value: {} });
    const realm = c.s.rmm.realms.get(c.rd / GRANULE_SIZE)!;
    expect([realm.state, realm.vmid, realm.ipaBits, realm.startLevel, realm.recCount]).toEqual(['NEW', 5, 40, 1, 0]);
    expect(c.s.memory.meta.get(c.rd / GRANULE_SIZE)!.rmi).toBe('RD');
    expect(c.s.memory.meta.get(c.params.rttBase / GRANULE_SIZE)!.rmi).toBe('RTT');
    expect(rttReadEntry(c.s, c.rd, 0, 1)).toEqual({ ok: true, value: { walkLevel: 1, state: RMI_RTT_STATE.UNASSIGNED, desc: 0, ripas: RMI_RIPAS.EMPTY } });
    expect(rttReadEntry(c.s, c.rd, 511 * GiB, 3)).toEqual({ ok: true, value: { walkLevel: 1, state: 0, desc: 0, ripas: 0 } });
    expect(c.s.rmm.realms.get(c.rd / GRANULE_SIZE)!.roots[1]!.entries[0]).toBe(2); // UNASSIGNED_NS at 512 GiB
    expect(rmiInvariants(c.s)).toEqual([]);
  });

  test('a VMID is picked when the params carry none; realm VMIDs are unique', () => {
    const s = newCore();
    const host = new TestHost();
    const a = createTestRealm(s, host);
    const b = createTestRealm(s, host);
    expect(s.rmm.realms.get(a.rd / GRANULE_SIZE)!.vmid).toBe(1);
    expect(s.rmm.realms.get(b.rd / GRANULE_SIZE)!.vmid).toBe(2);
  });

  // §B4 validity of (s2sz, rtt_level_start) and the root count, as s2_num_root_rtts computes it.
  test.each([
    { s2sz: 32, sl: 1, roots: 1 },
    { s2sz: 32, sl: 2, roots: 4 },
    { s2sz: 34, sl: 2, roots: 16 },
    { s2sz: 39, sl: 1, roots: 1 },
    { s2sz: 40, sl: 1, roots: 2 },
  ])('s2sz $s2sz at level $sl needs $roots root(s)', ({ s2sz, sl, roots }) => {
    expect(realmRootRttCount(s2sz, sl)).toBe(roots);
    const s = newCore();
    const host = new TestHost();
    const r = createTestRealm(s, host, s2sz, sl);
    expect(r.roots.length).toBe(roots);
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B3 RMI_REALM_ACTIVATE', () => {
  test.each([
    { rule: 'rd_state', status: 'RMI_ERROR_INPUT', rd: (_r: { rd: number; roots: readonly number[] }) => ram(2) },
    { rule: 'rd_state', status: 'RMI_ERROR_INPUT', rd: (r: { rd: number; roots: readonly number[] }) => r.roots[0]! }, // an RTT, not an RD
  ])('$rule → $status', ({ rule, status, rd }) => {
    const s = newCore();
    const r = createTestRealm(s, new TestHost());
    const before = rmiSnapshot(s);
    expect(outcome(realmActivate(s, rd(r)))).toEqual({ status, index: 0, rule });
    expect(rmiSnapshot(s)).toEqual(before);
  });

  test('NEW → ACTIVE; a second activate is realm_state → RMI_ERROR_REALM', () => {
    const s = newCore();
    const r = createTestRealm(s, new TestHost());
    expect(realmActivate(s, r.rd).ok).toBe(true);
    expect(s.rmm.realms.get(r.rd / GRANULE_SIZE)!.state).toBe('ACTIVE');
    const before = rmiSnapshot(s);
    expect(outcome(realmActivate(s, r.rd))).toEqual({ status: 'RMI_ERROR_REALM', index: 0, rule: 'realm_state' });
    expect(rmiSnapshot(s)).toEqual(before);
  });
});

describe('§B3 RMI_REALM_DESTROY', () => {
  test('ladder: rd_state → INPUT, realm_recs → REALM, realm_live → REALM, then success', () => {
    const s = newCore();
    const host = new TestHost();
    const r = createTestRealm(s, host);
    const rec = delegated(s, host);
    const rtt = delegated(s, host);
    expect(recCreate(s, r.rd, rec).ok).toBe(true);
    expect(rttCreate(s, r.rd, rtt, 0, 2).ok).toBe(true);
    const steps: [number, unknown][] = [
      [ram(1), { status: 'RMI_ERROR_INPUT', index: 0, rule: 'rd_state' }],
      [r.rd, { status: 'RMI_ERROR_REALM', index: 0, rule: 'realm_recs' }],
    ];
    for (const [rd, expected] of steps) {
      const before = rmiSnapshot(s);
      expect(outcome(realmDestroy(s, rd))).toEqual(expected);
      expect(rmiSnapshot(s)).toEqual(before);
    }
    // Fix realm_recs: destroy the REC (its own ladder is in rec.test.ts).
    expect(recDestroy(s, rec).ok).toBe(true);
    const before = rmiSnapshot(s);
    expect(outcome(realmDestroy(s, r.rd))).toEqual({ status: 'RMI_ERROR_REALM', index: 0, rule: 'realm_live' });
    expect(rmiSnapshot(s)).toEqual(before);
    expect(rttDestroy(s, r.rd, 0, 2).ok).toBe(true);
    expect(realmDestroy(s, r.rd)).toEqual({ ok: true, value: {} });
    for (const g of [r.rd, ...r.roots]) expect(s.memory.meta.get(g / GRANULE_SIZE)!.rmi).toBe('DELEGATED');
    expect(s.rmm.realms.size + s.rmm.rtts.size + s.rmm.vmids.size).toBe(0);
    expect(rmiInvariants(s)).toEqual([]);
    for (const g of [r.rd, ...r.roots, rec, rtt]) expect(granuleUndelegate(s, g).ok).toBe(true);
    expect(rmiInvariants(s)).toEqual([]);
  });
});
