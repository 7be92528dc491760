/**
 * The host side of the RTT protocol: how the Linux KVM CCA host (S. Price's series, KR
 * `arch/arm64/kvm/rme.c`) drives the RMI commands to build and tear down a realm's RTTs
 * (stage2-models.md §B7, seed 004). The VM manager reuses these; tests use them as the reference
 * client. They call only the RMI commands of this folder, as KVM calls only SMCs.
 *
 * - `realmCreateRttLevels`: realm_create_rtt_levels. RTT(level-1) from RTT_CREATE means the RTT
 *   already exists (continue).
 * - `realmTearDownRttLevel` (seed 004): per block of map(level-1), recurse when the range is partial
 *   or unaligned, else RTT_DESTROY. SUCCESS: undelegate and free the RTT. RTT with top > addr:
 *   "Missing RTT", skip to top. RTT with index == level (live entries): recurse into the children at
 *   level+1, then retry the same address. Index != level, or a live level-3 RTT: WARN, -EBUSY.
 * - `realmDestroyRtts`: kvm_realm_destroy_rtts, the teardown over [0, 2^ia_bits) from sl+1.
 * - `realmFoldRttLevel`: realm_fold_rtt_level.
 * - `realmUnmapPrivateRange`: realm_destroy_private_granule per address (DATA_DESTROY; RTT with
 *   top > addr: unassigned, skip; top == addr: an ASSIGNED block, so split it with RTT_CREATE one
 *   level down and retry; then undelegate the data granule), then fold. The fold skips the blocks
 *   DATA_DESTROY's `top` showed hold no RTT (NoTableRange), where KVM calls RTT_FOLD per block and
 *   each call fails without a change: same state and results, calls in proportion to the RTTs.
 * - `realmUnmapSharedRange`: realm_unmap_shared_range (UNMAP_UNPROTECTED per block; RTT with
 *   top == addr: a table, not a block, so recurse deeper).
 * - `realmTearDown`: kvm_destroy_realm's whole sequence: destroy RECs, unmap private and shared
 *   ranges, destroy the RTTs, REALM_DESTROY, undelegate the RD and the roots.
 *
 * One walk, two transports: every function takes an `RmiPort`, the RMI commands these walks issue
 * as async calls (KVM's SMCs). `stage2RmiPort(s)` is the in-process port over a `Stage2`; the VM
 * manager (@hypmesh/vmm) passes a port over the core's gRPC RMI RPCs, so the host walks exist once.
 *
 * Deviations, for a model that must not crash: realm_destroy_private_granule splits a block at
 * the level below the one DATA_DESTROY reports (KVM always creates at level 3 and WARNs unless the
 * block is at level 2); the VMID is the RMM's (REALM_DESTROY frees it); the private-range fold
 * skips blocks known to hold no RTT (above).
 */

import { err, ok, type Result } from '../result.js';
import { mapSizeBytes } from '../s2tt/geometry.js';
import type { Stage2 } from '../stage2.js';
import { dataDestroy, type DataDestroyOutputs } from './data.js';
import { granuleDelegate, granuleUndelegate } from './granule.js';
import { hexAddr, type NoOutputs, type Outputs } from './lookup.js';
import { realmDestroy } from './realm.js';
import { recDestroy } from './rec.js';
import { RTT_MIN_BLOCK_LEVEL, RTT_PAGE_LEVEL } from './rtt-entry.js';
import { rttCreate, rttDestroy, rttFold, type RttDestroyOutputs, type RttFoldOutputs } from './rtt.js';
import type { RmiError } from './status.js';
import { rttUnmapUnprotected, type UnmapUnprotectedOutputs } from './unprotected.js';

type RmiCall<T> = Promise<Result<T, RmiError>>;

/**
 * The RMI commands the host walks issue, as async calls (byte addresses, RTT levels; results and
 * errors exactly as the in-process commands return them, RmiError.outputs included).
 */
