/**
 * Grants: the enforcement half of a Gunyah memory parcel or an FF-A memory handle (DESIGN.md §2,
 * stage2-models.md §C3–C4). An owner grants ranges of its own address space to an ACL of
 * {vmid, R/W/X}; each borrower maps the grant at IPAs it chooses with rights within its entry.
 *
 *   type    owner on create                borrower on map              on destroy (reclaim)
 *   SHARE   OWNED → SHARED_OWNED           NOPAGE → SHARED_BORROWED     owner → OWNED
 *   LEND    OWNED → LENT (no access)       NOPAGE → SHARED_BORROWED     owner → OWNED, same mapping
 *   DONATE  OWNED → LENT (no access)       NOPAGE → OWNED, ownership    refused once mapped: the grant
 *                                          moves, the grant is gone     no longer exists (§C4 RETRIEVE)
 *
 * Rules: a grant covers only granules its owner holds exclusively (OWNED), so a granule is in at most
 * one grant; the owner may append ranges until the first borrower maps it (appendGrant); destroy is refused while any borrower maps the grant (Hafnium's RECLAIM DENIED); a
 * borrower maps a grant at most once. Every call checks all ranges before changing anything.
 *
 * Memory type (gunyah-rm.md §3.2): a create may say which kind of memory the ranges must be, NORMAL
 * (RAM) or DEVICE (MMIO); a range of the other kind is refused (EINVAL grant_memory_type), as the
 * RM's extent of the wrong kind is. Left out, any kind is accepted (the FF-A and pKVM callers).
 * Create and append return the grant's physical runs (PA frames in grant order, merged where
 * physically contiguous), so the RM knows its parcel's regions and HLOS's IPA = PA placement.
 */

import type { AddressSpace } from '../address-space.js';
import { withMeta } from '../memory/granule.js';
import { gfnRangeValid, spaceStateIs } from '../pkvm/checks.js';
import { errnoError, type ErrnoError } from '../pkvm/errno.js';
import { commit, plan, type PlanSteps, type TableStep } from '../plan.js';
import { err, ok, type Result } from '../result.js';
import { descOutputFrame, lentDesc, unlentDesc } from '../s2tt/descriptor.js';
import type { LeafRewrite } from '../s2tt/translation-table.js';
import { grantGeneration, type Stage2 } from '../stage2.js';
import { PERM_RWX, permsString, permsWithin, vmidName, type FrameRange, type Perms, type Vmid } from '../types.js';
import { mapTo, unmap, withState, type ViewState } from '../views.js';

export type GrantType = 'SHARE' | 'LEND' | 'DONATE';
export const GRANT_TYPES: readonly GrantType[] = ['SHARE', 'LEND', 'DONATE'];

/** Live grants at once (Hafnium's MAX_MEM_SHARES plays this role); beyond it, -ENOMEM. */
export const GRANTS_MAX = 1 << 20;
/** Ranges per grant (FF-A constituents); RM parcels stay far below it (gunyah-rm.md §3.1). */
export const GRANT_RANGES_MAX = 1 << 17;
/** ACL entries per grant. */
export const GRANT_ACL_MAX = 64;

export interface AclEntry {
  readonly vmid: Vmid;
  readonly perms: Perms;
}

/** A run of the grant: owner IPA frames [gfn, gfn+count) backed by PA frames [pfn, pfn+count). */
export interface Constituent {
  readonly gfn: number;
  readonly pfn: number;
  readonly count: number;
}

/** Where one borrower maps the grant: borrower IPA runs paired with PA runs, in grant order. */
export interface Borrowing {
  readonly perms: Perms;
  readonly placements: readonly Constituent[];
}

export interface Grant {
  readonly id: number;
  readonly type: GrantType;
  readonly owner: Vmid;
  /** The kind of memory every range must be, when the creator said (appends are checked too). */
  readonly memoryType: GrantMemoryType | undefined;
  readonly acl: readonly AclEntry[];
  readonly constituents: readonly Constituent[];
  readonly frames: number;
  readonly borrowers: Map<Vmid, Borrowing>;
}

/** The memory a grant's ranges must be (gunyah-rm.md §3.2 mem_type: NORMAL = RAM, IO = DEVICE/MMIO). */
export type GrantMemoryType = 'NORMAL' | 'DEVICE';
export const GRANT_MEMORY_TYPES: readonly GrantMemoryType[] = ['NORMAL', 'DEVICE'];

