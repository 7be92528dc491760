/**
 * Address-space life cycle, as pKVM's __pkvm_init_vm / __pkvm_teardown_vm and the memcache top-ups
 * of seed 003: every page of a VM's stage-2 (its root tables and the pool its other table pages
 * come from) is a host page donated to HYP, and goes back to the host when the pool is drained or
 * the space is destroyed.
 *
 *   createAddressSpace   host donates the root tables (and optionally pool pages); the space is empty
 *   topUpTablePool       host donates pages into the pool (host_donate_hyp)
 *   drainTablePool       unused pool pages go back (hyp_donate_host)
 *   destroyAddressSpace  only once nothing is mapped or lent in it and no grant names it; every
 *                        page of its tables and pool goes back to the host
 */

import { AddressSpace, type VmProtection } from './address-space.js';
import { errnoError, type ErrnoError } from './pkvm/errno.js';
import { firstFailure, type Check } from './pkvm/checks.js';
import { hostDonateHypChecks, hostDonateHypSteps, hypDonateHostSteps } from './pkvm/transitions.js';
import { commit, plan, type PlanSteps } from './plan.js';
import { err, ok, type Result } from './result.js';
import { isValidIpaBits, rootTableCount } from './s2tt/geometry.js';
import type { Stage2 } from './stage2.js';
import { VMID_HOST, VMID_HYP, VMID_MAX, type FrameRange, type Pfn, type Vmid } from './types.js';

/** Validates a list of host frame ranges to donate: each as host_donate_hyp, and no overlaps. */
function donationChecks(s: Stage2, ranges: readonly FrameRange[]): Check[] {
  const sorted = [...ranges].sort((a, b) => a.base - b.base);
  const overlap: Check = () =>
    sorted.some((r, i) => i > 0 && sorted[i - 1]!.base + sorted[i - 1]!.count > r.base)
      ? errnoError('EINVAL', 'ranges_overlap', 'donated frame ranges overlap')
      : undefined;
  return [overlap, ...ranges.flatMap((r) => hostDonateHypChecks(s, r.base, r.count))];
}

const donationSteps = (s: Stage2, ranges: readonly FrameRange[]): PlanSteps[] => ranges.map((r) => hostDonateHypSteps(s, r.base, r.count));

const merge = (steps: readonly PlanSteps[], extra: PlanSteps = {}): PlanSteps => ({
  tables: [...steps.flatMap((p) => p.tables ?? []), ...(extra.tables ?? [])],
  meta: [...steps.flatMap((p) => p.meta ?? []), ...(extra.meta ?? [])],
  finally: [...steps.flatMap((p) => p.finally ?? []), ...(extra.finally ?? [])],
});

const framesOf = (ranges: readonly FrameRange[]): Pfn[] =>
  ranges.flatMap((r) => Array.from({ length: r.count }, (_, i) => (r.base + i) as Pfn));

export const totalFrames = (ranges: readonly FrameRange[]): number => ranges.reduce((n, r) => n + r.count, 0);

function checkVmid(s: Stage2, vmid: number): ErrnoError | undefined {
  if (!Number.isInteger(vmid) || vmid < 0 || vmid > VMID_MAX) return errnoError('EINVAL', 'vmid_invalid', `vmid ${vmid} is not a 16-bit VM id`);
  if (vmid === VMID_HYP || vmid === VMID_HOST) return errnoError('EINVAL', 'vmid_reserved', `vmid ${vmid} is HYP's or the host's`);
  if (s.spaces.has(vmid as Vmid)) return errnoError('EEXIST', 'vmid_in_use', `vmid ${vmid} already has an address space`);
  return undefined;
}

export interface CreatedAddressSpace {
  readonly rootTables: number;
  readonly poolPages: number;
}

/**
 * Creates an empty stage-2 for `vmid` with an IPA width of `ipaBits`. The first frames of
 * `donated` (in order) become the root tables; the rest seed the table-page pool. `protection` is
 * the VM's pKVM kind (address-space.ts VmProtection; ANY when not given).
 */
