/**
 * Memory parcels (gunyah-rm.md §3): MEM_SHARE/LEND/DONATE, APPEND, ACCEPT, RELEASE, RECLAIM, NOTIFY
 * and QCOM_LOOKUP_SGL, with the RM's checks in its order and its error codes.
 *
 * States (§3.9): INIT (being appended) → SHARING (finalised, nobody maps it) ⇄ SHARED (≥ 1 borrower
 * accepted). RECLAIM only in INIT and SHARING; a DONATE parcel is deleted on accept.
 *
 * Every stage-2 effect is one core grant call (core-port.ts): create (and each append) changes the
 * owner's mapping at once as the RM's extent donation does; accept maps, release unmaps, reclaim
 * destroys. RM state changes only after the core call succeeded, so a refusal leaves nothing behind
 * in the RM. A refusal whose core outcome is unknown (core_outcome_unknown, BUSY: the core may have
 * applied it) leaves the parcel as it was too; the same request again carries the same request id
 * to the core (services/rm core-client), which answers what it did, so the parcel ends gone or
 * whole, never a parcel without its grant (issue 9 item 2).
 * The core names the memory type (NORMAL = RAM, IO = device memory) and refuses the wrong kind
 * (MEM_INVALID, §3.2); it returns the parcel's physical runs, which are its regions (§3.2: an SGL
 * entry may split into several physically contiguous regions; neighbours that are contiguous merge):
 * MEM_SHARED lists their sizes (§3.7), an accept places one IPA range per region (§3.4).
 *
 * Borrower IPAs come from the borrower's IPA allocator (ipa-allocator.ts, open RM `vm_ipa.c`): RM-
 * chosen ones avoid everything in use, a given one in use is NORESOURCE before any core call. HLOS is
 * identity-mapped and accepts at IPA = PA only (§4.1).
 *
 * Not modelled: SANITIZE zeroes nothing (there is no memory content), only its rules and the
 * `sanitized` flag; the owner's SHARE rights are not reduced to its ACL entry (the core keeps the
 * owner's mapping as it was).
 */
import {
  ACCEPT_FLAGS,
  ACL_RIGHTS,
  APPEND_FLAGS,
  MEM_ATTR,
  MEM_HANDLE_INVALID,
  MEM_SHARED_FLAGS,
  MEM_TYPE,
  NOTIFY_FLAGS,
  RELEASE_FLAGS,
  SHARE_FLAGS,
  TRANS_TYPE,
  type AclEntry,
  type AttrEntry,
  type MemAcceptReply,
  type MemAcceptRequest,
  type MemAppendRequest,
  type MemLookupSglRequest,
  type MemNotifyRequest,
  type MemReleaseRequest,
  type ParcelCreateRequest,
  type SglEntry,
} from '@hypmesh/rm-wire';
import type { FrameRun, GrantKind } from './core-port.js';
import { IpaAllocator, type IpaHolder } from './ipa-allocator.js';
import { rmFail, rmOk, type RmErrorCode, type RmOutcome } from './rm-outcome.js';
import { fromCore } from './core-refusal.js';
import type { CallTable, ResourceManager } from './resource-manager.js';
import { VMID_HLOS, VMID_RM } from './vmid.js';

export type ParcelState = 'INIT' | 'SHARING' | 'SHARED';
export type TransType = keyof typeof TRANS_TYPE;

/** Entries per list per message (§3.1 MAX_LIST_ENTRIES); longer lists fail to decode (NORESOURCE). */
export const MEM_ENTRIES_PER_MSG_MAX = 512;
/** Addresses and sizes must be below 2^44 (§3.1 ADDR_LIMIT = 1 << (32 + PAGE_BITS)). */
export const PARCEL_ADDR_LIMIT = 1n << 44n;
const PAGE = 4096n;

export interface Parcel {
  readonly handle: number;
  readonly owner: number;
  readonly memType: number;
  readonly transType: TransType;
  readonly sanitized: boolean;
  label: number;
  readonly acl: readonly AclEntry[];
  readonly attrs: readonly AttrEntry[];
  /** Owner IPA ranges, in SGL order across the create message and every append (LOOKUP_SGL matches them). */
  regions: SglEntry[];
  /**
   * The parcel's regions as the RM sees them: PA ranges (bytes), one per physically contiguous run,
   * in grant order (the core's physical runs, §3.2). MEM_SHARED sizes and accept placement use them.
   */
  physRegions: SglEntry[];
  state: ParcelState;
  readonly grantId: number;
  /** Recorded by the first SHARED notify (§3.6). */
  memInfoTag: number | undefined;
  /** Borrowers that accepted (mapped) the parcel, with the IPA of each region. */
  readonly accepted: Map<number, readonly SglEntry[]>;
  /**
   * IPAs recorded by accept calls without DONE (multi-step accept, §3.4), per borrower, and how many
   * of the RM-chosen ones earlier replies already reported (≤ 512 per reply, INCOMPLETE until all).
   */
  readonly pending: Map<number, { readonly ipas: readonly SglEntry[]; readonly reported: number }>;
}

