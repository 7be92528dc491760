/**
 * The core image (image.ts): a core restored from its image has the same digest (snapshot.ts), and
 * the same further calls leave both with the same digest again (the restored radix maps and tables
 * merge, split and fold as the originals do: interned records stayed interned).
 */
import { describe, expect, test } from 'vitest';
import { createGrant, mapGrant } from './grant/grant.js';
import { coreImage, restoreCore } from './image.js';
import { checkInvariants } from './invariants.js';
import { hostDonateGuest, hostShareHyp, hostUnshareHyp } from './pkvm/transitions.js';
import { TestHost, createTestRealm, newCore } from './rmi/test-support.js';
import { snapshot } from './snapshot.js';
import type { Stage2 } from './stage2.js';
import { addGuest, ramFrame } from './testing.js';
import { PERM_RW, VMID_HOST, vmid } from './types.js';

const GUEST = vmid(0x80);
const must = (r: { ok: boolean }, what: string): void => {
  if (!r.ok) throw new Error(`${what} refused: ${JSON.stringify(r)}`);
};

/** Shares, a guest with a donated page and a mapped LEND, and a realm: every kind of state. */
function busyCore(): Stage2 {
  const s = newCore();
  for (let i = 0; i < 40; i++) must(hostShareHyp(s, ramFrame(s, 4096 + i)), 'share');
  must(hostUnshareHyp(s, ramFrame(s, 4100)), 'unshare');
  addGuest(s, GUEST, 8192);
  must(hostDonateGuest(s, GUEST, ramFrame(s, 9000), 0x10), 'donate');
  const lent = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base: ramFrame(s, 12_288), count: 600 }], acl: [{ vmid: GUEST, perms: PERM_RW }] });
  must(lent, 'lend');
  if (lent.ok) must(mapGrant(s, { grantId: lent.value.grantId, borrower: GUEST, perms: PERM_RW, ranges: [{ base: 0x4000, count: 600 }] }), 'map');
  createTestRealm(s, new TestHost(), 40, 1, 9);
  return s;
}

/** The same calls on any core: undo some shares (the radix map folds), share more, grant again. */
function moreCalls(s: Stage2): unknown[] {
  const results: unknown[] = [];
  for (let i = 0; i < 40; i++) results.push(hostUnshareHyp(s, ramFrame(s, 4096 + i)).ok);
  for (let i = 0; i < 8; i++) results.push(hostShareHyp(s, ramFrame(s, 20_000 + i)).ok);
  const g = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: ramFrame(s, 30_000), count: 2 }], acl: [{ vmid: GUEST, perms: PERM_RW }] });
  results.push(g.ok && g.value.grantId);
  return results;
}

describe('core image', () => {
  test('restored: the same digest, invariants hold, and the same calls keep the digests equal', () => {
    const s = busyCore();
    const restored = restoreCore(coreImage(s));
    expect(snapshot(restored)).toEqual(snapshot(s));
    expect(checkInvariants(restored)).toEqual([]);
    expect(moreCalls(restored)).toEqual(moreCalls(s));
    expect(snapshot(restored)).toEqual(snapshot(s));
    expect(checkInvariants(restored)).toEqual([]);
  });

  test('an image of a booted core restores to a booted core', () => {
    const s = newCore();
    expect(snapshot(restoreCore(coreImage(s)))).toEqual(snapshot(s));
  });

  test('something it could not restore exactly is refused when writing', () => {
    const s = newCore();
    (s as unknown as { extra: unknown }).extra = () => 0;
    expect(() => coreImage(s)).toThrow(/core image: function at core.extra/);
  });
});
