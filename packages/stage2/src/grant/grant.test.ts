/**
 * Grants (DESIGN.md §2; stage2-models.md §C3–C4): every precondition as a ladder where each row
 * fixes one more condition and expects the next error; every refusal leaves the core unchanged.
 */
import { beforeEach, describe, expect, test } from 'vitest';
import { checkInvariants } from '../invariants.js';
import { hostShareHyp } from '../pkvm/transitions.js';
import { readEntry, tablePageCounts, translate } from '../queries.js';
import { snapshot } from '../snapshot.js';
import { destroyAddressSpace, drainTablePool, topUpTablePool } from '../spaces.js';
import type { Stage2 } from '../stage2.js';
import { addGuest, ramFrame, smallStage2 } from '../testing.js';
import { PERM_R, PERM_RW, PERM_RWX, PERM_W, VMID_HOST, vmid, type Vmid } from '../types.js';
import { viewState } from '../views.js';
import { appendGrant, createGrant, destroyGrant, mapGrant, unmapGrant, type CreateGrantArgs, type MapGrantArgs } from './grant.js';

const A = vmid(0x80);
const B = vmid(0x81);
const C = vmid(0x82);
const IPA = 0x40000; // borrower frame 1 GiB

let s: Stage2;
beforeEach(() => {
  s = smallStage2();
  addGuest(s, A, 0x100);
  addGuest(s, B, 0x200);
  addGuest(s, C, 0x300, 0); // C: an empty pool
});

const ok = { ok: true };
const refused = (r: { ok: boolean; error?: { errno: string; rule: string } }) => (r.ok ? 'ok' : `${r.error!.errno} ${r.error!.rule}`);

/** Calls `fn` and checks that a refusal changed nothing and the invariants hold either way. */
function attempt<R extends { ok: boolean }>(fn: () => R): R {
  const before = snapshot(s);
  const r = fn();
  if (!r.ok) expect(snapshot(s)).toEqual(before);
  expect(checkInvariants(s)).toEqual([]);
  return r;
}

