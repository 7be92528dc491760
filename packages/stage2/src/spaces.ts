/**
 * Address-space life cycle. Two creators (hyp-reservation.ts SPACE_CREATORS):
 * - HOST, as pKVM's __pkvm_init_vm / __pkvm_teardown_vm and the memcache top-ups of seed 003: the
 *   root tables and pool are host pages donated to HYP in the call;
 * - the RM (0xFF), as Gunyah's RM at VM_ALLOCATE (gunyah-rm.md §4.2): HYP builds the space from its
 *   boot reservation (roots plus a starter pool). An RM create for a VMID whose RM-created space is
 *   still there, unused (no mapping, no grant names it), of the same kind and at least as wide, adopts it: the RM restarted and lost
 *   track, and a second create must not leak reservation pages.
 * Every page goes back to where it came from (the reservation or the host): a frame's origin is
 * its address, since the reservation is one range of the carve-out.
 *
 *   createAddressSpace   an empty space, from donated pages (HOST) or the reservation (RM)
 *   topUpTablePool       host donates pages into the pool (host_donate_hyp), whoever created it
 *   drainTablePool       unused pool pages go back (hyp_donate_host, or into the reservation)
 *   destroyAddressSpace  by its creator only, once nothing is mapped or lent in it and no grant
 *                        names it; every page of its tables and pool goes back
 */

import { AddressSpace, type VmProtection } from './address-space.js';
import { SPACE_CREATORS, inReservation, type SpaceCreator } from './hyp-reservation.js';
import { errnoError, type ErrnoError } from './pkvm/errno.js';
import { firstFailure } from './pkvm/checks.js';
import { hostDonateHypChecks, hostDonateHypSteps, hypDonateHostSteps } from './pkvm/transitions.js';
import { commit, plan, type MetaStep, type PlanSteps, type TableStep } from './plan.js';
import { err, ok, type Result } from './result.js';
import { isValidIpaBits, rootTableCount } from './s2tt/geometry.js';
import type { Stage2 } from './stage2.js';
import { VMID_HOST, VMID_HYP, VMID_MAX, vmidName, type FrameRange, type Pfn, type Vmid } from './types.js';

/**
 * Validates a list of host frame ranges to donate: no overlaps, then each as host_donate_hyp. The
 * first failure, or undefined; the callers chain their own checks around it with `??`, so a call
 * builds no list of checks it mostly never reaches.
 */
function donationFailure(s: Stage2, ranges: readonly FrameRange[]): ErrnoError | undefined {
  if (ranges.length > 1) {
    const sorted = [...ranges].sort((a, b) => a.base - b.base);
    if (sorted.some((r, i) => i > 0 && sorted[i - 1]!.base + sorted[i - 1]!.count > r.base)) return errnoError('EINVAL', 'ranges_overlap', 'donated frame ranges overlap');
  }
  for (const r of ranges) {
    const failed = firstFailure(hostDonateHypChecks(s, r.base, r.count));
    if (failed !== undefined) return failed;
  }
  return undefined;
}

const donationSteps = (s: Stage2, ranges: readonly FrameRange[]): PlanSteps[] => ranges.map((r) => hostDonateHypSteps(s, r.base, r.count));

/** The steps of several plans as one, in order, `extra` last (plain loops: every top-up and teardown builds one). */
function merge(steps: readonly PlanSteps[], extra?: PlanSteps): PlanSteps {
  const out = { tables: [] as TableStep[], meta: [] as MetaStep[], finally: [] as (() => void)[] };
  for (const p of steps) mergeInto(out, p);
  if (extra !== undefined) mergeInto(out, extra);
  return out;
}

function mergeInto(out: { tables: TableStep[]; meta: MetaStep[]; finally: (() => void)[] }, p: PlanSteps): void {
  if (p.tables !== undefined) for (const t of p.tables) out.tables.push(t);
  if (p.meta !== undefined) for (const m of p.meta) out.meta.push(m);
  if (p.finally !== undefined) for (const f of p.finally) out.finally.push(f);
}

function framesOf(ranges: readonly FrameRange[]): Pfn[] {
  const out: Pfn[] = [];
  for (const r of ranges) for (let i = 0; i < r.count; i++) out.push((r.base + i) as Pfn);
  return out;
}

/** Distinct frames as maximal runs of consecutive frames, in frame order. */
function runsOf(frames: readonly Pfn[]): FrameRange[] {
  let ascending = true;
  for (let i = 1; i < frames.length && ascending; i++) ascending = frames[i]! > frames[i - 1]!;
  const sorted = ascending ? frames : Array.from(frames).sort((a, b) => a - b);
  const out: { base: Pfn; count: number }[] = [];
  for (const f of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && f === last.base + last.count) last.count++;
    else out.push({ base: f as Pfn, count: 1 });
  }
  return out;
}

export const totalFrames = (ranges: readonly FrameRange[]): number => ranges.reduce((n, r) => n + r.count, 0);

