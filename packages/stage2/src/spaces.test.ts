/**
 * Address-space life cycle (pKVM __pkvm_init_vm / teardown, seed 003): every table page is a host
 * donation to HYP, and all of them come back.
 */
import { beforeEach, describe, expect, test } from 'vitest';
import { createGrant, destroyGrant } from './grant/grant.js';
import { checkInvariants } from './invariants.js';
import { hostDonateGuest, hostDonateHyp, hostReclaimPageGuest, hostShareHyp } from './pkvm/transitions.js';
import { HYP_RESERVATION_PAGES, HYP_SPACE_IPA_BITS, HYP_SPACE_POOL_PAGES } from './hyp-reservation.js';
import { ownershipCounts, tablePageCounts } from './queries.js';
import { snapshot } from './snapshot.js';
import { createAddressSpace, destroyAddressSpace, drainTablePool, topUpTablePool } from './spaces.js';
import { Stage2 } from './stage2.js';
import { SMALL_MEMORY, ramFrame, smallStage2 } from './testing.js';
import type { ErrnoError } from './pkvm/errno.js';
import type { Result } from './result.js';
import { PERM_R, VMID_HOST, VMID_HYP, VMID_RM, pfn, vmid } from './types.js';

const A = vmid(0x80);
let s: Stage2;
beforeEach(() => {
  s = smallStage2();
});

const outcome = (r: { ok: boolean; error?: { errno: string; rule: string } }): string => (r.ok ? 'ok' : `${r.error!.errno} ${r.error!.rule}`);

function attempt<R extends { ok: boolean; error?: { errno: string; rule: string } }>(fn: () => R): string {
  const before = snapshot(s);
  const r = fn();
  if (!r.ok) expect(snapshot(s)).toEqual(before);
  expect(checkInvariants(s)).toEqual([]);
  return outcome(r);
}

describe('CreateAddressSpace failure ladder', () => {
  const donor = () => [{ base: ramFrame(s, 0x100), count: 4 }];
  test.each([
    ['vmid is a 16-bit id', () => createAddressSpace(s, vmid(0x10000), 40, donor()), 'EINVAL vmid_invalid'],
    ['vmid is not HYP', () => createAddressSpace(s, VMID_HYP, 40, donor()), 'EINVAL vmid_reserved'],
    ['vmid is not the host', () => createAddressSpace(s, VMID_HOST, 40, donor()), 'EINVAL vmid_reserved'],
    ['IPA width within 32..48', () => createAddressSpace(s, A, 52, donor()), 'EINVAL ipa_bits_invalid'],
    [
      'donated ranges do not overlap',
      () => createAddressSpace(s, A, 40, [{ base: ramFrame(s, 0x100), count: 4 }, { base: ramFrame(s, 0x102), count: 1 }]),
      'EINVAL ranges_overlap',
    ],
    ['donated frames are in the PA space', () => createAddressSpace(s, A, 40, [{ base: pfn(2 ** 30), count: 1 }]), 'EINVAL pfn_range_invalid'],
    ['donated frames are RAM', () => createAddressSpace(s, A, 40, [{ base: pfn(0x10), count: 2 }]), 'EPERM range_not_memory'],
    ['donated frames are host-owned', () => createAddressSpace(s, A, 40, [{ base: ramFrame(s, 0x7), count: 2 }]), 'EPERM host_not_owned'],
    ['enough frames for the root tables', () => createAddressSpace(s, A, 40, [{ base: ramFrame(s, 0x100), count: 1 }]), 'ENOMEM root_tables_missing'],
  ])('%s', (_rule, call, expected) => {
    expect(hostShareHyp(s, ramFrame(s, 0x7)).ok).toBe(true);
    expect(attempt(call)).toBe(expected);
    expect(attempt(() => createAddressSpace(s, A, 40, donor()))).toBe('ok');
    expect(attempt(() => createAddressSpace(s, A, 40, [{ base: ramFrame(s, 0x200), count: 4 }]))).toBe('EEXIST vmid_in_use');
  });
});

