/**
 * Memory parcels, gunyah-rm.md §3: one named case per rule (the rule, the request, the RM error),
 * each refusal checked to change nothing in the RM or the core, then the life cycles.
 */
import { ACCEPT_FLAGS, MEM_ATTR, MEM_TYPE, NOTIFY_FLAGS, SHARE_FLAGS, linuxSglChunks, memNotifyRequest } from '@hypmesh/rm-wire';
import { Stage2, translate, vmid, VMID_HOST } from '@hypmesh/stage2';
import { beforeEach, describe, expect, test } from 'vitest';
import type { RmOutcome } from './rm-outcome.js';
import { RM_TEST_MEMORY, R, RW, RWX, acceptReq, createReq, hlosAddr, rmFixture, sgl, type RmFixture, drained, outcome } from './test-support.js';
import { DEFAULT_RM_CONFIG, VMID_HLOS, VMID_RM } from './vmid.js';
import { ResourceManager } from './resource-manager.js';
import { inProcessCore } from './in-process-core.js';

let f: RmFixture;
let A = 0;
let B = 0;
beforeEach(async () => {
  f = rmFixture();
  A = await f.vm();
  B = await f.vm();
});


const attempt = <T>(call: () => Promise<RmOutcome<T>>): Promise<RmOutcome<T>> => f.attempt(call);

const lend = (req = createReq([{ vmid: A, rights: RW }], [sgl(0x10000, 0x4000)])) => attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', req));
const handleOf = (r: RmOutcome<{ handle: number }>): number => (r.ok ? r.value.handle : -1);

