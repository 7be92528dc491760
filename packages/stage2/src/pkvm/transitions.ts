/**
 * Every pKVM ownership transition (stage2-models.md §A5, newest tree L-new), each written as its
 * check list in the kernel's order followed by one Plan (plan.ts). A failed check changes nothing.
 *
 *   call                     host (H)           hyp (Y)            guest (G)
 *   host_share_hyp           OWNED → S_OWNED    NOPAGE → S_BORROW
 *   host_unshare_hyp         S_OWNED → OWNED    S_BORROW → NOPAGE  (-EBUSY while pinned)
 *   host_donate_hyp          OWNED → NOPAGE     NOPAGE → OWNED
 *   hyp_donate_host          NOPAGE → OWNED     OWNED → NOPAGE
 *   hyp_pin/unpin_shared_mem (S_OWNED, S_BORROW) refcount ±1
 *   host_share/unshare_ffa   OWNED ↔ S_OWNED    unchanged
 *   host_share_guest         OWNED/S_OWNED → S_OWNED, count+1        NOPAGE → S_BORROW
 *   host_unshare_guest       count-1, → OWNED at 0                   S_BORROW → NOPAGE
 *   host_donate_guest        OWNED → NOPAGE                          NOPAGE → OWNED
 *   guest_share_host         NOPAGE → S_BORROW                       OWNED → S_OWNED
 *   host_reclaim_page_guest  → OWNED                                 OWNED/S_OWNED → NOPAGE
 *
 * Not modelled: the lazy host idmap (the host is mapped eagerly at boot), vCPU memcaches (each
 * guest's table pages come from its address-space pool), POISON and force-reclaim, protected-VM
 * permission relaxing. hypmesh additions, marked where they occur: hyp_donate_host refuses HYP
 * granules that back table pages or RMM objects, and unshare_ffa refuses pages also shared elsewhere
 * (the kernel relies on the FF-A proxy's own bookkeeping for both).
 */

import type { AddressSpace } from '../address-space.js';
import { GUEST_SHARE_COUNT_MAX, PIN_COUNT_MAX, metaUpdate, withMeta } from '../memory/granule.js';
import { commit, plan, type MetaStep, type PlanSteps, type TableStep } from '../plan.js';
import { OK, err, type Result } from '../result.js';
import { descIsValid, descOutputFrame, descState } from '../s2tt/descriptor.js';
import { framesPerEntry } from '../s2tt/geometry.js';
import type { Stage2 } from '../stage2.js';
import { PERM_RWX, VMID_HOST, VMID_HYP, permsWithin, type Perms, type Vmid } from '../types.js';
import { hostAccess, mapTo, unmap, withState } from '../views.js';
import {
  firstFailure,
  gfnRangeValid,
  guestSpace,
  vmProtectionAllows,
  hypStateIs,
  metaIs,
  pfnRangeValid,
  rangeIsMemory,
  spaceStateIs,
  type Check,
} from './checks.js';
import { errnoError, type ErrnoError } from './errno.js';

/** Pages in an L2 block: the only multi-page size host_share_guest accepts (§A5). */
export const GUEST_SHARE_BLOCK_PAGES = 512;

type Outcome = Result<void, ErrnoError>;

function apply(s: Stage2, checks: readonly Check[], steps: () => PlanSteps): Outcome {
  const failed = firstFailure(checks);
  if (failed !== undefined) return err(failed);
  const p = plan(steps());
  if (!p.ok) return p;
  commit(s, p.value);
  return OK;
}

const hostStep = (s: Stage2, pfn: number, nr: number, rewrite: TableStep['rewrite']): TableStep => ({
  space: s.host,
  base: pfn,
  count: nr,
  rewrite,
});

/** PA frame the guest maps at `gfn`; only called once a check has proved the leaf valid. */
const leafFrame = (guest: AddressSpace, gfn: number): number => descOutputFrame(guest.table.lookup(gfn).desc);

const metaStep = (pfn: number, nr: number, update: MetaStep['update']): MetaStep => ({ base: pfn, count: nr, update });

/**
 * pfn_range_is_valid, then the check_range_allowed_memory that opens every
 * __host_check_page_state_range (§A3): only the calls whose §A5 row says "pfn range valid" (donate
 * to and from hyp, FF-A, share_guest) have the first. The others (share/unshare_hyp, pin,
 * donate_guest) use `rangeIsMemory` alone, so a pfn beyond the PA range is -EPERM there.
 */
