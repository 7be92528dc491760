/**
 * The checkers catch what they claim to: each test plants one inconsistency behind the services'
 * backs and expects the violation that names it (and none before it was planted).
 */
import { VMID_HLOS } from '@hypmesh/rm';
import { MEM_TYPE } from '@hypmesh/rm-wire';
import { createAddressSpace, ownershipCounts, pfn, vmid } from '@hypmesh/stage2';
import { describe, expect, test } from 'vitest';
import { ClientState } from './actors.js';
import { finalChecks, stepChecks } from './checks.js';
import { buildWorld, HLOS_AREA_BASE } from './world.js';

async function worldWithVm() {
  const w = buildWorld({ rules: [] }, 1, () => undefined);
  const c = new ClientState();
  const session = w.vmm.openSession();
  const vm = await w.vmm.create(session, 'GUNYAH', 40);
  if (!vm.ok) throw new Error(vm.error.message);
  return { w, c, vm: vm.value, session };
}

describe('stepChecks', () => {
  test('orphan_address_space: a core space of a VMID neither the RM nor the VMM knows', async () => {
    const { w, c } = await worldWithVm();
    expect(stepChecks(w, c)).toEqual([]);
    const donated = w.vmm.pages.allocRun(8)!;
    expect(createAddressSpace(w.s, vmid(0x99), 40, [{ base: pfn(donated.base), count: donated.count }]).ok).toBe(true);
    expect(stepChecks(w, c)).toEqual(['cross: core address space of VMID 153, which neither the RM nor the VMM knows']);
  });

  test('parcel_without_grant: an RM parcel whose core grant is gone', async () => {
    const { w, c, vm } = await worldWithVm();
    const lent = await w.rm.call(VMID_HLOS, 'MEM_LEND', { memType: MEM_TYPE.NORMAL, flags: 0, label: 0, acl: [{ vmid: vm.vmid, rights: 7 }], sgl: [{ base: BigInt(HLOS_AREA_BASE), size: 4096n }], attrs: [] });
    if (!lent.ok) throw new Error(lent.error.message);
    expect(stepChecks(w, c)).toEqual([]);
    const p = w.rm.parcels.get(lent.value.handle)!;
    w.s.grants.delete(p.grantId);
    expect(stepChecks(w, c)).toContain(`cross: parcel ${p.handle}'s core grant ${p.grantId} is gone`);
  });

  test('parcels_share_grant: two RM parcels naming one core grant', async () => {
    const { w, c, vm } = await worldWithVm();
    const lend = (page: number) =>
      w.rm.call(VMID_HLOS, 'MEM_LEND', { memType: MEM_TYPE.NORMAL, flags: 0, label: 0, acl: [{ vmid: vm.vmid, rights: 7 }], sgl: [{ base: BigInt(HLOS_AREA_BASE + page * 4096), size: 4096n }], attrs: [] });
    const a = await lend(0);
    const b = await lend(1);
    if (!a.ok || !b.ok) throw new Error('lend');
    expect(stepChecks(w, c)).toEqual([]);
    const first = w.rm.parcels.get(a.value.handle)!;
    const second = w.rm.parcels.get(b.value.handle)!;
    (second as { grantId: number }).grantId = first.grantId;
    expect(stepChecks(w, c)).toEqual([`cross: parcel ${second.handle} shares core grant ${first.grantId}`]);
  });

  test('grant_without_space: a core grant owned by, or mapped by, a VMID with no address space', async () => {
    const { w, c, vm } = await worldWithVm();
    const lend = (page: number) =>
      w.rm.call(VMID_HLOS, 'MEM_LEND', { memType: MEM_TYPE.NORMAL, flags: 0, label: 0, acl: [{ vmid: vm.vmid, rights: 7 }], sgl: [{ base: BigInt(HLOS_AREA_BASE + page * 4096), size: 4096n }], attrs: [] });
    const handles = [];
    for (let page = 0; page < 3; page++) {
      const r = await lend(page);
      if (!r.ok) throw new Error(r.error.message);
      handles.push(r.value.handle);
    }
    expect(stepChecks(w, c)).toEqual([]);
    // The host's grants before and after the planted one: each owner is judged on its own.
    const g = w.s.grants.get(w.rm.parcels.get(handles[1]!)!.grantId)!;
    (g as { owner: number }).owner = 0x99;
    (g.borrowers as Map<number, unknown>).set(0x9a, g.borrowers.get(vm.vmid as never));
    const v = stepChecks(w, c);
    expect(v).toContain(`cross: core grant ${g.id} owned by VMID 153, which has no address space`);
    expect(v).toContain(`cross: core grant ${g.id} mapped by VMID 154, which has no address space`);
    expect(v.filter((x) => x.includes('which has no address space'))).toHaveLength(2);
  });

  test('grants_out_of_id_order: with the grant map out of id order each violation is still named, in rule order', async () => {
    const { w, c, vm } = await worldWithVm();
    const lend = (page: number) =>
      w.rm.call(VMID_HLOS, 'MEM_LEND', { memType: MEM_TYPE.NORMAL, flags: 0, label: 0, acl: [{ vmid: vm.vmid, rights: 7 }], sgl: [{ base: BigInt(HLOS_AREA_BASE + page * 4096), size: 4096n }], attrs: [] });
    const handles: number[] = [];
    for (let page = 0; page < 3; page++) {
      const r = await lend(page);
      if (!r.ok) throw new Error(r.error.message);
      handles.push(r.value.handle);
    }
    const [a, b] = handles.map((h) => w.rm.parcels.get(h)!);
    // Re-inserting a's grant puts it last in the map: the grants no longer ascend by id.
    const ga = w.s.grants.get(a!.grantId)!;
    w.s.grants.delete(ga.id);
    w.s.grants.set(ga.id, ga);
    expect(stepChecks(w, c)).toEqual([]);
    w.s.grants.delete(b!.grantId);
    (ga as { owner: number }).owner = 0x99;
    expect(stepChecks(w, c)).toEqual([
      `cross: parcel ${a!.handle} is LEND of ${VMID_HLOS}, core grant LEND of 153`,
      `cross: parcel ${b!.handle}'s core grant ${b!.grantId} is gone`,
      `cross: core grant ${ga.id} owned by VMID 153, which has no address space`,
    ]);
  });

  test('vmm_vm_without_rm_vm: a VMM VM the RM no longer has', async () => {
    const { w, c, vm } = await worldWithVm();
    w.rm.vms.delete(vm.vmid);
    expect(stepChecks(w, c)).toContain(`cross: VMM VM ${vm.handle} (VMID ${vm.vmid}, CREATED) is no RM VM`);
  });
});

describe('finalChecks', () => {
  test('unreported_leak: a VM left behind with nothing in any leaked list fails the final check', async () => {
    const { w, c } = await worldWithVm();
    const boot = ownershipCounts(buildWorld({ rules: [] }, 1, () => undefined).s);
    const v = finalChecks(w, c, boot);
    expect(v).toContain('final: the VMM still holds 1 VM handle(s) after every session closed');
    expect(v.some((x) => /final: RM VM \d+ survived, unreported/.test(x))).toBe(true);
    c.leaked.push('vm 1: VMID 128 kept allocated: its core address space could not be destroyed');
    expect(finalChecks(w, c, boot).some((x) => /RM VM 128 survived/.test(x))).toBe(false);
  });
});