describe('CreateGrant failure ladder', () => {
  const good = (): CreateGrantArgs => ({ owner: VMID_HOST, type: 'LEND', ranges: [{ base: ramFrame(s, 0x1000), count: 4 }], acl: [{ vmid: A, perms: PERM_RW }] });
  const ladder: [string, (a: CreateGrantArgs) => CreateGrantArgs, string][] = [
    ['owner has an address space', (a) => ({ ...a, owner: vmid(0x99) }), 'EINVAL no_such_vm'],
    ['type is SHARE, LEND or DONATE', (a) => ({ ...a, type: 'BORROW' as never }), 'EINVAL grant_type_invalid'],
    ['ACL is not empty', (a) => ({ ...a, acl: [] }), 'EINVAL acl_empty'],
    ['ACL vmids exist', (a) => ({ ...a, acl: [{ vmid: vmid(0x99), perms: PERM_R }] }), 'EINVAL acl_vmid_unknown'],
    ['ACL rights are a non-empty subset of RWX', (a) => ({ ...a, acl: [{ vmid: A, perms: 0 }] }), 'EINVAL acl_rights_invalid'],
    ['ACL rights have no unknown bits', (a) => ({ ...a, acl: [{ vmid: A, perms: 8 }] }), 'EINVAL acl_rights_invalid'],
    ['ACL has no duplicates', (a) => ({ ...a, acl: [{ vmid: A, perms: PERM_R }, { vmid: A, perms: PERM_W }] }), 'EINVAL acl_duplicate'],
    ['owner is not a borrower', (a) => ({ ...a, acl: [{ vmid: VMID_HOST, perms: PERM_R }] }), 'EINVAL acl_names_owner'],
    ['DONATE names one borrower', (a) => ({ ...a, type: 'DONATE', acl: [{ vmid: A, perms: PERM_RWX }, { vmid: B, perms: PERM_RWX }] }), 'EINVAL donate_not_single'],
    ['ranges are not empty', (a) => ({ ...a, ranges: [] }), 'EINVAL ranges_empty'],
    ['ranges are inside the owner IPA space', (a) => ({ ...a, ranges: [{ base: 2 ** 24 - 1, count: 2 }] }), 'ERANGE ipa_out_of_range'],
    ['ranges are non-empty', (a) => ({ ...a, ranges: [{ base: ramFrame(s, 0x1000), count: 0 }] }), 'ERANGE ipa_out_of_range'],
    ['ranges do not overlap', (a) => ({ ...a, ranges: [{ base: ramFrame(s, 0x1000), count: 4 }, { base: ramFrame(s, 0x1003), count: 1 }] }), 'EINVAL ranges_overlap'],
    ['owner holds every page exclusively', (a) => ({ ...a, ranges: [{ base: ramFrame(s, 0x2000), count: 1 }] }), 'EPERM owner_not_exclusive'],
  ];
  test.each(ladder)('%s', (_rule, breakIt, expected) => {
    expect(hostShareHyp(s, ramFrame(s, 0x2000)).ok).toBe(true);
    expect(refused(attempt(() => createGrant(s, breakIt(good()))))).toBe(expected);
    expect(attempt(() => createGrant(s, good()))).toMatchObject(ok);
  });

  test('a guest owner whose pool cannot split its block gets ENOMEM and nothing changes', () => {
    // C owns a 2 MiB block (donated by the host through a grant); lending one page of it needs a table.
    const g = createGrant(s, { owner: VMID_HOST, type: 'DONATE', ranges: [{ base: ramFrame(s, 0x4000), count: 512 }], acl: [{ vmid: C, perms: PERM_RWX }] });
    expect(g.ok).toBe(true);
    expect(topUpTablePool(s, C, [{ base: ramFrame(s, 0x5000), count: 1 }])).toMatchObject(ok); // one L2 table
    expect(attemptMap(g, C, [{ base: 0x200, count: 512 }])).toMatchObject(ok);
    expect(readEntry(s, C, 0x200 * 4096)).toMatchObject({ ok: true, value: { level: 2 } });
    const r = attempt(() => createGrant(s, { owner: C, type: 'LEND', ranges: [{ base: 0x200, count: 1 }], acl: [{ vmid: A, perms: PERM_R }] }));
    expect(refused(r)).toBe('ENOMEM table_pool_empty');
  });
});

function attemptMap(g: { ok: boolean; value?: { grantId: number } }, borrower: Vmid, ranges: MapGrantArgs['ranges'], perms = PERM_RWX) {
  return attempt(() => mapGrant(s, { grantId: g.value!.grantId, borrower, perms, ranges }));
}

describe('CreateGrant memory type (gunyah-rm.md §3.2) and physical runs', () => {
  test('§3.2 a NORMAL grant over MMIO or a DEVICE grant over RAM is EINVAL grant_memory_type; unspecified takes either', () => {
    const acl = [{ vmid: A, perms: PERM_RW }];
    const mmio = [{ base: 0x10, count: 1 }];
    const ram = [{ base: ramFrame(s, 0x1000), count: 2 }];
    expect(refused(attempt(() => createGrant(s, { owner: VMID_HOST, type: 'LEND', memoryType: 'NORMAL', ranges: mmio, acl })))).toBe('EINVAL grant_memory_type');
    expect(refused(attempt(() => createGrant(s, { owner: VMID_HOST, type: 'LEND', memoryType: 'DEVICE', ranges: ram, acl })))).toBe('EINVAL grant_memory_type');
    expect(attempt(() => createGrant(s, { owner: VMID_HOST, type: 'LEND', memoryType: 'DEVICE', ranges: mmio, acl }))).toMatchObject(ok);
    const g = attempt(() => createGrant(s, { owner: VMID_HOST, type: 'LEND', memoryType: 'NORMAL', ranges: ram, acl }));
    expect(g).toMatchObject({ ok: true, value: { physRuns: [{ base: ramFrame(s, 0x1000), count: 2 }] } });
    // Appends are held to the grant's type too.
    const id = g.ok ? g.value.grantId : -1;
    expect(refused(attempt(() => appendGrant(s, id, VMID_HOST, [{ base: 0x20, count: 1 }])))).toBe('EINVAL grant_memory_type');
  });

  test('physical runs merge neighbours that are physically contiguous (one per Gunyah parcel region)', () => {
    const b = ramFrame(s, 0x1000);
    const g = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: b, count: 1 }, { base: b + 1, count: 2 }, { base: b + 8, count: 1 }], acl: [{ vmid: A, perms: PERM_R }] });
    expect(g).toMatchObject({ ok: true, value: { physRuns: [{ base: b, count: 3 }, { base: b + 8, count: 1 }] } });
  });
});

