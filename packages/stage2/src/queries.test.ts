/** Queries: runs, never pages; an address space's map follows its entries. */
import { describe, expect, test } from 'vitest';
import { createGrant, mapGrant } from './grant/grant.js';
import { addressSpaceMap, ownershipCounts, ownershipMap } from './queries.js';
import { addGuest, ramFrame, smallStage2 } from './testing.js';
import { PERM_R, PERM_RW, VMID_HOST, vmid } from './types.js';
import { viewState } from './views.js';

const A = vmid(0x80);

describe('addressSpaceMap', () => {
  test('a lent 4 MiB + 1 page shows as one run per kind of entry, in the borrower and the owner', () => {
    const s = smallStage2();
    addGuest(s, A, 0x100);
    const base = ramFrame(s, 0x4000);
    const g = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base, count: 1025 }], acl: [{ vmid: A, perms: PERM_RW }] });
    expect(mapGrant(s, { grantId: g.ok ? g.value.grantId : -1, borrower: A, perms: PERM_R, ranges: [{ base: 0x40000, count: 1025 }] }).ok).toBe(true);
    expect(addressSpaceMap(s, A, 0, 2 ** 28)).toEqual({
      ok: true,
      value: {
        runs: [
          { base: 0x40000, count: 1024, state: 'SHARED_BORROWED', outputFrame: base, perms: PERM_R, device: false, level: 2 },
          { base: 0x40400, count: 1, state: 'SHARED_BORROWED', outputFrame: base + 1024, perms: PERM_R, device: false, level: 3 },
        ],
        next: undefined,
      },
    });
    const host = addressSpaceMap(s, VMID_HOST, base, 1025);
    expect(host.ok && host.value.runs.map((r) => [r.state, r.count])).toEqual([['LENT', 1024], ['LENT', 1]]);
    expect(addressSpaceMap(s, A, 2 ** 28, 1)).toMatchObject({ ok: false, error: { errno: 'ERANGE' } });
    expect(addressSpaceMap(s, vmid(0x99), 0, 1)).toMatchObject({ ok: false, error: { errno: 'EINVAL' } });
  });

  test('runsMax pages the answer', () => {
    const s = smallStage2();
    const r = ownershipMap(s, 0, s.memory.frameCount, 1);
    expect(r.ok && [r.value.runs.length, r.value.next !== undefined]).toEqual([1, true]);
    const m = addressSpaceMap(s, VMID_HOST, 0, 2 ** 24, 1);
    expect(m.ok && [m.value.runs.length, m.value.next]).toEqual([1, ramFrame(s)]);
  });
});

describe('ownershipCounts', () => {
  test('each space\'s states count every leaf run of its table, as a walk over every entry counts them', () => {
    const s = smallStage2();
    const B = vmid(0x81);
    addGuest(s, A, 0x100);
    addGuest(s, B, 0x200);
    const base = ramFrame(s, 0x4000);
    // A lent block plus a page (mapped by A), a share of a few pages (mapped by B), a donation.
    const lent = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base, count: 1025 }], acl: [{ vmid: A, perms: PERM_RW }] });
    const shared = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: base + 2048, count: 3 }], acl: [{ vmid: B, perms: PERM_R }] });
    const donated = createGrant(s, { owner: VMID_HOST, type: 'DONATE', ranges: [{ base: base + 4096, count: 2 }], acl: [{ vmid: B, perms: PERM_RW }] });
    if (!lent.ok || !shared.ok || !donated.ok) throw new Error('fixture grants');
    expect(mapGrant(s, { grantId: lent.value.grantId, borrower: A, perms: PERM_R, ranges: [{ base: 0x40000, count: 1025 }] }).ok).toBe(true);
    expect(mapGrant(s, { grantId: shared.value.grantId, borrower: B, perms: PERM_R, ranges: [{ base: 0x90000, count: 3 }] }).ok).toBe(true);
    const reference = new Map<number, Map<string, number>>();
    for (const sp of s.spaces.values())
      sp.table.leafRuns(0, sp.table.frameLimit, (v) => {
        const st = viewState(v.desc);
        if (st === 'NOPAGE') return;
        const m = reference.get(sp.vmid) ?? new Map<string, number>();
        reference.set(sp.vmid, m.set(st, (m.get(st) ?? 0) + v.frames));
      });
    const counts = ownershipCounts(s);
    for (const sp of s.spaces.values()) expect(counts.byState.get(sp.vmid), `vmid ${sp.vmid}`).toEqual(reference.get(sp.vmid));
    expect(counts.byState.get(A)).toEqual(new Map([['SHARED_BORROWED', 1025]]));
    expect(counts.byState.get(VMID_HOST)?.get('LENT')).toBe(1025 + 2);
  });
});
