/**
 * The simulation's checkers, each returning a list of violations (empty = consistent):
 *
 *   stepChecks   after every step, cheap: they scale with live state (parcels, VMs, grants,
 *                address spaces), never with the size of memory: the cross-service rules of
 *                issue 8 item 3 (every parcel one core grant in the state the RM believes, every
 *                VMM VM an RM VM and a core address space, no space or grant of a dead VM).
 *   coreChecks   every `checkEvery` steps: the core's whole-memory invariants, the RM's own
 *                invariants (physical runs, IPA allocators: string-heavy) and the granule
 *                ownership scan (no granule owned by a VM that no longer exists).
 *   finalChecks  after every session has closed: every granule back with the host, or reported in a
 *                teardown's `leaked` (an unreported leak is a failure).
 *
 * "Exists" is judged across services, allowing what a teardown in progress or a reported leak
 * explains: a core address space the RM no longer knows is fine while the VMM still holds that VM
 * (a realm's space, or a teardown in progress), or once a teardown reported it.
 */
import { rmInvariants, type Parcel } from '@hypmesh/rm';
import { checkInvariants, ownershipCounts, VMID_HOST, VMID_HYP, type OwnershipCounts } from '@hypmesh/stage2';
import type { ClientState } from './actors.js';
import type { World } from './world.js';

/** What the `leaked` lists name, parsed once per check (the VMM's and HLOS's own wording). */
interface Reported {
  readonly vmids: ReadonlySet<number>;
  readonly grants: ReadonlySet<number>;
  readonly parcels: ReadonlySet<number>;
  readonly realmGranules: boolean;
}

const LEAK_PATTERNS: readonly [RegExp, 'vmids' | 'grants' | 'parcels'][] = [
  [/VMID (\d+)/g, 'vmids'],
  [/of VM (\d+)/g, 'vmids'],
  [/grant (\d+)/g, 'grants'],
  [/parcel (\d+)/g, 'parcels'],
];

let cache: { readonly length: number; readonly of: readonly string[]; readonly value: Reported } | undefined;

/** `reported` of a list that only grows: parsed again only when it has grown (stepChecks runs per step). */
function reportedCached(leaked: readonly string[]): Reported {
  if (cache === undefined || cache.of !== leaked || cache.length !== leaked.length) cache = { length: leaked.length, of: leaked, value: reported(leaked) };
  return cache.value;
}

export function reported(leaked: readonly string[]): Reported {
  const out = { vmids: new Set<number>(), grants: new Set<number>(), parcels: new Set<number>() };
  for (const line of leaked) for (const [re, into] of LEAK_PATTERNS) for (const m of line.matchAll(re)) out[into].add(Number(m[1]));
  return { ...out, realmGranules: leaked.some((l) => l.includes('realm granules')) };
}

const SYSTEM_VMIDS = new Set<number>([VMID_HOST, VMID_HYP]);

/** Grant ids of the parcels, reused by parcelGrants (it runs after every step); grows as needed. */
let grantIdScratch = new Float64Array(256);

/** Whether two of the first `n` ids in grantIdScratch are equal (sorted in place: the buffer is scratch). */
function scratchHasDuplicate(n: number): boolean {
  const ids = grantIdScratch.subarray(0, n).sort();
  for (let k = 1; k < n; k++) if (ids[k] === ids[k - 1]) return true;
  return false;
}

/**
 * Every RM parcel is exactly one core grant in the state the RM believes: the grant exists, no
 * other parcel has it, same owner and kind, mapped by exactly the parcel's acceptors. The cheap
 * half of rmInvariants (which also compares physical runs and IPA allocators; coreChecks runs it).
 *
 * One pass over the parcels does the per-parcel comparisons and, for "no other parcel has it",
 * copies the grant ids into a reused buffer while noting whether they ascend. The RM makes one
 * call at a time and creates a parcel's grant just before the parcel, so in the parcel map's order
 * the ids usually ascend, which proves them distinct; otherwise the buffer is sorted (a Set per
 * step costs its rehashes). Only when two parcels do share a grant does a second pass give the
 * rule's messages with each shared grant named (a violation: the run stops there).
 */