describe('MapGrant failure ladder', () => {
  let id = 0;
  beforeEach(() => {
    const g = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: ramFrame(s, 0x1000), count: 4 }], acl: [{ vmid: A, perms: PERM_RW }, { vmid: C, perms: PERM_RW }] });
    id = g.ok ? g.value.grantId : -1;
    expect(mapGrant(s, { grantId: id, borrower: A, perms: PERM_R, ranges: [{ base: 0x500, count: 4 }] })).toMatchObject(ok);
    expect(unmapGrant(s, id, A)).toMatchObject(ok);
    // Something already lives at B-side IPA 0x600 for the in-use rule.
    const other = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: ramFrame(s, 0x1800), count: 1 }], acl: [{ vmid: A, perms: PERM_R }] });
    expect(mapGrant(s, { grantId: other.ok ? other.value.grantId : -1, borrower: A, perms: PERM_R, ranges: [{ base: 0x603, count: 1 }] })).toMatchObject(ok);
  });
  const good = (): MapGrantArgs => ({ grantId: id, borrower: A, perms: PERM_RW, ranges: [{ base: IPA, count: 4 }] });
  const ladder: [string, (a: MapGrantArgs) => MapGrantArgs, string][] = [
    ['grant exists', (a) => ({ ...a, grantId: 999 }), 'ENOENT no_such_grant'],
    ['borrower is in the ACL', (a) => ({ ...a, borrower: B }), 'EPERM not_in_acl'],
    ['rights are a non-empty subset of RWX', (a) => ({ ...a, perms: 0 }), 'EINVAL rights_invalid'],
    ['rights are within the ACL entry', (a) => ({ ...a, perms: PERM_RWX }), 'EPERM rights_exceed_acl'],
    ['ranges are not empty', (a) => ({ ...a, ranges: [] }), 'EINVAL ranges_empty'],
    ['ranges are inside the borrower IPA space', (a) => ({ ...a, ranges: [{ base: 2 ** 28 - 2, count: 4 }] }), 'ERANGE ipa_out_of_range'],
    ['ranges do not overlap', (a) => ({ ...a, ranges: [{ base: IPA, count: 2 }, { base: IPA + 1, count: 2 }] }), 'EINVAL ranges_overlap'],
    ['ranges cover the grant exactly', (a) => ({ ...a, ranges: [{ base: IPA, count: 3 }] }), 'EINVAL size_mismatch'],
    ['borrower IPAs are unmapped', (a) => ({ ...a, ranges: [{ base: 0x600, count: 4 }] }), 'EPERM borrower_ipa_in_use'],
    ['borrower pool covers the new tables', (a) => ({ ...a, borrower: C }), 'ENOMEM table_pool_empty'],
  ];
  test.each(ladder)('%s', (_rule, breakIt, expected) => {
    expect(refused(attempt(() => mapGrant(s, breakIt(good()))))).toBe(expected);
    expect(attempt(() => mapGrant(s, good()))).toMatchObject(ok);
    expect(refused(attempt(() => mapGrant(s, good())))).toBe('EEXIST already_mapped');
  });
});