function checkVmid(s: Stage2, vmid: number): ErrnoError | undefined {
  if (!Number.isInteger(vmid) || vmid < 0 || vmid > VMID_MAX) return errnoError('EINVAL', 'vmid_invalid', `vmid ${vmid} is not a 16-bit VM id`);
  if (vmid === VMID_HYP || vmid === VMID_HOST) return errnoError('EINVAL', 'vmid_reserved', `vmid ${vmid} is HYP's or the host's`);
  if (s.spaces.has(vmid as Vmid)) return errnoError('EEXIST', 'vmid_in_use', `vmid ${vmid} already has an address space`);
  return undefined;
}

const ipaBitsFailure = (ipaBits: number): ErrnoError | undefined =>
  isValidIpaBits(ipaBits) ? undefined : errnoError('EINVAL', 'ipa_bits_invalid', `IPA width ${ipaBits} outside 32..48`);

export interface CreatedAddressSpace {
  readonly rootTables: number;
  readonly poolPages: number;
  /** An RM create found its own unused space for the VMID and kept it (module comment). */
  readonly adopted: boolean;
}

function creatorOf(caller: Vmid): SpaceCreator | ErrnoError {
  return SPACE_CREATORS.get(caller) ?? errnoError('EPERM', 'not_space_creator', `${vmidName(caller)} may not create address spaces`);
}

function aclNames(acl: readonly { readonly vmid: Vmid }[], vmid: Vmid): boolean {
  for (const e of acl) if (e.vmid === vmid) return true;
  return false;
}

/** The first place a space blocks teardown: a mapping or lent page, or a grant naming it. */
function spaceInUse(s: Stage2, space: AddressSpace): ErrnoError | undefined {
  // Skips invalid entries and empty tables: the cost is the tables the space holds, not its IPA size.
  const mapped = space.table.firstMapped();
  if (mapped !== undefined)
    return errnoError('EBUSY', 'space_has_mappings', `vmid ${space.vmid} still maps or lends IPA 0x${(mapped * 4096).toString(16)}: reclaim it first`);
  for (const g of s.grants.values()) {
    // An ACL naming the vmid counts too: a later VM reusing the id must not inherit the right to map.
    if (g.owner === space.vmid || aclNames(g.acl, space.vmid))
      return errnoError('EBUSY', 'space_in_grant', `vmid ${space.vmid} owns grant ${g.id} or is in its ACL`);
  }
  return undefined;
}

/**
 * Creates an empty stage-2 for `vmid` with an IPA width of `ipaBits`, on behalf of `creator`
 * (HOST when not given). From HOST, the first frames of `donated` (in order) become the root
 * tables and the rest seed the table-page pool. From the RM, `donated` must be empty: the roots
 * and a starter pool come from HYP's reservation (ENOMEM `hyp_reservation_empty` when it cannot
 * cover them). `protection` is the VM's pKVM kind (address-space.ts VmProtection; ANY when not given).
 */
export function createAddressSpace(
  s: Stage2,
  vmid: Vmid,
  ipaBits: number,
  donated: readonly FrameRange[],
  protection: VmProtection = 'ANY',
  creator: Vmid = VMID_HOST,
): Result<CreatedAddressSpace, ErrnoError> {
  const who = creatorOf(creator);
  if (!('source' in who)) return err(who);
  if (who.source === 'HYP_RESERVATION') return createReserved(s, vmid, ipaBits, donated, protection, creator, who);
  const rootsMissing = (): ErrnoError | undefined => {
    const roots = rootTableCount(ipaBits);
    return totalFrames(donated) >= roots
      ? undefined
      : errnoError('ENOMEM', 'root_tables_missing', `a ${ipaBits}-bit IPA space needs ${roots} root table page(s), ${totalFrames(donated)} donated`);
  };
  const failed = checkVmid(s, vmid) ?? ipaBitsFailure(ipaBits) ?? donationFailure(s, donated) ?? rootsMissing();
  if (failed !== undefined) return err(failed);
  const frames = framesOf(donated);
  const roots = frames.slice(0, rootTableCount(ipaBits));
  const p = plan(
    merge(donationSteps(s, donated), {
      finally: [
        () => {
          const space = new AddressSpace(vmid, 'GUEST', ipaBits, roots, s.memory, protection, creator);
          space.pool.add(frames.slice(roots.length));
          s.spaces.set(vmid, space);
        },
      ],
    }),
  );
  if (!p.ok) return p;
  commit(s, p.value);
  return ok({ rootTables: roots.length, poolPages: frames.length - roots.length, adopted: false });
}