const hostRange = (s: Stage2, pfn: number, nr: number): Check[] => [pfnRangeValid(s, pfn, nr), rangeIsMemory(s, pfn, nr)];

// --- host ↔ hyp -------------------------------------------------------------------------------

// Rewrites and record updates of share/unshare, built once rather than per call (hot paths).
const toSharedOwned = withState('SHARED_OWNED');
const toOwned = withState('OWNED');
const hypToSharedBorrowed = metaUpdate({ hyp: 'SHARED_BORROWED' });
const hypToNopage = metaUpdate({ hyp: 'NOPAGE' });

/**
 * __pkvm_host_share_hyp: H OWNED → SHARED_OWNED, Y NOPAGE → SHARED_BORROWED (§A5). No pfn-range
 * check: only the host state check's allowed-memory test, so a pfn beyond the PA range is -EPERM.
 */
export const hostShareHyp = (s: Stage2, pfn: number): Outcome =>
  apply(s, [rangeIsMemory(s, pfn, 1), spaceStateIs(s.host, pfn, 1, 'host_not_owned', 'OWNED'), hypStateIs(s, pfn, 1, 'NOPAGE', 'hyp_not_nopage')], () => ({
    tables: [hostStep(s, pfn, 1, toSharedOwned)],
    meta: [metaStep(pfn, 1, hypToSharedBorrowed)],
  }));

/** __pkvm_host_unshare_hyp: the reverse; -EBUSY while HYP holds a pin (§A5, §A6). No pfn-range check. */
export const hostUnshareHyp = (s: Stage2, pfn: number): Outcome =>
  apply(
    s,
    [
      rangeIsMemory(s, pfn, 1),
      spaceStateIs(s.host, pfn, 1, 'host_not_shared_owned', 'SHARED_OWNED'),
      hypStateIs(s, pfn, 1, 'SHARED_BORROWED', 'hyp_not_shared_borrowed'),
      metaIs(s, pfn, 1, 'EBUSY', 'hyp_pinned', 'pinned by HYP', (m) => m.pins === 0),
    ],
    () => ({
      tables: [hostStep(s, pfn, 1, toOwned)],
      meta: [metaStep(pfn, 1, hypToNopage)],
    }),
  );

/** __pkvm_host_donate_hyp: H OWNED → NOPAGE, Y NOPAGE → OWNED; ownership moves to HYP (§A5). */
export const hostDonateHyp = (s: Stage2, pfn: number, nr: number): Outcome =>
  apply(s, hostDonateHypChecks(s, pfn, nr), () => hostDonateHypSteps(s, pfn, nr));

export const hostDonateHypChecks = (s: Stage2, pfn: number, nr: number): Check[] => [
  ...hostRange(s, pfn, nr),
  spaceStateIs(s.host, pfn, nr, 'host_not_owned', 'OWNED'),
  hypStateIs(s, pfn, nr, 'NOPAGE', 'hyp_not_nopage'),
];

export const hostDonateHypSteps = (s: Stage2, pfn: number, nr: number): PlanSteps => ({
  tables: [hostStep(s, pfn, nr, unmap)],
  meta: [metaStep(pfn, nr, toHypOwned)],
});

/** The record changes of host_donate_hyp and hyp_donate_host, each memoised per record (every top-up and teardown). */
const toHypOwned = metaUpdate({ owner: VMID_HYP, hyp: 'OWNED', hypUse: 'NONE' });
const toHostOwned = metaUpdate({ owner: VMID_HOST, hyp: 'NOPAGE', hypUse: 'NONE' });

/**
 * __pkvm_hyp_donate_host: Y OWNED → NOPAGE, H NOPAGE → OWNED with the RWX idmap restored (§A5).
 * Order: pfn range valid (-EINVAL), then HYP's ownership (-EPERM), and only then the host check,
 * which opens with the allowed-memory test: a range over [non-memory | HYP page] is -EPERM (the
 * non-memory page is not HYP's), never the straddle's -EINVAL.
 */
