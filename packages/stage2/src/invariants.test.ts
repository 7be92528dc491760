/**
 * The invariant checker finds each kind of corruption (DESIGN.md §2 invariants), so a clean report
 * elsewhere means something.
 */
import { describe, expect, test } from 'vitest';
import { checkInvariants } from './invariants.js';
import { granuleMeta, withMeta } from './memory/granule.js';
import { hostShareGuest, hostShareHyp } from './pkvm/transitions.js';
import { DESC_INVALID, leafDesc } from './s2tt/descriptor.js';
import type { Stage2 } from './stage2.js';
import { addGuest, ramFrame, smallStage2 } from './testing.js';
import { PERM_RW, VMID_HYP, vmid, type Pfn } from './types.js';

const A = vmid(0x80);

const corruptions: [string, (s: Stage2, p: Pfn) => void, RegExp][] = [
  ['a granule owned by someone who does not map it', (s, p) => s.memory.meta.update(p + 3, 1, (m) => withMeta(m!, { owner: A })), /mapped OWNED but owned by VM80/],
  ['a granule lost (no owner record)', (s, p) => s.memory.meta.update(p, 1, () => null), /not memory|owners hold/],
  ['an owner with no address space', (s, p) => s.memory.meta.update(p, 1, (m) => withMeta(m!, { owner: vmid(0x99) })), /has no address space/],
  [
    'a host mapping that is not identity',
    (s, p) => s.host.table.rewrite(p, 1, (_d, _st, level) => leafDesc(p + 1, level, { perms: PERM_RW, state: 'OWNED', device: false }), s.host.pool),
    /not identity/,
  ],
  ['a table page counted twice', (s) => s.spaces.get(A)!.pool.give(s.spaces.get(A)!.rootFrames[0]!), /counted twice/],
  ['a guest share count that no mapping justifies', (s, p) => s.memory.meta.update(p, 1, (m) => withMeta(m!, { guestShares: 2 })), /guest share count 2/],
  ['a pin on a page HYP does not borrow', (s, p) => s.memory.meta.update(p + 5, 1, (m) => withMeta(m!, { pins: 1 })), /pinned 1 but HYP sees NOPAGE/],
  ['HYP borrowing what the host does not share', (s, p) => s.host.table.rewrite(p + 7, 1, () => DESC_INVALID, s.host.pool), /HYP borrows it/],
  [
    'an RMM granule owned by the host',
    (s, p) => s.memory.meta.update(p + 9, 1, () => granuleMeta({ kind: 'RAM', owner: s.host.vmid, hyp: 'NOPAGE', pins: 0, guestShares: 0, rmi: 'DELEGATED', hypUse: 'NONE' })),
    /RMM granule \(DELEGATED\) owned by HOST/,
  ],
  ['a HYP granule marked as a table page outside any table', (s) => s.memory.meta.update(s.hostCarveout.base - 1, 1, (m) => withMeta(m!, { owner: VMID_HYP, hyp: 'OWNED', hypUse: 'STAGE2' })), /marked as table pages/],
];

describe('checkInvariants detects', () => {
  test.each(corruptions)('%s', (_what, corrupt, message) => {
    const s = smallStage2();
    addGuest(s, A, 0x100);
    const p = ramFrame(s, 0x1000);
    expect(hostShareGuest(s, A, p, 0x10, 1, PERM_RW).ok).toBe(true);
    expect(hostShareHyp(s, (p + 7) as Pfn).ok).toBe(true);
    expect(checkInvariants(s)).toEqual([]);
    corrupt(s, p);
    expect(checkInvariants(s).join('\n')).toMatch(message);
  });
});
