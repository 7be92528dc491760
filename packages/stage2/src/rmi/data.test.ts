import { describe, expect, test } from 'vitest';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, VMID_HOST, vmid } from '../types.js';
import { withMeta } from '../memory/granule.js';
import { hostAccess } from '../views.js';
import { dataCreate, dataCreateUnknown, dataDestroy } from './data.js';
import { rmiInvariants } from './invariants.js';
import { realmCreateRttLevels, stage2RmiPort } from './kvm-host.js';
import { realmActivate } from './realm.js';
import { rttInitRipas } from './ripas.js';
import { RMI_RIPAS } from './rtt-entry.js';
import { rttCreate, rttReadEntry } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import { GiB, MMIO_BASE, MiB, TestHost, createTestRealm, delegated, must, newCore, outcome, ram } from './test-support.js';
import type { Result } from '../result.js';
import type { RmiError } from './status.js';

const PAR_END = 512 * GiB;

function fixture() {
  const s = newCore();
  const host = new TestHost();
  const realm = createTestRealm(s, host);
  const data = delegated(s, host);
  return { s, host, rd: realm.rd, data, src: ram(10) };
}

function expectFailure(s: Stage2, call: () => Result<unknown, RmiError>, expected: unknown, outputs?: Record<string, number>): void {
  const before = rmiSnapshot(s);
  const r = call();
  expect(outcome(r)).toEqual(expected);
  if (outputs !== undefined && !r.ok) expect(r.error.outputs).toEqual(outputs);
  expect(rmiSnapshot(s)).toEqual(before);
}
const INPUT = (rule: string) => ({ status: 'RMI_ERROR_INPUT', index: 0, rule });
const RTT = (index: number, rule: string) => ({ status: 'RMI_ERROR_RTT', index, rule });