describe('pools and teardown', () => {
  beforeEach(() => {
    expect(createAddressSpace(s, A, 40, [{ base: ramFrame(s, 0x100), count: 2 }]).ok).toBe(true);
  });

  test('an empty pool fails with ENOMEM; the host tops up and the retry succeeds', () => {
    expect(attempt(() => hostDonateGuest(s, A, ramFrame(s, 0x1000), 0x10))).toBe('ENOMEM table_pool_empty');
    expect(attempt(() => topUpTablePool(s, A, [{ base: ramFrame(s, 0x300), count: 2 }]))).toBe('ok');
    expect(attempt(() => hostDonateGuest(s, A, ramFrame(s, 0x1000), 0x10))).toBe('ok');
    expect(tablePageCounts(s).find((c) => c.vmid === A)).toEqual({ vmid: A, rootPages: 2, tablePages: 2, poolPages: 0 });
  });

  test.each([
    ['unknown vmid', () => topUpTablePool(s, vmid(0x99), [{ base: ramFrame(s, 0x300), count: 1 }]), 'EINVAL no_such_vm'],
    ['no ranges', () => topUpTablePool(s, A, []), 'EINVAL no_ranges'],
    ['pages already HYP-owned', () => topUpTablePool(s, A, [{ base: ramFrame(s, 0x100), count: 1 }]), 'EPERM host_not_owned'],
    ["draining the host's boot reservation", () => drainTablePool(s, VMID_HOST, 1), 'EPERM host_pool_reserved'],
    ['draining a negative count', () => drainTablePool(s, A, -1), 'EINVAL max_pages_invalid'],
    ['destroying the host', () => destroyAddressSpace(s, VMID_HOST), 'EPERM host_space_permanent'],
  ] as [string, () => Result<unknown, ErrnoError>, string][])('refused: %s', (_what, call, expected) => {
    expect(attempt(call)).toBe(expected);
  });

  test('destroy waits for reclaim and grants; then every page is the host’s again', () => {
    const hostFrames = ownershipCounts(s).byOwner.get(VMID_HOST)!;
    expect(topUpTablePool(s, A, [{ base: ramFrame(s, 0x300), count: 4 }]).ok).toBe(true);
    expect(hostDonateGuest(s, A, ramFrame(s, 0x1000), 0x10).ok).toBe(true);
    expect(attempt(() => destroyAddressSpace(s, A))).toBe('EBUSY space_has_mappings');
    expect(attempt(() => hostReclaimPageGuest(s, A, 0x10))).toBe('ok');
    const g = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: ramFrame(s, 0x2000), count: 1 }], acl: [{ vmid: A, perms: PERM_R }] });
    expect(g.ok).toBe(true);
    expect(attempt(() => destroyAddressSpace(s, A))).toBe('EBUSY space_in_grant');
    expect(attempt(() => destroyGrant(s, g.ok ? g.value.grantId : -1, VMID_HOST))).toBe('ok');
    expect(attempt(() => destroyAddressSpace(s, A))).toBe('ok');
    expect(ownershipCounts(s).byOwner.get(VMID_HOST)).toBe(hostFrames + 2); // the two root tables
    expect(s.spaces.has(A)).toBe(false);
  });
});

