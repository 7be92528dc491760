import { describe, expect, test } from 'vitest';
import { Stage2 } from '../stage2.js';
import { GRANULE_SIZE } from '../types.js';
import { dataCreate, dataCreateUnknown, dataDestroy } from './data.js';
import { rmiInvariants } from './invariants.js';
import { realmCreateRttLevels, stage2RmiPort } from './kvm-host.js';
import { rttInitRipas } from './ripas.js';
import { HOST_NS_ATTRS_DEFAULT, RMI_RIPAS, RMI_RTT_STATE, rtteKind, rtteRipas, rttePa } from './rtt-entry.js';
import { rttCreate, rttDestroy, rttFold, rttReadEntry } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import { rttMapUnprotected } from './unprotected.js';
import { GiB, MMIO_BASE, MiB, RAM_BASE, TestHost, createTestRealm, delegateRange, delegated, must, newCore, ram } from './test-support.js';

const PAR_END = 512 * GiB; // s2sz 40
const rttAt = (s: Stage2, addr: number) => s.rmm.rtts.get(addr / GRANULE_SIZE)!;

function fixture() {
  const s = newCore();
  const host = new TestHost();
  const realm = createTestRealm(s, host);
  return { s, host, realm, rd: realm.rd, root0: rttAt(s, realm.roots[0]!) };
}

/** Fails, with nothing changed. */
function expectFailure<T>(s: Stage2, call: () => { ok: boolean } & ({ ok: true; value: T } | { ok: false; error: { status: string; index: number; rule: string; outputs: Record<string, number> } }), expected: { status: string; index: number; rule: string }, outputs?: Record<string, number>): void {
  const before = rmiSnapshot(s);
  const r = call();
  expect(r.ok ? 'ok' : { status: r.error.status, index: r.error.index, rule: r.error.rule }).toEqual(expected);
  if (outputs !== undefined && !r.ok) expect(r.error.outputs).toEqual(outputs);
  expect(rmiSnapshot(s)).toEqual(before);
}

const INPUT = (rule: string) => ({ status: 'RMI_ERROR_INPUT', index: 0, rule });
const RTT = (index: number, rule: string) => ({ status: 'RMI_ERROR_RTT', index, rule });

/** A 2 MiB block of DATA at IPA `ipa` from 2 MiB aligned PA `pa` (L2 and L3 RTTs created, then folded). */
async function assignedBlock(s: Stage2, host: TestHost, rd: number, ipa: number, pa: number, ripas: 'RAM' | 'EMPTY' = 'RAM') {
  must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, ipa, 1, 3));
  const data = delegateRange(s, pa, 512);
  data.forEach((d, i) =>
    ripas === 'RAM' ? must(dataCreate(s, rd, d, ipa + i * GRANULE_SIZE, ram(0), 0)) : must(dataCreateUnknown(s, rd, d, ipa + i * GRANULE_SIZE)),
  );
  return data;
}