const rightsValid = (r: number): boolean => r === ACL_RIGHTS.R || r === (ACL_RIGHTS.R | ACL_RIGHTS.X) || r === (ACL_RIGHTS.R | ACL_RIGHTS.W) || r === 7;
const RIGHTS_FULL_NORMAL = ACL_RIGHTS.R | ACL_RIGHTS.W | ACL_RIGHTS.X;
const RIGHTS_FULL_IO = ACL_RIGHTS.R | ACL_RIGHTS.W;

const framesOf = (e: SglEntry): FrameRun => ({ base: Number(e.base / PAGE), count: Number(e.size / PAGE) });
const bytesOf = (r: FrameRun): SglEntry => ({ base: BigInt(r.base) * PAGE, size: BigInt(r.count) * PAGE });
const sglValid = (e: SglEntry): boolean =>
  e.size > 0n && e.base % PAGE === 0n && e.size % PAGE === 0n && e.base < PARCEL_ADDR_LIMIT && e.base + e.size <= PARCEL_ADDR_LIMIT;
const totalSize = (sgl: readonly SglEntry[]): bigint => sgl.reduce((n, e) => n + e.size, 0n);

// ---- creation ---------------------------------------------------------------------------------

/** What the §3.2 checks read: one object per create call. */
interface CreateCall {
  readonly rm: ResourceManager;
  readonly caller: number;
  readonly trans: TransType;
  readonly req: ParcelCreateRequest;
  readonly io: boolean;
}

const knownVmid = (rm: ResourceManager, vmid: number): boolean =>
  vmid === VMID_HLOS || vmid === VMID_RM || rm.config.platformVmids.includes(vmid) || rm.vmids.isAllocated(vmid);

/**
 * The §3.2 checks, in the RM's order: a condition, then the error. A module-level table (a create
 * call builds no closures); each condition is evaluated only if every earlier one is false (the
 * counts and sets are not free), and a detail is built only for the check that fails.
 */
const CREATE_CHECKS: readonly (readonly [(c: CreateCall) => boolean, RmErrorCode, string, (c: CreateCall) => string])[] = [
  [({ req }) => req.memType !== MEM_TYPE.NORMAL && req.memType !== MEM_TYPE.IO, 'ARGUMENT_INVALID', 'mem_type_invalid', ({ req }) => `mem_type ${req.memType}`],
  [({ req }) => (req.flags & ~(SHARE_FLAGS.SANITIZE | SHARE_FLAGS.APPEND)) !== 0, 'ARGUMENT_INVALID', 'flags_invalid', ({ req }) => `flags 0x${req.flags.toString(16)}`],
  // The per-VM parcel limit comes before the ACL checks (open RM `memparcel.c` order; §3.1).
  [({ rm, caller }) => ownedParcels(rm, caller) >= rm.config.parcelsPerVmMax, 'DENIED', 'parcels_per_vm_max', ({ rm, caller }) => `VM ${caller} already owns ${rm.config.parcelsPerVmMax} parcels`],
  [({ req }) => req.acl.length === 0, 'ARGUMENT_INVALID', 'acl_empty', () => 'the ACL is empty'],
  [({ req }) => req.sgl.length === 0, 'ARGUMENT_INVALID', 'sgl_empty', () => 'the SGL is empty'],
  [({ req, trans }) => trans === 'DONATE' && req.acl.length !== 1, 'ARGUMENT_INVALID', 'donate_acl_not_single', () => 'DONATE needs exactly one ACL entry'],
  [({ req }) => new Set(req.acl.map((e) => e.vmid)).size !== req.acl.length, 'ARGUMENT_INVALID', 'acl_duplicate_vmid', () => 'a VMID appears twice in the ACL'],
  [({ req, rm }) => req.acl.some((e) => !knownVmid(rm, e.vmid)), 'ARGUMENT_INVALID', 'acl_vmid_unknown', () => 'the ACL names a VMID that is not HLOS, RM, a platform VM or an allocated VM'],
  [({ req }) => req.acl.some((e) => !rightsValid(e.rights)), 'ARGUMENT_INVALID', 'acl_rights_invalid', () => 'ACL rights must be R, RX, RW or RWX'],
  [({ req, io }) => io && req.acl.some((e) => (e.rights & ACL_RIGHTS.X) !== 0), 'ARGUMENT_INVALID', 'io_executable', () => 'IO memory cannot be executable'],
  [
    ({ req, trans, io }) => trans === 'DONATE' && req.acl.some((e) => e.rights !== (io ? RIGHTS_FULL_IO : RIGHTS_FULL_NORMAL)),
    'DENIED',
    'donate_rights_not_full',
    () => 'a DONATE recipient gets full rights',
  ],
  [({ req, trans }) => trans === 'DONATE' && req.attrs.some((a) => a.attr !== MEM_ATTR.NORMAL), 'ARGUMENT_INVALID', 'donate_attrs', () => 'DONATE takes default attributes only'],
  [({ req, trans, caller }) => trans === 'SHARE' && !req.acl.some((e) => e.vmid === caller), 'ARGUMENT_INVALID', 'share_owner_not_in_acl', () => 'SHARE: the owner must be in the ACL'],
  [({ req, trans, caller }) => trans !== 'SHARE' && req.acl.some((e) => e.vmid === caller), 'ARGUMENT_INVALID', 'owner_in_acl', () => 'LEND/DONATE: the owner must not be in the ACL'],
  [({ req }) => new Set(req.attrs.map((a) => a.vmid)).size !== req.attrs.length, 'ARGUMENT_INVALID', 'attr_duplicate_vmid', () => 'a VMID appears twice in the attr list'],
  [({ req }) => req.attrs.some((a) => a.attr > MEM_ATTR.CACHED), 'ARGUMENT_INVALID', 'attr_invalid', () => 'unknown attribute value'],
  [({ req, io }) => req.attrs.some((a) => (a.attr === MEM_ATTR.DEVICE) !== io), 'ARGUMENT_INVALID', 'attr_io_device', () => 'IO memory ⇔ DEVICE attribute'],
  [({ req }) => req.attrs.some((a) => !req.acl.some((e) => e.vmid === a.vmid)), 'VMID_INVALID', 'attr_vmid_not_in_acl', () => 'an attr entry names a VMID outside the ACL'],
  [({ req, io }) => io && (req.flags & SHARE_FLAGS.SANITIZE) !== 0, 'ARGUMENT_INVALID', 'sanitize_io', () => 'IO memory cannot be sanitized'],
  [({ req }) => req.sgl.some((e) => !sglValid(e)), 'ARGUMENT_INVALID', 'sgl_entry_invalid', () => 'SGL entries must be 4 KiB aligned, non-empty and below 2^44'],
];

