import { describe, expect, test } from 'vitest';
import { withMeta } from '../memory/granule.js';
import { GRANULE_SIZE, VMID_HOST, VMID_HYP, vmid } from '../types.js';
import { viewIs, withState } from '../views.js';
import { granuleDelegate, granuleUndelegate, hostCanDelegate } from './granule.js';
import { rmiInvariants } from './invariants.js';
import { rmiSnapshot } from './snapshot.js';
import { GiB, MMIO_BASE, RAM_BASE, newCore, outcome, ram } from './test-support.js';
import type { Stage2 } from '../stage2.js';

const pfnOf = (addr: number): number => addr / GRANULE_SIZE;
const carveout = (s: Stage2): number => s.hostCarveout.base * GRANULE_SIZE;
const delegatedFixture = (s: Stage2): number => {
  expect(granuleDelegate(s, ram(7)).ok).toBe(true);
  return ram(7);
};

describe('§B2 RMI_GRANULE_DELEGATE', () => {
  // Each row fixes the condition the previous row broke and expects the next one (tb_rmi_granule_delegate.c).
  const ladder = [
    { rule: 'gran_align', addr: (_s: Stage2) => ram(1) + 1 },
    { rule: 'gran_bound', addr: (_s: Stage2) => MMIO_BASE + GRANULE_SIZE },
    { rule: 'gran_state', addr: delegatedFixture },
    { rule: 'gran_gpt', addr: carveout },
  ];
  test.each(ladder)('$rule → RMI_ERROR_INPUT, nothing changed', ({ rule, addr }) => {
    const s = newCore();
    const a = addr(s);
    const before = rmiSnapshot(s);
    expect(outcome(granuleDelegate(s, a))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule });
    expect(rmiSnapshot(s)).toEqual(before);
  });

  // gran_gpt: EL3 refuses a granule the host does not own exclusively.
  const notExclusive: { name: string; setup: (s: Stage2, pfn: number) => void }[] = [
    { name: 'owned by HYP (the boot carve-out)', setup: () => {} },
    { name: 'pinned', setup: (s, p) => s.memory.meta.update(p, 1, (m) => withMeta(m!, { pins: 1 })) },
    { name: 'shared with a guest', setup: (s, p) => s.memory.meta.update(p, 1, (m) => withMeta(m!, { guestShares: 1 })) },
    { name: 'part of a grant', setup: (s, p) => s.memory.grantOf.update(p, 1, () => 7) },
    { name: 'shared by the host (SHARED_OWNED)', setup: (s, p) => s.host.table.rewrite(p, 1, withState('SHARED_OWNED'), s.host.pool) },
    { name: 'owned by a guest', setup: (s, p) => s.memory.meta.update(p, 1, (m) => withMeta(m!, { owner: vmid(0x80) })) },
    { name: 'mapped by HYP', setup: (s, p) => s.memory.meta.update(p, 1, (m) => withMeta(m!, { hyp: 'SHARED_BORROWED' })) },
  ];
  test.each(notExclusive)('gran_gpt: $name', ({ name, setup }) => {
    const s = newCore();
    const a = name.startsWith('owned by HYP') ? carveout(s) : ram(3);
    setup(s, pfnOf(a));
    expect(hostCanDelegate(s, pfnOf(a))).toBe(false);
    const before = rmiSnapshot(s);
    expect(outcome(granuleDelegate(s, a))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule: 'gran_gpt' });
    expect(rmiSnapshot(s)).toEqual(before);
  });

  const badInputs = [
    { addr: Number.NaN, rule: 'gran_align' },
    { addr: Number.POSITIVE_INFINITY, rule: 'gran_align' },
    { addr: 1.5, rule: 'gran_align' },
    { addr: RAM_BASE + 0.5, rule: 'gran_align' },
    { addr: -GRANULE_SIZE, rule: 'gran_bound' },
    { addr: 2 ** 52, rule: 'gran_bound' },
    { addr: 2 ** 60, rule: 'gran_bound' },
    { addr: 1.5 * GiB, rule: 'gran_bound' }, // the hole between MMIO and RAM
    { addr: '4096' as unknown as number, rule: 'gran_align' },
  ];
  test.each(badInputs)('bad input $addr → $rule, nothing changed', ({ addr, rule }) => {
    const s = newCore();
    const before = rmiSnapshot(s);
    expect(outcome(granuleDelegate(s, addr))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule });
    expect(outcome(granuleUndelegate(s, addr))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule });
    expect(rmiSnapshot(s)).toEqual(before);
  });

  test('success: NS → DELEGATED, owner HOST → HYP, the host loses access', () => {
    const s = newCore();
    const a = ram(5);
    expect(granuleDelegate(s, a)).toEqual({ ok: true, value: {} });
    const m = s.memory.meta.get(pfnOf(a))!;
    expect([m.owner, m.rmi, m.hyp, m.hypUse]).toEqual([VMID_HYP, 'DELEGATED', 'NOPAGE', 'NONE']);
    expect(viewIs(s.host, pfnOf(a), 1, 'NOPAGE')).toBe(true);
    expect(viewIs(s.host, pfnOf(a) - 1, 1, 'OWNED')).toBe(true);
    expect(viewIs(s.host, pfnOf(a) + 1, 1, 'OWNED')).toBe(true);
    expect(rmiInvariants(s)).toEqual([]);
  });
});

describe('§B2 RMI_GRANULE_UNDELEGATE', () => {
  const ladder = [
    { rule: 'gran_align', addr: (_s: Stage2) => ram(1) + 8 },
    { rule: 'gran_bound', addr: (_s: Stage2) => MMIO_BASE },
    { rule: 'gran_state', addr: (_s: Stage2) => ram(1) }, // NS
  ];
  test.each(ladder)('$rule → RMI_ERROR_INPUT, nothing changed', ({ rule, addr }) => {
    const s = newCore();
    const a = addr(s);
    const before = rmiSnapshot(s);
    expect(outcome(granuleUndelegate(s, a))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule });
    expect(rmiSnapshot(s)).toEqual(before);
  });

  test('success: DELEGATED → NS, owner HYP → HOST, host access restored', () => {
    const s = newCore();
    const a = ram(9);
    expect(granuleDelegate(s, a).ok).toBe(true);
    expect(granuleUndelegate(s, a)).toEqual({ ok: true, value: {} });
    const m = s.memory.meta.get(pfnOf(a))!;
    expect([m.owner, m.rmi]).toEqual([VMID_HOST, 'NS']);
    expect(viewIs(s.host, pfnOf(a), 1, 'OWNED')).toBe(true);
    expect(rmiInvariants(s)).toEqual([]);
  });

  test('delegate then undelegate restores the initial state exactly (host blocks fold back)', () => {
    const s = newCore();
    const before = rmiSnapshot(s);
    for (const i of [0, 1, 511, 512, 100_000]) expect(granuleDelegate(s, ram(i)).ok).toBe(true);
    expect(rmiSnapshot(s)).not.toEqual(before);
    for (const i of [0, 1, 511, 512, 100_000]) expect(granuleUndelegate(s, ram(i)).ok).toBe(true);
    expect(rmiSnapshot(s)).toEqual(before);
  });

  test('undelegate of an RD, RTT or DATA granule is gran_state', () => {
    const s = newCore();
    expect(granuleDelegate(s, ram(1)).ok).toBe(true);
    s.memory.meta.update(pfnOf(ram(1)), 1, (m) => withMeta(m!, { rmi: 'RTT' }));
    expect(outcome(granuleUndelegate(s, ram(1)))).toEqual({ status: 'RMI_ERROR_INPUT', index: 0, rule: 'gran_state' });
  });
});
