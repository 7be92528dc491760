import { describe, expect, test } from 'vitest';
import type { Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { rmiInvariants } from './invariants.js';
import { realmCreateRttLevels, stage2RmiPort } from './kvm-host.js';
import { HOST_NS_ATTRS_DEFAULT, S2TTE_MEMATTR_FWB_RESERVED, S2TTE_SH_RESERVED, hostNsDescIsValid } from './rtt-entry.js';
import { rttReadEntry } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import type { RmiError } from './status.js';
import { GiB, MiB, TestHost, createTestRealm, must, newCore, outcome, ram } from './test-support.js';
import { rttMapUnprotected, rttUnmapUnprotected } from './unprotected.js';

const NS = 512 * GiB; // the first unprotected IPA of a 40-bit realm
const HOST_PA = 0x10_0000_0000; // any host PA: the RMM does not check NS addresses
const desc = (pa: number) => pa + HOST_NS_ATTRS_DEFAULT;

function expectFailure(s: Stage2, call: () => Result<unknown, RmiError>, expected: unknown, outputs?: Record<string, number>): void {
  const before = rmiSnapshot(s);
  const r = call();
  expect(outcome(r)).toEqual(expected);
  if (outputs !== undefined && !r.ok) expect(r.error.outputs).toEqual(outputs);
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

describe('host_ns_s2tte_is_valid', () => {
  test.each([
    { d: desc(HOST_PA), level: 3, valid: true },
    { d: desc(HOST_PA + 4096), level: 2, valid: false }, // not 2 MiB aligned
    { d: HOST_PA + 1, level: 3, valid: false }, // a valid bit the host does not control
    { d: HOST_PA + (1 << 10), level: 3, valid: false }, // AF
    { d: HOST_PA + S2TTE_MEMATTR_FWB_RESERVED, level: 3, valid: false },
    { d: HOST_PA + S2TTE_SH_RESERVED, level: 3, valid: false },
    { d: 2 ** 48, level: 3, valid: false },
    { d: -4096, level: 3, valid: false },
    { d: 0.5, level: 3, valid: false },
  ])('$d at level $level: $valid', ({ d, level, valid }) => expect(hostNsDescIsValid(d, level)).toBe(valid));
});

describe('§B6 RMI_RTT_MAP_UNPROTECTED', () => {
  test('failure ladder, each row fixing the previous condition', async () => {
    const { s, host, rd } = fixture();
    const rows: [() => Result<unknown, RmiError>, unknown][] = [
      [() => rttMapUnprotected(s, ram(4), NS, 0, desc(HOST_PA)), INPUT('level_bound')], // checked before the RD
      [() => rttMapUnprotected(s, ram(4), NS, 3, desc(HOST_PA)), INPUT('rd_state')],
      [() => rttMapUnprotected(s, rd, NS, 3, HOST_PA + S2TTE_SH_RESERVED), INPUT('desc_valid')],
      [() => rttMapUnprotected(s, rd, NS + 4096, 2, desc(HOST_PA)), INPUT('addr_align')],
      [() => rttMapUnprotected(s, rd, 2 ** 40, 3, desc(HOST_PA)), INPUT('addr_bound')],
      [() => rttMapUnprotected(s, rd, 0, 3, desc(HOST_PA)), INPUT('addr_par')],
      [() => rttMapUnprotected(s, rd, NS, 3, desc(HOST_PA)), RTT(1, 'rtt_walk')],
    ];
    for (const [call, expected] of rows) expectFailure(s, call, expected);
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, NS, 1, 3));
    expect(rttMapUnprotected(s, rd, NS, 3, desc(HOST_PA))).toEqual({ ok: true, value: {} });
    expectFailure(s, () => rttMapUnprotected(s, rd, NS, 3, desc(HOST_PA)), RTT(3, 'rtte_state'));
    expect(rttReadEntry(s, rd, NS, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 1, desc: desc(HOST_PA), ripas: 0 } });
    // Not refcounted: the RTT holds no reference for an NS mapping.
    expect([...s.rmm.rtts.values()].find((t) => t.level === 3)!.refcount).toBe(0);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('a 1 GiB NS block at the root level', () => {
    const { s, rd } = fixture();
    must(rttMapUnprotected(s, rd, NS + GiB, 1, desc(HOST_PA)));
    expect(rttReadEntry(s, rd, NS + GiB + 2 * MiB, 3)).toEqual({ ok: true, value: { walkLevel: 1, state: 1, desc: desc(HOST_PA), ripas: 0 } });
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B6 RMI_RTT_UNMAP_UNPROTECTED', () => {
  test('failure ladder with top, then success', async () => {
    const { s, host, rd } = fixture();
    expectFailure(s, () => rttUnmapUnprotected(s, rd, NS, 4), INPUT('level_bound'), { top: 0 });
    expectFailure(s, () => rttUnmapUnprotected(s, ram(4), NS, 3), INPUT('rd_state'), { top: 0 });
    expectFailure(s, () => rttUnmapUnprotected(s, rd, NS + 1, 3), INPUT('addr_align'), { top: 0 });
    expectFailure(s, () => rttUnmapUnprotected(s, rd, 4096, 3), INPUT('addr_par'), { top: 0 });
    expectFailure(s, () => rttUnmapUnprotected(s, rd, NS, 3), RTT(1, 'rtte_state'), { top: 1024 * GiB }); // nothing live in root 1
    must(await realmCreateRttLevels(stage2RmiPort(s), rd, host, NS, 1, 3));
    must(rttMapUnprotected(s, rd, NS + 7 * 4096, 3, desc(HOST_PA)));
    expectFailure(s, () => rttUnmapUnprotected(s, rd, NS, 3), RTT(3, 'rtte_state'), { top: NS + 7 * 4096 });
    expect(rttUnmapUnprotected(s, rd, NS + 7 * 4096, 3)).toEqual({ ok: true, value: { top: NS + 2 * MiB } });
    expect(rttReadEntry(s, rd, NS + 7 * 4096, 3)).toEqual({ ok: true, value: { walkLevel: 3, state: 0, desc: 0, ripas: 0 } });
    expect(rmiInvariants(s)).toEqual([]);
  });
});