export interface CreateGrantArgs {
  readonly owner: Vmid;
  readonly type: GrantType;
  /** When given, every frame must be of this kind (EINVAL grant_memory_type); undefined: any. */
  readonly memoryType?: GrantMemoryType;
  /** Ranges of the owner's IPA space (frames); for the host, IPA = PA. */
  readonly ranges: readonly FrameRange<number>[];
  readonly acl: readonly AclEntry[];
}

/** ENOENT no_such_grant; an id of another boot generation says so (fencing, issue 9 §4). */
function noGrant(s: Stage2, id: number): ErrnoError {
  const mine = s.config.bootGeneration ?? 0;
  const its = grantGeneration(id);
  if (Number.isSafeInteger(id) && its !== mine) return errnoError('ENOENT', 'no_such_grant', `no live grant ${id}: it is of boot generation ${its}, this core booted as generation ${mine}`);
  return errnoError('ENOENT', 'no_such_grant', `no live grant ${id}`);
}

/*
 * The checks below return the first failure directly, in the order the old check lists had: a
 * call's checks are a `??` chain (each runs only if every earlier one passed), so no call builds
 * a list of closures it mostly never reaches.
 */

/** The ranges, in order: non-empty, at most GRANT_RANGES_MAX, each inside the IPA space, no overlaps. */
function rangesFailure(space: AddressSpace, ranges: readonly FrameRange<number>[], what: string): ErrnoError | undefined {
  if (ranges.length === 0) return errnoError('EINVAL', 'ranges_empty', `no ${what} ranges`);
  if (ranges.length > GRANT_RANGES_MAX) return errnoError('E2BIG', 'ranges_too_many', `${ranges.length} ranges, at most ${GRANT_RANGES_MAX}`);
  for (const r of ranges) {
    const bad = gfnRangeValid(space, r.base, r.count)();
    if (bad !== undefined) return bad;
  }
  if (ranges.length === 1) return undefined;
  const sorted = [...ranges].sort((a, b) => a.base - b.base);
  return sorted.some((r, i) => i > 0 && sorted[i - 1]!.base + sorted[i - 1]!.count > r.base) ? errnoError('EINVAL', 'ranges_overlap', `${what} ranges overlap`) : undefined;
}

function aclFailure(s: Stage2, owner: Vmid, type: GrantType, acl: readonly AclEntry[]): ErrnoError | undefined {
  if (acl.length === 0) return errnoError('EINVAL', 'acl_empty', 'the ACL names no borrower');
  if (acl.length > GRANT_ACL_MAX) return errnoError('E2BIG', 'acl_too_long', `${acl.length} ACL entries, at most ${GRANT_ACL_MAX}`);
  for (const e of acl) if (!s.spaces.has(e.vmid)) return errnoError('EINVAL', 'acl_vmid_unknown', `ACL names vmid ${e.vmid}, which has no address space`);
  for (const e of acl)
    if (!(Number.isInteger(e.perms) && e.perms !== 0 && permsWithin(e.perms, PERM_RWX)))
      return errnoError('EINVAL', 'acl_rights_invalid', `rights ${e.perms} for vmid ${e.vmid} are not a non-empty subset of RWX`);
  if (acl.length > 1 && new Set(acl.map((e) => e.vmid)).size !== acl.length) return errnoError('EINVAL', 'acl_duplicate', 'a vmid appears twice in the ACL');
  for (const e of acl) if (e.vmid === owner) return errnoError('EINVAL', 'acl_names_owner', 'the owner cannot borrow its own grant');
  return type !== 'DONATE' || acl.length === 1 ? undefined : errnoError('EINVAL', 'donate_not_single', 'a DONATE grant names exactly one borrower');
}

/** Every range of `space` is in page state `state`, else -EPERM naming `rule` (spaceStateIs, range by range). */
function statesFailure(space: AddressSpace, ranges: readonly FrameRange<number>[], rule: string, state: ViewState): ErrnoError | undefined {
  for (const r of ranges) {
    const bad = spaceStateIs(space, r.base, r.count, rule, state)();
    if (bad !== undefined) return bad;
  }
  return undefined;
}

/** The owner's ranges as PA runs, merging IPA runs whose frames are contiguous. */
function constituentsOf(space: AddressSpace, ranges: readonly FrameRange<number>[]): Constituent[] {
  // Built here and extended in place (a page-mapped range is one leaf run per page): readonly once returned.
  const out: { gfn: number; pfn: number; count: number }[] = [];
  for (const r of ranges) {
    space.table.leafRuns(r.base, r.count, (v) => {
      const pfn = descOutputFrame(v.desc);
      const last = out[out.length - 1];
      if (last !== undefined && last.gfn + last.count === v.start && last.pfn + last.count === pfn) last.count += v.frames;
      else out.push({ gfn: v.start, pfn, count: v.frames });
    });
  }
  return out;
}

