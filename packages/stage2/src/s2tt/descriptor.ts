/**
 * Stage-2 descriptors of the pKVM-style address spaces (HOST, RM, guests), encoded in one number
 * below 2^53 so a table is a Float64Array of 512 entries.
 *
 *   bits [1:0]  type: 0 invalid, 1 block (L1/L2), 3 table (L0-L2) or page (L3), as the architecture
 *   bits [4:2]  access: R, W, X
 *   bits [6:5]  pKVM page state of a valid leaf (§A2 newest values): 0 OWNED, 1 SHARED_OWNED,
 *               2 SHARED_BORROWED. An invalid entry is NOPAGE.
 *   bit  7      device memory (MMIO attributes)
 *   bit  8      LENT (invalid entries only): the owner lent the granule away and keeps its output
 *               address, as Hafnium's INVALID mode (owner without access, §C3)
 *   bits 12+    output frame number (the PA >> 12; for a table entry, the table granule)
 *
 * Zero is an invalid entry with no annotation: nothing mapped, NOPAGE.
 */

import type { PageState } from '../memory/granule.js';
import { assert } from '../result.js';
import type { Perms } from '../types.js';

export type Descriptor = number;

export const DESC_INVALID = 0;
const TYPE_MASK = 0b11;
const TYPE_BLOCK = 0b01;
const TYPE_TABLE_OR_PAGE = 0b11;
const PERM_SHIFT = 2;
const STATE_SHIFT = 5;
const DEVICE_BIT = 1 << 7;
const LENT_BIT = 1 << 8;
/** Output frames sit above the 12 attribute bits: descriptor = frame * OA_UNIT + attributes. */
export const OA_UNIT = 4096;

const STATE_CODES: readonly PageState[] = ['OWNED', 'SHARED_OWNED', 'SHARED_BORROWED'];

export interface LeafAttrs {
  readonly perms: Perms;
  readonly state: Exclude<PageState, 'NOPAGE'>;
  readonly device: boolean;
}

/**
 * The 12 attribute bits. A descriptor is a non-negative integer below 2^53, and `&` truncates it
 * modulo 2^32 (a multiple of OA_UNIT), so this equals `d % OA_UNIT` without a float modulo, which
 * V8 compiles to a call to fmod and which every walk step pays for.
 */
const low = (d: Descriptor): number => d & (OA_UNIT - 1);

export const descOutputFrame = (d: Descriptor): number => Math.floor(d / OA_UNIT);
export const descIsValid = (d: Descriptor): boolean => (low(d) & 1) === 1;
/** A table entry; only meaningful at levels 0-2. */
export const descIsTable = (d: Descriptor, level: number): boolean => level < 3 && (low(d) & TYPE_MASK) === TYPE_TABLE_OR_PAGE;
export const descIsLeaf = (d: Descriptor, level: number): boolean => descIsValid(d) && !descIsTable(d, level);
export const descIsLent = (d: Descriptor): boolean => !descIsValid(d) && (low(d) & LENT_BIT) !== 0;
export const descPerms = (d: Descriptor): Perms => (low(d) >> PERM_SHIFT) & 0b111;
export const descIsDevice = (d: Descriptor): boolean => (low(d) & DEVICE_BIT) !== 0;
export const descState = (d: Descriptor): PageState =>
  descIsValid(d) ? (STATE_CODES[(low(d) >> STATE_SHIFT) & 0b11] ?? 'NOPAGE') : 'NOPAGE';

/** A valid leaf at `level` mapping `frame` with `attrs`. */
export function leafDesc(frame: number, level: number, attrs: LeafAttrs): Descriptor {
  const type = level === 3 ? TYPE_TABLE_OR_PAGE : TYPE_BLOCK;
  const bits = type | (attrs.perms << PERM_SHIFT) | (stateCode(attrs.state) << STATE_SHIFT) | (attrs.device ? DEVICE_BIT : 0);
  return frame * OA_UNIT + bits;
}

/** STATE_CODES.indexOf without the search (leafDesc runs on every rewritten entry). */
function stateCode(state: LeafAttrs['state']): number {
  if (state === 'OWNED') return 0;
  if (state === 'SHARED_OWNED') return 1;
  assert(state === 'SHARED_BORROWED', 'a valid leaf is OWNED, SHARED_OWNED or SHARED_BORROWED');
  return 2;
}

export const tableDesc = (tableFrame: number): Descriptor => tableFrame * OA_UNIT + TYPE_TABLE_OR_PAGE;

/**
 * An invalid entry that remembers the owner's mapping of a lent granule (or block): output frame,
 * access and attributes stay so that reclaim restores exactly what the owner had.
 */
export const lentDesc = (d: Descriptor): Descriptor =>
  descOutputFrame(d) * OA_UNIT + LENT_BIT + (descPerms(d) << PERM_SHIFT) + (descIsDevice(d) ? DEVICE_BIT : 0);

/** The owner's mapping restored from a lent annotation, at `level`. */
export const unlentDesc = (d: Descriptor, level: number): Descriptor =>
  leafDesc(descOutputFrame(d), level, { perms: descPerms(d), state: 'OWNED', device: descIsDevice(d) });

export const leafAttrs = (d: Descriptor): LeafAttrs => ({
  perms: descPerms(d),
  state: descState(d) as LeafAttrs['state'],
  device: descIsDevice(d),
});

/** Same descriptor with another output frame (used when a block splits or a range maps). */
export const withOutputFrame = (d: Descriptor, frame: number): Descriptor => frame * OA_UNIT + low(d);

/** Whether the descriptor carries an output frame (valid leaf, table, or lent annotation). */
export const descHasOutput = (d: Descriptor): boolean => descIsValid(d) || descIsLent(d);

/** Re-types a leaf or lent descriptor for another level (block ↔ page), keeping the rest. */
export function descAtLevel(d: Descriptor, level: number): Descriptor {
  if (!descIsValid(d)) return d;
  const l = low(d);
  return descOutputFrame(d) * OA_UNIT + ((l & ~TYPE_MASK) | (level === 3 ? TYPE_TABLE_OR_PAGE : TYPE_BLOCK));
}