describe('§B6 RMI_DATA_CREATE', () => {
  test('failure ladder, each row fixing the previous condition', async () => {
    const { s, host, rd, data, src } = fixture();
    const ipa = 4 * GiB + 8192;
    const rows: [() => Result<unknown, RmiError>, unknown][] = [
      [() => dataCreate(s, rd, data, ipa, src, 2), INPUT('flags_valid')],
      [() => dataCreate(s, rd, data, ipa, src, Number.NaN), INPUT('flags_valid')],
      [() => dataCreate(s, rd, data, ipa, src + 1, 1), INPUT('src_align')],
      [() => dataCreate(s, rd, data, ipa, MMIO_BASE, 1), INPUT('src_bound')],
      [() => dataCreate(s, rd, data, ipa, data, 1), INPUT('src_state')], // a DELEGATED granule
      [() => dataCreate(s, ram(11), data, ipa, src, 1), INPUT('rd_state')],
      [() => dataCreate(s, rd, src, ipa, src, 1), INPUT('data_state')], // NS, not DELEGATED
      [() => dataCreate(s, rd, data, PAR_END, src, 1), INPUT('addr_par')],
      [() => dataCreate(s, rd, data, -4096, src, 1), INPUT('addr_par')],
      [() => dataCreate(s, rd, data, ipa + 1, src, 1), INPUT('addr_align')],
      [() => dataCreate(s, rd, data, ipa, src, 1), RTT(1, 'rtt_walk')],
    ];
    for (const [call, expected] of rows) expectFailure(s, call, expected);
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, ipa, 1, 3));
    must(dataCreateUnknown(s, rd, delegated(s, host), ipa));
    expectFailure(s, () => dataCreate(s, rd, data, ipa, src, 1), RTT(3, 'rtte_state'));
    // src_read: the host lent src away (its view is no longer OWNED).
    s.memory.meta.update(src / GRANULE_SIZE, 1, (m) => withMeta(m!, { owner: vmid(0x80) }));
    s.host.table.rewrite(src / GRANULE_SIZE, 1, hostAccess('NOPAGE', 'RAM'), s.host.pool);
    expectFailure(s, () => dataCreate(s, rd, data, ipa + 4096, src, 1), INPUT('src_read'));
    s.memory.meta.update(src / GRANULE_SIZE, 1, (m) => withMeta(m!, { owner: VMID_HOST }));
    s.host.table.rewrite(src / GRANULE_SIZE, 1, hostAccess('OWNED', 'RAM'), s.host.pool);
    expect(dataCreate(s, rd, data, ipa + 4096, src, 1)).toEqual({ ok: true, value: {} });
    expect(rttReadEntry(s, rd, ipa + 4096, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 1, desc: data, ripas: RMI_RIPAS.RAM } });
    expect(s.memory.meta.get(data / GRANULE_SIZE)!.rmi).toBe('DATA');
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('realm_state: DATA_CREATE needs a NEW realm, DATA_CREATE_UNKNOWN does not', async () => {
    const { s, host, rd, data, src } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    must(realmActivate(s, rd));
    expectFailure(s, () => dataCreate(s, rd, data, 0, src, 0), { status: 'RMI_ERROR_REALM', index: 0, rule: 'realm_state' });
    expect(dataCreateUnknown(s, rd, data, 0).ok).toBe(true);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('DATA_CREATE_UNKNOWN keeps the RIPAS; the RTT takes a reference', async () => {
    const { s, host, rd } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    must(rttInitRipas(s, rd, 4096, 8192));
    const a = delegated(s, host);
    const b = delegated(s, host);
    must(dataCreateUnknown(s, rd, a, 0));
    must(dataCreateUnknown(s, rd, b, 4096));
    expect(rttReadEntry(s, rd, 0, 3)).toMatchObject({ value: { state: 1, ripas: RMI_RIPAS.EMPTY, desc: a } });
    expect(rttReadEntry(s, rd, 4096, 3)).toMatchObject({ value: { state: 1, ripas: RMI_RIPAS.RAM, desc: b } });
    expect([...s.rmm.rtts.values()].find((t) => t.level === 3)!.refcount).toBe(2);
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B6 RMI_DATA_DESTROY', () => {
  test('failure ladder with outputs (INPUT: top 0; RTT: the next live entry)', async () => {
    const { s, host, rd } = fixture();
    const none = { data: 0, top: 0 };
    expectFailure(s, () => dataDestroy(s, ram(1), 0), INPUT('rd_state'), none);
    expectFailure(s, () => dataDestroy(s, rd, PAR_END), INPUT('addr_par'), none);
    expectFailure(s, () => dataDestroy(s, rd, 100), INPUT('addr_align'), none);
    expectFailure(s, () => dataDestroy(s, rd, 0), RTT(1, 'rtt_walk'), { data: 0, top: PAR_END });
    must(rttCreate(s, rd, delegated(s, host), 0, 2));
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 6 * MiB, 2, 3));
    expectFailure(s, () => dataDestroy(s, rd, 0), RTT(2, 'rtt_walk'), { data: 0, top: 6 * MiB });
    const d = delegated(s, host);
    must(dataCreateUnknown(s, rd, d, 6 * MiB + 5 * 4096));
    expectFailure(s, () => dataDestroy(s, rd, 6 * MiB), RTT(3, 'rtte_state'), { data: 0, top: 6 * MiB + 5 * 4096 });
    expect(dataDestroy(s, rd, 6 * MiB + 5 * 4096)).toEqual({ ok: true, value: { data: d, top: 8 * MiB } });
    expect(s.memory.meta.get(d / GRANULE_SIZE)!.rmi).toBe('DELEGATED');
    expect(rmiInvariants(s)).toEqual([]);
  });

  test.each([
    { from: 'RAM', to: RMI_RIPAS.DESTROYED },
    { from: 'EMPTY', to: RMI_RIPAS.EMPTY },
  ])('ASSIGNED_$from → UNASSIGNED with RIPAS $to', async ({ from, to }) => {
    const { s, host, rd, src } = fixture();
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, 0, 1, 3));
    const d = delegated(s, host);
    must(from === 'RAM' ? dataCreate(s, rd, d, 0, src, 0) : dataCreateUnknown(s, rd, d, 0));
    must(dataDestroy(s, rd, 0));
    expect(rttReadEntry(s, rd, 0, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 0, desc: 0, ripas: to } });
    expect([...s.rmm.rtts.values()].find((t) => t.level === 3)!.refcount).toBe(0);
    expect(rmiInvariants(s)).toEqual([]);
  });
});