export function createAddressSpace(
  s: Stage2,
  vmid: Vmid,
  ipaBits: number,
  donated: readonly FrameRange[],
  protection: VmProtection = 'ANY',
): Result<CreatedAddressSpace, ErrnoError> {
  const failed = firstFailure([
    () => checkVmid(s, vmid),
    () => (isValidIpaBits(ipaBits) ? undefined : errnoError('EINVAL', 'ipa_bits_invalid', `IPA width ${ipaBits} outside 32..48`)),
    ...donationChecks(s, donated),
    () => {
      const roots = rootTableCount(ipaBits);
      return totalFrames(donated) >= roots
        ? undefined
        : errnoError('ENOMEM', 'root_tables_missing', `a ${ipaBits}-bit IPA space needs ${roots} root table page(s), ${totalFrames(donated)} donated`);
    },
  ]);
  if (failed !== undefined) return err(failed);
  const frames = framesOf(donated);
  const roots = frames.slice(0, rootTableCount(ipaBits));
  const p = plan(
    merge(donationSteps(s, donated), {
      finally: [
        () => {
          const space = new AddressSpace(vmid, 'GUEST', ipaBits, roots, s.memory, protection);
          space.pool.add(frames.slice(roots.length));
          s.spaces.set(vmid, space);
        },
      ],
    }),
  );
  if (!p.ok) return p;
  commit(s, p.value);
  return ok({ rootTables: roots.length, poolPages: frames.length - roots.length });
}

function existingSpace(s: Stage2, vmid: Vmid): AddressSpace | ErrnoError {
  const space = s.spaces.get(vmid);
  return space ?? errnoError('EINVAL', 'no_such_vm', `no address space with vmid ${vmid}`);
}

/** Host donates `ranges` into `vmid`'s table-page pool (host_donate_hyp + memcache top-up). */
export function topUpTablePool(s: Stage2, vmid: Vmid, ranges: readonly FrameRange[]): Result<{ poolPages: number }, ErrnoError> {
  const space = existingSpace(s, vmid);
  if (!(space instanceof AddressSpace)) return err(space);
  const failed = firstFailure([
    () => (ranges.length > 0 ? undefined : errnoError('EINVAL', 'no_ranges', 'no frame ranges to donate')),
    ...donationChecks(s, ranges),
  ]);
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
  returnToHost(s, frames);
  return ok({ returnedPages: frames.length, poolPages: space.pool.size });
}

/** Tears down an empty address space: its table pages, roots and pool go back to the host. */
export function destroyAddressSpace(s: Stage2, vmid: Vmid): Result<{ returnedPages: number }, ErrnoError> {
  const space = existingSpace(s, vmid);
  if (!(space instanceof AddressSpace)) return err(space);
  if (space.kind === 'HOST') return err(errnoError('EPERM', 'host_space_permanent', 'the host address space cannot be destroyed'));
  // Skips invalid entries and empty tables: the cost is the tables the space holds, not its IPA size.
  const mapped = space.table.firstMapped();
  if (mapped !== undefined)
    return err(errnoError('EBUSY', 'space_has_mappings', `vmid ${vmid} still maps or lends IPA 0x${(mapped * 4096).toString(16)}: reclaim it first`));
  for (const g of s.grants.values()) {
    // An ACL naming the vmid counts too: a later VM reusing the id must not inherit the right to map.
    if (g.owner === vmid || g.acl.some((e) => e.vmid === vmid))
      return err(errnoError('EBUSY', 'space_in_grant', `vmid ${vmid} owns grant ${g.id} or is in its ACL`));
  }
  const frames = [...space.rootFrames, ...space.table.tables().map((t) => t.frame), ...space.pool.remove(space.pool.size)];
  s.spaces.delete(vmid);
  returnToHost(s, frames);
  return ok({ returnedPages: frames.length });
}

/** hyp_donate_host of HYP pages that no table or pool uses any more; cannot fail. */
function returnToHost(s: Stage2, frames: readonly Pfn[]): void {
  const p = plan(merge(frames.map((f) => hypDonateHostSteps(s, f, 1))));
  if (!p.ok) throw new Error('host table changes never need more than the boot reservation');
  commit(s, p.value);
}