/** A grant's PA runs in grant order, merging neighbours that are physically contiguous. */
export function physicalRuns(constituents: readonly Constituent[]): FrameRange<number>[] {
  const out: { base: number; count: number }[] = [];
  for (const c of constituents) {
    const last = out[out.length - 1];
    if (last !== undefined && last.base + last.count === c.pfn) last.count += c.count;
    else out.push({ base: c.pfn, count: c.count });
  }
  return out as FrameRange<number>[];
}

/** The constituents' memory must be of `type` (RAM for NORMAL, MMIO for DEVICE), first and last frame of each run. */
function memoryTypeFailure(s: Stage2, owner: AddressSpace, ranges: readonly FrameRange<number>[], type: GrantMemoryType | undefined): ErrnoError | undefined {
  if (type === undefined) return undefined;
  const want = type === 'DEVICE' ? 'MMIO' : 'RAM';
  const wrong = constituentsOf(owner, ranges).find((c) => s.memory.regionOf(c.pfn)?.kind !== want || s.memory.regionOf(c.pfn + c.count - 1)?.kind !== want);
  return wrong === undefined ? undefined : errnoError('EINVAL', 'grant_memory_type', `PA frames 0x${wrong.pfn.toString(16)}+${wrong.count} are not ${want} (a ${type} grant)`);
}

export interface CreatedGrant {
  readonly grantId: number;
  /** The grant's PA runs (physicalRuns). */
  readonly physRuns: readonly FrameRange<number>[];
}

/** Creates a grant of `ranges` of the owner's memory; returns its id and physical runs. */
export function createGrant(s: Stage2, a: CreateGrantArgs): Result<CreatedGrant, ErrnoError> {
  const owner = s.spaces.get(a.owner);
  if (owner === undefined) return err(errnoError('EINVAL', 'no_such_vm', `no address space with vmid ${a.owner}`));
  const failed =
    (GRANT_TYPES.includes(a.type) ? undefined : errnoError('EINVAL', 'grant_type_invalid', `grant type ${String(a.type)}`)) ??
    aclFailure(s, a.owner, a.type, a.acl) ??
    rangesFailure(owner, a.ranges, 'owner') ??
    statesFailure(owner, a.ranges, 'owner_not_exclusive', 'OWNED') ??
    (a.memoryType === undefined || GRANT_MEMORY_TYPES.includes(a.memoryType) ? undefined : errnoError('EINVAL', 'grant_memory_type', `memory type ${String(a.memoryType)}`)) ??
    memoryTypeFailure(s, owner, a.ranges, a.memoryType) ??
    (s.grants.size < GRANTS_MAX ? undefined : errnoError('ENOMEM', 'grants_exhausted', `${GRANTS_MAX} grants are live`));
  if (failed !== undefined) return err(failed);

  const constituents = constituentsOf(owner, a.ranges);
  const id = s.nextGrantId;
  const grant: Grant = {
    id,
    type: a.type,
    owner: a.owner,
    memoryType: a.memoryType,
    acl: a.acl.map((e) => ({ ...e })),
    constituents,
    frames: constituents.reduce((n, c) => n + c.count, 0),
    borrowers: new Map(),
  };
  return planAndCommit(s, {
    tables: a.ranges.map((r) => ({ space: owner, base: r.base, count: r.count, rewrite: ownerRewrite(a.type) })),
    grantMarks: constituents.map((c) => ({ base: c.pfn, count: c.count, grant: id })),
    finally: [
      () => {
        s.grants.set(id, grant);
        s.nextGrantId++;
      },
    ],
  }, { grantId: id, physRuns: physicalRuns(constituents) });
}

/**
 * Adds ranges to a grant nobody maps yet (Gunyah MEM_APPEND, gunyah-rm.md §3.3; FF-A FRAG_TX):
 * the new ranges go through the same checks and owner-side change as at creation, all or nothing.
 */