export interface RmiPort {
  granuleDelegate(addr: number): RmiCall<NoOutputs>;
  granuleUndelegate(addr: number): RmiCall<NoOutputs>;
  rttCreate(rd: number, rtt: number, addr: number, level: number): RmiCall<Outputs>;
  rttDestroy(rd: number, addr: number, level: number): RmiCall<RttDestroyOutputs>;
  rttFold(rd: number, addr: number, level: number): RmiCall<RttFoldOutputs>;
  dataDestroy(rd: number, addr: number): RmiCall<DataDestroyOutputs>;
  rttUnmapUnprotected(rd: number, addr: number, level: number): RmiCall<UnmapUnprotectedOutputs>;
  recDestroy(rec: number): RmiCall<NoOutputs>;
  realmDestroy(rd: number): RmiCall<NoOutputs>;
}

/** The in-process RmiPort: each call runs the command on `s` synchronously and resolves with its result. */
export const stage2RmiPort = (s: Stage2): RmiPort => ({
  granuleDelegate: (addr) => Promise.resolve(granuleDelegate(s, addr)),
  granuleUndelegate: (addr) => Promise.resolve(granuleUndelegate(s, addr)),
  rttCreate: (rd, rtt, addr, level) => Promise.resolve(rttCreate(s, rd, rtt, addr, level)),
  rttDestroy: (rd, addr, level) => Promise.resolve(rttDestroy(s, rd, addr, level)),
  rttFold: (rd, addr, level) => Promise.resolve(rttFold(s, rd, addr, level)),
  dataDestroy: (rd, addr) => Promise.resolve(dataDestroy(s, rd, addr)),
  rttUnmapUnprotected: (rd, addr, level) => Promise.resolve(rttUnmapUnprotected(s, rd, addr, level)),
  recDestroy: (rec) => Promise.resolve(recDestroy(s, rec)),
  realmDestroy: (rd) => Promise.resolve(realmDestroy(s, rd)),
});

/**
 * A failure of a host-side walk, as KVM's functions return it: a Linux errno (ENXIO, 6, is not in
 * the core's pKVM table, so the host side has its own), the rule, and the RMI error behind it.
 */
export const REALM_HOST_ERRNO = { ENXIO: 6, ENOMEM: 12, EBUSY: 16, EINVAL: 22 } as const;
export type RealmHostErrno = keyof typeof REALM_HOST_ERRNO;
export interface RealmHostError {
  readonly family: 'kvm';
  readonly errno: RealmHostErrno;
  readonly rule: string;
  readonly message: string;
  readonly rmi?: RmiError;
}
const hostError = (errno: RealmHostErrno, rule: string, message: string, rmi?: RmiError): Result<never, RealmHostError> =>
  err(rmi === undefined ? { family: 'kvm', errno, rule, message } : { family: 'kvm', errno, rule, message, rmi });

/** The host's page allocator and log, as KVM sees them. */
export interface RealmHost {
  /** A free page of host memory (NS, host-owned) to delegate, or undefined when memory is short. */
  alloc(): number | undefined;
  /** Takes back a page the host owns again (free_page). */
  free(addr: number): void;
  /** A WARN_ON that fired (the model never throws for these). */
  warn(message: string): void;
  /** Optional trace of the teardown walk's RTT_DESTROY calls and what the host made of each. */
  trace?(step: TeardownStep): void;
}

/** One RTT_DESTROY of the seed-004 walk: freed, a missing RTT skipped to `next`, or live (recurse, retry). */
export interface TeardownStep {
  readonly addr: number;
  readonly level: number;
  readonly outcome: 'FREED' | 'MISSING' | 'LIVE';
  readonly next: number;
}

/** ALIGN(x, a): round up to a multiple of a power of two. */
const alignUp = (x: number, a: number): number => Math.ceil(x / a) * a;
const alignDown = (x: number, a: number): number => x - (x % a);

const rmiText = (e: RmiError): string => `${e.status}(${e.index}) ${e.rule}: ${e.message}`;

/** alloc_delegated_granule: allocate a host page and delegate it; undefined if either fails. */
export async function allocDelegated(rmi: RmiPort, host: RealmHost): Promise<number | undefined> {
  const addr = host.alloc();
  if (addr === undefined) return undefined;
  const r = await rmi.granuleDelegate(addr);
  if (r.ok) return addr;
  host.free(addr);
  return undefined;
}

