/**
 * The RM's own invariants, checked against an in-process core: every parcel is exactly one live
 * core grant of the same owner and kind whose borrowers are the parcel's acceptors; handles and
 * VMIDs are consistent; the per-owner parcel limit holds; a parcel's regions are its grant's
 * physical runs; every borrower IPA range the RM placed is recorded in that borrower's IPA
 * allocator (HLOS aside: identity map). An empty list means consistent.
 */
import { physicalRuns, type Stage2 } from '@hypmesh/stage2';
import { VMID_HLOS } from './vmid.js';
import type { ResourceManager } from './resource-manager.js';

const KIND = { SHARE: 'SHARE', LEND: 'LEND', DONATE: 'DONATE' } as const;

export function rmInvariants(rm: ResourceManager, core: Stage2): string[] {
  const out: string[] = [];
  const grantsSeen = new Set<number>();
  const perOwner = new Map<number, number>();
  for (const [handle, p] of rm.parcels) {
    const at = `parcel ${handle}`;
    if (p.handle !== handle) out.push(`${at}: filed under the wrong handle (${p.handle})`);
    perOwner.set(p.owner, (perOwner.get(p.owner) ?? 0) + 1);
    if (grantsSeen.has(p.grantId)) out.push(`${at}: shares core grant ${p.grantId} with another parcel`);
    grantsSeen.add(p.grantId);
    const g = core.grants.get(p.grantId);
    if (g === undefined) {
      out.push(`${at}: core grant ${p.grantId} is gone`);
      continue;
    }
    if (g.owner !== p.owner) out.push(`${at}: owner ${p.owner}, core grant owner ${g.owner}`);
    if (g.type !== KIND[p.transType]) out.push(`${at}: ${p.transType}, core grant ${g.type}`);
    const borrowers = [...g.borrowers.keys()].sort((a, b) => a - b);
    const accepted = [...p.accepted.keys()].sort((a, b) => a - b);
    if (borrowers.join() !== accepted.join()) out.push(`${at}: accepted by [${accepted}], mapped in the core by [${borrowers}]`);
    if ((p.state === 'SHARED') !== (p.accepted.size > 0)) out.push(`${at}: state ${p.state} with ${p.accepted.size} acceptor(s)`);
    if (p.transType === 'DONATE' && p.accepted.size > 0) out.push(`${at}: a DONATE parcel outlived its accept`);
    const frames = p.regions.reduce((n, r) => n + Number(r.size / 4096n), 0);
    if (frames !== g.frames) out.push(`${at}: ${frames} frames, core grant ${g.frames}`);
    const runs = physicalRuns(g.constituents).map((r) => `${BigInt(r.base) * 4096n}+${BigInt(r.count) * 4096n}`);
    if (runs.join() !== p.physRegions.map((r) => `${r.base}+${r.size}`).join()) out.push(`${at}: regions are not the core grant's physical runs`);
    for (const [vmid, ipas] of [...p.accepted, ...[...p.pending].map(([v, x]) => [v, x.ipas] as const)]) {
      if (vmid === VMID_HLOS) continue;
      const held = rm.ipas.get(vmid)?.ranges() ?? [];
      for (const e of ipas) {
        if (!held.some((h) => h.holder.kind === 'accepted' && h.holder.handle === handle && h.base === e.base && h.size === e.size))
          out.push(`${at}: VM ${vmid}'s IPA 0x${e.base.toString(16)} is not recorded in its IPA allocator`);
      }
    }
  }
  for (const [owner, n] of perOwner) if (n > rm.config.parcelsPerVmMax) out.push(`VM ${owner} owns ${n} parcels, more than ${rm.config.parcelsPerVmMax}`);
  for (const [vmid, vm] of rm.vms) {
    if (vm.vmid !== vmid) out.push(`VM ${vmid}: filed under the wrong VMID (${vm.vmid})`);
    if (!rm.vmids.isAllocated(vmid)) out.push(`VM ${vmid}: exists but its VMID is free`);
  }
  return out;
}
