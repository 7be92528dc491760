/**
 * Read-only views of the core: translation, entries, the ownership map as runs, counts per owner
 * and per component state, and table-page accounting. Cost grows with runs, never with bytes.
 */

import type { HypUse, MemoryKind, PageState, RmiGranuleState } from './memory/granule.js';
import { errnoError, type ErrnoError } from './pkvm/errno.js';
import { err, ok, type Result } from './result.js';
import { descIsDevice, descIsValid, descOutputFrame, descPerms, type Descriptor } from './s2tt/descriptor.js';
import { framesPerEntry } from './s2tt/geometry.js';
import type { Stage2 } from './stage2.js';
import { GRANULE_SIZE, type Perms, type Vmid } from './types.js';
import { viewState, type ViewState } from './views.js';

export interface EntryInfo {
  /** Level of the leaf or invalid entry the walk stopped at. */
  readonly level: number;
  /** Bytes the entry covers. */
  readonly sizeBytes: number;
  readonly valid: boolean;
  readonly state: ViewState;
  /** Output PA of the entry's first byte (0 if none). */
  readonly outputAddress: number;
  readonly perms: Perms;
  readonly device: boolean;
  readonly descriptor: Descriptor;
}

function space(s: Stage2, vmid: Vmid) {
  return s.spaces.get(vmid);
}

const noSpace = (vmid: Vmid): ErrnoError => errnoError('EINVAL', 'no_such_vm', `no address space with vmid ${vmid}`);

/** The entry covering IPA `ipa` (bytes) in `vmid`'s stage-2. */
export function readEntry(s: Stage2, vmid: Vmid, ipa: number): Result<EntryInfo, ErrnoError> {
  const sp = space(s, vmid);
  if (sp === undefined) return err(noSpace(vmid));
  if (!Number.isSafeInteger(ipa) || ipa < 0 || ipa >= 2 ** sp.ipaBits)
    return err(errnoError('ERANGE', 'ipa_out_of_range', `IPA ${ipa} is outside the ${sp.ipaBits}-bit IPA space`));
  const frame = Math.floor(ipa / GRANULE_SIZE);
  const leaf = sp.table.lookup(frame);
  const span = framesPerEntry(leaf.level);
  const base = frame - (frame % span);
  const d = sp.table.lookup(base).desc;
  return ok({
    level: leaf.level,
    sizeBytes: span * GRANULE_SIZE,
    valid: descIsValid(d),
    state: viewState(d),
    outputAddress: descOutputFrame(d) * GRANULE_SIZE,
    perms: descPerms(d),
    device: descIsDevice(d),
    descriptor: d,
  });
}

export interface Translation {
  readonly pa: number;
  readonly level: number;
  readonly perms: Perms;
  readonly state: PageState;
}

/** Translates IPA `ipa` (bytes) in `vmid`'s stage-2; -ENOENT if nothing valid is mapped there. */
export function translate(s: Stage2, vmid: Vmid, ipa: number): Result<Translation, ErrnoError> {
  const e = readEntry(s, vmid, ipa);
  if (!e.ok) return e;
  if (!e.value.valid) return err(errnoError('ENOENT', 'not_mapped', `IPA 0x${ipa.toString(16)} is not mapped (${e.value.state})`));
  const offset = ipa % e.value.sizeBytes;
  return ok({ pa: e.value.outputAddress + offset, level: e.value.level, perms: e.value.perms, state: e.value.state as PageState });
}

export interface OwnershipRun {
  readonly base: number;
  readonly count: number;
  readonly kind: MemoryKind;
  readonly owner: Vmid;
  readonly host: ViewState;
  readonly hyp: PageState;
  readonly rmi: RmiGranuleState;
  readonly hypUse: HypUse;
  readonly grant: number;
  readonly pins: number;
  readonly guestShares: number;
}

/** Frames of memory at most one ownershipMap call reports; larger ranges are paged by the caller. */
export const OWNERSHIP_RUNS_MAX = 65536;

/**
 * The ownership of physical frames [base, base+count) as maximal runs of identical records, merging
 * the granule records, the host's view and grant membership. Holes (no memory) are left out.
 * Stops after `runsMax` runs; `next` is where to continue, or undefined when done.
 */
export function ownershipMap(
  s: Stage2,
  base: number,
  count: number,
  runsMax: number = OWNERSHIP_RUNS_MAX,
): Result<{ runs: OwnershipRun[]; next: number | undefined }, ErrnoError> {
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(count) || base < 0 || count < 0 || base + count > s.memory.frameCount)
    return err(errnoError('EINVAL', 'pfn_range_invalid', `frames ${base}+${count} are outside the physical address space`));
  const list = new RunList<OwnershipRun>(runsMax, sameRecord);
  s.memory.meta.runs(base, count, (mStart, mFrames, m) => {
    if (m === null) return true;
    let go = true;
    s.memory.grantOf.runs(mStart, mFrames, (gStart, gFrames, grant) => {
      s.host.table.leafRuns(gStart, gFrames, (v) => {
        go = list.push({
          base: v.start,
          count: v.frames,
          kind: m.kind,
          owner: m.owner,
          host: viewState(v.desc),
          hyp: m.hyp,
          rmi: m.rmi,
          hypUse: m.hypUse,
          grant,
          pins: m.pins,
          guestShares: m.guestShares,
        });
        return go;
      });
      return go;
    });
    return go;
  });
  return ok({ runs: list.runs, next: list.next });
}