/** free_delegated_granule: undelegate and free; a failed undelegate WARNs and leaks the page. */
export async function freeDelegated(rmi: RmiPort, host: RealmHost, addr: number): Promise<void> {
  const r = await rmi.granuleUndelegate(addr);
  if (!r.ok) {
    host.warn(`undelegate ${hexAddr(addr)} failed (${rmiText(r.error)}): page leaked`);
    return;
  }
  host.free(addr);
}

/** realm_rtt_create: RTT_CREATE at `level` for the map(level-1) block holding `ipa`. */
const realmRttCreate = (rmi: RmiPort, rd: number, ipa: number, level: number, rtt: number) =>
  rmi.rttCreate(rd, rtt, alignDown(ipa, mapSizeBytes(level - 1)), level);

/**
 * realm_create_rtt_levels: create the RTTs below `level` down to `maxLevel` covering `ipa`. An RTT
 * that already exists (RTT(level-1)) is fine; any other failure WARNs and fails -ENXIO; running out
 * of pages fails -ENOMEM.
 */
export async function realmCreateRttLevels(
  rmi: RmiPort,
  rd: number,
  host: RealmHost,
  ipa: number,
  level: number,
  maxLevel: number,
): Promise<Result<void, RealmHostError>> {
  for (let l = level + 1; l <= maxLevel; l++) {
    const rtt = await allocDelegated(rmi, host);
    if (rtt === undefined) return hostError('ENOMEM', 'rtt_alloc', `no page for a level ${l} RTT at ${hexAddr(ipa)}`);
    const r = await realmRttCreate(rmi, rd, ipa, l, rtt);
    if (r.ok) continue;
    await freeDelegated(rmi, host, rtt);
    if (r.error.status === 'RMI_ERROR_RTT' && r.error.index === l - 1) continue; // already exists
    host.warn(`RTT_CREATE ${hexAddr(ipa)} level ${l}: ${rmiText(r.error)}`);
    return hostError('ENXIO', 'rtt_create', `RTT_CREATE at ${hexAddr(ipa)} level ${l} failed: ${rmiText(r.error)}`, r.error);
  }
  return ok(undefined);
}

/** What a teardown freed. */
export interface TeardownCounts {
  rtts: number;
  data: number;
  recs: number;
}

const newCounts = (): TeardownCounts => ({ rtts: 0, data: 0, recs: 0 });

/**
 * realm_tear_down_rtt_level (seed 004): destroys every RTT at `level` and below within [start, end),
 * undelegating and freeing each one. Call it after the range is unmapped.
 */
export async function realmTearDownRttLevel(
  rmi: RmiPort,
  rd: number,
  host: RealmHost,
  level: number,
  start: number,
  end: number,
  counts: TeardownCounts = newCounts(),
): Promise<Result<TeardownCounts, RealmHostError>> {
  if (level > RTT_PAGE_LEVEL) {
    host.warn(`teardown below level ${RTT_PAGE_LEVEL}`);
    return hostError('EINVAL', 'level_bound', `no RTT level ${level}`);
  }
  const mapSize = mapSizeBytes(level - 1);
  let next: number;
  for (let addr = start; addr < end; addr = next) {
    const alignAddr = alignUp(addr, mapSize);
    next = alignUp(addr + 1, mapSize);
    // The target range is smaller than what this level covers: go deeper.
    if (next > end || alignAddr !== addr) {
      const r = await realmTearDownRttLevel(rmi, rd, host, level + 1, addr, Math.min(next, end), counts);
      if (!r.ok) return r;
      continue;
    }
    const r = await rmi.rttDestroy(rd, addr, level);
    if (r.ok) {
      next = r.value.top;
      host.trace?.({ addr, level, outcome: 'FREED', next });
      await freeDelegated(rmi, host, r.value.rtt);
      counts.rtts++;
      continue;
    }
    if (r.error.status !== 'RMI_ERROR_RTT') {
      host.warn(`RTT_DESTROY ${hexAddr(addr)} level ${level}: ${rmiText(r.error)}`);
      return hostError('ENXIO', 'rtt_destroy', `RTT_DESTROY at ${hexAddr(addr)} level ${level}: ${rmiText(r.error)}`, r.error);
    }
    const top = r.error.outputs['top'] ?? 0;
    if (top > addr) {
      next = top; // Missing RTT: skip
      host.trace?.({ addr, level, outcome: 'MISSING', next });
      continue;
    }
    // We tear down the whole IPA space after everything is unmapped, and descend only when an RTT
    // cannot be destroyed, so the RMM must have walked to the requested level.
    if (r.error.index !== level) {
      host.warn(`RTT_DESTROY ${hexAddr(addr)} level ${level} stopped at level ${r.error.index}`);
      return hostError('EBUSY', 'rtt_walk', `RTT_DESTROY at ${hexAddr(addr)} level ${level}: ${rmiText(r.error)}`, r.error);
    }
    if (level === RTT_PAGE_LEVEL) {
      host.warn(`level 3 RTT at ${hexAddr(addr)} still maps data`);
      return hostError('EBUSY', 'rtt_live', `the level 3 RTT at ${hexAddr(addr)} has live entries`, r.error);
    }
    // The table has live entries: tear down its children, then retry at this level.
    host.trace?.({ addr, level, outcome: 'LIVE', next: addr });
    next = alignUp(addr + 1, mapSize);
    const deeper = await realmTearDownRttLevel(rmi, rd, host, level + 1, addr, next, counts);
    if (!deeper.ok) return deeper;
    next = addr;
  }
  return ok(counts);
}