/** The first of CREATE_CHECKS that fails, before any core call. */
function createFailure(rm: ResourceManager, caller: number, trans: TransType, req: ParcelCreateRequest): RmOutcome<never> | undefined {
  const c: CreateCall = { rm, caller, trans, req, io: req.memType === MEM_TYPE.IO };
  for (const [holds, code, rule, detail] of CREATE_CHECKS) if (holds(c)) return rmFail(code, rule, detail(c));
  return undefined;
}

function ownedParcels(rm: ResourceManager, vmid: number): number {
  let n = 0;
  for (const p of rm.parcels.values()) if (p.owner === vmid) n++;
  return n;
}

function allocateHandle(rm: ResourceManager): number {
  while (rm.parcels.has(rm.nextHandle) || rm.nextHandle === MEM_HANDLE_INVALID) rm.nextHandle = (rm.nextHandle + 1) >>> 0;
  const h = rm.nextHandle;
  rm.nextHandle = (rm.nextHandle + 1) >>> 0;
  return h;
}

const GRANT_KIND: Readonly<Record<TransType, GrantKind>> = { SHARE: 'SHARE', LEND: 'LEND', DONATE: 'DONATE' };

async function memCreate(rm: ResourceManager, caller: number, trans: TransType, req: ParcelCreateRequest): Promise<RmOutcome<{ handle: number }>> {
  const failed = createFailure(rm, caller, trans, req);
  if (failed !== undefined) return failed;
  const created = await rm.core.createGrant({
    owner: caller,
    type: GRANT_KIND[trans],
    // The core refuses memory of the other kind (§3.2: NORMAL from RAM, IO from device memory).
    memoryType: req.memType === MEM_TYPE.IO ? 'DEVICE' : 'NORMAL',
    ranges: req.sgl.map(framesOf),
    // The owner of a SHARE stays mapped as it was; the core grant names only the borrowers.
    acl: req.acl.filter((e) => e.vmid !== caller).map((e) => ({ vmid: e.vmid, perms: e.rights })),
  });
  if (!created.ok) return fromCore(created.error, 'MEM_INVALID', `${trans} of ${req.sgl.length} range(s)`);
  const handle = allocateHandle(rm);
  rm.parcels.set(handle, {
    handle,
    owner: caller,
    memType: req.memType,
    transType: trans,
    sanitized: (req.flags & SHARE_FLAGS.SANITIZE) !== 0,
    label: req.label,
    acl: req.acl.map((e) => ({ ...e })),
    attrs: req.attrs.map((a) => ({ ...a })),
    regions: req.sgl.map((e) => ({ ...e })),
    physRegions: created.value.physRuns.map(bytesOf),
    state: (req.flags & SHARE_FLAGS.APPEND) !== 0 ? 'INIT' : 'SHARING',
    grantId: created.value.grantId,
    memInfoTag: undefined,
    accepted: new Map(),
    pending: new Map(),
  });
  return rmOk({ handle });
}