export const hypDonateHost = (s: Stage2, pfn: number, nr: number): Outcome =>
  apply(
    s,
    [
      pfnRangeValid(s, pfn, nr),
      hypStateIs(s, pfn, nr, 'OWNED', 'hyp_not_owned'),
      rangeIsMemory(s, pfn, nr),
      spaceStateIs(s.host, pfn, nr, 'host_not_nopage', 'NOPAGE'),
      // hypmesh: a granule backing a stage-2 table, a table-page pool or an RMM object is in use.
      metaIs(s, pfn, nr, 'EBUSY', 'hyp_page_in_use', 'backs a stage-2 table or pool', (m) => m.hypUse === 'NONE' && m.rmi === 'NS'),
    ],
    () => hypDonateHostSteps(s, pfn, nr),
  );

export const hypDonateHostSteps = (s: Stage2, pfn: number, nr: number): PlanSteps => ({
  tables: [hostStep(s, pfn, nr, hostAccess('OWNED', 'RAM'))],
  meta: [metaStep(pfn, nr, toHostOwned)],
});

/** hyp_pin_shared_mem: refcount+1 on host-shared pages (§A5, u16 refcount §A6). No pfn-range check. */
export const hypPinSharedMem = (s: Stage2, pfn: number, nr: number): Outcome =>
  apply(
    s,
    [
      rangeIsMemory(s, pfn, nr),
      spaceStateIs(s.host, pfn, nr, 'host_not_shared_owned', 'SHARED_OWNED'),
      hypStateIs(s, pfn, nr, 'SHARED_BORROWED', 'hyp_not_shared_borrowed'),
      metaIs(s, pfn, nr, 'EBUSY', 'pin_count_max', `pinned ${PIN_COUNT_MAX} times`, (m) => m.pins < PIN_COUNT_MAX),
    ],
    () => ({ meta: [metaStep(pfn, nr, (m) => withMeta(m, { pins: m.pins + 1 }))] }),
  );

/**
 * hyp_unpin_shared_mem: refcount-1. §A5 lists no precondition (the kernel WARNs on underflow); every
 * refusal here is hypmesh's, the range checks included (an unpin outside memory pins nothing).
 */
export const hypUnpinSharedMem = (s: Stage2, pfn: number, nr: number): Outcome =>
  apply(
    s,
    [...hostRange(s, pfn, nr), metaIs(s, pfn, nr, 'EINVAL', 'not_pinned', 'not pinned by HYP', (m) => m.pins > 0)],
    () => ({ meta: [metaStep(pfn, nr, (m) => withMeta(m, { pins: m.pins - 1 }))] }),
  );

// --- host FF-A ---------------------------------------------------------------------------------

/** __pkvm_host_share_ffa: H OWNED → SHARED_OWNED; the hyp side is unchanged (§A5). */
export const hostShareFfa = (s: Stage2, pfn: number, nr: number): Outcome =>
  apply(s, [...hostRange(s, pfn, nr), spaceStateIs(s.host, pfn, nr, 'host_not_owned', 'OWNED')], () => ({
    tables: [hostStep(s, pfn, nr, withState('SHARED_OWNED'))],
  }));

/** __pkvm_host_unshare_ffa: H SHARED_OWNED → OWNED (§A5). */
export const hostUnshareFfa = (s: Stage2, pfn: number, nr: number): Outcome =>
  apply(
    s,
    [
      ...hostRange(s, pfn, nr),
      spaceStateIs(s.host, pfn, nr, 'host_not_shared_owned', 'SHARED_OWNED'),
      // hypmesh: not the share of a HYP, guest or grant sharing (the FF-A proxy's bookkeeping in Linux).
      metaIs(s, pfn, nr, 'EPERM', 'shared_elsewhere', 'also shared with HYP or a guest', (m) => m.hyp === 'NOPAGE' && m.guestShares === 0),
      () =>
        s.memory.grantOf.findRun(pfn, nr, (g) => g === 0) === undefined
          ? undefined
          : errnoError('EPERM', 'shared_elsewhere', 'range is shared through a grant'),
    ],
    () => ({ tables: [hostStep(s, pfn, nr, withState('OWNED'))] }),
  );

// --- host ↔ guest ------------------------------------------------------------------------------