describe('§3.2 MEM_SHARE / MEM_LEND / MEM_DONATE creation rules', () => {
  const acl = () => [{ vmid: A, rights: RW }];
  const cases: [string, 'MEM_LEND' | 'MEM_SHARE' | 'MEM_DONATE', () => Parameters<typeof createReq>, string][] = [
    ['mem_type is NORMAL or IO', 'MEM_LEND', () => [acl(), [sgl(0, 0x1000)], { memType: 7 }], 'ARGUMENT_INVALID mem_type_invalid'],
    ['flags are SANITIZE and APPEND only', 'MEM_LEND', () => [acl(), [sgl(0, 0x1000)], { flags: 0x10 }], 'ARGUMENT_INVALID flags_invalid'],
    ['ACL is not empty', 'MEM_LEND', () => [[], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID acl_empty'],
    ['SGL is not empty', 'MEM_LEND', () => [acl(), []], 'ARGUMENT_INVALID sgl_empty'],
    ['DONATE has exactly one ACL entry', 'MEM_DONATE', () => [[{ vmid: A, rights: RWX }, { vmid: B, rights: RWX }], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID donate_acl_not_single'],
    ['no duplicate VMIDs in the ACL', 'MEM_LEND', () => [[{ vmid: A, rights: R }, { vmid: A, rights: RW }], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID acl_duplicate_vmid'],
    ['ACL VMIDs are HLOS, RM, platform or allocated VMs', 'MEM_LEND', () => [[{ vmid: 0x99, rights: R }], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID acl_vmid_unknown'],
    ['rights are R, RX, RW or RWX (W-only rejected)', 'MEM_LEND', () => [[{ vmid: A, rights: 2 }], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID acl_rights_invalid'],
    ['rights are R, RX, RW or RWX (0 rejected)', 'MEM_LEND', () => [[{ vmid: A, rights: 0 }], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID acl_rights_invalid'],
    ['IO memory is never executable', 'MEM_LEND', () => [[{ vmid: A, rights: RWX }], [sgl(0, 0x1000)], { memType: MEM_TYPE.IO }], 'ARGUMENT_INVALID io_executable'],
    ['DONATE gives the recipient full rights', 'MEM_DONATE', () => [[{ vmid: A, rights: RW }], [sgl(0, 0x1000)]], 'DENIED donate_rights_not_full'],
    ['DONATE takes default attributes only', 'MEM_DONATE', () => [[{ vmid: A, rights: RWX }], [sgl(0, 0x1000)], { attrs: [{ attr: MEM_ATTR.CACHED, vmid: A }] }], 'ARGUMENT_INVALID donate_attrs'],
    ['SHARE: the owner is in the ACL', 'MEM_SHARE', () => [acl(), [sgl(0, 0x1000)]], 'ARGUMENT_INVALID share_owner_not_in_acl'],
    ['LEND: the owner is not in the ACL', 'MEM_LEND', () => [[{ vmid: A, rights: RW }, { vmid: VMID_HLOS, rights: RWX }], [sgl(0, 0x1000)]], 'ARGUMENT_INVALID owner_in_acl'],
    ['attrs: no duplicate VMIDs', 'MEM_LEND', () => [acl(), [sgl(0, 0x1000)], { attrs: [{ attr: 0, vmid: A }, { attr: 0, vmid: A }] }], 'ARGUMENT_INVALID attr_duplicate_vmid'],
    ['attrs: a valid attribute value', 'MEM_LEND', () => [acl(), [sgl(0, 0x1000)], { attrs: [{ attr: 9, vmid: A }] }], 'ARGUMENT_INVALID attr_invalid'],
    ['attrs: IO ⇔ DEVICE', 'MEM_LEND', () => [acl(), [sgl(0, 0x1000)], { attrs: [{ attr: MEM_ATTR.DEVICE, vmid: A }] }], 'ARGUMENT_INVALID attr_io_device'],
    ['attrs: VMIDs are in the ACL', 'MEM_LEND', () => [acl(), [sgl(0, 0x1000)], { attrs: [{ attr: 0, vmid: B }] }], 'VMID_INVALID attr_vmid_not_in_acl'],
    ['SANITIZE is not for IO', 'MEM_LEND', () => [[{ vmid: A, rights: RW }], [sgl(0, 0x1000)], { memType: MEM_TYPE.IO, flags: SHARE_FLAGS.SANITIZE }], 'ARGUMENT_INVALID sanitize_io'],
    ['SGL entries are 4 KiB aligned', 'MEM_LEND', () => [acl(), [{ base: hlosAddr(0x10), size: 0x1000n }]], 'ARGUMENT_INVALID sgl_entry_invalid'],
    ['SGL entries are below 2^44', 'MEM_LEND', () => [acl(), [{ base: 1n << 44n, size: 0x1000n }]], 'ARGUMENT_INVALID sgl_entry_invalid'],
    ["SGL entries are the owner's own memory (a hole is nobody's)", 'MEM_LEND', () => [acl(), [{ base: 0x4000_0000n, size: 0x1000n }]], 'MEM_INVALID core_owner_not_exclusive'],
    ['memory already in a parcel is not the owner’s any more', 'MEM_LEND', () => [acl(), [sgl(0x10000, 0x1000)]], 'MEM_INVALID core_owner_not_exclusive'],
    ['the ACL VMID has an address space in the hypervisor', 'MEM_LEND', () => [[{ vmid: VMID_RM, rights: R }], [sgl(0, 0x1000)]], 'VMID_INVALID core_acl_vmid_unknown'],
  ];
  test.each(cases)('%s', async (_rule, call, args, expected) => {
    expect(outcome(await lend())).toBe('OK');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, call, createReq(...args()))))).toBe(expected);
  });

  test('64 parcels per owner VM; the 65th is DENIED', async () => {
    for (let i = 0; i < 64; i++) expect(outcome(await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: R }], [sgl(i * 0x1000, 0x1000)])))).toBe('OK');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: R }], [sgl(0x80000, 0x1000)]))))).toBe('DENIED parcels_per_vm_max');
  });

  test('LEND: the owner loses access at once; SHARE keeps it', async () => {
    expect(outcome(await lend())).toBe('OK');
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(0x10000)))).toMatchObject({ ok: false, error: { errno: 'ENOENT' } });
    const share = await attempt(() => f.rm.call(VMID_HLOS, 'MEM_SHARE', createReq([{ vmid: A, rights: R }, { vmid: VMID_HLOS, rights: RWX }], [sgl(0x20000, 0x1000)])));
    expect(outcome(share)).toBe('OK');
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(0x20000)))).toMatchObject({ ok: true, value: { state: 'SHARED_OWNED' } });
  });

  test('handles count up from 0', async () => {
    expect(handleOf(await lend())).toBe(0);
    expect(handleOf(await lend(createReq([{ vmid: A, rights: R }], [sgl(0x30000, 0x1000)])))).toBe(1);
  });
});

