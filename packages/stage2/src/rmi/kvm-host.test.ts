/**
 * Seed 004: KVM's realm teardown walk (realm_tear_down_rtt_level) and the host sequence around it,
 * driven against the RMI commands only.
 */
import { describe, expect, test } from 'vitest';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, VMID_HOST } from '../types.js';
import { viewIs } from '../views.js';
import { dataCreate, dataCreateUnknown } from './data.js';
import { granuleUndelegate } from './granule.js';
import { rmiInvariants } from './invariants.js';
import { realmCreateRttLevels, realmDestroyRtts, realmTearDown, realmTearDownRttLevel, realmUnmapPrivateRange, stage2RmiPort } from './kvm-host.js';
import { recCreate } from './rec.js';
import { rttInitRipas } from './ripas.js';
import { HOST_NS_ATTRS_DEFAULT } from './rtt-entry.js';
import { rttCreate, rttDestroy, rttFold } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import { rttMapUnprotected } from './unprotected.js';
import { GiB, MiB, RAM_BASE, TestHost, createTestRealm, delegateRange, delegated, must, newCore, ram, type TestRealm } from './test-support.js';

const NS = 512 * GiB;

/** Every granule is NS again, owned by the host, which maps it (none left in an RMM state). */
function expectAllNs(s: Stage2): void {
  s.memory.meta.runs(0, s.memory.frameCount, (start, frames, m) => {
    if (m === null) return;
    expect({ start, rmi: m.rmi }).toEqual({ start, rmi: 'NS' });
  });
  expect(rmiInvariants(s)).toEqual([]);
}

const hostGot = (s: Stage2, addr: number): boolean =>
  s.memory.meta.get(addr / GRANULE_SIZE)?.owner === VMID_HOST && viewIs(s.host, addr / GRANULE_SIZE, 1, 'OWNED');

/** RTTs only: some tables with children, lone tables, an unassigned-folded block and unprotected ones. */
async function rttsOnly(s: Stage2, host: TestHost, realm: TestRealm): Promise<number> {
  const rd = realm.rd;
  must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3)); // L2 and L3 at 0
  must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 2 * MiB, 2, 3)); // a second L3 under the same L2
  must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 3 * GiB + 4 * MiB, 1, 3));
  must(rttCreate(s, rd, delegated(s, host), 100 * GiB, 2)); // a lone L2
  must(rttCreate(s, rd, delegated(s, host), 200 * GiB, 2));
  host.free(must(granuleUndelegateOk(s, must(rttDestroy(s, rd, 200 * GiB, 2)).rtt))); // leaves UNASSIGNED_DESTROYED
  must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 5 * GiB, 1, 3));
  must(rttInitRipas(s, rd, 5 * GiB, 5 * GiB + 2 * MiB));
  const folded = must(rttFold(s, rd, 5 * GiB, 3)); // an UNASSIGNED_RAM L2 entry: a "missing RTT"
  host.free(must(granuleUndelegateOk(s, folded.rtt)));
  must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, NS + 7 * GiB + 6 * MiB, 1, 3)); // unprotected
  return s.rmm.rtts.size - realm.roots.length;
}

const granuleUndelegateOk = (s: Stage2, addr: number) => {
  const r = granuleUndelegate(s, addr);
  return r.ok ? { ok: true as const, value: addr } : r;
};