/** MEM_APPEND (§3.3): more SGL entries for a parcel still in INIT; DONE finalises it. */
async function memAppend(rm: ResourceManager, caller: number, req: MemAppendRequest): Promise<RmOutcome<Record<string, never>>> {
  const p = rm.parcels.get(req.handle);
  if (req.sgl.length === 0) return rmFail('ARGUMENT_INVALID', 'sgl_empty', 'the SGL is empty');
  if (p === undefined) return rmFail('HANDLE_INVALID', 'handle_unknown', `no parcel ${req.handle}`);
  if (p.owner !== caller) return rmFail('DENIED', 'not_owner', `VM ${caller} does not own parcel ${req.handle}`);
  if (p.state !== 'INIT') return rmFail('DENIED', 'parcel_finalised', `parcel ${req.handle} is no longer being built`);
  if ((req.flags & ~APPEND_FLAGS.DONE) !== 0) return rmFail('ARGUMENT_INVALID', 'flags_invalid', `flags 0x${req.flags.toString(16)}`);
  if (req.sgl.some((e) => !sglValid(e))) return rmFail('ARGUMENT_INVALID', 'sgl_entry_invalid', 'SGL entries must be 4 KiB aligned, non-empty and below 2^44');
  // A failed append is rolled back by construction: the core extends the grant all or nothing.
  const done = (req.flags & APPEND_FLAGS.DONE) !== 0;
  const appended = await (done ? rm.coreFinalising : rm.core).appendGrant({ grantId: p.grantId, owner: caller, ranges: req.sgl.map(framesOf) });
  if (!appended.ok) return fromCore(appended.error, 'MEM_INVALID', `append of ${req.sgl.length} range(s) to parcel ${p.handle}`);
  p.regions = [...p.regions, ...req.sgl.map((e) => ({ ...e }))];
  p.physRegions = appended.value.physRuns.map(bytesOf);
  if (done) p.state = 'SHARING';
  return rmOk({});
}

// ---- accept -----------------------------------------------------------------------------------

/** Same entries in the same order (ACL, attr and SGL entries are flat records of numbers and bigints). */
const sameList = <T extends object>(a: readonly T[], b: readonly T[]): boolean =>
  a.length === b.length && a.every((x, i) => Object.entries(x).every(([k, v]) => (b[i] as Record<string, unknown>)[k] === v));

const acceptedBy = (p: Parcel): IpaHolder => ({ kind: 'accepted', handle: p.handle });

/** The IPA ranges an accept needs: one per region, or one for the whole parcel when contiguous. */
const sizesFor = (p: Parcel, contiguous: boolean): bigint[] => (contiguous ? [totalSize(p.physRegions)] : p.physRegions.map((r) => r.size));

/**
 * Where `vmid` maps `p` (§3.4, §4.1), checked against its IPA allocator but not yet taken: the
 * given IPAs when free, else RM-chosen ones (first fit). HLOS maps at IPA = PA. `within` is an
 * address-layout reservation the parcel may use (a boot parcel, §4.2).
 */
function placement(rm: ResourceManager, vmid: number, p: Parcel, given: readonly SglEntry[] | undefined, contiguous: boolean, within: IpaHolder | undefined): RmOutcome<SglEntry[]> {
  if (vmid === VMID_HLOS) {
    // HLOS's stage-2 is an identity map: its IPAs are the parcel's PAs (§4.1).
    const atPa = contiguous ? (p.physRegions.length === 1 ? [{ ...p.physRegions[0]! }] : undefined) : p.physRegions.map((r) => ({ ...r }));
    if (atPa === undefined) return rmFail('NORESOURCE', 'hlos_not_contiguous', 'HLOS maps at IPA = PA, and the parcel is not physically contiguous');
    if (given !== undefined && given.some((e, i) => e.base !== atPa[i]!.base))
      return rmFail('ARGUMENT_INVALID', 'hlos_ipa_not_pa', 'HLOS accepts at IPA = PA only');
    return rmOk(atPa);
  }
  // A VM without an allocator yet gets a scratch one: checking must not create state.
  const space = rm.ipas.get(vmid) ?? new IpaAllocator(rm.config.ipaWindow);
  const saved = space.save();
  const out: SglEntry[] = [];
  // Ranges this accept already recorded (multi-step) are being replaced, so they do not count.
  space.free(acceptedBy(p));
  try {
    for (const [i, size] of sizesFor(p, contiguous).entries()) {
      const base = given !== undefined ? given[i]!.base : space.find(size);
      if (base === undefined) return rmFail('NORESOURCE', 'ipa_space_exhausted', `no room for 0x${size.toString(16)} bytes in VM ${vmid}'s IPA space`);
      if (!space.isFree(base, size, within)) return rmFail('NORESOURCE', 'ipa_in_use', `VM ${vmid}'s IPA 0x${base.toString(16)}+0x${size.toString(16)} is in use`);
      space.take(base, size, acceptedBy(p), within);
      out.push({ base, size });
    }
    return rmOk(out);
  } finally {
    space.restore(saved);
  }
}