describe('§4.2 VM_ALLOCATE: the RM creates a guest stage-2 from HYP’s boot reservation', () => {
  const reserved = (): number => s.hypReservation.size;

  test('the RM creates from the reservation (roots + starter pool); destroy puts every page back', () => {
    const before = reserved();
    const hostFrames = ownershipCounts(s).byOwner.get(VMID_HOST)!;
    expect(attempt(() => createAddressSpace(s, A, HYP_SPACE_IPA_BITS, [], 'ANY', VMID_RM))).toBe('ok');
    expect(tablePageCounts(s).find((c) => c.vmid === A)).toEqual({ vmid: A, rootPages: 2, tablePages: 0, poolPages: HYP_SPACE_POOL_PAGES });
    expect(reserved()).toBe(before - 2 - HYP_SPACE_POOL_PAGES);
    // The starter pool covers a first mapping; a host top-up mixes host pages into the same pool.
    expect(attempt(() => hostDonateGuest(s, A, ramFrame(s, 0x1000), 0x10))).toBe('ok');
    expect(attempt(() => topUpTablePool(s, A, [{ base: ramFrame(s, 0x300), count: 3 }]))).toBe('ok');
    expect(attempt(() => destroyAddressSpace(s, A, VMID_RM))).toBe('EBUSY space_has_mappings');
    expect(attempt(() => hostReclaimPageGuest(s, A, 0x10))).toBe('ok');
    expect(attempt(() => destroyAddressSpace(s, A, VMID_RM))).toBe('ok');
    // Reserved pages went back to the reservation, donated ones to the host.
    expect(reserved()).toBe(before);
    expect(ownershipCounts(s).byOwner.get(VMID_HOST)).toBe(hostFrames);
  });

  test.each([
    ['a caller that is not a space creator', () => createAddressSpace(s, A, 40, [], 'ANY', vmid(0x81)), 'EPERM not_space_creator'],
    ['the RM donating pages', () => createAddressSpace(s, A, 40, [{ base: ramFrame(s, 0x100), count: 2 }], 'ANY', VMID_RM), 'EINVAL donation_not_expected'],
    ['the RM naming a reserved VMID', () => createAddressSpace(s, VMID_HOST, 40, [], 'ANY', VMID_RM), 'EINVAL vmid_reserved'],
    ['the RM with a bad IPA width', () => createAddressSpace(s, A, 60, [], 'ANY', VMID_RM), 'EINVAL ipa_bits_invalid'],
  ] as [string, () => Result<unknown, ErrnoError>, string][])('refused: %s', (_what, call, expected) => {
    expect(attempt(call)).toBe(expected);
  });

  test('only the creator destroys: HOST cannot destroy the RM’s space, nor the RM the host’s', () => {
    expect(createAddressSpace(s, A, 40, [], 'ANY', VMID_RM).ok).toBe(true);
    expect(attempt(() => destroyAddressSpace(s, A))).toBe('EPERM not_creator');
    const B = vmid(0x81);
    expect(createAddressSpace(s, B, 40, [{ base: ramFrame(s, 0x100), count: 2 }]).ok).toBe(true);
    expect(attempt(() => destroyAddressSpace(s, B, VMID_RM))).toBe('EPERM not_creator');
  });

  test('an empty reservation is ENOMEM hyp_reservation_empty and changes nothing', () => {
    s = new Stage2({ memory: SMALL_MEMORY, hypReservationPages: 2 + HYP_SPACE_POOL_PAGES });
    expect(attempt(() => createAddressSpace(s, A, 40, [], 'ANY', VMID_RM))).toBe('ok');
    expect(attempt(() => createAddressSpace(s, vmid(0x81), 40, [], 'ANY', VMID_RM))).toBe('ENOMEM hyp_reservation_empty');
  });

  test('the RM re-creating its own unused space adopts it; a used or host-made one is EEXIST', () => {
    expect(createAddressSpace(s, A, 40, [], 'ANY', VMID_RM).ok).toBe(true);
    const left = reserved();
    const again = createAddressSpace(s, A, 40, [], 'ANY', VMID_RM);
    expect(again).toEqual({ ok: true, value: { rootTables: 2, poolPages: HYP_SPACE_POOL_PAGES, adopted: true } });
    expect(reserved()).toBe(left);
    // A narrower request fits in the kept 40-bit space; a wider one does not.
    expect(createAddressSpace(s, A, 36, [], 'ANY', VMID_RM)).toMatchObject({ ok: true, value: { adopted: true } });
    expect(attempt(() => createAddressSpace(s, A, 44, [], 'ANY', VMID_RM))).toBe('EEXIST vmid_in_use');
    expect(hostDonateGuest(s, A, ramFrame(s, 0x1000), 0x10).ok).toBe(true);
    expect(attempt(() => createAddressSpace(s, A, 40, [], 'ANY', VMID_RM))).toBe('EEXIST vmid_in_use');
    const B = vmid(0x81);
    expect(createAddressSpace(s, B, 40, [{ base: ramFrame(s, 0x100), count: 2 }]).ok).toBe(true);
    expect(attempt(() => createAddressSpace(s, B, 40, [], 'ANY', VMID_RM))).toBe('EEXIST vmid_in_use');
  });

  test('the reservation is sized for every dynamic VMID and sits in the carve-out, HYP-owned', () => {
    expect(HYP_RESERVATION_PAGES).toBe(63 * (2 + HYP_SPACE_POOL_PAGES));
    const big = new Stage2({ memory: SMALL_MEMORY });
    expect(big.hypReservation.size).toBe(HYP_RESERVATION_PAGES);
    expect(big.hypReservationRange.base).toBe(big.hostCarveout.base);
    expect(hostDonateHyp(big, big.hypReservationRange.base, 1)).toMatchObject({ ok: false, error: { errno: 'EPERM' } });
    expect(checkInvariants(big)).toEqual([]);
  });
});