/** The RM's create: from HYP's reservation, or adopting its own unused space (module comment). */
function createReserved(
  s: Stage2,
  vmid: Vmid,
  ipaBits: number,
  donated: readonly FrameRange[],
  protection: VmProtection,
  creator: Vmid,
  who: SpaceCreator,
): Result<CreatedAddressSpace, ErrnoError> {
  const existing = s.spaces.get(vmid);
  const adoptable =
    existing !== undefined && existing.creator === creator && existing.ipaBits >= ipaBits && existing.protection === protection && spaceInUse(s, existing) === undefined;
  const need = rootTableCount(ipaBits) + who.starterPoolPages;
  const failed =
    (adoptable ? undefined : checkVmid(s, vmid)) ??
    ipaBitsFailure(ipaBits) ??
    (donated.length === 0 ? undefined : errnoError('EINVAL', 'donation_not_expected', "the RM's spaces take their pages from HYP's reservation, not donations")) ??
    (adoptable || s.hypReservation.size >= need
      ? undefined
      : errnoError('ENOMEM', 'hyp_reservation_empty', `a ${ipaBits}-bit space needs ${need} reserved page(s), HYP's reservation has ${s.hypReservation.size}`));
  if (failed !== undefined) return err(failed);
  if (adoptable) return ok({ rootTables: existing.rootFrames.length, poolPages: existing.pool.size, adopted: true });
  const frames = s.hypReservation.remove(need);
  const roots = frames.slice(0, rootTableCount(ipaBits));
  const space = new AddressSpace(vmid, 'GUEST', ipaBits, roots, s.memory, protection, creator);
  space.pool.add(frames.slice(roots.length));
  s.spaces.set(vmid, space);
  return ok({ rootTables: roots.length, poolPages: space.pool.size, adopted: false });
}

function existingSpace(s: Stage2, vmid: Vmid): AddressSpace | ErrnoError {
  const space = s.spaces.get(vmid);
  return space ?? errnoError('EINVAL', 'no_such_vm', `no address space with vmid ${vmid}`);
}

/** Host donates `ranges` into `vmid`'s table-page pool (host_donate_hyp + memcache top-up). */
export function topUpTablePool(s: Stage2, vmid: Vmid, ranges: readonly FrameRange[]): Result<{ poolPages: number }, ErrnoError> {
  const space = existingSpace(s, vmid);
  if (!(space instanceof AddressSpace)) return err(space);
  const failed = (ranges.length > 0 ? undefined : errnoError('EINVAL', 'no_ranges', 'no frame ranges to donate')) ?? donationFailure(s, ranges);
  if (failed !== undefined) return err(failed);
  const p = plan(merge(donationSteps(s, ranges), { finally: [() => space.pool.add(framesOf(ranges))] }));
  if (!p.ok) return p;
  commit(s, p.value);
  return ok({ poolPages: space.pool.size });
}

/** Unused pool pages of `vmid` (at most `maxPages`) go back to the host (hyp_donate_host). */
export function drainTablePool(s: Stage2, vmid: Vmid, maxPages: number): Result<{ returnedPages: number; poolPages: number }, ErrnoError> {
  const space = existingSpace(s, vmid);
  if (!(space instanceof AddressSpace)) return err(space);
  if (space.kind === 'HOST') return err(errnoError('EPERM', 'host_pool_reserved', "the host stage-2 pool is HYP's boot reservation"));
  if (!Number.isInteger(maxPages) || maxPages < 0) return err(errnoError('EINVAL', 'max_pages_invalid', `max_pages ${maxPages}`));
  const frames = space.pool.remove(maxPages);
  giveBack(s, frames);
  return ok({ returnedPages: frames.length, poolPages: space.pool.size });
}

/**
 * Tears down an empty address space, by its creator only (HOST when not given): its table pages,
 * roots and pool go back to where they came from, the host or HYP's reservation.
 */
export function destroyAddressSpace(s: Stage2, vmid: Vmid, caller: Vmid = VMID_HOST): Result<{ returnedPages: number }, ErrnoError> {
  const space = existingSpace(s, vmid);
  if (!(space instanceof AddressSpace)) return err(space);
  if (space.kind === 'HOST') return err(errnoError('EPERM', 'host_space_permanent', 'the host address space cannot be destroyed'));
  if (space.creator !== caller) return err(errnoError('EPERM', 'not_creator', `vmid ${vmid}'s space was created by ${vmidName(space.creator)}, not ${vmidName(caller)}`));
  const busy = spaceInUse(s, space);
  if (busy !== undefined) return err(busy);
  const frames = [...space.rootFrames, ...space.table.tables().map((t) => t.frame), ...space.pool.remove(space.pool.size)];
  s.spaces.delete(vmid);
  giveBack(s, frames);
  space.table.discard();
  return ok({ returnedPages: frames.length });
}

/** Frames no table or pool uses any more, each back to its origin: HYP's reservation or the host. */
function giveBack(s: Stage2, frames: readonly Pfn[]): void {
  const reserved: Pfn[] = [];
  const host: Pfn[] = [];
  for (const f of frames) (inReservation(s.hypReservationRange, f) ? reserved : host).push(f);
  s.hypReservation.add(reserved);
  // An RM-created space's pages all come from the reservation: no host donation to plan then.
  if (host.length > 0) returnToHost(s, host);
}

/**
 * hyp_donate_host of HYP pages that no table or pool uses any more; cannot fail. One donation per
 * run of consecutive frames (a pool top-up comes back as one run), so the cost is the runs, not the
 * pages: each frame's change is the same whichever run it is in.
 */
function returnToHost(s: Stage2, frames: readonly Pfn[]): void {
  const p = plan(merge(runsOf(frames).map((r) => hypDonateHostSteps(s, r.base, r.count))));
  if (!p.ok) throw new Error('host table changes never need more than the boot reservation');
  commit(s, p.value);
}