/** Records `ipas` as `vmid`'s for `p` (replacing what an earlier step recorded); placement proved them free. */
function takeIpas(rm: ResourceManager, vmid: number, p: Parcel, ipas: readonly SglEntry[], holder: IpaHolder, within: IpaHolder | undefined): void {
  if (vmid === VMID_HLOS) return;
  const space = rm.ipaSpace(vmid);
  space.free(acceptedBy(p));
  for (const e of ipas) space.take(e.base, e.size, holder, within);
}

/**
 * MEM_ACCEPT (§3.4): validation, then IPA placement (caller-given, or RM-chosen when the request's
 * SGL is empty), then — with DONE — one core map of the whole parcel. Without DONE the IPAs are
 * only recorded (multi-step accept).
 */
export async function memAccept(rm: ResourceManager, caller: number, req: MemAcceptRequest, within?: IpaHolder): Promise<RmOutcome<MemAcceptReply>> {
  const p = rm.parcels.get(req.handle);
  if (p === undefined) return rmFail('HANDLE_INVALID', 'handle_unknown', `no parcel ${req.handle}`);
  const f = req.flags;
  const entry = p.acl.find((e) => e.vmid === caller);
  const contiguous = (f & ACCEPT_FLAGS.MAP_CONTIGUOUS) !== 0;
  const acceptor = rm.vms.get(caller)?.status;
  const checks: [boolean, RmErrorCode, string, string][] = [
    // A VM being reset cannot run, and its reset stage is releasing what it holds: an accept then
    // would outlive the reset and block VM_DEALLOCATE (found by kill -9 of the VMM mid-workload).
    [acceptor === 'RESETTING' || acceptor === 'RESET', 'VM_STATE', 'acceptor_reset', `VM ${caller} is ${acceptor}: a VM being reset takes no memory`],
    [req.memType !== p.memType || req.transType !== TRANS_TYPE[p.transType], 'ARGUMENT_INVALID', 'type_mismatch', "mem_type or trans_type differs from the parcel's"],
    [(f & ACCEPT_FLAGS.VALIDATE_SANITIZED) !== 0 && !p.sanitized, 'VALIDATE_FAILED', 'not_sanitized', 'the parcel was not sanitized'],
    [(f & ACCEPT_FLAGS.VALIDATE_LABEL) !== 0 && req.label !== p.label, 'VALIDATE_FAILED', 'label_mismatch', `label ${req.label} is not the parcel's`],
    [
      (f & ACCEPT_FLAGS.VALIDATE_ACL_ATTR) !== 0 && (!sameList(req.acl, p.acl) || !sameList(req.attrs, p.attrs)),
      'VALIDATE_FAILED',
      'acl_attr_mismatch',
      "ACL or attrs differ from the parcel's",
    ],
    [req.mapVmid !== 0, 'ARGUMENT_INVALID', 'map_vmid_not_self', 'map_vmid must be 0 (self)'],
    [(f & ACCEPT_FLAGS.MAP_OTHER) !== 0, 'DENIED', 'map_other', 'mapping for another VM is not allowed'],
    [entry === undefined, 'VMID_INVALID', 'not_in_acl', `VM ${caller} is not in parcel ${p.handle}'s ACL`],
    [caller === p.owner || p.accepted.has(caller), 'DENIED', 'owner_or_accepted', `VM ${caller} owns or already accepted parcel ${p.handle}`],
    [p.state === 'INIT', 'DENIED', 'parcel_not_finalised', `parcel ${p.handle} is still being built`],
    [contiguous && p.memType !== MEM_TYPE.NORMAL, 'ARGUMENT_INVALID', 'contiguous_io', 'MAP_CONTIGUOUS is for NORMAL memory'],
    [
      (f & ACCEPT_FLAGS.SANITIZE) !== 0 && (p.memType !== MEM_TYPE.NORMAL || ((entry?.rights ?? 0) & ACL_RIGHTS.W) === 0),
      'ARGUMENT_INVALID',
      'sanitize_needs_normal_w',
      'SANITIZE needs NORMAL memory and the W right',
    ],
  ];
  const failed = checks.find(([holds]) => holds);
  if (failed !== undefined) return rmFail(failed[1], failed[2], failed[3]);

  // Placement: given IPAs must match the regions (or the whole parcel when contiguous), then the
  // IPA allocator decides (§3.4: IPA allocation failure is NORESOURCE, before any mapping).
  const pending = p.pending.get(caller);
  let ipas: readonly SglEntry[] | undefined = pending?.ipas;
  let reported = pending?.reported ?? 0;
  const rmChosen = req.sgl.length === 0;
  if (!rmChosen) {
    const sizes = sizesFor(p, contiguous);
    const fits = req.sgl.length === sizes.length && req.sgl.every((e, i) => sglValid(e) && e.size === sizes[i]);
    if (!fits) return rmFail('ARGUMENT_INVALID', 'ipa_layout_mismatch', 'IPA entries must be aligned and match the region sizes');
    const placed = placement(rm, caller, p, req.sgl, contiguous, within);
    if (!placed.ok) return placed;
    ipas = placed.value;
    reported = ipas.length;
  } else if (ipas === undefined) {
    const placed = placement(rm, caller, p, undefined, contiguous, within);
    if (!placed.ok) return placed;
    ipas = placed.value;
  }
  // An RM-chosen placement is reported ≤ 512 entries per reply; INCOMPLETE asks the caller to call
  // again (without DONE) for the rest before the DONE call (§3.4).
  let reply: MemAcceptReply = { kind: 'standard' };
  if (rmChosen) {
    const batch = ipas.slice(reported, reported + MEM_ENTRIES_PER_MSG_MAX);
    reported += batch.length;
    reply = { kind: 'rm_chosen_ipas', sgl: batch, incomplete: reported < ipas.length };
  }
  if ((f & ACCEPT_FLAGS.DONE) === 0) {
    takeIpas(rm, caller, p, ipas, acceptedBy(p), within);
    p.pending.set(caller, { ipas, reported });
    return rmOk(reply);
  }
  const perms = entry!.rights;
  const mapped = await rm.core.mapGrant({ grantId: p.grantId, borrower: caller, perms, ranges: ipas.map(framesOf) });
  if (!mapped.ok) return fromCore(mapped.error, 'MAP_FAILED', `accept of parcel ${p.handle}`);
  p.pending.delete(caller);
  if (p.transType === 'DONATE') {
    // Ownership moved to the borrower; the core grant and the parcel are gone (§3.4). The memory
    // stays mapped in the borrower, so its IPAs stay in use.
    takeIpas(rm, caller, p, ipas, { kind: 'donated', handle: p.handle }, within);
    rm.parcels.delete(p.handle);
  } else {
    takeIpas(rm, caller, p, ipas, acceptedBy(p), within);
    p.accepted.set(caller, ipas);
    p.state = 'SHARED';
  }
  return rmOk(reply);
}