describe('§B6 RMI_RTT_CREATE', () => {
  test('failure ladder, each row fixing the previous condition', () => {
    const { s, host, rd } = fixture();
    const rtt = delegated(s, host);
    expectFailure(s, () => rttCreate(s, ram(1), rtt, 0, 2), INPUT('rd_state'));
    expectFailure(s, () => rttCreate(s, rd, rtt + 1, 0, 2), INPUT('rtt_align'));
    expectFailure(s, () => rttCreate(s, rd, MMIO_BASE, 0, 2), INPUT('rtt_bound'));
    expectFailure(s, () => rttCreate(s, rd, ram(1), 0, 2), INPUT('rtt_state'));
    expectFailure(s, () => rttCreate(s, rd, rtt, 0, 1), INPUT('level_bound')); // the root level
    expectFailure(s, () => rttCreate(s, rd, rtt, 0, 4), INPUT('level_bound'));
    expectFailure(s, () => rttCreate(s, rd, rtt, 0, 2.5), INPUT('level_bound'));
    expectFailure(s, () => rttCreate(s, rd, rtt, 2 * MiB, 2), INPUT('addr_align')); // level 2 needs 1 GiB alignment
    expectFailure(s, () => rttCreate(s, rd, rtt, 4096, 3), INPUT('addr_align'));
    expectFailure(s, () => rttCreate(s, rd, rtt, Number.NaN, 3), INPUT('addr_align'));
    expectFailure(s, () => rttCreate(s, rd, rtt, 2 ** 40, 2), INPUT('addr_bound'));
    expectFailure(s, () => rttCreate(s, rd, rtt, -GiB, 2), INPUT('addr_bound'));
    expectFailure(s, () => rttCreate(s, rd, rtt, 0, 3), RTT(1, 'rtt_walk'));
    must(rttCreate(s, rd, delegated(s, host), 0, 2));
    expectFailure(s, () => rttCreate(s, rd, rtt, 0, 2), RTT(1, 'rtt_exists'));
    expect(rttCreate(s, rd, rtt, 0, 3)).toEqual({ ok: true, value: {} });
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('create levels down to 3: TABLE entries, refcounts, granule states', () => {
    const { s, host, rd, root0 } = fixture();
    const l2 = delegated(s, host);
    const l3 = delegated(s, host);
    must(rttCreate(s, rd, l2, 5 * GiB, 2));
    must(rttCreate(s, rd, l3, 5 * GiB + 6 * MiB, 3));
    expect(rttReadEntry(s, rd, 5 * GiB, 1)).toEqual({ ok: true, value: { walkLevel: 1, state: RMI_RTT_STATE.TABLE, desc: l2, ripas: 0 } });
    expect(rttReadEntry(s, rd, 5 * GiB + 6 * MiB, 2)).toEqual({ ok: true, value: { walkLevel: 2, state: RMI_RTT_STATE.TABLE, desc: l3, ripas: 0 } });
    expect(rttReadEntry(s, rd, 5 * GiB + 6 * MiB + 8192, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 0, desc: 0, ripas: 0 } });
    // The walk stops where the tree ends: level 2 for a neighbouring 2 MiB block.
    expect(rttReadEntry(s, rd, 5 * GiB + 8 * MiB, 3)).toMatchObject({ ok: true, value: { walkLevel: 2 } });
    expect([root0.refcount, rttAt(s, l2).refcount, rttAt(s, l3).refcount]).toEqual([1, 1, 0]);
    expect(s.memory.meta.get(l2 / GRANULE_SIZE)!.rmi).toBe('RTT');
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('the child replicates an UNASSIGNED parent entry: RAM after INIT_RIPAS, NS above the PAR', () => {
    const { s, host, rd } = fixture();
    must(rttInitRipas(s, rd, 0, GiB));
    must(rttCreate(s, rd, delegated(s, host), 0, 2));
    expect(rttReadEntry(s, rd, 2 * MiB, 2)).toEqual({ ok: true, value: { walkLevel: 2, state: 0, desc: 0, ripas: RMI_RIPAS.RAM } });
    const ns = delegated(s, host);
    must(rttCreate(s, rd, ns, PAR_END + GiB, 2));
    expect(Array.from(rttAt(s, ns).entries).every((e) => rtteKind(e) === 'UNASSIGNED_NS')).toBe(true);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('block split: RTT_CREATE under an ASSIGNED_RAM block makes 512 consecutive ASSIGNED_RAM pages', async () => {
    const { s, host, rd } = fixture();
    const pa = RAM_BASE + 512 * MiB; // 2 MiB aligned
    await assignedBlock(s, host, rd, 0, pa);
    const fold = must(rttFold(s, rd, 0, 3));
    expect(rttReadEntry(s, rd, 0, 3)).toEqual({ ok: true, value: { walkLevel: 2, state: RMI_RTT_STATE.ASSIGNED, desc: pa, ripas: RMI_RIPAS.RAM } });
    const l2 = rttAt(s, s.rmm.realms.get(rd / GRANULE_SIZE)!.roots[0]!.entries[0]! - 4);
    expect(l2.refcount).toBe(1);
    expect(rmiInvariants(s)).toEqual([]);
    // Split it again with the granule the fold freed.
    expect(rttCreate(s, rd, fold.rtt, 0, 3)).toEqual({ ok: true, value: {} });
    const l3 = rttAt(s, fold.rtt);
    expect(l3.refcount).toBe(512);
    expect(l2.refcount).toBe(1);
    for (const i of [0, 1, 511]) {
      expect(rtteKind(l3.entries[i]!)).toBe('ASSIGNED');
      expect(rtteRipas(l3.entries[i]!)).toBe('RAM');
      expect(rttePa(l3.entries[i]!)).toBe(pa + i * GRANULE_SIZE);
    }
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('block split of an ASSIGNED_NS block: the child holds no references, the parent one for the TABLE', () => {
    const { s, host, rd } = fixture();
    const l2 = delegated(s, host);
    must(rttCreate(s, rd, l2, PAR_END, 2));
    const desc = 0x40_0000_0000 + HOST_NS_ATTRS_DEFAULT; // a 2 MiB aligned host PA
    must(rttMapUnprotected(s, rd, PAR_END, 2, desc));
    expect(rttAt(s, l2).refcount).toBe(0);
    const l3 = delegated(s, host);
    must(rttCreate(s, rd, l3, PAR_END, 3));
    expect([rttAt(s, l2).refcount, rttAt(s, l3).refcount]).toEqual([1, 0]);
    expect(rttReadEntry(s, rd, PAR_END + 4096, 3)).toEqual({
      ok: true,
      value: { walkLevel: 3, state: RMI_RTT_STATE.ASSIGNED, desc: desc + 4096, ripas: RMI_RIPAS.EMPTY },
    });
    expect(must(rttFold(s, rd, PAR_END, 3)).rtt).toBe(l3);
    expect(rttReadEntry(s, rd, PAR_END, 2)).toMatchObject({ ok: true, value: { walkLevel: 2, desc } });
    expect(rttAt(s, l2).refcount).toBe(0);
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B6 RMI_RTT_DESTROY', () => {
  test('failure ladder with outputs: INPUT gives top 0, a missing RTT the next live entry, a live RTT addr', () => {
    const { s, host, rd } = fixture();
    const none = { rtt: 0, top: 0 };
    expectFailure(s, () => rttDestroy(s, ram(1), 0, 2), INPUT('rd_state'), none);
    expectFailure(s, () => rttDestroy(s, rd, 0, 1), INPUT('level_bound'), none);
    expectFailure(s, () => rttDestroy(s, rd, 4096, 3), INPUT('addr_align'), none);
    expectFailure(s, () => rttDestroy(s, rd, 2 ** 41, 2), INPUT('addr_bound'), none);
    // Missing RTT: nothing live in root 0, so top is its end (the PAR end).
    expectFailure(s, () => rttDestroy(s, rd, 0, 2), RTT(1, 'rtt_missing'), { rtt: 0, top: PAR_END });
    expectFailure(s, () => rttDestroy(s, rd, 0, 3), RTT(1, 'rtt_missing'), { rtt: 0, top: PAR_END });
    const l2 = delegated(s, host);
    must(rttCreate(s, rd, l2, 7 * GiB, 2));
    expectFailure(s, () => rttDestroy(s, rd, 2 * GiB, 2), RTT(1, 'rtt_missing'), { rtt: 0, top: 7 * GiB });
    const l3 = delegated(s, host);
    must(rttCreate(s, rd, l3, 7 * GiB + 10 * MiB, 3));
    // The walk reaches level 2 but that entry is not a TABLE: top is the next live level 2 entry.
    expectFailure(s, () => rttDestroy(s, rd, 7 * GiB, 3), RTT(2, 'rtt_missing'), { rtt: 0, top: 7 * GiB + 10 * MiB });
    expectFailure(s, () => rttDestroy(s, rd, 7 * GiB + 12 * MiB, 3), RTT(2, 'rtt_missing'), { rtt: 0, top: 8 * GiB });
    // Live entries: the L2 RTT holds a TABLE.
    expectFailure(s, () => rttDestroy(s, rd, 7 * GiB, 2), RTT(2, 'rtt_live'), { rtt: 0, top: 7 * GiB });
    expect(rttDestroy(s, rd, 7 * GiB + 10 * MiB, 3)).toEqual({ ok: true, value: { rtt: l3, top: 8 * GiB } });
    expect(rttDestroy(s, rd, 7 * GiB, 2)).toEqual({ ok: true, value: { rtt: l2, top: PAR_END } });
    expect(s.memory.meta.get(l2 / GRANULE_SIZE)!.rmi).toBe('DELEGATED');
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('the parent becomes UNASSIGNED_DESTROYED in the PAR and UNASSIGNED_NS above it', () => {
    const { s, host, rd, root0 } = fixture();
    must(rttCreate(s, rd, delegated(s, host), 3 * GiB, 2));
    must(rttCreate(s, rd, delegated(s, host), PAR_END + 3 * GiB, 2));
    must(rttDestroy(s, rd, 3 * GiB, 2));
    must(rttDestroy(s, rd, PAR_END + 3 * GiB, 2));
    expect(rttReadEntry(s, rd, 3 * GiB, 1)).toEqual({ ok: true, value: { walkLevel: 1, state: 0, desc: 0, ripas: RMI_RIPAS.DESTROYED } });
    expect(rtteKind(s.rmm.realms.get(rd / GRANULE_SIZE)!.roots[1]!.entries[3]!)).toBe('UNASSIGNED_NS');
    expect(root0.refcount).toBe(0);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('a level 3 RTT mapping DATA is live; after DATA_DESTROY it can go', async () => {
    const { s, host, rd } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    must(dataCreateUnknown(s, rd, delegated(s, host), 8192));
    expectFailure(s, () => rttDestroy(s, rd, 0, 3), RTT(3, 'rtt_live'), { rtt: 0, top: 0 });
  });
});

describe('§B6 RMI_RTT_FOLD', () => {
  test('failure ladder', () => {
    const { s, host, rd } = fixture();
    expectFailure(s, () => rttFold(s, ram(1), 0, 3), INPUT('rd_state'));
    expectFailure(s, () => rttFold(s, rd, 0, 1), INPUT('level_bound'));
    expectFailure(s, () => rttFold(s, rd, 4096, 3), INPUT('addr_align'));
    expectFailure(s, () => rttFold(s, rd, 0, 3), RTT(1, 'rtt_walk'));
    must(rttCreate(s, rd, delegated(s, host), 0, 2));
    expectFailure(s, () => rttFold(s, rd, 0, 3), RTT(2, 'rtt_missing'));
    must(rttCreate(s, rd, delegated(s, host), 0, 3));
    must(rttInitRipas(s, rd, 0, 4096)); // one RAM entry among EMPTY ones
    expectFailure(s, () => rttFold(s, rd, 0, 3), RTT(3, 'rtt_not_homogeneous'));
    must(rttInitRipas(s, rd, 4096, 2 * MiB));
    expect(rttFold(s, rd, 0, 3)).toMatchObject({ ok: true });
    expect(rttReadEntry(s, rd, 0, 3)).toEqual({ ok: true, value: { walkLevel: 2, state: 0, desc: 0, ripas: RMI_RIPAS.RAM } });
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('a partly assigned RTT, or assigned PAs that are not one block, do not fold', async () => {
    const { s, host, rd } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    must(dataCreateUnknown(s, rd, delegated(s, host), 0));
    expectFailure(s, () => rttFold(s, rd, 0, 3), RTT(3, 'rtt_not_homogeneous'));
    // 512 entries assigned, but to PAs that are not one aligned block.
    const { s: s2, host: h2, rd: rd2 } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s2), rd2, h2, 0, 1, 3));
    const data = delegateRange(s2, RAM_BASE + 512 * MiB + 4096, 512);
    data.forEach((d, i) => must(dataCreateUnknown(s2, rd2, d, i * GRANULE_SIZE)));
    expectFailure(s2, () => rttFold(s2, rd2, 0, 3), RTT(3, 'rtt_not_homogeneous'));
    expect(rmiInvariants(s2)).toEqual([]);
  });

  test('an ASSIGNED block folds (parent keeps one reference) and READ_ENTRY reports the block', async () => {
    const { s, host, rd, root0 } = fixture();
    const pa = RAM_BASE + 1024 * MiB;
    await assignedBlock(s, host, rd, 4 * GiB + 2 * MiB, pa, 'EMPTY');
    const r = must(rttFold(s, rd, 4 * GiB + 2 * MiB, 3));
    expect(s.memory.meta.get(r.rtt / GRANULE_SIZE)!.rmi).toBe('DELEGATED');
    expect(rttReadEntry(s, rd, 4 * GiB + 2 * MiB, 3)).toEqual({ ok: true, value: { walkLevel: 2, state: 1, desc: pa, ripas: RMI_RIPAS.EMPTY } });
    expect(root0.refcount).toBe(1);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('fold_level: a block may not form at level 0 (44-bit PA core, start level 0)', () => {
    const s = new Stage2({ memory: { paBits: 44, ram: [{ base: 2 * GiB, sizeBytes: 2 * GiB }], mmio: [{ base: 0, sizeBytes: GiB }] } });
    const host = new TestHost();
    const realm = createTestRealm(s, host, 44, 0);
    const l1 = delegated(s, host);
    const ns = 2 ** 43;
    must(rttCreate(s, realm.rd, l1, ns, 1));
    for (let i = 0; i < 512; i++) must(rttMapUnprotected(s, realm.rd, ns + i * GiB, 1, 2 ** 39 + i * GiB + HOST_NS_ATTRS_DEFAULT));
    expectFailure(s, () => rttFold(s, realm.rd, ns, 1), RTT(0, 'fold_level'));
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B5 RMI_RTT_READ_ENTRY', () => {
  test('failure ladder: INPUT only', () => {
    const { s, rd } = fixture();
    expectFailure(s, () => rttReadEntry(s, ram(1), 0, 1), INPUT('rd_state'));
    expectFailure(s, () => rttReadEntry(s, rd, 0, 0), INPUT('level_bound')); // below the start level
    expectFailure(s, () => rttReadEntry(s, rd, 0, 4), INPUT('level_bound'));
    expectFailure(s, () => rttReadEntry(s, rd, MiB, 2), INPUT('addr_align'));
    expectFailure(s, () => rttReadEntry(s, rd, 2 ** 40, 1), INPUT('addr_bound'));
    expect(rttReadEntry(s, rd, 0, 1).ok).toBe(true);
  });

  test('ASSIGNED_DESTROYED reports no PA (§B5: x3 = 0)', async () => {
    const { s, host, rd } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    const d = delegated(s, host);
    must(dataCreate(s, rd, d, 0, ram(0), 0));
    expect(rttReadEntry(s, rd, 0, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 1, desc: d, ripas: RMI_RIPAS.RAM } });
    // ASSIGNED_RAM → (DATA_DESTROY) UNASSIGNED_DESTROYED → (DATA_CREATE_UNKNOWN) ASSIGNED_DESTROYED.
    must(dataDestroy(s, rd, 0));
    must(dataCreateUnknown(s, rd, d, 0));
    expect(rttReadEntry(s, rd, 0, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 1, desc: 0, ripas: RMI_RIPAS.DESTROYED } });
    expect(rmiInvariants(s)).toEqual([]);
  });
});