/** kvm_realm_destroy_rtts: tear down [0, 2^ipaBits) from the level below the roots. */
export async function realmDestroyRtts(
  rmi: RmiPort,
  rd: number,
  host: RealmHost,
  startLevel: number,
  ipaBits: number,
  counts: TeardownCounts = newCounts(),
): Promise<Result<TeardownCounts, RealmHostError>> {
  return await realmTearDownRttLevel(rmi, rd, host, startLevel + 1, 0, 2 ** ipaBits, counts);
}

/**
 * realm_fold_rtt_level: RTT_FOLD per block of map(level-1) in [start, end); returns how many could
 * not be folded. RTT at level 3 or with index < level: not foldable here. Otherwise fold deeper and
 * retry at this level if everything below folded.
 */
export async function realmFoldRttLevel(
  rmi: RmiPort,
  rd: number,
  host: RealmHost,
  level: number,
  start: number,
  end: number,
  noTables: readonly NoTableRange[] = [],
): Promise<Result<number, RealmHostError>> {
  if (level > RTT_PAGE_LEVEL) return hostError('EINVAL', 'level_bound', `no RTT level ${level}`);
  const mapSize = mapSizeBytes(level - 1);
  let notFolded = 0;
  let next: number;
  for (let addr = start; addr < end; addr = next) {
    const alignAddr = alignUp(addr, mapSize);
    next = alignUp(addr + 1, mapSize);
    // No RTT at level-1 holds this block: RTT_FOLD would fail with RMI_ERROR_RTT at an index below
    // `level` and change nothing, which is what the call would have told us.
    if (holdsNoTables(noTables, alignAddr, mapSize, level - 1)) {
      notFolded++;
      continue;
    }
    const r = await rmi.rttFold(rd, alignAddr, level);
    if (r.ok) {
      await freeDelegated(rmi, host, r.value.rtt);
      continue;
    }
    if (r.error.status !== 'RMI_ERROR_RTT') {
      host.warn(`RTT_FOLD ${hexAddr(alignAddr)} level ${level}: ${rmiText(r.error)}`);
      return hostError('ENXIO', 'rtt_fold', rmiText(r.error), r.error);
    }
    if (level === RTT_PAGE_LEVEL || r.error.index < level) {
      notFolded++;
      continue;
    }
    const deeper = await realmFoldRttLevel(rmi, rd, host, level + 1, addr, next, noTables);
    if (!deeper.ok) return deeper;
    if (deeper.value === 0) next = addr; // try again at this level
  }
  return ok(notFolded);
}