describe('§3.3 MEM_APPEND', () => {
  test('rules in order, a failed append rolls back, DONE finalises', async () => {
    const h = handleOf(await lend(createReq([{ vmid: A, rights: RW }], [sgl(0, 0x1000)], { flags: SHARE_FLAGS.APPEND })));
    const append = (caller: number, handle: number, entries: ReturnType<typeof sgl>[], flags = 0) =>
      attempt(() => f.rm.call(caller, 'MEM_APPEND', { handle, flags, sgl: entries }));
    expect(outcome(await append(VMID_HLOS, h, []))).toBe('ARGUMENT_INVALID sgl_empty');
    expect(outcome(await append(VMID_HLOS, 77, [sgl(0x1000, 0x1000)]))).toBe('HANDLE_INVALID handle_unknown');
    expect(outcome(await append(A, h, [sgl(0x1000, 0x1000)]))).toBe('DENIED not_owner');
    // Accepting a parcel still being built is refused.
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND'))))).toBe('DENIED parcel_not_finalised');
    // The second entry is not the owner's: the whole append is refused, the first entry included.
    expect(outcome(await append(VMID_HLOS, h, [sgl(0x1000, 0x1000), { base: 0x4000_0000n, size: 0x1000n }]))).toBe('MEM_INVALID core_owner_not_exclusive');
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(0x1000)))).toMatchObject({ ok: true, value: { state: 'OWNED' } });
    expect(outcome(await append(VMID_HLOS, h, [sgl(0x1000, 0x1000)], 1))).toBe('OK');
    expect(outcome(await append(VMID_HLOS, h, [sgl(0x2000, 0x1000)]))).toBe('DENIED parcel_finalised');
    expect(f.rm.parcels.get(h)).toMatchObject({ state: 'SHARING', regions: [sgl(0, 0x1000), sgl(0x1000, 0x1000)] });
  });

  test("the Linux driver's lend of 1100 entries: 512 with APPEND, then MEM_APPEND chunks, END on the last", async () => {
    const entries = Array.from({ length: 1100 }, (_, i) => sgl(i * 0x2000, 0x1000));
    const chunks = linuxSglChunks(entries);
    expect(chunks.first.length).toBe(512);
    expect(chunks.appends.map((a) => [a.sgl.length, a.done])).toEqual([[512, false], [76, true]]);
    const first = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [...chunks.first], { flags: SHARE_FLAGS.APPEND }));
    expect(outcome(first)).toBe('OK');
    for (const a of chunks.appends) {
      expect(outcome(await f.rm.call(VMID_HLOS, 'MEM_APPEND', { handle: handleOf(first), flags: a.done ? 1 : 0, sgl: a.sgl }))).toBe('OK');
    }
    const accepted = await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(handleOf(first), 'LEND', { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.MAP_CONTIGUOUS })));
    expect(outcome(accepted)).toBe('OK');
    expect(f.rm.parcels.get(handleOf(first))?.regions.length).toBe(1100);
  });
});

