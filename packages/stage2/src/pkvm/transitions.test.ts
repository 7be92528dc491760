/**
 * §A5 transitions: which range check each call has, and in which order (issue 7, items 14–15).
 * Each refusal is checked against a snapshot of the whole core: nothing changes.
 *
 * Memory (testing.ts SMALL_MEMORY, 36-bit PA): MMIO frames [0, 0x1000), a hole, RAM frames
 * [0x40000, 0x80000); the PA range ends at frame 2^24.
 */
import { describe, expect, test } from 'vitest';
import { checkInvariants } from '../invariants.js';
import type { Result } from '../result.js';
import { snapshot } from '../snapshot.js';
import type { Stage2 } from '../stage2.js';
import { addGuest, ramFrame, smallStage2 } from '../testing.js';
import { PERM_RW, vmid } from '../types.js';
import type { ErrnoError } from './errno.js';
import * as t from './transitions.js';

const GUEST = vmid(0x80);
/** First frame beyond the 36-bit PA range. */
const BEYOND_PA = 2 ** 24;
/** The last frame of the hole just below RAM. */
const HOLE = 0x3ffff;

/** The errno and rule of a refusal, or 0. */
const outcome = (r: Result<void, ErrnoError>): 0 | string => (r.ok ? 0 : `${r.error.errno} ${r.error.rule}`);

function core(): Stage2 {
  const s = smallStage2();
  addGuest(s, GUEST, 0x100);
  return s;
}

/** Runs a call that must be refused: returns its outcome after checking that nothing changed. */
function refused(s: Stage2, call: () => Result<void, ErrnoError>): 0 | string {
  const before = snapshot(s);
  const r = outcome(call());
  expect(snapshot(s)).toEqual(before);
  expect(checkInvariants(s)).toEqual([]);
  return r;
}

describe('§A5 range checks only where the kernel has them', () => {
  // host_share_hyp, host_unshare_hyp and hyp_pin_shared_mem have no pfn_range_is_valid: only the
  // allowed-memory test that opens __host_check_page_state_range (§A3), -EPERM outside memory.
  test.each([
    { call: 'host_share_hyp', run: (s: Stage2) => t.hostShareHyp(s, BEYOND_PA) },
    { call: 'host_unshare_hyp', run: (s: Stage2) => t.hostUnshareHyp(s, BEYOND_PA) },
    { call: 'hyp_pin_shared_mem', run: (s: Stage2) => t.hypPinSharedMem(s, BEYOND_PA, 1) },
    { call: 'host_donate_guest', run: (s: Stage2) => t.hostDonateGuest(s, GUEST, BEYOND_PA, 0x10) },
  ])('§A5 $call has no pfn-range check: a pfn beyond the PA range → EPERM range_not_memory', ({ run }) => {
    const s = core();
    expect(refused(s, () => run(s))).toBe('EPERM range_not_memory');
  });

  test('§A5 host_donate_hyp keeps its pfn-range check: a pfn beyond the PA range → EINVAL pfn_range_invalid', () => {
    const s = core();
    expect(refused(s, () => t.hostDonateHyp(s, BEYOND_PA, 1))).toBe('EINVAL pfn_range_invalid');
  });

  test('§A5 hyp_donate_host checks Y=OWNED before the straddle: [non-memory | HYP page] → EPERM hyp_not_owned', () => {
    const s = core();
    expect(t.hostDonateHyp(s, ramFrame(s), 1).ok).toBe(true);
    expect(refused(s, () => t.hypDonateHost(s, HOLE, 2))).toBe('EPERM hyp_not_owned');
    // Its own pfn-range check still comes first.
    expect(refused(s, () => t.hypDonateHost(s, BEYOND_PA, 1))).toBe('EINVAL pfn_range_invalid');
    // And the HYP page alone goes back to the host.
    expect(t.hypDonateHost(s, ramFrame(s), 1).ok).toBe(true);
    expect(checkInvariants(s)).toEqual([]);
  });

  test('§A5 host_donate_guest checks the host (lock order) before the guest: H not OWNED with an IPA out of range → EPERM host_not_owned', () => {
    const s = core();
    expect(t.hostShareHyp(s, ramFrame(s, 0x10)).ok).toBe(true);
    expect(refused(s, () => t.hostDonateGuest(s, GUEST, ramFrame(s, 0x10), 2 ** 40))).toBe('EPERM host_not_owned');
  });

  test('§A5 host_share_guest checks allowed memory before the guest walk: a hole block with an IPA out of range → EPERM range_not_memory', () => {
    const s = core();
    const holeBlock = 0x40000 - t.GUEST_SHARE_BLOCK_PAGES;
    expect(refused(s, () => t.hostShareGuest(s, GUEST, holeBlock, 2 ** 40, t.GUEST_SHARE_BLOCK_PAGES, PERM_RW))).toBe('EPERM range_not_memory');
  });
});

describe('§A3 check_range_allowed_memory', () => {
  test('§A3 a range from the last RAM frame past the end of the PA range straddles → EINVAL range_straddles_regions', () => {
    // RAM up to the end of a 32-bit PA range; the host's table carve-out sits at its end (HYP).
    const s = smallStage2({ paBits: 32, ram: [{ base: 3 * 2 ** 30, sizeBytes: 2 ** 30 }], mmio: [] });
    const last = 2 ** 20 - 1;
    expect(refused(s, () => t.hypPinSharedMem(s, last, 2))).toBe('EINVAL range_straddles_regions');
    expect(refused(s, () => t.hypPinSharedMem(s, last + 1, 1))).toBe('EPERM range_not_memory');
  });
});

describe('§A5 host_share_guest prot', () => {
  test.each([8, 0x10, 0xff, 0xffffffff])('§A5 host_share_guest prot %d outside RWX → EINVAL prot_invalid, first of its checks', (prot) => {
    const s = core();
    // Every later condition also fails (pfn beyond PA, bad size): prot comes first.
    expect(refused(s, () => t.hostShareGuest(s, GUEST, BEYOND_PA, 0, 3, prot))).toBe('EINVAL prot_invalid');
  });
});