// ---- release, reclaim -------------------------------------------------------------------------

/**
 * A core refusal saying the parcel's grant does not exist: it was destroyed (a MEM_RECLAIM whose
 * answer was lost, settled since), or it is of another core boot generation (a core restarted
 * without its data dir, issue 9 §4 fencing: the new core never had it). Either way nothing is mapped
 * through it and nothing is left to destroy, so an unmap or a destroy of it has happened.
 */
const grantGone = (r: { readonly ok: boolean; readonly error?: { readonly rule: string } }): boolean => !r.ok && r.error?.rule === 'no_such_grant';

/** Unmaps `vmid`'s acceptance of `p` in the core and forgets it; SHARING again after the last. */
export async function releaseFor(rm: ResourceManager, p: Parcel, vmid: number): Promise<RmOutcome<Record<string, never>>> {
  const unmapped = await rm.core.unmapGrant({ grantId: p.grantId, borrower: vmid });
  // A borrower the core says does not map it (not_mapped: an unmap whose answer was lost) holds nothing either.
  if (!unmapped.ok && !grantGone(unmapped) && unmapped.error.rule !== 'not_mapped') return fromCore(unmapped.error, 'MAP_FAILED', `release of parcel ${p.handle} by VM ${vmid}`);
  p.accepted.delete(vmid);
  rm.ipas.get(vmid)?.free(acceptedBy(p));
  if (p.accepted.size === 0) p.state = 'SHARING';
  return rmOk({});
}

/** MEM_RELEASE (§3.5): a borrower unmaps the parcel. It does not notify the owner itself. */
async function memRelease(rm: ResourceManager, caller: number, req: MemReleaseRequest): Promise<RmOutcome<Record<string, never>>> {
  const p = rm.parcels.get(req.handle);
  if (p === undefined) return rmFail('HANDLE_INVALID', 'handle_unknown', `no parcel ${req.handle}`);
  const entry = p.acl.find((e) => e.vmid === caller);
  if (entry === undefined) return rmFail('HANDLE_INVALID', 'not_in_acl', `VM ${caller} is not in parcel ${p.handle}'s ACL`);
  if (caller === p.owner) return rmFail('DENIED', 'owner_release', 'the owner cannot release its own parcel');
  if (!p.accepted.has(caller)) return rmFail('MEM_RELEASED', 'not_accepted', `VM ${caller} has not accepted parcel ${p.handle}`);
  if ((req.flags & ~RELEASE_FLAGS.SANITIZE) !== 0) return rmFail('ARGUMENT_INVALID', 'flags_invalid', `flags 0x${req.flags.toString(16)}`);
  if ((req.flags & RELEASE_FLAGS.SANITIZE) !== 0 && (p.memType === MEM_TYPE.IO || (entry.rights & ACL_RIGHTS.W) === 0))
    return rmFail('ARGUMENT_INVALID', 'sanitize_needs_normal_w', 'SANITIZE needs NORMAL memory and the W right');
  return releaseFor(rm, p, caller);
}