describe('§3.4 MEM_ACCEPT', () => {
  let h = -1;
  beforeEach(async () => {
    h = handleOf(await lend(createReq([{ vmid: A, rights: RW }, { vmid: B, rights: R }], [sgl(0x10000, 0x2000), sgl(0x40000, 0x1000)], { label: 7 })));
  });
  const accept = (caller: number, extra: Parameters<typeof acceptReq>[2] = {}, handle = h) => attempt(() => f.rm.call(caller, 'MEM_ACCEPT', acceptReq(handle, 'LEND', extra)));

  test.each([
    ['handle exists', () => accept(A, {}, 99), 'HANDLE_INVALID handle_unknown'],
    ["mem_type is the parcel's", () => accept(A, { memType: MEM_TYPE.IO }), 'ARGUMENT_INVALID type_mismatch'],
    ["trans_type is the parcel's", () => accept(A, { transType: 2 }), 'ARGUMENT_INVALID type_mismatch'],
    ['VALIDATE_SANITIZED needs a sanitized parcel', () => accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.VALIDATE_SANITIZED }), 'VALIDATE_FAILED not_sanitized'],
    ['VALIDATE_LABEL compares the label', () => accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.VALIDATE_LABEL, label: 8 }), 'VALIDATE_FAILED label_mismatch'],
    ['VALIDATE_ACL_ATTR compares the ACL', () => accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.VALIDATE_ACL_ATTR, acl: [{ vmid: A, rights: RW }] }), 'VALIDATE_FAILED acl_attr_mismatch'],
    ['map_vmid is 0 (self)', () => accept(A, { mapVmid: A }), 'ARGUMENT_INVALID map_vmid_not_self'],
    ['MAP_OTHER is not allowed', () => accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.MAP_OTHER }), 'DENIED map_other'],
    ['the caller is in the ACL', () => accept(VMID_RM), 'VMID_INVALID not_in_acl'],
    ['the owner cannot accept its own parcel', () => accept(VMID_HLOS), 'VMID_INVALID not_in_acl'],
    ['SANITIZE needs the W right', () => accept(B, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.SANITIZE }), 'ARGUMENT_INVALID sanitize_needs_normal_w'],
    ['given IPAs match the region sizes', () => accept(A, { sgl: [{ base: 0x1_0000_0000n, size: 0x1000n }] }), 'ARGUMENT_INVALID ipa_layout_mismatch'],
    ['given IPAs are aligned', () => accept(A, { sgl: [{ base: 0x1_0000_0010n, size: 0x2000n }, { base: 0x1_1000_0000n, size: 0x1000n }] }), 'ARGUMENT_INVALID ipa_layout_mismatch'],
  ] as const)('%s', async (_rule, call, expected) => {
    expect(outcome(await call())).toBe(expected);
    expect(outcome(await accept(A))).toBe('OK');
    expect(outcome(await accept(A))).toBe('DENIED owner_or_accepted');
  });

  test('RM-chosen IPAs come back in the reply, and the borrower maps the parcel there', async () => {
    const r = await accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.MAP_CONTIGUOUS });
    expect(r).toEqual({ ok: true, value: { kind: 'rm_chosen_ipas', sgl: [{ base: 0n, size: 0x3000n }], incomplete: false } });
    expect(translate(f.s, vmid(A), 0x2000)).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x40000)), state: 'SHARED_BORROWED' } });
    const second = await accept(B);
    expect(second).toMatchObject({ ok: true, value: { sgl: [{ base: 0n }, { base: 0x2000n }] } });
  });

  test('multi-step: without DONE the IPAs are only recorded; DONE maps them', async () => {
    const given = [{ base: 0x2_0000_0000n, size: 0x2000n }, { base: 0x2_0001_0000n, size: 0x1000n }];
    expect(outcome(await accept(A, { flags: 0, sgl: given }))).toBe('OK');
    expect(translate(f.s, vmid(A), 0x2_0000_0000)).toMatchObject({ ok: false });
    expect(outcome(await accept(A, { flags: ACCEPT_FLAGS.DONE }))).toBe('OK');
    expect(translate(f.s, vmid(A), 0x2_0001_0000)).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x40000)) } });
  });

  test('RM-chosen IPAs for 600 regions come ≤ 512 per reply with INCOMPLETE, then DONE maps them', async () => {
    const entries = Array.from({ length: 600 }, (_, i) => sgl(0x100000 + i * 0x2000, 0x1000));
    const first = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], entries.slice(0, 512), { flags: SHARE_FLAGS.APPEND }));
    expect(outcome(await f.rm.call(VMID_HLOS, 'MEM_APPEND', { handle: handleOf(first), flags: 1, sgl: entries.slice(512) }))).toBe('OK');
    const step = (flags: number) => accept(A, { flags }, handleOf(first));
    const r1 = await step(0);
    expect(r1).toMatchObject({ ok: true, value: { kind: 'rm_chosen_ipas', incomplete: true } });
    expect(r1.ok && r1.value.kind === 'rm_chosen_ipas' ? r1.value.sgl.length : -1).toBe(512);
    const r2 = await step(0);
    expect(r2.ok && r2.value.kind === 'rm_chosen_ipas' ? [r2.value.sgl.length, r2.value.incomplete] : []).toEqual([88, false]);
    expect(translate(f.s, vmid(A), 0)).toMatchObject({ ok: false });
    expect(await step(ACCEPT_FLAGS.DONE)).toEqual({ ok: true, value: { kind: 'rm_chosen_ipas', sgl: [], incomplete: false } });
    expect(translate(f.s, vmid(A), 0)).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x100000)) } });
  });

  test('no room left in the IPA window is NORESOURCE', async () => {
    // A second RM needs its own core: VM_ALLOCATE makes the VM's stage-2 there (§4.2), and the
    // fixture's core already has one for this VMID, named by a parcel.
    const rm = new ResourceManager(inProcessCore(new Stage2({ memory: RM_TEST_MEMORY })), { ...DEFAULT_RM_CONFIG, ipaWindow: { base: 0x1_0000_0000n, size: 0x2000n } });
    const a = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    expect(a.ok).toBe(true);
    const p = await rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: RW }], [sgl(0x500000, 0x3000)]));
    expect(outcome(await rm.call(A, 'MEM_ACCEPT', acceptReq(handleOf(p), 'LEND')))).toBe('NORESOURCE ipa_space_exhausted');
  });

  test('a map the core refuses is MAP_FAILED and leaves nothing mapped', async () => {
    // Memory mapped in A behind the RM's back (a VMM binding it was not told about): the allocator
    // thinks the IPA free, the core refuses the map.
    const other = handleOf(await lend(createReq([{ vmid: A, rights: R }], [sgl(0x80000, 0x1000)])));
    expect(outcome(await accept(A, { sgl: [{ base: 0x3_0000_0000n, size: 0x1000n }] }, other))).toBe('OK');
    f.rm.ipas.get(A)!.free({ kind: 'accepted', handle: other });
    expect(outcome(await accept(A, { sgl: [{ base: 0x3_0000_0000n, size: 0x2000n }, { base: 0x3_0001_0000n, size: 0x1000n }] }))).toBe('MAP_FAILED core_borrower_ipa_in_use');
  });

  test('§3.4 a caller-given IPA already in use is NORESOURCE (IPA allocation), before any core call', async () => {
    const other = handleOf(await lend(createReq([{ vmid: A, rights: R }], [sgl(0x80000, 0x1000)])));
    expect(outcome(await accept(A, { sgl: [{ base: 0x3_0000_0000n, size: 0x1000n }] }, other))).toBe('OK');
    expect(outcome(await accept(A, { sgl: [{ base: 0x3_0000_0000n, size: 0x2000n }, { base: 0x3_0001_0000n, size: 0x1000n }] }))).toBe('NORESOURCE ipa_in_use');
    // Overlapping only the tail of an accepted range, and two given ranges that overlap each other.
    expect(outcome(await accept(A, { sgl: [{ base: 0x2_ffff_f000n, size: 0x2000n }, { base: 0x4_0000_0000n, size: 0x1000n }] }))).toBe('NORESOURCE ipa_in_use');
    expect(outcome(await accept(A, { sgl: [{ base: 0x5_0000_0000n, size: 0x2000n }, { base: 0x5_0000_1000n, size: 0x1000n }] }))).toBe('NORESOURCE ipa_in_use');
  });

  test('§3.4 (open RM vm_ipa.c) RM-chosen IPAs avoid memory a DONATE accept left in the guest', async () => {
    const d = handleOf(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_DONATE', createReq([{ vmid: A, rights: RWX }], [sgl(0x90000, 0x1000)]))));
    const donated = await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(d, 'DONATE')));
    expect(donated).toEqual({ ok: true, value: { kind: 'rm_chosen_ipas', sgl: [{ base: 0n, size: 0x1000n }], incomplete: false } });
    expect(f.rm.parcels.has(d)).toBe(false);
    // The donated page stays mapped in A at IPA 0, so the next RM-chosen IPA must not be 0.
    const r = await accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.MAP_CONTIGUOUS });
    expect(r).toEqual({ ok: true, value: { kind: 'rm_chosen_ipas', sgl: [{ base: 0x1000n, size: 0x3000n }], incomplete: false } });
    expect(translate(f.s, vmid(A), 0)).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x90000)), state: 'OWNED' } });
    expect(translate(f.s, vmid(A), 0x3000)).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x40000)) } });
    // A given IPA on the donated page is NORESOURCE, and nothing changes.
    const other = handleOf(await lend(createReq([{ vmid: A, rights: R }], [sgl(0x80000, 0x1000)])));
    expect(outcome(await accept(A, { sgl: [{ base: 0n, size: 0x1000n }] }, other))).toBe('NORESOURCE ipa_in_use');
  });

  test('§3.4/§3.5 (open RM vm_ipa.c) IPAs are freed on release and on reclaim of recorded ones, and reused', async () => {
    expect(await accept(A, { flags: ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.MAP_CONTIGUOUS })).toMatchObject({ ok: true, value: { sgl: [{ base: 0n }] } });
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_RELEASE', { handle: h, flags: 0 })))).toBe('OK');
    expect(f.rm.ipas.get(A)!.ranges()).toEqual([]);
    // Recorded without DONE, then the owner reclaims: the recorded IPAs go with the parcel.
    expect(outcome(await accept(A, { flags: 0 }))).toBe('OK');
    expect(f.rm.ipas.get(A)!.ranges().length).toBe(2);
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle: h, flags: 0 })))).toBe('OK');
    expect(f.rm.ipas.get(A)!.ranges()).toEqual([]);
  });

  test('§4.1 HLOS accepts at IPA = PA: RM-chosen IPAs are the PAs; a given IPA ≠ PA is ARGUMENT_INVALID (open RM vm_ipa/memparcel)', async () => {
    // A has no memory of its own in this fixture: HLOS donates it a page pair first.
    const d = handleOf(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_DONATE', createReq([{ vmid: A, rights: RWX }], [sgl(0x90000, 0x2000)]))));
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(d, 'DONATE', { sgl: [{ base: 0x7000_0000n, size: 0x2000n }] }))))).toBe('OK');
    const lent = handleOf(await attempt(() => f.rm.call(A, 'MEM_LEND', createReq([{ vmid: VMID_HLOS, rights: RW }], [{ base: 0x7000_0000n, size: 0x2000n }]))));
    expect(lent).toBeGreaterThanOrEqual(0);
    const byHlos = (extra: Parameters<typeof acceptReq>[2]) => attempt(() => f.rm.call(VMID_HLOS, 'MEM_ACCEPT', acceptReq(lent, 'LEND', extra)));
    expect(outcome(await byHlos({ sgl: [{ base: 0x7000_0000n, size: 0x2000n }] }))).toBe('ARGUMENT_INVALID hlos_ipa_not_pa');
    expect(await byHlos({})).toEqual({ ok: true, value: { kind: 'rm_chosen_ipas', sgl: [{ base: hlosAddr(0x90000), size: 0x2000n }], incomplete: false } });
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(0x91000)))).toMatchObject({ ok: true, value: { pa: Number(hlosAddr(0x91000)), state: 'SHARED_BORROWED' } });
    // Released, then accepted again at the given IPA = PA: the core agrees.
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_RELEASE', { handle: lent, flags: 0 })))).toBe('OK');
    expect(outcome(await byHlos({ sgl: [{ base: hlosAddr(0x90000), size: 0x2000n }] }))).toBe('OK');
  });

  test('DONATE: ownership moves on accept and the parcel is deleted', async () => {
    const d = handleOf(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_DONATE', createReq([{ vmid: A, rights: RWX }], [sgl(0x90000, 0x1000)]))));
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(d, 'DONATE'))))).toBe('OK');
    expect(f.rm.parcels.has(d)).toBe(false);
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle: d, flags: 0 })))).toBe('HANDLE_INVALID handle_unknown');
  });
});