describe('AppendGrant (MEM_APPEND, FF-A FRAG_TX)', () => {
  test('failure ladder, then an append that the map and the reclaim cover whole', () => {
    const base = ramFrame(s, 0x1000);
    const g = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base, count: 2 }], acl: [{ vmid: A, perms: PERM_RW }] });
    const id = g.ok ? g.value.grantId : -1;
    expect(hostShareHyp(s, ramFrame(s, 0x2000)).ok).toBe(true);
    expect(refused(attempt(() => appendGrant(s, 999, VMID_HOST, [{ base: base + 8, count: 1 }])))).toBe('ENOENT no_such_grant');
    expect(refused(attempt(() => appendGrant(s, id, A, [{ base: base + 8, count: 1 }])))).toBe('EPERM not_owner');
    expect(refused(attempt(() => appendGrant(s, id, VMID_HOST, [])))).toBe('EINVAL ranges_empty');
    expect(refused(attempt(() => appendGrant(s, id, VMID_HOST, [{ base: base + 8, count: 2 }, { base: base + 9, count: 1 }])))).toBe('EINVAL ranges_overlap');
    expect(refused(attempt(() => appendGrant(s, id, VMID_HOST, [{ base: base + 1, count: 1 }])))).toBe('EPERM owner_not_exclusive');
    expect(refused(attempt(() => appendGrant(s, id, VMID_HOST, [{ base: base + 8, count: 1 }, { base: ramFrame(s, 0x2000), count: 1 }])))).toBe(
      'EPERM owner_not_exclusive',
    );
    expect(attempt(() => appendGrant(s, id, VMID_HOST, [{ base: base + 8, count: 3 }]))).toEqual({ ok: true, value: { frames: 5, physRuns: [{ base, count: 2 }, { base: base + 8, count: 3 }] } });
    expect(viewState(s.host.table.lookup(base + 9).desc)).toBe('LENT');
    expect(attemptMap(g, A, [{ base: IPA, count: 5 }], PERM_RW)).toMatchObject(ok);
    expect(translate(s, A, (IPA + 3) * 4096)).toMatchObject({ ok: true, value: { pa: (base + 9) * 4096 } });
    expect(refused(attempt(() => appendGrant(s, id, VMID_HOST, [{ base: base + 20, count: 1 }])))).toBe('EBUSY grant_mapped');
    expect(attempt(() => unmapGrant(s, id, A))).toMatchObject(ok);
    expect(attempt(() => destroyGrant(s, id, VMID_HOST))).toMatchObject(ok);
    expect(translate(s, VMID_HOST, (base + 9) * 4096)).toMatchObject({ ok: true, value: { state: 'OWNED' } });
  });
});