function parcelGrants(w: World, out: string[]): void {
  const n = w.rm.parcels.size;
  if (grantIdScratch.length < n) grantIdScratch = new Float64Array(2 * n);
  let i = 0;
  let previous = -Infinity;
  let ascending = true;
  const first = out.length;
  for (const p of w.rm.parcels.values()) {
    const id = p.grantId;
    if (!(id > previous)) ascending = false;
    previous = id;
    grantIdScratch[i++] = id;
    parcelGrant(w, p, out);
  }
  if (ascending || !scratchHasDuplicate(n)) return;
  // Some parcels share a grant (a violation, so rare): this rule's messages again, each shared
  // grant named at its later parcel, in the order the rule has always given them.
  out.length = first;
  const seen = new Set<number>();
  for (const p of w.rm.parcels.values()) {
    if (seen.has(p.grantId)) out.push(`cross: parcel ${p.handle} shares core grant ${p.grantId}`);
    seen.add(p.grantId);
    parcelGrant(w, p, out);
  }
}

/** One parcel against its core grant (parcelGrants' per-parcel comparisons). */
function parcelGrant(w: World, p: Parcel, out: string[]): void {
  const g = w.s.grants.get(p.grantId);
  if (g === undefined) {
    out.push(`cross: parcel ${p.handle}'s core grant ${p.grantId} is gone`);
    return;
  }
  if (g.owner !== p.owner || g.type !== p.transType) out.push(`cross: parcel ${p.handle} is ${p.transType} of ${p.owner}, core grant ${g.type} of ${g.owner}`);
  let same = g.borrowers.size === p.accepted.size;
  // Most parcels are accepted by nobody: skip the iterator then.
  if (same && g.borrowers.size > 0) for (const b of g.borrowers.keys()) if (!p.accepted.has(b)) same = false;
  if (!same) out.push(`cross: parcel ${p.handle} accepted by [${[...p.accepted.keys()]}], core grant ${g.id} mapped by [${[...g.borrowers.keys()]}]`);
}

/** VMIDs of the VMM's GUNYAH VMs (those being torn down included). */
function vmmGunyahVmids(w: World): Set<number> {
  const out = new Set<number>();
  for (const vm of w.vmm.states()) if (vm.type !== 'REALM') out.add(vm.vmid);
  return out;
}

export function stepChecks(w: World, c: ClientState): string[] {
  const out: string[] = [];
  parcelGrants(w, out);
  let liveRealms = 0;
  // The VMM's own records, not views (vmm.list() copies every VM's bindings and reports).
  for (const vm of w.vmm.states()) {
    if (vm.type === 'REALM') {
      if (vm.state !== 'DESTROYING' && vm.state !== 'DESTROYED') liveRealms++;
      continue;
    }
    if (vm.state === 'DESTROYING' || vm.state === 'DESTROYED') continue;
    // Every VMM VM is an RM VM and a core address space.
    if (!w.rm.vms.has(vm.vmid)) out.push(`cross: VMM VM ${vm.handle} (VMID ${vm.vmid}, ${vm.state}) is no RM VM`);
    if (!w.s.spaces.has(vm.vmid as never)) out.push(`cross: VMM VM ${vm.handle} (VMID ${vm.vmid}, ${vm.state}) has no core address space`);
  }
  if (w.s.rmm.realms.size < liveRealms) out.push(`cross: the VMM holds ${liveRealms} realm VM(s), the core ${w.s.rmm.realms.size} realm(s)`);
  // No address space of a VM that no longer exists in the RM, unless its teardown runs or reported
  // it. Most spaces are RM VMs: the VMM's VMIDs and the leaked lists are read only for the others.
  let vmmVmids: Set<number> | undefined;
  for (const vmid of w.s.spaces.keys()) {
    if (vmid === VMID_HOST || vmid === VMID_HYP || w.rm.vms.has(vmid)) continue;
    vmmVmids ??= vmmGunyahVmids(w);
    if (vmmVmids.has(vmid) || (c.leaked.length > 0 && reportedCached(c.leaked).vmids.has(vmid))) continue;
    out.push(`cross: core address space of VMID ${vmid}, which neither the RM nor the VMM knows`);
  }
  // No grant of, or mapped by, a VM without an address space.
  // Most grants are the host's: the owner last found to have a space is not looked up again.
  let ownerWithSpace = -1;
  for (const g of w.s.grants.values()) {
    if (g.owner !== ownerWithSpace) {
      if (w.s.spaces.has(g.owner)) ownerWithSpace = g.owner;
      else out.push(`cross: core grant ${g.id} owned by VMID ${g.owner}, which has no address space`);
    }
    if (g.borrowers.size > 0) for (const b of g.borrowers.keys()) if (!w.s.spaces.has(b)) out.push(`cross: core grant ${g.id} mapped by VMID ${b}, which has no address space`);
  }
  for (const bug of w.rm.bugs) out.push(`rm bug: ${String(bug)}`);
  return out;
}