describe('§3.5 MEM_RELEASE / MEM_RECLAIM', () => {
  test('rules in order and the SHARED ⇄ SHARING cycle', async () => {
    const h = handleOf(await lend(createReq([{ vmid: A, rights: RW }, { vmid: B, rights: R }], [sgl(0x10000, 0x1000)])));
    const release = (caller: number, handle = h, flags = 0) => attempt(() => f.rm.call(caller, 'MEM_RELEASE', { handle, flags }));
    const reclaim = (caller: number, handle = h, flags = 0) => attempt(() => f.rm.call(caller, 'MEM_RECLAIM', { handle, flags }));
    expect(outcome(await release(A, 99))).toBe('HANDLE_INVALID handle_unknown');
    expect(outcome(await release(VMID_RM))).toBe('HANDLE_INVALID not_in_acl');
    expect(outcome(await release(A))).toBe('MEM_RELEASED not_accepted');
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND'))))).toBe('OK');
    expect(outcome(await reclaim(A))).toBe('DENIED not_owner');
    expect(outcome(await reclaim(VMID_HLOS))).toBe('MEM_INUSE parcel_accepted');
    expect(outcome(await release(A, h, 0x1 | 0x2))).toBe('ARGUMENT_INVALID flags_invalid');
    expect(outcome(await release(A))).toBe('OK');
    expect(f.rm.parcels.get(h)?.state).toBe('SHARING');
    expect(outcome(await reclaim(VMID_HLOS, h, 0x4))).toBe('ARGUMENT_INVALID flags_invalid');
    expect(outcome(await reclaim(VMID_HLOS))).toBe('OK');
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(0x10000)))).toMatchObject({ ok: true, value: { state: 'OWNED' } });
    expect(outcome(await reclaim(VMID_HLOS))).toBe('HANDLE_INVALID handle_unknown');
  });

  test('SANITIZE on release needs the W right; on reclaim it is not for IO', async () => {
    const h = handleOf(await lend(createReq([{ vmid: B, rights: R }], [sgl(0x10000, 0x1000)])));
    expect(outcome(await attempt(() => f.rm.call(B, 'MEM_ACCEPT', acceptReq(h, 'LEND'))))).toBe('OK');
    expect(outcome(await attempt(() => f.rm.call(B, 'MEM_RELEASE', { handle: h, flags: 1 })))).toBe('ARGUMENT_INVALID sanitize_needs_normal_w');
  });
});