/** MEM_RECLAIM (§3.5): the owner takes the memory back; the parcel is deleted. */
async function memReclaim(rm: ResourceManager, caller: number, req: MemReleaseRequest): Promise<RmOutcome<Record<string, never>>> {
  const p = rm.parcels.get(req.handle);
  if (p === undefined) return rmFail('HANDLE_INVALID', 'handle_unknown', `no parcel ${req.handle}`);
  if (p.owner !== caller) return rmFail('DENIED', 'not_owner', `VM ${caller} does not own parcel ${p.handle}`);
  if (p.state === 'SHARED') return rmFail('MEM_INUSE', 'parcel_accepted', `parcel ${p.handle} is accepted by ${[...p.accepted.keys()].join(', ')}`);
  if ((req.flags & ~RELEASE_FLAGS.SANITIZE) !== 0) return rmFail('ARGUMENT_INVALID', 'flags_invalid', `flags 0x${req.flags.toString(16)}`);
  if ((req.flags & RELEASE_FLAGS.SANITIZE) !== 0 && p.memType === MEM_TYPE.IO) return rmFail('ARGUMENT_INVALID', 'sanitize_io', 'IO memory cannot be sanitized');
  const destroyed = await rm.core.destroyGrant({ grantId: p.grantId, owner: caller });
  if (!destroyed.ok && !grantGone(destroyed)) return fromCore(destroyed.error, 'MEM_INUSE', `reclaim of parcel ${p.handle}`);
  // IPAs a borrower recorded without DONE are freed with the parcel.
  for (const b of p.pending.keys()) rm.ipas.get(b)?.free(acceptedBy(p));
  rm.parcels.delete(p.handle);
  return rmOk({});
}

// ---- notify, lookup ---------------------------------------------------------------------------

const NOTIFY_KINDS = [NOTIFY_FLAGS.SHARED, NOTIFY_FLAGS.RELEASED, NOTIFY_FLAGS.ACCEPTED, NOTIFY_FLAGS.RECALL] as const;

/** The MEM_SHARED payload a borrower receives (§3.7): region sizes only, no addresses; one region per physically contiguous run (§3.2). */
export const sharedNotification = (p: Parcel) => ({
  handle: p.handle,
  memType: p.memType,
  transType: TRANS_TYPE[p.transType],
  flags: p.sanitized ? MEM_SHARED_FLAGS.SANITIZED : 0,
  ownerVmid: p.owner,
  label: p.label,
  memInfoTag: p.memInfoTag ?? 0,
  acl: p.acl,
  regions: p.physRegions.slice(0, MEM_ENTRIES_PER_MSG_MAX).map((r) => ({ size: r.size })),
  attrs: p.attrs,
});

