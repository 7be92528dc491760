/**
 * The cross-service consistency rules (issue 9 item 5), as one table: each row names the rule (the
 * broken condition, as a test is named) and lists its disagreements. `compareViews` runs every row
 * in table order; an empty list means the VMM, the RM and the core agree.
 *
 * The rules judge only what all three can state; they are the cross-service half of the
 * simulation's stepChecks (packages/sim/src/checks.ts), without its allowance for leaks a teardown
 * reported (a live check cannot read a client's report: a reported leak is still a disagreement).
 * The core's own whole-memory invariants are its CheckInvariants, which the live check runs beside
 * these.
 */
import { isLive, type CoreGrantView, type Views } from './views.js';

/** HYP (0), HOST (3) and the RM (0xFF): present from boot, in no VM list. */
export const VMID_HYP = 0;
export const VMID_HOST = 3;
export const VMID_RM = 0xff;
const SYSTEM_VMIDS: ReadonlySet<number> = new Set([VMID_HYP, VMID_HOST, VMID_RM]);

export interface Disagreement {
  readonly rule: RuleName;
  readonly message: string;
}

/** Lookups built once per comparison, shared by every rule. */
interface Indexed {
  readonly v: Views;
  readonly rmVmids: ReadonlySet<number>;
  readonly vmmVmids: ReadonlySet<number>;
  readonly spaces: ReadonlySet<number>;
  readonly grants: ReadonlyMap<number, CoreGrantView>;
}

interface Rule {
  readonly rule: string;
  /** What must hold, for the README and `hypmesh check --live --help`. */
  readonly holds: string;
  readonly find: (x: Indexed) => string[];
}

const sameSet = (a: readonly number[], b: readonly number[]): boolean => {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
};
const list = (xs: readonly number[]): string => `[${[...xs].sort((a, b) => a - b).join(', ')}]`;

/** Frames of [base, base + count) owned by someone other than `owner` (or by nobody: no run covers them). */
function framesNotOwnedBy(runs: Views['core']['ownership'], base: number, count: number, owner: number): { frames: number; owners: Set<number | 'none'> } {
  const end = base + count;
  let covered = 0;
  let frames = 0;
  const owners = new Set<number | 'none'>();
  for (const r of runs) {
    const lo = Math.max(base, r.base);
    const hi = Math.min(end, r.base + r.count);
    if (hi <= lo) continue;
    covered += hi - lo;
    if (r.owner !== owner) {
      frames += hi - lo;
      owners.add(r.owner);
    }
  }
  if (covered < count) {
    frames += count - covered;
    owners.add('none');
  }
  return { frames, owners };
}

