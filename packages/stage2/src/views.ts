/**
 * How one component sees its memory: the pKVM page state of each frame of its address space,
 * read from its stage-2 entries (software bits of valid leaves, §A2), extended with LENT for an
 * owner whose granule is lent or donated away and not yet taken (Hafnium's INVALID mode, §C3).
 *
 * HOST is identity-mapped, so its view of a PA is its entry at IPA = PA. HYP's view is the `hyp`
 * field of the granule record (memory/granule.ts).
 */

import type { AddressSpace } from './address-space.js';
import type { MemoryKind, PageState } from './memory/granule.js';
import {
  DESC_INVALID,
  descIsDevice,
  descIsLent,
  descOutputFrame,
  descPerms,
  descState,
  leafDesc,
  type Descriptor,
  type LeafAttrs,
} from './s2tt/descriptor.js';
import type { LeafRewrite, LeafVisit } from './s2tt/translation-table.js';
import { PERM_RW, PERM_RWX, type Perms } from './types.js';

export type ViewState = PageState | 'LENT';

export const viewState = (d: Descriptor): ViewState => (descIsLent(d) ? 'LENT' : descState(d));

/** The first run of [base, base+count) whose entry fails `accept`, or undefined. */
export function findView(
  space: AddressSpace,
  base: number,
  count: number,
  accept: (state: ViewState, v: LeafVisit) => boolean,
): LeafVisit | undefined {
  let bad: LeafVisit | undefined;
  space.table.leafRuns(base, count, (v) => {
    if (accept(viewState(v.desc), v)) return true;
    bad = v;
    return false;
  });
  return bad;
}

/** Whether every frame of the range is in one of `states`. */
export const viewIs = (space: AddressSpace, base: number, count: number, ...states: ViewState[]): boolean =>
  findView(space, base, count, (st) => states.includes(st)) === undefined;

/** The host's default access to a frame it owns (§A3: PKVM_HOST_MEM_PROT / PKVM_HOST_MMIO_PROT). */
export const hostPerms = (kind: MemoryKind): Perms => (kind === 'RAM' ? PERM_RWX : PERM_RW);

/**
 * Rewrite that gives the host identity access at `state` with its default permissions, or takes
 * access away (NOPAGE). Identity mapping: output frame = input frame.
 */
export function hostAccess(state: PageState, kind: MemoryKind): LeafRewrite {
  if (state === 'NOPAGE') return () => DESC_INVALID;
  const attrs: LeafAttrs = { perms: hostPerms(kind), state, device: kind === 'MMIO' };
  return (_d, start, level) => leafDesc(start, level, attrs);
}

/** Rewrite that keeps each leaf's output and access and changes only its page state. */
export const withState =
  (state: Exclude<PageState, 'NOPAGE'>): LeafRewrite =>
  (d, _start, level) =>
    leafDesc(descOutputFrame(d), level, { perms: descPerms(d), state, device: descIsDevice(d) });

/** Rewrite that maps [ipa, ...) to consecutive frames from `pa` with `attrs`. */
export const mapTo =
  (ipaBase: number, paBase: number, attrs: LeafAttrs): LeafRewrite =>
  (_d, start, level) =>
    leafDesc(paBase + (start - ipaBase), level, attrs);

export const unmap: LeafRewrite = () => DESC_INVALID;