export function appendGrant(
  s: Stage2,
  grantId: number,
  caller: Vmid,
  ranges: readonly FrameRange<number>[],
): Result<{ frames: number; physRuns: readonly FrameRange<number>[] }, ErrnoError> {
  const grant = s.grants.get(grantId);
  if (grant === undefined) return err(noGrant(s, grantId));
  const owner = s.spaces.get(grant.owner)!;
  const total = grant.constituents.length + ranges.length;
  const failed =
    (caller === grant.owner ? undefined : errnoError('EPERM', 'not_owner', `${vmidName(caller)} does not own grant ${grantId}`)) ??
    (grant.borrowers.size === 0 ? undefined : errnoError('EBUSY', 'grant_mapped', `grant ${grantId} is already mapped`)) ??
    rangesFailure(owner, ranges, 'owner') ??
    (total <= GRANT_RANGES_MAX ? undefined : errnoError('E2BIG', 'ranges_too_many', `${total} ranges, at most ${GRANT_RANGES_MAX}`)) ??
    statesFailure(owner, ranges, 'owner_not_exclusive', 'OWNED') ??
    memoryTypeFailure(s, owner, ranges, grant.memoryType);
  if (failed !== undefined) return err(failed);
  const added = constituentsOf(owner, ranges);
  const frames = grant.frames + added.reduce((n, c) => n + c.count, 0);
  return planAndCommit(
    s,
    {
      tables: ranges.map((r) => ({ space: owner, base: r.base, count: r.count, rewrite: ownerRewrite(grant.type) })),
      grantMarks: added.map((c) => ({ base: c.pfn, count: c.count, grant: grant.id })),
      finally: [() => s.grants.set(grant.id, { ...grant, constituents: [...grant.constituents, ...added], frames })],
    },
    { frames, physRuns: physicalRuns([...grant.constituents, ...added]) },
  );
}

// What creating (or appending to) a grant does to the owner's own mapping, and what destroying it
// undoes: built once, not per call.
const TO_SHARED_OWNED = withState('SHARED_OWNED');
const TO_OWNED = withState('OWNED');
const toLent: LeafRewrite = (d) => lentDesc(d);
const toUnlent: LeafRewrite = (d, _start, level) => unlentDesc(d, level);
const ownerRewrite = (type: GrantType): LeafRewrite => (type === 'SHARE' ? TO_SHARED_OWNED : toLent);

/** Pairs borrower IPA ranges with the grant's PA runs, in order. */
function placementsOf(grant: Grant, ranges: readonly FrameRange<number>[]): Constituent[] {
  const out: Constituent[] = [];
  let ci = 0;
  let cOff = 0;
  for (const r of ranges) {
    let rOff = 0;
    while (rOff < r.count) {
      const c = grant.constituents[ci]!;
      const n = Math.min(r.count - rOff, c.count - cOff);
      out.push({ gfn: r.base + rOff, pfn: c.pfn + cOff, count: n });
      rOff += n;
      cOff += n;
      if (cOff === c.count) {
        ci++;
        cOff = 0;
      }
    }
  }
  return out;
}

export interface MapGrantArgs {
  readonly grantId: number;
  readonly borrower: Vmid;
  readonly perms: Perms;
  /** Borrower IPA ranges (frames) whose total equals the grant's size, filled in grant order. */
  readonly ranges: readonly FrameRange<number>[];
}