export const RULES = [
  {
    rule: 'vmm_vm_not_in_rm',
    holds: 'every live GUNYAH VM of the VMM is a VM the RM has allocated',
    find: ({ v, rmVmids }) =>
      v.vmm.vms.filter((vm) => vm.type === 'GUNYAH' && isLive(vm) && !rmVmids.has(vm.vmid)).map((vm) => `VMM VM ${vm.handle} (VMID ${vm.vmid}, ${vm.state}) is no RM VM`),
  },
  {
    rule: 'vmm_vm_without_space',
    holds: 'every live GUNYAH VM of the VMM has a core address space',
    find: ({ v, spaces }) =>
      v.vmm.vms.filter((vm) => vm.type === 'GUNYAH' && isLive(vm) && !spaces.has(vm.vmid)).map((vm) => `VMM VM ${vm.handle} (VMID ${vm.vmid}, ${vm.state}) has no core address space`),
  },
  {
    rule: 'rm_vm_without_space',
    holds: 'every VM the RM has allocated (not HLOS or the RM) has a core address space (VM_ALLOCATE makes it); one the VMM holds is vmm_vm_without_space',
    find: ({ v, spaces, vmmVmids }) => v.rm.vms.filter((vm) => !SYSTEM_VMIDS.has(vm.vmid) && !spaces.has(vm.vmid) && !vmmVmids.has(vm.vmid)).map((vm) => `RM VM ${vm.vmid} (${vm.state}) has no core address space`),
  },
  {
    rule: 'parcel_without_grant',
    holds: "every RM parcel's core grant exists",
    find: ({ v, grants }) => v.rm.parcels.filter((p) => !grants.has(p.grantId)).map((p) => `parcel ${p.handle} (${p.transType} of VMID ${p.owner}): core grant ${p.grantId} does not exist`),
  },
  {
    rule: 'parcel_grant_shared',
    holds: 'no two RM parcels name the same core grant',
    find: ({ v }) => {
      const by = new Map<number, number[]>();
      for (const p of v.rm.parcels) by.set(p.grantId, [...(by.get(p.grantId) ?? []), p.handle]);
      return [...by].filter(([, hs]) => hs.length > 1).map(([g, hs]) => `parcels ${list(hs)} all name core grant ${g}`);
    },
  },
  {
    rule: 'parcel_grant_mismatch',
    holds: "each parcel's grant has the parcel's owner and type, and is mapped by exactly its acceptors",
    find: ({ v, grants }) =>
      v.rm.parcels.flatMap((p) => {
        const g = grants.get(p.grantId);
        if (g === undefined) return [];
        const out: string[] = [];
        if (g.owner !== p.owner || g.type !== p.transType) out.push(`parcel ${p.handle} is ${p.transType} of VMID ${p.owner}, core grant ${g.id} is ${g.type} of VMID ${g.owner}`);
        if (!sameSet(g.borrowers, p.acceptors)) out.push(`parcel ${p.handle} accepted by ${list(p.acceptors)}, core grant ${g.id} mapped by ${list(g.borrowers)}`);
        return out;
      }),
  },
  {
    rule: 'space_of_unknown_vmid',
    holds: 'every core address space but the system ones belongs to a VM the RM or the VMM knows',
    find: ({ v, rmVmids, vmmVmids }) =>
      v.core.spaces.filter((s) => !SYSTEM_VMIDS.has(s) && !rmVmids.has(s) && !vmmVmids.has(s)).map((s) => `core address space of VMID ${s}, which neither the RM nor the VMM knows`),
  },
  {
    rule: 'grant_of_dead_vm',
    holds: 'every core grant is owned and mapped only by VMIDs that have an address space',
    find: ({ v, spaces }) =>
      v.core.grants.flatMap((g) => [
        ...(spaces.has(g.owner) ? [] : [`core grant ${g.id} owned by VMID ${g.owner}, which has no address space`]),
        ...g.borrowers.filter((b) => !spaces.has(b)).map((b) => `core grant ${g.id} mapped by VMID ${b}, which has no address space`),
      ]),
  },
  {
    rule: 'donation_not_hyp_owned',
    holds: 'every frame the VMM records as donated for a live VM is HYP-owned in the core',
    find: ({ v }) =>
      v.vmm.vms.filter(isLive).flatMap((vm) =>
        vm.donatedRuns.flatMap((r) => {
          const bad = framesNotOwnedBy(v.core.ownership, r.base, r.count, VMID_HYP);
          return bad.frames === 0 ? [] : [`VMM VM ${vm.handle} (VMID ${vm.vmid}) donated frames ${r.base}+${r.count}; ${bad.frames} of them are owned by ${[...bad.owners].join(', ')}, not HYP`];
        }),
      ),
  },
] as const satisfies readonly Rule[];

export type RuleName = (typeof RULES)[number]['rule'];

/** Every disagreement between the three views, rule by rule in table order; empty when they agree. */
export function compareViews(v: Views): Disagreement[] {
  const x: Indexed = {
    v,
    rmVmids: new Set(v.rm.vms.map((vm) => vm.vmid)),
    vmmVmids: new Set(v.vmm.vms.filter((vm) => vm.type === 'GUNYAH').map((vm) => vm.vmid)),
    spaces: new Set(v.core.spaces),
    grants: new Map(v.core.grants.map((g) => [g.id, g])),
  };
  return RULES.flatMap((r) => (r.find as Rule['find'])(x).map((message) => ({ rule: r.rule, message })));
}

/** One line per disagreement, as `hypmesh check --live` prints it. */
export function formatDisagreement(d: Disagreement): string {
  return `${d.rule}: ${d.message}`;
}
