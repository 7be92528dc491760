/** Queries: runs, never pages; an address space's map follows its entries. */
import { describe, expect, test } from 'vitest';
import { createGrant, mapGrant } from './grant/grant.js';
import { addressSpaceMap, ownershipMap } from './queries.js';
import { addGuest, ramFrame, smallStage2 } from './testing.js';
import { PERM_R, PERM_RW, VMID_HOST, vmid } from './types.js';

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