describe('seed 004: realm_tear_down_rtt_level', () => {
  test('over the full IPA range: skips missing RTTs, recurses into live tables and retries, frees every RTT', async () => {
    const s = newCore();
    const host = new TestHost();
    const realm = createTestRealm(s, host);
    const created = await rttsOnly(s, host, realm);
    expect(created).toBe(9);
    const rttGranules = [...s.rmm.rtts.values()].filter((t) => !realm.roots.includes(t.frame * GRANULE_SIZE)).map((t) => t.frame * GRANULE_SIZE);
    const r = await realmDestroyRtts(stage2RmiPort(s), realm.rd, host, realm.startLevel, realm.ipaBits);
    expect(r).toEqual({ ok: true, value: { rtts: 9, data: 0, recs: 0 } });
    expect(host.warnings).toEqual([]);
    const step = (addr: number, level: number) => host.steps.filter((t) => t.addr === addr && t.level === level).map((t) => t.outcome);
    // L2 at 0 holds two L3 tables: live, recurse (both L3 freed), then retried and freed.
    expect(step(0, 2)).toEqual(['LIVE', 'FREED']);
    expect(step(0, 3)).toEqual(['FREED']);
    expect(step(2 * MiB, 3)).toEqual(['FREED']);
    // Inside that L2, no RTT at 4 MiB: the walk skips to the end of the L2 table in one step.
    // A freed RTT's top already skips the parent's non-live entries: from L2 at 0 straight to 3 GiB.
    expect(host.steps).toContainEqual({ addr: 0, level: 2, outcome: 'FREED', next: 3 * GiB });
    // Missing RTTs: the walk reached the level-2 table at 3 GiB (no L3 at 3 GiB), and root 1 at 512 GiB.
    expect(host.steps).toContainEqual({ addr: 3 * GiB, level: 3, outcome: 'MISSING', next: 3 * GiB + 4 * MiB });
    expect(host.steps).toContainEqual({ addr: NS, level: 2, outcome: 'MISSING', next: NS + 7 * GiB });
    // 200 GiB (RTT destroyed, UNASSIGNED_DESTROYED) is never visited.
    expect(step(200 * GiB, 2)).toEqual([]);
    expect(step(5 * GiB, 2)).toEqual(['FREED']);
    expect(host.steps.filter((t) => t.outcome === 'FREED').length).toBe(9);
    for (const g of rttGranules) expect(hostGot(s, g)).toBe(true);
    expect(s.rmm.rtts.size).toBe(realm.roots.length);
    expect(realm.roots.map((a) => s.rmm.rtts.get(a / GRANULE_SIZE)!.refcount)).toEqual([0, 0]);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('a level-3 RTT that still maps DATA: WARN and -EBUSY (live entry at the last level)', async () => {
    const s = newCore();
    const host = new TestHost();
    const realm = createTestRealm(s, host);
    must(await realmCreateRttLevels(stage2RmiPort(s), realm.rd, host, 0, 1, 3));
    must(dataCreateUnknown(s, realm.rd, delegated(s, host), 4096));
    const r = await realmDestroyRtts(stage2RmiPort(s), realm.rd, host, realm.startLevel, realm.ipaBits);
    expect(r.ok ? 'ok' : [r.error.errno, r.error.rule, r.error.rmi?.status, r.error.rmi?.index]).toEqual(['EBUSY', 'rtt_live', 'RMI_ERROR_RTT', 3]);
    expect(host.warnings.length).toBe(1);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('an ASSIGNED block left in place: the RMM stops above the requested level, WARN and -EBUSY', async () => {
    const s = newCore();
    const host = new TestHost();
    const realm = createTestRealm(s, host);
    must(await realmCreateRttLevels(stage2RmiPort(s), realm.rd, host, 0, 1, 3));
    delegateRange(s, RAM_BASE + 512 * MiB, 512).forEach((d, i) => must(dataCreate(s, realm.rd, d, i * GRANULE_SIZE, ram(0), 0)));
    host.free(must(granuleUndelegateOk(s, must(rttFold(s, realm.rd, 0, 3)).rtt)));
    const r = await realmTearDownRttLevel(stage2RmiPort(s), realm.rd, host, 3, 0, 2 * MiB);
    expect(r.ok ? 'ok' : [r.error.errno, r.error.rule, r.error.rmi?.index]).toEqual(['EBUSY', 'rtt_walk', 2]);
  });
});

describe('seed 004: the whole realm teardown (kvm_destroy_realm)', () => {
  test('data, blocks, RIPAS, NS mappings, RECs: every granule ends NS and with the host, as before the realm', async () => {
    const s = newCore();
    const fresh = rmiSnapshot(s);
    const host = new TestHost();
    const realm = createTestRealm(s, host);
    await rttsOnly(s, host, realm);
    const rd = realm.rd;
    // Private memory: pages, a 2 MiB ASSIGNED block (folded), RIPAS RAM.
    must(rttInitRipas(s, rd, 0, 2 * MiB));
    for (let i = 0; i < 8; i++) must(dataCreate(s, rd, delegated(s, host), i * 3 * GRANULE_SIZE, ram(0), 1));
    must(dataCreateUnknown(s, rd, delegated(s, host), 3 * GiB + 4 * MiB + 4096));
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 9 * GiB + 2 * MiB, 1, 3));
    const block = RAM_BASE + 1024 * MiB;
    delegateRange(s, block, 512).forEach((d, i) => must(dataCreateUnknown(s, rd, d, 9 * GiB + 2 * MiB + i * GRANULE_SIZE)));
    host.free(must(granuleUndelegateOk(s, must(rttFold(s, rd, 9 * GiB + 2 * MiB, 3)).rtt)));
    // Shared memory: a page, a 2 MiB block and a 1 GiB block at the root level.
    must(rttMapUnprotected(s, rd, NS + 7 * GiB + 6 * MiB + 4096, 3, 0x10_0000_0000 + HOST_NS_ATTRS_DEFAULT));
    must(rttMapUnprotected(s, rd, NS + 7 * GiB + 8 * MiB, 2, 0x10_0020_0000 + HOST_NS_ATTRS_DEFAULT));
    must(rttMapUnprotected(s, rd, NS + 9 * GiB, 1, 0x10_4000_0000 + HOST_NS_ATTRS_DEFAULT));
    // Two RECs.
    const recs = [delegated(s, host), delegated(s, host)];
    for (const rec of recs) must(recCreate(s, rd, rec));
    expect(rmiInvariants(s)).toEqual([]);

    const r = await realmTearDown(stage2RmiPort(s), { ...realm, recs }, host);
    expect(r.ok ? r.value : r.error).toEqual({ rtts: expect.any(Number) as number, data: 8 + 1 + 512, recs: 2 });
    expect(host.warnings).toEqual([]);
    expectAllNs(s);
    expect(s.rmm.realms.size + s.rmm.recs.size + s.rmm.rtts.size + s.rmm.vmids.size).toBe(0);
    expect(rmiSnapshot(s)).toEqual(fresh);
  });

  test('realmCreateRttLevels: existing levels are fine; an empty allocator is -ENOMEM with nothing left delegated', async () => {
    const s = newCore();
    const host = new TestHost(undefined, 3);
    const realm = createTestRealm(s, host); // takes all 3 pages
    const before = rmiSnapshot(s);
    const r = await realmCreateRttLevels(stage2RmiPort(s), realm.rd, host, 0, 1, 3);
    expect(r.ok ? 'ok' : r.error.errno).toBe('ENOMEM');
    expect(rmiSnapshot(s)).toEqual(before);
    const roomy = new TestHost(RAM_BASE + 300 * MiB);
    must(await realmCreateRttLevels(stage2RmiPort(s), realm.rd, roomy, 0, 1, 3));
    must(await realmCreateRttLevels(stage2RmiPort(s), realm.rd, roomy, 4096, 1, 3)); // both levels exist: allocated pages go back
    expect(roomy.allocated).toBe(2);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('realmUnmapPrivateRange splits an ASSIGNED block to destroy its pages', async () => {
    const s = newCore();
    const host = new TestHost();
    const realm = createTestRealm(s, host);
    must(await realmCreateRttLevels(stage2RmiPort(s), realm.rd, host, 0, 1, 3));
    delegateRange(s, RAM_BASE + 512 * MiB, 512).forEach((d, i) => must(dataCreateUnknown(s, realm.rd, d, i * GRANULE_SIZE)));
    host.free(must(granuleUndelegateOk(s, must(rttFold(s, realm.rd, 0, 3)).rtt)));
    const r = await realmUnmapPrivateRange(stage2RmiPort(s), realm.rd, host, realm.startLevel, 0, NS);
    expect(r.ok ? r.value.data : r.error).toBe(512);
    expect(hostGot(s, RAM_BASE + 512 * MiB + 511 * GRANULE_SIZE)).toBe(true);
    expect(rmiInvariants(s)).toEqual([]);
  });
});