describe('grant life cycle', () => {
  test('LEND: owner loses access, borrower maps, destroy refused while mapped, owner restored', () => {
    const base = ramFrame(s, 0x1000);
    const g = attempt(() => createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base, count: 4 }], acl: [{ vmid: A, perms: PERM_RW }, { vmid: B, perms: PERM_R }] }));
    expect(g.ok).toBe(true);
    const id = g.ok ? g.value.grantId : -1;
    expect(viewState(s.host.table.lookup(base).desc)).toBe('LENT');
    expect(translate(s, VMID_HOST, base * 4096)).toMatchObject({ ok: false, error: { errno: 'ENOENT' } });
    expect(attempt(() => mapGrant(s, { grantId: id, borrower: A, perms: PERM_RW, ranges: [{ base: IPA, count: 4 }] }))).toMatchObject(ok);
    expect(attempt(() => mapGrant(s, { grantId: id, borrower: B, perms: PERM_R, ranges: [{ base: IPA + 8, count: 2 }, { base: IPA + 20, count: 2 }] }))).toMatchObject(ok);
    expect(translate(s, B, (IPA + 21) * 4096)).toEqual({ ok: true, value: { pa: (base + 3) * 4096, level: 3, perms: PERM_R, state: 'SHARED_BORROWED' } });
    expect(refused(attempt(() => destroyGrant(s, id, A)))).toBe('EPERM not_owner');
    expect(refused(attempt(() => destroyGrant(s, id, VMID_HOST)))).toBe('EBUSY grant_mapped');
    expect(refused(attempt(() => unmapGrant(s, id, C)))).toBe('ENOENT not_mapped');
    expect(attempt(() => unmapGrant(s, id, A))).toMatchObject(ok);
    expect(attempt(() => unmapGrant(s, id, B))).toMatchObject(ok);
    expect(attempt(() => destroyGrant(s, id, VMID_HOST))).toMatchObject(ok);
    expect(translate(s, VMID_HOST, base * 4096)).toMatchObject({ ok: true, value: { state: 'OWNED', perms: PERM_RWX } });
    expect(refused(attempt(() => destroyGrant(s, id, VMID_HOST)))).toBe('ENOENT no_such_grant');
  });

  test('SHARE: owner keeps access as SHARED_OWNED', () => {
    const base = ramFrame(s, 0x1000);
    const g = attempt(() => createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base, count: 1 }], acl: [{ vmid: A, perms: PERM_R }] }));
    expect(translate(s, VMID_HOST, base * 4096)).toMatchObject({ ok: true, value: { state: 'SHARED_OWNED' } });
    expect(attempt(() => destroyGrant(s, g.ok ? g.value.grantId : -1, VMID_HOST))).toMatchObject(ok);
    expect(translate(s, VMID_HOST, base * 4096)).toMatchObject({ ok: true, value: { state: 'OWNED' } });
  });

  test('DONATE: ownership moves on map and the grant is gone', () => {
    const base = ramFrame(s, 0x1000);
    const g = attempt(() => createGrant(s, { owner: VMID_HOST, type: 'DONATE', ranges: [{ base, count: 2 }], acl: [{ vmid: A, perms: PERM_RWX }] }));
    const id = g.ok ? g.value.grantId : -1;
    // Before it is mapped, a donation can still be reclaimed (Hafnium test donate_reclaim).
    expect(s.memory.meta.get(base)!.owner).toBe(VMID_HOST);
    expect(attemptMap(g, A, [{ base: IPA, count: 2 }])).toMatchObject(ok);
    expect(s.memory.meta.get(base)!.owner).toBe(A);
    expect(translate(s, A, IPA * 4096)).toMatchObject({ ok: true, value: { state: 'OWNED' } });
    expect(viewState(s.host.table.lookup(base).desc)).toBe('NOPAGE');
    expect(refused(attempt(() => destroyGrant(s, id, VMID_HOST)))).toBe('ENOENT no_such_grant');
    expect(refused(attempt(() => destroyAddressSpace(s, A)))).toBe('EBUSY space_has_mappings');
  });

  test('a guest lends its own memory onward and gets the same mapping back', () => {
    const g = createGrant(s, { owner: VMID_HOST, type: 'DONATE', ranges: [{ base: ramFrame(s, 0x1000), count: 1 }], acl: [{ vmid: A, perms: PERM_RWX }] });
    expect(attemptMap(g, A, [{ base: IPA, count: 1 }], PERM_RW)).toMatchObject(ok);
    const lend = attempt(() => createGrant(s, { owner: A, type: 'LEND', ranges: [{ base: IPA, count: 1 }], acl: [{ vmid: B, perms: PERM_R }] }));
    expect(attemptMap(lend, B, [{ base: 0x10, count: 1 }], PERM_R)).toMatchObject(ok);
    expect(translate(s, A, IPA * 4096)).toMatchObject({ ok: false, error: { errno: 'ENOENT' } });
    expect(attempt(() => unmapGrant(s, lend.ok ? lend.value.grantId : -1, B))).toMatchObject(ok);
    expect(attempt(() => destroyGrant(s, lend.ok ? lend.value.grantId : -1, A))).toMatchObject(ok);
    expect(translate(s, A, IPA * 4096)).toMatchObject({ ok: true, value: { state: 'OWNED', perms: PERM_RW, pa: ramFrame(s, 0x1000) * 4096 } });
  });
});