/** nr == 1, or one L2 block with PA and IPA both block-aligned (§A5), else -EINVAL. */
const guestShareSize =
  (pfn: number, gfn: number, nr: number): Check =>
  () =>
    nr === 1 || (nr === GUEST_SHARE_BLOCK_PAGES && pfn % nr === 0 && gfn % nr === 0)
      ? undefined
      : errnoError('EINVAL', 'share_size_invalid', `nr_pages must be 1 or an aligned ${GUEST_SHARE_BLOCK_PAGES}-page block, got ${nr}`);

/** __pkvm_host_share_guest: host page (or 2 MiB block) mapped in a non-protected guest (§A5). */
export function hostShareGuest(s: Stage2, vmid: Vmid, pfn: number, gfn: number, nr: number, prot: Perms): Outcome {
  const guest = guestSpace(s, vmid);
  if (!('table' in guest)) return err(guest);
  return apply(
    s,
    [
      vmProtectionAllows(guest, 'host_share_guest'),
      () => (Number.isInteger(prot) && permsWithin(prot, PERM_RWX) ? undefined : errnoError('EINVAL', 'prot_invalid', `prot ${prot} is not within RWX`)),
      pfnRangeValid(s, pfn, nr),
      guestShareSize(pfn, gfn, nr),
      rangeIsMemory(s, pfn, nr),
      // The guest walk's range (hypmesh's ERANGE) belongs to the guest check, after the host's.
      gfnRangeValid(guest, gfn, nr),
      spaceStateIs(guest, gfn, nr, 'guest_not_nopage', 'NOPAGE'),
      () => {
        // Each host page OWNED, or SHARED_OWNED with a non-zero guest share count (§A5).
        let bad: ErrnoError | undefined;
        s.host.table.leafRuns(pfn, nr, (v) => {
          const st = descState(v.desc);
          if (st === 'OWNED' || (st === 'SHARED_OWNED' && allGuestShared(s, v.start, v.frames))) return true;
          bad = errnoError('EPERM', 'host_not_shareable', `host sees 0x${(v.start * 4096).toString(16)} as ${st}`);
          return false;
        });
        return bad;
      },
      metaIs(s, pfn, nr, 'EBUSY', 'guest_share_count_max', 'guest share count saturated', (m) => m.guestShares < GUEST_SHARE_COUNT_MAX),
    ],
    () => ({
      tables: [
        hostStep(s, pfn, nr, withState('SHARED_OWNED')),
        { space: guest, base: gfn, count: nr, rewrite: mapTo(gfn, pfn, { perms: prot, state: 'SHARED_BORROWED', device: false }) },
      ],
      meta: [metaStep(pfn, nr, (m) => withMeta(m, { guestShares: m.guestShares + 1 }))],
    }),
  );
}

const allGuestShared = (s: Stage2, pfn: number, nr: number): boolean =>
  s.memory.meta.findRun(pfn, nr, (m) => m !== null && m.guestShares > 0) === undefined;

/** The guest leaf at `gfn`: -ENOENT if invalid, -E2BIG if its size is not `frames` (§A5). */
const guestLeafIs =
  (guest: AddressSpace, gfn: number, frames: number): Check =>
  () => {
    const leaf = guest.table.lookup(gfn);
    if (!descIsValid(leaf.desc)) return errnoError('ENOENT', 'guest_leaf_invalid', `nothing mapped at guest frame ${gfn}`);
    if (framesPerEntry(leaf.level) !== frames)
      return errnoError('E2BIG', 'guest_leaf_size', `guest leaf at frame ${gfn} is a level-${leaf.level} entry, not ${frames} page(s)`);
    return undefined;
  };

