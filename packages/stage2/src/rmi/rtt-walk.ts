/**
 * The mechanism under the RTT commands, as TF-RMM's lib/s2tt (stage2-models.md §B4, §B5): the walk
 * from the concatenated roots towards a level, `s2tt_skip_non_live_entries`, the PAR, and the
 * address validation of structure, map and entry commands (R10 rtt.c `validate_rtt_*_cmds`).
 */

import { mapSizeBytes } from '../s2tt/geometry.js';
import type { RmmState, Realm, Rtt } from './rmm-state.js';
import { RTTES_PER_RTT, RTT_MIN_BLOCK_LEVEL, RTT_PAGE_LEVEL, rtteIsLive, rtteKind, rttePa } from './rtt-entry.js';

/** Where a walk stopped: the last-level table (`g_llt`), the entry's index in it, and its level. */
export interface RttWalk {
  readonly rtt: Rtt;
  readonly index: number;
  readonly level: number;
}

/** Bytes of IPA the realm translates: 2^s2sz. */
export const realmIpaSize = (realm: Realm): number => 2 ** realm.ipaBits;
/** addr_in_par (R10 realm.h): the Protected Address Range is IPA < 2^(s2sz-1) (§B4). */
export const addrInPar = (realm: Realm, addr: number): boolean => addr < 2 ** (realm.ipaBits - 1);
/** Whether `addr` is aligned to the map size of an entry at `level`. */
export const isLevelAligned = (addr: number, level: number): boolean => addr % mapSizeBytes(level) === 0;
/** First address of the entry at `level` covering `addr`. */
export const levelAlignDown = (addr: number, level: number): number => addr - (addr % mapSizeBytes(level));

/**
 * s2tt_walk_lock_unlock: from the root RTT covering `ipa` (roots are consecutive 512-entry tables
 * at the start level), follow TABLE entries until `level` or an entry that is not a TABLE.
 * `ipa` must be below the realm's IPA size (the commands validate it first).
 */
export function rttWalk(rmm: RmmState, realm: Realm, ipa: number, level: number): RttWalk {
  let cur = realm.startLevel;
  const rootSpan = mapSizeBytes(cur) * RTTES_PER_RTT;
  let rtt = realm.roots[Math.floor(ipa / rootSpan)] as Rtt;
  let index = Math.floor(ipa / mapSizeBytes(cur)) % RTTES_PER_RTT;
  while (cur < level) {
    const e = rtt.entries[index] as number;
    if (rtteKind(e) !== 'TABLE') break;
    rtt = rmm.rtts.get(rttePa(e) / 4096) as Rtt;
    cur++;
    index = Math.floor(ipa / mapSizeBytes(cur)) % RTTES_PER_RTT;
  }
  return { rtt, index, level: cur };
}

/**
 * s2tt_skip_non_live_entries (§B5): `addr` if the entry at the walk is live, else the address of
 * the next live entry of the same table, or the end of that table.
 */
export function skipNonLive(w: RttWalk, addr: number): number {
  const e = w.rtt.entries;
  if (rtteIsLive(e[w.index] as number)) return addr;
  const size = mapSizeBytes(w.level);
  const base = addr - (addr % size);
  let i = w.index + 1;
  while (i < RTTES_PER_RTT && !rtteIsLive(e[i] as number)) i++;
  return base + (i - w.index) * size;
}

/** validate_map_addr: below the IPA size and aligned to `level`. */
export const validMapAddr = (realm: Realm, addr: number, level: number): boolean =>
  addr < realmIpaSize(realm) && isLevelAligned(addr, level);

/**
 * Address validation, §B4 (R10 rtt.c), as named failures in check order. `kind`:
 * - 'structure' (RTT_CREATE/DESTROY/FOLD): level in [sl+1, 3], addr aligned to level-1;
 * - 'map' (MAP/UNMAP_UNPROTECTED): level in [1, 3], addr aligned to level;
 * - 'entry' (READ_ENTRY): level in [sl, 3], addr aligned to level.
 * Returns the rule that fails, or undefined.
 */
export function addressFailure(
  realm: Realm,
  addr: unknown,
  level: unknown,
  kind: 'structure' | 'map' | 'entry',
): 'level_bound' | 'addr_align' | 'addr_bound' | undefined {
  const min = kind === 'structure' ? realm.startLevel + 1 : kind === 'map' ? RTT_MIN_BLOCK_LEVEL : realm.startLevel;
  if (typeof level !== 'number' || !Number.isInteger(level) || level < min || level > RTT_PAGE_LEVEL) return 'level_bound';
  const alignLevel = kind === 'structure' ? level - 1 : level;
  if (typeof addr !== 'number' || !Number.isInteger(addr) || !isLevelAligned(addr, alignLevel)) return 'addr_align';
  if (addr < 0 || addr >= realmIpaSize(realm)) return 'addr_bound';
  return undefined;
}
