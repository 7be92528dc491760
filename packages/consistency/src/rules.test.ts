/** Table-driven: a consistent system agrees; each case breaks exactly one rule and gets exactly that rule. */
import { describe, expect, test } from 'vitest';
import { compareViews, RULES, type RuleName } from './rules.js';
import type { Views } from './views.js';

/** A running VM (VMID 0x80) whose DTB parcel is lent by HOST and accepted by it, plus a HOST parcel nobody accepted. */
const consistent = (): Views => ({
  vmm: { vms: [{ handle: 1, vmid: 0x80, type: 'GUNYAH', state: 'RUNNING', donatedRuns: [{ base: 1000, count: 8 }] }] },
  rm: {
    vms: [{ vmid: 0x80, owner: 3, state: 'RUNNING' }],
    parcels: [
      { handle: 1, owner: 3, transType: 'LEND', grantId: 7, acceptors: [0x80] },
      { handle: 2, owner: 3, transType: 'SHARE', grantId: 8, acceptors: [] },
    ],
  },
  core: {
    spaces: [3, 0x80],
    grants: [
      { id: 7, owner: 3, type: 'LEND', borrowers: [0x80] },
      { id: 8, owner: 3, type: 'SHARE', borrowers: [] },
    ],
    ownership: [
      { base: 0, count: 1000, owner: 3 },
      { base: 1000, count: 8, owner: 0 },
    ],
  },
});

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends readonly (infer E)[] ? Mutable<E>[] : T[K] extends object ? Mutable<T[K]> : T[K] };
const ladder: { rule: RuleName; break: (v: Mutable<Views>) => void }[] = [
  { rule: 'vmm_vm_not_in_rm', break: (v) => void (v.vmm.vms.push({ handle: 2, vmid: 0x81, type: 'GUNYAH', state: 'CREATED', donatedRuns: [] }), v.core.spaces.push(0x81)) },
  { rule: 'vmm_vm_without_space', break: (v) => void (v.vmm.vms.push({ handle: 2, vmid: 0x81, type: 'GUNYAH', state: 'CREATED', donatedRuns: [] }), v.rm.vms.push({ vmid: 0x81, owner: 3, state: 'LOAD' })) },
  { rule: 'rm_vm_without_space', break: (v) => void v.rm.vms.push({ vmid: 0x81, owner: 3, state: 'LOAD' }) },
  { rule: 'parcel_without_grant', break: (v) => void (v.core.grants = v.core.grants.filter((g) => g.id !== 8)) },
  { rule: 'parcel_grant_shared', break: (v) => void v.rm.parcels.push({ handle: 3, owner: 3, transType: 'SHARE', grantId: 8, acceptors: [] }) },
  { rule: 'parcel_grant_mismatch', break: (v) => void (v.core.grants[1]!.type = 'LEND') },
  { rule: 'parcel_grant_mismatch', break: (v) => void (v.core.grants[0]!.borrowers = []) },
  { rule: 'space_of_unknown_vmid', break: (v) => void v.core.spaces.push(0x90) },
  { rule: 'grant_of_dead_vm', break: (v) => void v.core.grants.push({ id: 9, owner: 3, type: 'SHARE', borrowers: [0x90] }) },
  { rule: 'donation_not_hyp_owned', break: (v) => void (v.core.ownership[1] = { base: 1000, count: 8, owner: 3 }) },
  { rule: 'donation_not_hyp_owned', break: (v) => void (v.core.ownership = v.core.ownership.slice(0, 1)) },
];

describe('compareViews', () => {
  test('a consistent system: no disagreement', () => {
    expect(compareViews(consistent())).toEqual([]);
  });

  test('HYP, HOST and the RM own spaces and grants without being VMs; a VM being destroyed may have let go', () => {
    const v = consistent() as Mutable<Views>;
    v.core.spaces.push(0);
    v.rm.vms.push({ vmid: 3, owner: 0xff, state: 'RUNNING' }, { vmid: 0xff, owner: 0xff, state: 'RUNNING' });
    v.vmm.vms.push({ handle: 2, vmid: 0x81, type: 'GUNYAH', state: 'DESTROYING', donatedRuns: [{ base: 5, count: 1 }] });
    v.vmm.vms.push({ handle: 3, vmid: 0, type: 'REALM', state: 'RUNNING', donatedRuns: [] });
    expect(compareViews(v)).toEqual([]);
  });

  test.each(ladder.map((c, i) => ({ ...c, i })))('#$i $rule', ({ rule, break: breakIt }) => {
    const v = structuredClone(consistent()) as Mutable<Views>;
    breakIt(v);
    const got = compareViews(v);
    expect(got.map((d) => d.rule)).toEqual([rule]);
    expect(got[0]!.message.length).toBeGreaterThan(0);
  });

  test('every rule has a case in the ladder', () => {
    expect(new Set(ladder.map((c) => c.rule))).toEqual(new Set(RULES.map((r) => r.rule)));
  });
});
