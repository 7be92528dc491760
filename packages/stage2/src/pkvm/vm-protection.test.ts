/**
 * A VM's pKVM kind (stage2-models.md §A5): a protected VM gets memory by host_donate_guest only,
 * a non-protected one by host_share_guest only; the other call is -EPERM and changes nothing.
 * A space created without a kind (ANY, proto VM_PROTECTION_UNSPECIFIED) accepts both, as before.
 */
import { beforeEach, describe, expect, test } from 'vitest';
import type { VmProtection } from '../address-space.js';
import { checkInvariants } from '../invariants.js';
import { snapshot } from '../snapshot.js';
import { createAddressSpace } from '../spaces.js';
import type { Stage2 } from '../stage2.js';
import { ramFrame, smallStage2 } from '../testing.js';
import { PERM_RW, vmid } from '../types.js';
import { hostDonateGuest, hostShareGuest } from './transitions.js';

const VM = vmid(0x80);
let s: Stage2;

const withKind = (protection: VmProtection): void => {
  const r = createAddressSpace(s, VM, 40, [{ base: ramFrame(s, 0x100), count: 16 }], protection);
  expect(r.ok).toBe(true);
};

const outcome = (r: { ok: boolean; error?: { errno: string; rule: string } }): string => (r.ok ? 'ok' : `${r.error!.errno} ${r.error!.rule}`);

beforeEach(() => {
  s = smallStage2();
});

describe('§A5 VM kind', () => {
  test.each([
    ['host_share_guest to a protected VM', 'PROTECTED', () => hostShareGuest(s, VM, ramFrame(s, 0x200), 0x10, 1, PERM_RW), 'EPERM vm_protected'],
    ['host_donate_guest to a non-protected VM', 'NON_PROTECTED', () => hostDonateGuest(s, VM, ramFrame(s, 0x200), 0x10), 'EPERM vm_not_protected'],
  ] as const)('%s → %s, nothing changed', (_name, kind, call, expected) => {
    withKind(kind);
    const before = snapshot(s);
    expect(outcome(call())).toBe(expected);
    expect(snapshot(s)).toEqual(before);
  });

  test.each([
    ['protected VM takes host_donate_guest', 'PROTECTED', () => hostDonateGuest(s, VM, ramFrame(s, 0x200), 0x10)],
    ['non-protected VM takes host_share_guest', 'NON_PROTECTED', () => hostShareGuest(s, VM, ramFrame(s, 0x200), 0x10, 1, PERM_RW)],
    ['unspecified kind takes host_share_guest', 'ANY', () => hostShareGuest(s, VM, ramFrame(s, 0x200), 0x10, 1, PERM_RW)],
    ['unspecified kind takes host_donate_guest', 'ANY', () => hostDonateGuest(s, VM, ramFrame(s, 0x200), 0x10)],
  ] as const)('%s', (_name, kind, call) => {
    withKind(kind);
    expect(outcome(call())).toBe('ok');
    expect(checkInvariants(s)).toEqual([]);
  });

  test('the kind check comes first: a bad prot to a protected VM is still vm_protected', () => {
    withKind('PROTECTED');
    expect(outcome(hostShareGuest(s, VM, ramFrame(s, 0x200), 0x10, 1, 0xff))).toBe('EPERM vm_protected');
  });
});