/**
 * Runs collected in order: a run that continues the last one (adjacent, and `continues` says the
 * rest matches) extends it; after `runsMax` runs, `next` says where a caller should resume.
 */
class RunList<R extends { readonly base: number; readonly count: number }> {
  readonly runs: R[] = [];
  next: number | undefined;

  constructor(
    private readonly runsMax: number,
    private readonly continues: (last: R, r: R) => boolean,
  ) {}

  /** Adds `r`; false once the list is full (the walk should stop). */
  push(r: R): boolean {
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && last.base + last.count === r.base && this.continues(last, r)) {
      this.runs[this.runs.length - 1] = { ...last, count: last.count + r.count };
      return true;
    }
    if (this.runs.length === this.runsMax) {
      this.next = r.base;
      return false;
    }
    this.runs.push(r);
    return true;
  }
}

const sameRecord = (a: OwnershipRun, b: OwnershipRun): boolean =>
  a.kind === b.kind &&
  a.owner === b.owner &&
  a.host === b.host &&
  a.hyp === b.hyp &&
  a.rmi === b.rmi &&
  a.hypUse === b.hypUse &&
  a.grant === b.grant &&
  a.pins === b.pins &&
  a.guestShares === b.guestShares;

export interface SpaceRun {
  /** First IPA frame of the run. */
  readonly base: number;
  readonly count: number;
  readonly state: ViewState;
  /** First PA frame the run maps (valid or LENT entries); consecutive across the run. */
  readonly outputFrame: number;
  readonly perms: Perms;
  readonly device: boolean;
  /** Level of the entries: 1 and 2 are blocks, 3 pages. */
  readonly level: number;
}

/**
 * An address space's stage-2 over IPA frames [base, base+count) (cut at its IPA width) as maximal runs of entries with the
 * same state, rights and level whose output frames continue each other; unmapped IPA is left out.
 * Stops after `runsMax` runs; `next` is where to continue. Cost follows entries, not bytes.
 */
export function addressSpaceMap(
  s: Stage2,
  vmid: Vmid,
  base: number,
  count: number,
  runsMax: number = OWNERSHIP_RUNS_MAX,
): Result<{ runs: SpaceRun[]; next: number | undefined }, ErrnoError> {
  const sp = space(s, vmid);
  if (sp === undefined) return err(noSpace(vmid));
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(count) || base < 0 || count < 0 || base >= sp.table.frameLimit)
    return err(errnoError('ERANGE', 'ipa_out_of_range', `IPA frame ${base} is outside the ${sp.ipaBits}-bit IPA space`));
  // A range running past the IPA width is cut there: "everything from base" needs no width.
  count = Math.min(count, sp.table.frameLimit - base);
  const list = new RunList<SpaceRun>(
    runsMax,
    (last, r) =>
      last.outputFrame + last.count === r.outputFrame && last.state === r.state && last.perms === r.perms && last.device === r.device && last.level === r.level,
  );
  sp.table.leafRuns(base, count, (v) => {
    const state = viewState(v.desc);
    if (state === 'NOPAGE') return true;
    return list.push({ base: v.start, count: v.frames, state, outputFrame: descOutputFrame(v.desc), perms: descPerms(v.desc), device: descIsDevice(v.desc), level: v.level });
  });
  return ok({ runs: list.runs, next: list.next });
}

export interface OwnershipCounts {
  /** Granules owned, per owner. Sums to all memory. */
  readonly byOwner: ReadonlyMap<Vmid, number>;
  /** Frames of each address space in each view state (valid or annotated entries, plus HYP's view). */
  readonly byState: ReadonlyMap<Vmid, ReadonlyMap<ViewState, number>>;
  readonly totalFrames: number;
}

export function ownershipCounts(s: Stage2): OwnershipCounts {
  const byOwner = new Map<Vmid, number>();
  const byState = new Map<Vmid, Map<ViewState, number>>();
  const add = (vmid: Vmid, st: ViewState, n: number): void => {
    let m = byState.get(vmid);
    if (m === undefined) byState.set(vmid, (m = new Map()));
    m.set(st, (m.get(st) ?? 0) + n);
  };
  let totalFrames = 0;
  s.memory.meta.runs(0, s.memory.frameCount, (_start, frames, m) => {
    if (m === null) return;
    totalFrames += frames;
    byOwner.set(m.owner, (byOwner.get(m.owner) ?? 0) + frames);
    if (m.hyp !== 'NOPAGE') add(0 as Vmid, m.hyp, frames);
  });
  // Only entries with an output (valid leaves, LENT annotations) have a state other than NOPAGE,
  // and mappedRuns visits exactly those, merged into runs of one state: the cost is the populated
  // tables, not every invalid root entry of every space (the simulation's core checks).
  for (const sp of s.spaces.values()) {
    sp.table.mappedRuns((_start, frames, desc) => {
      const st = viewState(desc);
      if (st !== 'NOPAGE') add(sp.vmid, st, frames);
    });
  }
  return { byOwner, byState, totalFrames };
}

export interface TablePageCount {
  readonly vmid: Vmid;
  readonly rootPages: number;
  readonly tablePages: number;
  readonly poolPages: number;
}

export const tablePageCounts = (s: Stage2): TablePageCount[] =>
  [...s.spaces.values()].map((sp) => ({ vmid: sp.vmid, rootPages: sp.rootFrames.length, tablePages: sp.table.tablePages, poolPages: sp.pool.size }));

/** Unused pages in HYP's boot reservation for the spaces it creates (hyp-reservation.ts). */
export const hypReservationPages = (s: Stage2): number => s.hypReservation.size;