/** MEM_NOTIFY (§3.6). SHARED and RECALL come from the owner; RELEASED and ACCEPTED from a borrower. */
async function memNotify(rm: ResourceManager, caller: number, req: MemNotifyRequest): Promise<RmOutcome<Record<string, never>>> {
  const p = rm.parcels.get(req.handle);
  if (p === undefined) return rmFail('HANDLE_INVALID', 'handle_unknown', `no parcel ${req.handle}`);
  if (!(NOTIFY_KINDS as readonly number[]).includes(req.flags)) return rmFail('ARGUMENT_INVALID', 'notify_flags', 'flags must be exactly one of SHARED, RELEASED, ACCEPTED, RECALL');
  if (p.memInfoTag !== undefined && req.memInfoTag !== p.memInfoTag)
    return rmFail('ARGUMENT_INVALID', 'mem_info_tag_mismatch', `mem_info_tag ${req.memInfoTag} differs from the recorded ${p.memInfoTag}`);
  const targets = req.vmids.map((v) => v.vmid);
  if (req.flags === NOTIFY_FLAGS.SHARED || req.flags === NOTIFY_FLAGS.RECALL) {
    if (caller !== p.owner) return rmFail('DENIED', 'not_owner', `VM ${caller} does not own parcel ${p.handle}`);
    // The VMID list header must be there for SHARED and RECALL (open RM `memparcel_notify_shared`).
    if (req.vmidListAbsent === true) return rmFail('MSG_INVALID', 'vmid_list_absent', `${req.flags === NOTIFY_FLAGS.SHARED ? 'SHARED' : 'RECALL'} needs a VMID list`);
    if (targets.length === 0 || targets.length > p.acl.length) return rmFail('ARGUMENT_INVALID', 'vmid_list_size', 'the VMID list must name 1..ACL-size VMs');
    const unknown = targets.find((v) => v !== VMID_HLOS && !rm.vms.has(v));
    if (unknown !== undefined) return rmFail('VMID_INVALID', 'vmid_unknown', `VM ${unknown} does not exist`);
    const outside = targets.find((v) => !p.acl.some((e) => e.vmid === v));
    if (outside !== undefined) return rmFail('ARGUMENT_INVALID', 'vmid_not_in_acl', `VM ${outside} is not in the ACL`);
    if (req.flags === NOTIFY_FLAGS.RECALL) {
      for (const v of targets) rm.notify(v, 'MEM_RECALL', { handle: p.handle, memInfoTag: req.memInfoTag });
      return rmOk({});
    }
    p.memInfoTag ??= req.memInfoTag;
    for (const v of targets) {
      // A VM still being set up (READY) gets the parcel accepted for it at once (§3.6).
      if (rm.vms.get(v)?.status === 'READY') {
        const accepted = await autoAccept(rm, v, p, undefined);
        rm.notify(p.owner, accepted.ok ? 'MEM_ACCEPTED' : 'MEM_RELEASED', { handle: p.handle, vmid: v, memInfoTag: p.memInfoTag });
      } else {
        rm.notify(v, 'MEM_SHARED', sharedNotification(p));
      }
    }
    return rmOk({});
  }
  // RELEASED / ACCEPTED: a borrower tells the owner; its claim must match its state.
  if (!p.acl.some((e) => e.vmid === caller) || caller === p.owner) return rmFail('HANDLE_INVALID', 'not_in_acl', `VM ${caller} is not a borrower of parcel ${p.handle}`);
  const accepted = p.accepted.has(caller);
  if (req.flags === NOTIFY_FLAGS.RELEASED && accepted) return rmFail('MEM_INUSE', 'still_accepted', `VM ${caller} still has parcel ${p.handle} accepted`);
  if (req.flags === NOTIFY_FLAGS.ACCEPTED && !accepted) return rmFail('MEM_RELEASED', 'not_accepted', `VM ${caller} has not accepted parcel ${p.handle}`);
  rm.notify(p.owner, req.flags === NOTIFY_FLAGS.RELEASED ? 'MEM_RELEASED' : 'MEM_ACCEPTED', { handle: p.handle, vmid: caller, memInfoTag: req.memInfoTag });
  return rmOk({});
}

/**
 * Accepts `p` on behalf of `vmid` with RM-chosen (or given) IPAs, as the RM does for boot parcels
 * at VM_START (§3.9) and for READY targets of a SHARED notify.
 */
export async function autoAccept(rm: ResourceManager, vmid: number, p: Parcel, at: { base: bigint; layout: IpaHolder } | undefined): Promise<RmOutcome<MemAcceptReply>> {
  const size = totalSize(p.physRegions);
  const sgl = at === undefined ? [] : [{ base: at.base, size }];
  return memAccept(rm, vmid, {
    handle: p.handle,
    memType: p.memType,
    transType: TRANS_TYPE[p.transType],
    flags: ACCEPT_FLAGS.DONE | (p.memType === MEM_TYPE.NORMAL ? ACCEPT_FLAGS.MAP_CONTIGUOUS : 0),
    label: p.label,
    acl: [],
    mapVmid: 0,
    sgl,
    attrs: [],
  }, at?.layout);
}

/** MEM_QCOM_LOOKUP_SGL (§3.8): the handle of the caller's own finalised, unaccepted parcel that matches exactly. */
function memLookupSgl(rm: ResourceManager, caller: number, req: MemLookupSglRequest): RmOutcome<{ handle: number }> {
  const match = [...rm.parcels.values()].find(
    (p) =>
      p.owner === caller &&
      p.state === 'SHARING' &&
      p.memType === req.memType &&
      sameList(p.acl, req.acl) &&
      sameList(p.regions, req.sgl) &&
      sameList(p.attrs, req.attrs),
  );
  if (match === undefined) return rmFail('LOOKUP_FAILED', 'no_match', 'no parcel of the caller matches the ACL, SGL and attributes');
  // The RM sets the label only of a parcel without a valid one; a parcel created by MEM_SHARE/LEND/
  // DONATE always has one (the request's, 0 included), so the label is never changed here (§3.8).
  return rmOk({ handle: match.handle });
}

export const PARCEL_CALLS: CallTable = {
  MEM_SHARE: (rm, caller, req) => memCreate(rm, caller, 'SHARE', req),
  MEM_LEND: (rm, caller, req) => memCreate(rm, caller, 'LEND', req),
  MEM_DONATE: (rm, caller, req) => memCreate(rm, caller, 'DONATE', req),
  MEM_APPEND: memAppend,
  MEM_ACCEPT: memAccept,
  MEM_RELEASE: memRelease,
  MEM_RECLAIM: memReclaim,
  MEM_NOTIFY: memNotify,
  MEM_QCOM_LOOKUP_SGL: memLookupSgl,
};
