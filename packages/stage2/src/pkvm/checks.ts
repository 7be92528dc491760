/**
 * Per-component precondition checks, the building blocks of every transition (as pKVM's
 * `__host_/__hyp_/__guest_check_page_state_range`, stage2-models.md §A4). Each returns a Check: a
 * thunk giving the errno the condition fails with, or undefined. Transitions list their checks in
 * the kernel's order (host, then hyp or guest: the lock order of §A1) and stop at the first failure.
 */

import type { AddressSpace } from '../address-space.js';
import type { GranuleMeta, PageState } from '../memory/granule.js';
import type { Stage2 } from '../stage2.js';
import { vmidName, type Vmid } from '../types.js';
import { findView, viewState, type ViewState } from '../views.js';
import { errnoError, type ErrnoError } from './errno.js';

export type Check = () => ErrnoError | undefined;

export function firstFailure(checks: readonly Check[]): ErrnoError | undefined {
  for (const c of checks) {
    const e = c();
    if (e !== undefined) return e;
  }
  return undefined;
}

const hex = (frame: number): string => `0x${(frame * 4096).toString(16)}`;

/** pfn_range_is_valid (§A3): inside the PA space, no overflow, nr_pages > 0. */
export const pfnRangeValid =
  (s: Stage2, pfn: number, nr: number): Check =>
  () => {
    const c = s.memory.classifyRange(pfn, nr);
    return c === 'outside'
      ? errnoError('EINVAL', 'pfn_range_invalid', `pfn range ${pfn}+${nr} is outside the physical address space`)
      : undefined;
  };

/**
 * check_range_allowed_memory (§A3): -EINVAL when the range's last page is not in the memory range
 * (memblock, or the gap between two) of its first, -EPERM if that range is not RAM. A range that
 * runs from the last RAM frame past the end of the PA range straddles too (the kernel's gap after
 * the last memblock is unbounded); one wholly beyond memory is -EPERM.
 */
export const rangeIsMemory =
  (s: Stage2, pfn: number, nr: number): Check =>
  () => {
    const c = s.memory.classifyRange(pfn, nr);
    const crossesPaEnd =
      c === 'outside' && Number.isInteger(pfn) && Number.isInteger(nr) && pfn >= 0 && nr > 0 && s.memory.regions.some((r) => r.base < pfn + nr && pfn < r.base + r.count);
    if (c === 'straddles' || crossesPaEnd)
      return errnoError('EINVAL', 'range_straddles_regions', `range at ${hex(pfn)} straddles a memory region boundary`);
    if (c !== 'ok' || s.memory.regionOf(pfn)?.kind !== 'RAM')
      return errnoError('EPERM', 'range_not_memory', `range at ${hex(pfn)} is not RAM`);
    return undefined;
  };

/** Every frame of `space`'s [base, base+n) is in one of `states`, else -EPERM naming the rule. */
export const spaceStateIs =
  (space: AddressSpace, base: number, n: number, rule: string, ...states: ViewState[]): Check =>
  () => {
    const bad = findView(space, base, n, (st) => states.includes(st));
    return bad === undefined
      ? undefined
      : errnoError(
          'EPERM',
          rule,
          `${vmidName(space.vmid)} sees ${hex(bad.start)} as ${viewState(bad.desc)}, expected ${states.join(' or ')}`,
        );
  };

/** Every granule record of [pfn, pfn+n) satisfies `pred`, else `errno` naming the rule. */
export const metaIs =
  (s: Stage2, pfn: number, n: number, errno: ErrnoError['errno'], rule: string, what: string, pred: (m: GranuleMeta) => boolean): Check =>
  () => {
    const bad = s.memory.meta.findRun(pfn, n, (m) => m !== null && pred(m));
    return bad === undefined ? undefined : errnoError(errno, rule, `granule ${hex(bad.start)}: ${what}`);
  };

export const hypStateIs = (s: Stage2, pfn: number, n: number, state: PageState, rule: string): Check =>
  metaIs(s, pfn, n, 'EPERM', rule, `HYP state is not ${state}`, (m) => m.hyp === state);

/** The address space of a VM the host operates on (pKVM: the VM handle lookup, -EINVAL if absent). */
export function guestSpace(s: Stage2, vmid: Vmid): AddressSpace | ErrnoError {
  const space = s.spaces.get(vmid);
  if (space === undefined || space.kind !== 'GUEST')
    return errnoError('EINVAL', 'no_such_vm', `no guest address space with vmid ${vmid}`);
  return space;
}

/** IPA frames [gfn, gfn+n) inside the space's IPA width (the table walker's -ERANGE). */
export const gfnRangeValid =
  (space: AddressSpace, gfn: number, n: number): Check =>
  () =>
    Number.isInteger(gfn) && Number.isInteger(n) && gfn >= 0 && n > 0 && gfn + n <= space.table.frameLimit
      ? undefined
      : errnoError('ERANGE', 'ipa_out_of_range', `IPA range ${gfn}+${n} frames is outside ${vmidName(space.vmid)}'s ${space.ipaBits}-bit IPA space`);

/**
 * The VM's pKVM kind allows the call (address-space.ts VmProtection): host_share_guest only to a
 * non-protected VM, host_donate_guest only to a protected one. pKVM makes this check in the
 * hypercall handler (hyp-main.c, on the loaded vCPU's VM) before any page check, so it comes first.
 * stage2-models.md §A5 gives no errno for the wrong kind; its one kind rule (relax_perms on a
 * protected VM) is -EPERM, and so is this: rules `vm_protected` and `vm_not_protected`.
 */
export const vmProtectionAllows =
  (space: AddressSpace, call: 'host_share_guest' | 'host_donate_guest'): Check =>
  () => {
    if (call === 'host_share_guest' && space.protection === 'PROTECTED')
      return errnoError('EPERM', 'vm_protected', `vmid ${space.vmid} is a protected VM: memory reaches it by host_donate_guest only`);
    if (call === 'host_donate_guest' && space.protection === 'NON_PROTECTED')
      return errnoError('EPERM', 'vm_not_protected', `vmid ${space.vmid} is a non-protected VM: memory reaches it by host_share_guest only`);
    return undefined;
  };