/**
 * A range of IPAs whose entries at `level` are known to hold no TABLE (a DATA_DESTROY found them not
 * live, §B5 `top`): no RTT below `level` covers it, so folds there cannot succeed. Tables only go
 * away during a teardown, so the knowledge stays true until the teardown ends.
 */
export interface NoTableRange {
  readonly start: number;
  readonly end: number;
  readonly level: number;
}

/** Whether the block [addr, addr+size) lies in a range with no TABLE entry at `level` or above. */
function holdsNoTables(ranges: readonly NoTableRange[], addr: number, size: number, level: number): boolean {
  for (const r of ranges) if (r.level <= level && r.start <= addr && addr + size <= r.end) return true;
  return false;
}

/**
 * realm_destroy_private_granule: destroys the DATA granule mapped at `ipa`, if any, and undelegates
 * and frees it. Returns where to continue.
 */
export async function realmDestroyPrivateGranule(rmi: RmiPort, rd: number, host: RealmHost, ipa: number, counts: TeardownCounts = newCounts()): Promise<Result<number, RealmHostError>> {
  return await destroyPrivateGranule(rmi, rd, host, ipa, counts, []);
}

/**
 * realmDestroyPrivateGranule, noting in `noTables` the range DATA_DESTROY reported not live: when
 * the walk stopped at level w < 3 with top > ipa, the level-w entries from the one holding `ipa` up
 * to top are unassigned, so no RTT lies below them.
 */
async function destroyPrivateGranule(
  rmi: RmiPort,
  rd: number,
  host: RealmHost,
  ipa: number,
  counts: TeardownCounts,
  noTables: NoTableRange[],
): Promise<Result<number, RealmHostError>> {
  for (;;) {
    const r = await rmi.dataDestroy(rd, ipa);
    if (r.ok) {
      await freeDelegated(rmi, host, r.value.data);
      counts.data++;
      return ok(r.value.top);
    }
    if (r.error.status !== 'RMI_ERROR_RTT') {
      host.warn(`DATA_DESTROY ${hexAddr(ipa)}: ${rmiText(r.error)}`);
      return hostError('ENXIO', 'data_destroy', rmiText(r.error), r.error);
    }
    const top = r.error.outputs['top'] ?? 0;
    if (top > ipa) {
      // UNASSIGNED
      const w = r.error.index;
      if (w < RTT_PAGE_LEVEL) noTables.push({ start: alignDown(ipa, mapSizeBytes(w)), end: top, level: w });
      return ok(top);
    }
    // ASSIGNED: ipa is mapped as a block, so split it one level down and retry.
    const rtt = await allocDelegated(rmi, host);
    if (rtt === undefined) return hostError('ENOMEM', 'rtt_alloc', `no page to split the block at ${hexAddr(ipa)}`);
    const c = await realmRttCreate(rmi, rd, ipa, r.error.index + 1, rtt);
    if (!c.ok) {
      await freeDelegated(rmi, host, rtt);
      host.warn(`RTT_CREATE to split ${hexAddr(ipa)}: ${rmiText(c.error)}`);
      return hostError('ENXIO', 'rtt_create', rmiText(c.error), c.error);
    }
  }
}

/**
 * Destroys every DATA granule in [start, end) (protected IPAs), then folds what became uniform. The
 * fold skips the blocks DATA_DESTROY showed to hold no RTT (NoTableRange): KVM issues an RTT_FOLD
 * for each map(level-1) block of the range (512 per root for a 40-bit IPA) and each of those fails
 * the same way; the state and the result are the same, with calls in proportion to the RTTs.
 */
export async function realmUnmapPrivateRange(
  rmi: RmiPort,
  rd: number,
  host: RealmHost,
  startLevel: number,
  start: number,
  end: number,
  counts: TeardownCounts = newCounts(),
): Promise<Result<TeardownCounts, RealmHostError>> {
  const noTables: NoTableRange[] = [];
  let next: number;
  for (let addr = start; addr < end; addr = next) {
    const r = await destroyPrivateGranule(rmi, rd, host, addr, counts, noTables);
    if (!r.ok) return r;
    next = r.value;
  }
  const folded = await realmFoldRttLevel(rmi, rd, host, startLevel + 1, start, end, noTables);
  if (!folded.ok) return folded;
  return ok(counts);
}