/** __pkvm_host_unshare_guest: guest unmapped, count-1, host back to OWNED at zero (§A5). */
export function hostUnshareGuest(s: Stage2, vmid: Vmid, gfn: number, nr: number): Outcome {
  const guest = guestSpace(s, vmid);
  if (!('table' in guest)) return err(guest);
  const pfn = (): number => leafFrame(guest, gfn);
  return apply(
    s,
    [
      () =>
        nr === 1 || (nr === GUEST_SHARE_BLOCK_PAGES && gfn % nr === 0)
          ? undefined
          : errnoError('EINVAL', 'share_size_invalid', `nr_pages must be 1 or an aligned ${GUEST_SHARE_BLOCK_PAGES}-page block, got ${nr}`),
      gfnRangeValid(guest, gfn, nr),
      guestLeafIs(guest, gfn, nr),
      spaceStateIs(guest, gfn, nr, 'guest_not_shared_borrowed', 'SHARED_BORROWED'),
      () => spaceStateIs(s.host, pfn(), nr, 'host_not_shared_owned', 'SHARED_OWNED')(),
      () => metaIs(s, pfn(), nr, 'EINVAL', 'guest_share_count_zero', 'not shared with any guest', (m) => m.guestShares > 0)(),
    ],
    () => {
      // Pages whose count drops to zero go back to OWNED in the host.
      const lastShare: TableStep[] = [];
      s.memory.meta.runs(pfn(), nr, (start, frames, m) => {
        if (m!.guestShares === 1) lastShare.push(hostStep(s, start, frames, withState('OWNED')));
      });
      return {
        tables: [{ space: guest, base: gfn, count: nr, rewrite: unmap }, ...lastShare],
        meta: [metaStep(pfn(), nr, (m) => withMeta(m, { guestShares: m.guestShares - 1 }))],
      };
    },
  );
}

/**
 * __pkvm_host_donate_guest: H OWNED → NOPAGE, G NOPAGE → OWNED mapped RWX (§A5). No pfn-range
 * check: the host check (allowed memory, then OWNED) comes first, then the guest's (lock order).
 */
export function hostDonateGuest(s: Stage2, vmid: Vmid, pfn: number, gfn: number): Outcome {
  const guest = guestSpace(s, vmid);
  if (!('table' in guest)) return err(guest);
  return apply(
    s,
    [
      vmProtectionAllows(guest, 'host_donate_guest'),
      rangeIsMemory(s, pfn, 1),
      spaceStateIs(s.host, pfn, 1, 'host_not_owned', 'OWNED'),
      gfnRangeValid(guest, gfn, 1),
      spaceStateIs(guest, gfn, 1, 'guest_not_nopage', 'NOPAGE'),
    ],
    () => ({
      tables: [hostStep(s, pfn, 1, unmap), { space: guest, base: gfn, count: 1, rewrite: mapTo(gfn, pfn, { perms: PERM_RWX, state: 'OWNED', device: false }) }],
      meta: [metaStep(pfn, 1, (m) => withMeta(m, { owner: vmid }))],
    }),
  );
}

/** __pkvm_guest_share_host: G OWNED → SHARED_OWNED, H NOPAGE → SHARED_BORROWED (§A5). */
export function guestShareHost(s: Stage2, vmid: Vmid, gfn: number): Outcome {
  const guest = guestSpace(s, vmid);
  if (!('table' in guest)) return err(guest);
  const pfn = (): number => leafFrame(guest, gfn);
  return apply(
    s,
    [
      gfnRangeValid(guest, gfn, 1),
      guestLeafIs(guest, gfn, 1),
      spaceStateIs(guest, gfn, 1, 'guest_not_owned', 'OWNED'),
      () => spaceStateIs(s.host, pfn(), 1, 'host_not_nopage', 'NOPAGE')(),
    ],
    () => ({
      tables: [
        { space: guest, base: gfn, count: 1, rewrite: withState('SHARED_OWNED') },
        hostStep(s, pfn(), 1, hostAccess('SHARED_BORROWED', 'RAM')),
      ],
    }),
  );
}

/** __pkvm_host_reclaim_page_guest: teardown takes an OWNED or SHARED_OWNED guest page back (§A5). */
export function hostReclaimPageGuest(s: Stage2, vmid: Vmid, gfn: number): Outcome {
  const guest = guestSpace(s, vmid);
  if (!('table' in guest)) return err(guest);
  const pfn = (): number => leafFrame(guest, gfn);
  return apply(
    s,
    [gfnRangeValid(guest, gfn, 1), guestLeafIs(guest, gfn, 1), spaceStateIs(guest, gfn, 1, 'guest_not_owned', 'OWNED', 'SHARED_OWNED')],
    () => ({
      tables: [{ space: guest, base: gfn, count: 1, rewrite: unmap }, hostStep(s, pfn(), 1, hostAccess('OWNED', 'RAM'))],
      meta: [metaStep(pfn(), 1, (m) => withMeta(m, { owner: VMID_HOST }))],
    }),
  );
}