/** Owners of granules that are no VM (address space) any more. */
function deadOwners(w: World, counts: OwnershipCounts, rep: Reported | undefined): string[] {
  const out: string[] = [];
  for (const [owner, n] of counts.byOwner) {
    if (n === 0 || SYSTEM_VMIDS.has(owner) || w.s.spaces.has(owner) || rep?.vmids.has(owner)) continue;
    out.push(`core: ${n} granule(s) owned by VMID ${owner}, which no longer exists`);
  }
  return out;
}

export function coreChecks(w: World, c: ClientState): string[] {
  const out = checkInvariants(w.s).map((v) => `core: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  for (const v of rmInvariants(w.rm, w.s)) out.push(`rm: ${v}`);
  return out.concat(deadOwners(w, ownershipCounts(w.s), c.leaked.length === 0 ? undefined : reported(c.leaked)));
}

export function finalChecks(w: World, c: ClientState, boot: OwnershipCounts): string[] {
  const out = stepChecks(w, c).concat(coreChecks(w, c));
  const rep = reported(c.leaked);
  const counts = w.vmm.counts();
  if (counts.vms > 0) out.push(`final: the VMM still holds ${counts.vms} VM handle(s) after every session closed`);
  for (const vmid of w.rm.vms.keys()) if (!rep.vmids.has(vmid)) out.push(`final: RM VM ${vmid} survived, unreported`);
  const parcelGrants = new Set<number>();
  for (const p of w.rm.parcels.values()) {
    parcelGrants.add(p.grantId);
    if (!rep.parcels.has(p.handle)) out.push(`final: parcel ${p.handle} (${p.transType}, owner ${p.owner}) survived, unreported`);
  }
  for (const g of w.s.grants.values()) if (!rep.grants.has(g.id) && !parcelGrants.has(g.id)) out.push(`final: core grant ${g.id} (${g.type}, owner ${g.owner}) survived, unreported`);
  for (const vmid of w.s.spaces.keys()) if (!SYSTEM_VMIDS.has(vmid) && !rep.vmids.has(vmid)) out.push(`final: core address space of VMID ${vmid} survived, unreported`);
  if (w.s.rmm.realms.size + w.s.rmm.rtts.size > 0 && !rep.realmGranules) out.push(`final: ${w.s.rmm.realms.size} realm(s), ${w.s.rmm.rtts.size} RTT(s) left, unreported`);
  const now = ownershipCounts(w.s);
  if (c.leaked.length === 0) {
    // Nothing reported: every granule is back, in its boot state.
    for (const [owner, n] of now.byOwner) if ((boot.byOwner.get(owner) ?? 0) !== n) out.push(`final: VMID ${owner} owns ${n} granule(s), ${boot.byOwner.get(owner) ?? 0} at boot (unreported leak)`);
    const host = (m: OwnershipCounts): string => JSON.stringify([...(m.byState.get(VMID_HOST) ?? new Map())].sort());
    if (host(now) !== host(boot)) out.push(`final: the host's view is ${host(now)}, ${host(boot)} at boot (unreported leak)`);
  }
  return out;
}