/** realm_unmap_shared_range: UNMAP_UNPROTECTED every NS mapping in [start, end) (unprotected IPAs). */
export async function realmUnmapSharedRange(rmi: RmiPort, rd: number, host: RealmHost, level: number, start: number, end: number): Promise<Result<void, RealmHostError>> {
  if (level > RTT_PAGE_LEVEL) return hostError('EINVAL', 'level_bound', `no RTT level ${level}`);
  const mapSize = mapSizeBytes(level);
  let next: number;
  for (let addr = start; addr < end; addr = next) {
    const alignAddr = alignUp(addr, mapSize);
    next = alignUp(addr + 1, mapSize);
    if (alignAddr !== addr || next > end) {
      if (addr < alignAddr) next = alignAddr;
      const r = await realmUnmapSharedRange(rmi, rd, host, level + 1, addr, Math.min(next, end));
      if (!r.ok) return r;
      continue;
    }
    const r = await rmi.rttUnmapUnprotected(rd, addr, level);
    if (r.ok) {
      next = r.value.top;
      continue;
    }
    if (r.error.status !== 'RMI_ERROR_RTT') {
      host.warn(`UNMAP_UNPROTECTED ${hexAddr(addr)} level ${level}: ${rmiText(r.error)}`);
      return hostError('ENXIO', 'rtt_unmap', rmiText(r.error), r.error);
    }
    const top = r.error.outputs['top'] ?? 0;
    if (top === addr) {
      // There is a mapping here, but not a block mapping: recurse deeper.
      next = alignUp(addr + 1, mapSize);
      const deeper = await realmUnmapSharedRange(rmi, rd, host, level + 1, addr, next);
      if (!deeper.ok) return deeper;
    } else {
      next = top;
    }
  }
  return ok(undefined);
}

/** The realm as the host knows it: where its RD is and how its IPA space is laid out. */
export interface RealmLayout {
  readonly rd: number;
  readonly roots: readonly number[];
  readonly ipaBits: number;
  readonly startLevel: number;
  readonly recs: readonly number[];
}

/**
 * kvm_destroy_realm and what precedes it: REC_DESTROY and free every REC, unmap the private range
 * (DATA_DESTROY, undelegate, free) and the shared range, tear down the RTTs (seed 004), then
 * REALM_DESTROY, undelegate and free the RD and the roots. On a failure it stops where KVM would
 * (WARN and leak), returning the error.
 */
export async function realmTearDown(rmi: RmiPort, realm: RealmLayout, host: RealmHost): Promise<Result<TeardownCounts, RealmHostError>> {
  const counts = newCounts();
  for (const rec of realm.recs) {
    const r = await rmi.recDestroy(rec);
    if (!r.ok) {
      host.warn(`REC_DESTROY ${hexAddr(rec)}: ${rmiText(r.error)}`);
      return hostError('EBUSY', 'rec_destroy', rmiText(r.error), r.error);
    }
    await freeDelegated(rmi, host, rec);
    counts.recs++;
  }
  const par = 2 ** (realm.ipaBits - 1);
  const priv = await realmUnmapPrivateRange(rmi, realm.rd, host, realm.startLevel, 0, par, counts);
  if (!priv.ok) return priv;
  const shared = await realmUnmapSharedRange(rmi, realm.rd, host, Math.max(RTT_MIN_BLOCK_LEVEL, realm.startLevel), par, 2 ** realm.ipaBits);
  if (!shared.ok) return shared;
  const rtts = await realmDestroyRtts(rmi, realm.rd, host, realm.startLevel, realm.ipaBits, counts);
  if (!rtts.ok) return rtts;
  const d = await rmi.realmDestroy(realm.rd);
  if (!d.ok) {
    host.warn(`REALM_DESTROY ${hexAddr(realm.rd)}: ${rmiText(d.error)}`);
    return hostError('EBUSY', 'realm_destroy', rmiText(d.error), d.error);
  }
  await freeDelegated(rmi, host, realm.rd);
  for (const root of realm.roots) await freeDelegated(rmi, host, root);
  return ok(counts);
}