describe('§3.6 MEM_NOTIFY', () => {
  let h = -1;
  beforeEach(async () => {
    h = handleOf(await lend(createReq([{ vmid: A, rights: RW }, { vmid: B, rights: R }], [sgl(0x10000, 0x1000)], { label: 5 })));
  });
  const notify = (caller: number, flags: number, vmids: number[] = [], tag = 42) =>
    attempt(() => f.rm.call(caller, 'MEM_NOTIFY', { handle: h, flags, memInfoTag: tag, vmids: vmids.map((v) => ({ vmid: v })) }));

  test.each([
    ['flags are exactly one kind', () => notify(VMID_HLOS, 3, [A]), 'ARGUMENT_INVALID notify_flags'],
    ['SHARED comes from the owner', () => notify(A, NOTIFY_FLAGS.SHARED, [B]), 'DENIED not_owner'],
    ['the VMID list is not empty', () => notify(VMID_HLOS, NOTIFY_FLAGS.SHARED, []), 'ARGUMENT_INVALID vmid_list_size'],
    ['the VMID list is no longer than the ACL', () => notify(VMID_HLOS, NOTIFY_FLAGS.SHARED, [A, B, A]), 'ARGUMENT_INVALID vmid_list_size'],
    ['listed VMs exist', () => notify(VMID_HLOS, NOTIFY_FLAGS.SHARED, [0x99]), 'VMID_INVALID vmid_unknown'],
    ['listed VMs are in the ACL', () => notify(VMID_HLOS, NOTIFY_FLAGS.SHARED, [VMID_HLOS]), 'ARGUMENT_INVALID vmid_not_in_acl'],
    ['RELEASED comes from a borrower', () => notify(VMID_RM, NOTIFY_FLAGS.RELEASED), 'HANDLE_INVALID not_in_acl'],
    ['ACCEPTED only from a borrower that accepted', () => notify(A, NOTIFY_FLAGS.ACCEPTED), 'MEM_RELEASED not_accepted'],
  ] as const)('%s', async (_rule, call, expected) => {
    expect(outcome(await call())).toBe(expected);
  });

  test('SHARED reaches each listed borrower with region sizes only; the first tag sticks', async () => {
    expect(outcome(await notify(VMID_HLOS, NOTIFY_FLAGS.SHARED, [A, B]))).toBe('OK');
    expect(drained(f.rm, A)).toEqual([
      {
        name: 'MEM_SHARED',
        payload: expect.objectContaining({ handle: h, ownerVmid: VMID_HLOS, label: 5, memInfoTag: 42, regions: [{ size: 0x1000n }] }),
      },
    ]);
    expect(outcome(await notify(VMID_HLOS, NOTIFY_FLAGS.RECALL, [A], 43))).toBe('ARGUMENT_INVALID mem_info_tag_mismatch');
    expect(outcome(await notify(VMID_HLOS, NOTIFY_FLAGS.RECALL, [A]))).toBe('OK');
    expect(drained(f.rm, A)).toEqual([{ name: 'MEM_RECALL', payload: { handle: h, memInfoTag: 42 } }]);
  });

  test('RELEASED and ACCEPTED tell the owner; a claim must match the borrower state', async () => {
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND'))))).toBe('OK');
    expect(outcome(await notify(A, NOTIFY_FLAGS.RELEASED))).toBe('MEM_INUSE still_accepted');
    expect(outcome(await notify(A, NOTIFY_FLAGS.ACCEPTED))).toBe('OK');
    f.rm.queue(VMID_HLOS).drain();
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_RELEASE', { handle: h, flags: 0 })))).toBe('OK');
    expect(outcome(await notify(A, NOTIFY_FLAGS.RELEASED))).toBe('OK');
    expect(drained(f.rm, VMID_HLOS)).toEqual([{ name: 'MEM_RELEASED', payload: { handle: h, vmid: A, memInfoTag: 42 } }]);
  });
});

