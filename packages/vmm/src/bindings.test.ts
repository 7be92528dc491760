/** §5.3 GUNYAH_VM_MAP_MEM, SET_DTB_CONFIG and SET_BOOT_CONTEXT rules, each row breaking one. */
import { describe, expect, test } from 'vitest';
import { applyUnmap, checkBind, checkBootContext, checkDtb, holdsHost, RIGHTS, type Binding } from './bindings.js';

const P = 4096n;
const b = (guest: bigint, host: bigint, size: bigint, extra: Partial<Binding> = {}): Binding => ({ guestAddr: guest, hostAddr: host, sizeBytes: size, mode: 'LEND', rights: 7, ...extra });
const existing = [b(0x8000_0000n, 0x1_0000_0000n, 16n * P)];
const ctx = { ipaBits: 40, hostBound: (a: bigint, s: bigint) => holdsHost(existing, a, s), hostReserved: (a: bigint) => a >= 0x4_0000_0000n };
const outcome = (r: { ok: boolean; error?: { errno: string; rule: string } }): string => (r.ok ? 'ok' : `${r.error!.errno} ${r.error!.rule}`);

describe('§5.3 MAP_MEM: bind (first failing rule, in order)', () => {
  test.each([
    { rule: 'rights_missing', req: b(0n, 0x2_0000_0000n, P, { rights: 0 }), want: 'EINVAL rights_missing' },
    { rule: 'rights_invalid', req: b(0n, 0x2_0000_0000n, P, { rights: 8 | RIGHTS.R }), want: 'EINVAL rights_invalid' },
    { rule: 'size_zero', req: b(0n, 0x2_0000_0000n, 0n), want: 'EINVAL size_zero' },
    { rule: 'unaligned guest', req: b(1n, 0x2_0000_0000n, P), want: 'EINVAL unaligned' },
    { rule: 'unaligned host', req: b(0n, 0x2_0000_0001n, P), want: 'EINVAL unaligned' },
    { rule: 'unaligned size', req: b(0n, 0x2_0000_0000n, P + 1n), want: 'EINVAL unaligned' },
    { rule: 'guest_overflow', req: b((1n << 64n) - P, 0x2_0000_0000n, 2n * P), want: 'EOVERFLOW guest_overflow' },
    { rule: 'guest_out_of_range', req: b(1n << 40n, 0x2_0000_0000n, P), want: 'EINVAL guest_out_of_range' },
    { rule: 'host_reserved', req: b(0n, 0x4_0000_0000n, P), want: 'EINVAL host_reserved' },
    { rule: 'host_bound (a guest_memfd range binds once)', req: b(0n, 0x1_0000_0000n + 15n * P, 2n * P), want: 'EEXIST host_bound' },
    { rule: 'guest_overlap', req: b(0x8000_0000n + 15n * P, 0x2_0000_0000n, 2n * P), want: 'EEXIST guest_overlap' },
    { rule: 'adjacent is fine', req: b(0x8000_0000n + 16n * P, 0x1_0000_0000n + 16n * P, P, { mode: 'SHARE', rights: RIGHTS.R }), want: 'ok' },
  ])('$rule → $want', ({ req, want }) => {
    expect(outcome(checkBind(existing, req, ctx))).toBe(want);
  });
});

describe('§5.3 MAP_MEM with UNMAP: head or tail trimming only', () => {
  const base = existing[0]!;
  test.each([
    { rule: 'unaligned', req: b(base.guestAddr + 1n, base.hostAddr, P), want: 'EINVAL unaligned' },
    { rule: 'no_binding (outside)', req: b(0n, base.hostAddr, P), want: 'ENOENT no_binding' },
    { rule: 'no_binding (flags differ)', req: b(base.guestAddr, base.hostAddr, P, { mode: 'SHARE' }), want: 'ENOENT no_binding' },
    { rule: 'no_binding (offset differs)', req: b(base.guestAddr, base.hostAddr + P, P), want: 'ENOENT no_binding' },
    { rule: 'no_binding (past the end)', req: b(base.guestAddr + 15n * P, base.hostAddr + 15n * P, 2n * P), want: 'ENOENT no_binding' },
    { rule: 'middle_split', req: b(base.guestAddr + P, base.hostAddr + P, P), want: 'EINVAL middle_split' },
  ])('$rule → $want', ({ req, want }) => {
    expect(outcome(applyUnmap(existing, req))).toBe(want);
  });
  test('head, tail and whole', () => {
    const head = applyUnmap(existing, b(base.guestAddr, base.hostAddr, 2n * P));
    expect(head.ok && head.value).toEqual([b(base.guestAddr + 2n * P, base.hostAddr + 2n * P, 14n * P)]);
    const tail = applyUnmap(existing, b(base.guestAddr + 14n * P, base.hostAddr + 14n * P, 2n * P));
    expect(tail.ok && tail.value).toEqual([b(base.guestAddr, base.hostAddr, 14n * P)]);
    const whole = applyUnmap(existing, base);
    expect(whole.ok && whole.value).toEqual([]);
  });
});

describe('§5.1 SET_DTB_CONFIG and §5.3 SET_BOOT_CONTEXT', () => {
  test.each([
    { rule: 'dtb_overflow', addr: (1n << 64n) - P, size: P, want: 'EOVERFLOW dtb_overflow' },
    { rule: 'fits', addr: 0x8000_0000n, size: 0x1000n, want: 'ok' },
  ])('DTB $rule → $want', ({ addr, size, want }) => expect(outcome(checkDtb(addr, size))).toBe(want));
  test.each([
    { set: 'X' as const, index: 31, started: false, want: 'ok' },
    { set: 'X' as const, index: 32, started: false, want: 'EINVAL reg_index_invalid' },
    { set: 'PC' as const, index: 0, started: false, want: 'ok' },
    { set: 'PC' as const, index: 1, started: false, want: 'EINVAL reg_index_invalid' },
    { set: 'SP' as const, index: 2, started: false, want: 'ok' },
    { set: 'SP' as const, index: 3, started: false, want: 'EINVAL reg_index_invalid' },
    { set: 'X' as const, index: 0, started: true, want: 'EINVAL vm_started' },
  ])('boot context $set[$index] (started $started) → $want', ({ set, index, started, want }) => {
    expect(outcome(checkBootContext(started, set, index))).toBe(want);
  });
});