/** A borrower maps the grant (FFA_MEM_RETRIEVE_REQ / Gunyah MEM_ACCEPT's stage-2 effect). */
export function mapGrant(s: Stage2, a: MapGrantArgs): Result<void, ErrnoError> {
  const grant = s.grants.get(a.grantId);
  if (grant === undefined) return err(noGrant(s, a.grantId));
  const entry = grant.acl.find((e) => e.vmid === a.borrower);
  const borrower = s.spaces.get(a.borrower);
  const total = (): number => a.ranges.reduce((n, r) => n + r.count, 0);
  const failed =
    (entry !== undefined && borrower !== undefined ? undefined : errnoError('EPERM', 'not_in_acl', `${vmidName(a.borrower)} is not in grant ${grant.id}'s ACL`)) ??
    (Number.isInteger(a.perms) && a.perms !== 0 && permsWithin(a.perms, PERM_RWX)
      ? undefined
      : errnoError('EINVAL', 'rights_invalid', `rights ${a.perms} are not a non-empty subset of RWX`)) ??
    (permsWithin(a.perms, entry!.perms)
      ? undefined
      : errnoError('EPERM', 'rights_exceed_acl', `${permsString(a.perms)} exceeds the ACL entry's ${permsString(entry!.perms)}`)) ??
    (grant.borrowers.has(a.borrower) ? errnoError('EEXIST', 'already_mapped', `${vmidName(a.borrower)} already maps grant ${grant.id}`) : undefined) ??
    rangesFailure(borrower!, a.ranges, 'borrower') ??
    (total() === grant.frames ? undefined : errnoError('EINVAL', 'size_mismatch', `ranges cover ${total()} frames, the grant ${grant.frames}`)) ??
    // The host is identity-mapped: it can only borrow at IPA = PA.
    (borrower!.kind !== 'HOST' || placementsOf(grant, a.ranges).every((p) => p.gfn === p.pfn)
      ? undefined
      : errnoError('EINVAL', 'host_not_identity', 'the host maps borrowed memory at IPA = PA only')) ??
    statesFailure(borrower!, a.ranges, 'borrower_ipa_in_use', 'NOPAGE');
  if (failed !== undefined) return err(failed);

  const placements = placementsOf(grant, a.ranges);
  const donate = grant.type === 'DONATE';
  const borrowerSteps: TableStep[] = placements.map((p) => ({
    space: borrower!,
    base: p.gfn,
    count: p.count,
    rewrite: mapTo(p.gfn, p.pfn, {
      perms: a.perms,
      state: donate ? 'OWNED' : 'SHARED_BORROWED',
      device: s.memory.regionOf(p.pfn)?.kind === 'MMIO',
    }),
  }));
  if (!donate) {
    return planAndCommit(s, { tables: borrowerSteps, finally: [() => grant.borrowers.set(a.borrower, { perms: a.perms, placements })] }, undefined);
  }
  // DONATE: ownership moves to the borrower and the grant is gone (Hafnium frees the share state
  // on the retrieve of a donation, §C4): nothing can reclaim it after this.
  const owner = s.spaces.get(grant.owner)!;
  return planAndCommit(
    s,
    {
      tables: [...borrowerSteps, ...grant.constituents.map((c) => ({ space: owner, base: c.gfn, count: c.count, rewrite: unmap }))],
      meta: grant.constituents.map((c) => ({ base: c.pfn, count: c.count, update: (m) => withMeta(m, { owner: a.borrower }) })),
      grantMarks: grant.constituents.map((c) => ({ base: c.pfn, count: c.count, grant: 0 })),
      finally: [() => s.grants.delete(grant.id)],
    },
    undefined,
  );
}

/** A borrower unmaps the grant (FFA_MEM_RELINQUISH / Gunyah MEM_RELEASE's stage-2 effect). */
export function unmapGrant(s: Stage2, grantId: number, borrower: Vmid): Result<void, ErrnoError> {
  const grant = s.grants.get(grantId);
  if (grant === undefined) return err(noGrant(s, grantId));
  const b = grant.borrowers.get(borrower);
  if (b === undefined) return err(errnoError('ENOENT', 'not_mapped', `${vmidName(borrower)} does not map grant ${grantId}`));
  const space = s.spaces.get(borrower)!;
  return planAndCommit(
    s,
    {
      tables: b.placements.map((p) => ({ space, base: p.gfn, count: p.count, rewrite: unmap })),
      finally: [() => grant.borrowers.delete(borrower)],
    },
    undefined,
  );
}

/** The owner takes the grant back (FFA_MEM_RECLAIM / Gunyah MEM_RECLAIM's stage-2 effect). */
export function destroyGrant(s: Stage2, grantId: number, caller: Vmid): Result<void, ErrnoError> {
  const grant = s.grants.get(grantId);
  if (grant === undefined) return err(noGrant(s, grantId));
  if (caller !== grant.owner) return err(errnoError('EPERM', 'not_owner', `${vmidName(caller)} does not own grant ${grantId}`));
  if (grant.borrowers.size > 0)
    return err(
      errnoError('EBUSY', 'grant_mapped', `grant ${grantId} is still mapped by ${[...grant.borrowers.keys()].map(vmidName).join(', ')}`),
    );
  const owner = s.spaces.get(grant.owner)!;
  const restore = grant.type === 'SHARE' ? TO_OWNED : toUnlent;
  return planAndCommit(
    s,
    {
      tables: grant.constituents.map((c) => ({ space: owner, base: c.gfn, count: c.count, rewrite: restore })),
      grantMarks: grant.constituents.map((c) => ({ base: c.pfn, count: c.count, grant: 0 })),
      finally: [() => s.grants.delete(grant.id)],
    },
    undefined,
  );
}

function planAndCommit<T>(s: Stage2, steps: PlanSteps, value: T): Result<T, ErrnoError> {
  const p = plan(steps);
  if (!p.ok) return p;
  commit(s, p.value);
  return ok(value);
}