describe('multi-range calls are all-or-nothing', () => {
  test('a bad last range leaves the first ranges untouched (create)', () => {
    expect(hostShareHyp(s, ramFrame(s, 0x3000)).ok).toBe(true);
    const r = attempt(() =>
      createGrant(s, {
        owner: VMID_HOST,
        type: 'LEND',
        ranges: [{ base: ramFrame(s, 0x1000), count: 8 }, { base: ramFrame(s, 0x2000), count: 512 }, { base: ramFrame(s, 0x3000), count: 1 }],
        acl: [{ vmid: A, perms: PERM_RW }],
      }),
    );
    expect(refused(r)).toBe('EPERM owner_not_exclusive');
  });

  test('a bad last range leaves the first ranges untouched (map)', () => {
    const g = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base: ramFrame(s, 0x1000), count: 12 }], acl: [{ vmid: A, perms: PERM_RW }] });
    const other = createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: ramFrame(s, 0x1800), count: 1 }], acl: [{ vmid: A, perms: PERM_R }] });
    expect(attemptMap(other, A, [{ base: 0x9000, count: 1 }], PERM_R)).toMatchObject(ok);
    const r = attemptMap(g, A, [{ base: 0x100, count: 4 }, { base: 0x4000, count: 4 }, { base: 0x8fff, count: 4 }], PERM_R);
    expect(refused(r)).toBe('EPERM borrower_ipa_in_use');
  });

  test('ENOMEM on the last range changes nothing; after a top-up the same call succeeds', () => {
    const g = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base: ramFrame(s, 0x1000), count: 3 }], acl: [{ vmid: C, perms: PERM_RW }] });
    // C's pool is empty: even its first range needs L1..L3 tables.
    const r = attemptMap(g, C, [{ base: 0x100, count: 1 }, { base: 0x40000, count: 1 }, { base: 0x80000, count: 1 }], PERM_R);
    expect(refused(r)).toBe('ENOMEM table_pool_empty');
    // Three ranges in three different 1 GiB slots: 3 L2 + 3 L3 tables.
    expect(topUpTablePool(s, C, [{ base: ramFrame(s, 0x5000), count: 5 }])).toMatchObject(ok);
    expect(refused(attemptMap(g, C, [{ base: 0x100, count: 1 }, { base: 0x40000, count: 1 }, { base: 0x80000, count: 1 }], PERM_R))).toBe('ENOMEM table_pool_empty');
    expect(topUpTablePool(s, C, [{ base: ramFrame(s, 0x5005), count: 1 }])).toMatchObject(ok);
    expect(attemptMap(g, C, [{ base: 0x100, count: 1 }, { base: 0x40000, count: 1 }, { base: 0x80000, count: 1 }], PERM_R)).toMatchObject(ok);
    expect(tablePageCounts(s).find((c) => c.vmid === C)).toMatchObject({ tablePages: 6, poolPages: 0 });
  });
});

describe('cost follows blocks, not bytes', () => {
  test('lending a 1 GiB aligned range maps one L1 block and takes no table page', () => {
    const big = smallStage2({ paBits: 40, ram: [{ base: 2 ** 30, sizeBytes: 4 * 2 ** 30 }], mmio: [] });
    s = big;
    addGuest(s, A, 0x100);
    const before = tablePageCounts(s).find((c) => c.vmid === A)!;
    const base = ramFrame(s, 2 ** 18); // 2 GiB: 1 GiB aligned
    const g = createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base, count: 2 ** 18 }], acl: [{ vmid: A, perms: PERM_RW }] });
    expect(g.ok).toBe(true);
    expect(readEntry(s, VMID_HOST, base * 4096)).toMatchObject({ ok: true, value: { level: 1, state: 'LENT' } });
    expect(mapGrant(s, { grantId: g.ok ? g.value.grantId : -1, borrower: A, perms: PERM_RW, ranges: [{ base: 2 ** 18, count: 2 ** 18 }] })).toMatchObject(ok);
    expect(readEntry(s, A, 2 ** 30)).toMatchObject({ ok: true, value: { level: 1, state: 'SHARED_BORROWED', sizeBytes: 2 ** 30 } });
    expect(tablePageCounts(s).find((c) => c.vmid === A)).toEqual(before);
    expect(checkInvariants(s)).toEqual([]);
  });

  test('drain returns unused pool pages to the host', () => {
    const r = drainTablePool(s, A, 5);
    expect(r).toEqual({ ok: true, value: { returnedPages: 5, poolPages: 11 } });
    expect(checkInvariants(s)).toEqual([]);
  });
});