describe('§3.8 MEM_QCOM_LOOKUP_SGL', () => {
  test("finds the caller's own finalised parcel by exact ACL and SGL; §3.8 never relabels a parcel created by a message (open RM label_valid)", async () => {
    const acl = [{ vmid: A, rights: RW }];
    const h = handleOf(await lend(createReq(acl, [sgl(0x10000, 0x1000)])));
    const look = (caller: number, label: number, entries = [sgl(0x10000, 0x1000)]) =>
      attempt(() => f.rm.call(caller, 'MEM_QCOM_LOOKUP_SGL', { memType: MEM_TYPE.NORMAL, label, acl, sgl: entries, attrs: [] }));
    expect(outcome(await look(VMID_HLOS, 9, [sgl(0x20000, 0x1000)]))).toBe('LOOKUP_FAILED no_match');
    expect(outcome(await look(A, 9))).toBe('LOOKUP_FAILED no_match');
    expect(await look(VMID_HLOS, 9)).toEqual({ ok: true, value: { handle: h } });
    // Created with label 0, which is a valid label: the lookup's label 9 does not replace it.
    expect(f.rm.parcels.get(h)?.label).toBe(0);
  });
});

describe('issue 7: parcel divergences from the open RM', () => {
  test('§3.2 memory type must match the memory: NORMAL over device memory, IO over RAM are MEM_INVALID; nothing changes', async () => {
    const acl = [{ vmid: A, rights: RW }];
    // PA 0x1000 is device memory (MMIO) in the test platform; hlosAddr(…) is RAM.
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq(acl, [{ base: 0x1000n, size: 0x1000n }]))))).toBe('MEM_INVALID core_grant_memory_type');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq(acl, [sgl(0x10000, 0x1000)], { memType: MEM_TYPE.IO }))))).toBe('MEM_INVALID core_grant_memory_type');
    // The right kinds go through.
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq(acl, [{ base: 0x1000n, size: 0x1000n }], { memType: MEM_TYPE.IO }))))).toBe('OK');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq(acl, [sgl(0x10000, 0x1000)]))))).toBe('OK');
  });

  test('§3.2/§3.7 MEM_SHARED gives one region per physically contiguous run, not one per SGL entry', async () => {
    const h = handleOf(await lend(createReq([{ vmid: A, rights: RW }], [sgl(0x10000, 0x1000), sgl(0x11000, 0x2000), sgl(0x20000, 0x1000)])));
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_NOTIFY', { handle: h, flags: NOTIFY_FLAGS.SHARED, memInfoTag: 1, vmids: [{ vmid: A }] })))).toBe('OK');
    const [shared] = drained(f.rm, A);
    expect(shared).toMatchObject({ name: 'MEM_SHARED', payload: { handle: h, regions: [{ size: 0x3000n }, { size: 0x1000n }] } });
    // The borrower places one IPA range per region.
    expect(outcome(await attempt(() => f.rm.call(A, 'MEM_ACCEPT', acceptReq(h, 'LEND', { sgl: [{ base: 0x10_0000n, size: 0x3000n }, { base: 0x20_0000n, size: 0x1000n }] }))))).toBe('OK');
  });

  test('§3.1 (open RM order) the 64-parcels-per-VM limit is checked before the ACL checks', async () => {
    for (let i = 0; i < 64; i++) expect(outcome(await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: A, rights: R }], [sgl(i * 0x1000, 0x1000)])))).toBe('OK');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([], [sgl(0x80000, 0x1000)]))))).toBe('DENIED parcels_per_vm_max');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: 0x99, rights: R }], [sgl(0x80000, 0x1000)]))))).toBe('DENIED parcels_per_vm_max');
  });

  test.each([NOTIFY_FLAGS.SHARED, NOTIFY_FLAGS.RECALL])('§3.6 (open RM memparcel_notify_shared) flags %i with the VMID list absent is MSG_INVALID; present but empty stays ARGUMENT_INVALID', async (flags) => {
    const h = handleOf(await lend());
    const bytes = new Uint8Array(12);
    new DataView(bytes.buffer).setUint32(0, h, true);
    bytes[4] = flags;
    const decoded = memNotifyRequest.decode(bytes);
    expect(decoded).toMatchObject({ ok: true, value: { vmids: [], vmidListAbsent: true } });
    if (!decoded.ok) return;
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_NOTIFY', decoded.value)))).toBe('MSG_INVALID vmid_list_absent');
    expect(outcome(await attempt(() => f.rm.call(VMID_HLOS, 'MEM_NOTIFY', { handle: h, flags, memInfoTag: 0, vmids: [] })))).toBe('ARGUMENT_INVALID vmid_list_size');
  });
});
