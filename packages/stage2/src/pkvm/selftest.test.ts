/**
 * The kernel's pkvm_ownership_selftest (stage2-models.md §A7, L-new), transcribed as data: one page,
 * guest frames g and g+1; every call is followed by a check of the whole expected state
 * (H, Y, G[g], G[g+1], pin count, guest share count), failures included, plus the invariants.
 */
import { describe, expect, test } from 'vitest';
import { checkInvariants } from '../invariants.js';
import { createAddressSpace } from '../spaces.js';
import { Stage2, DEFAULT_STAGE2_CONFIG } from '../stage2.js';
import { PERM_RW, pfn as asPfn, vmid, type Pfn } from '../types.js';
import { viewState } from '../views.js';
import type { ErrnoName } from './errno.js';
import * as t from './transitions.js';

const GUEST = vmid(0x80);
const G = 0x1000; // guest frame g (4 KiB-aligned IPA 0x1000000)

type Call = (s: Stage2, p: Pfn) => ReturnType<typeof t.hostShareHyp>;
const calls: Record<string, Call> = {
  donate_hyp: (s, p) => t.hostDonateHyp(s, p, 1),
  hyp_donate_host: (s, p) => t.hypDonateHost(s, p, 1),
  share_hyp: (s, p) => t.hostShareHyp(s, p),
  unshare_hyp: (s, p) => t.hostUnshareHyp(s, p),
  share_ffa: (s, p) => t.hostShareFfa(s, p, 1),
  unshare_ffa: (s, p) => t.hostUnshareFfa(s, p, 1),
  pin: (s, p) => t.hypPinSharedMem(s, p, 1),
  unpin: (s, p) => t.hypUnpinSharedMem(s, p, 1),
  share_guest: (s, p) => t.hostShareGuest(s, GUEST, p, G, 1, PERM_RW),
  share_guest_g1: (s, p) => t.hostShareGuest(s, GUEST, p, G + 1, 1, PERM_RW),
  unshare_guest: (s) => t.hostUnshareGuest(s, GUEST, G, 1),
  unshare_guest_g1: (s) => t.hostUnshareGuest(s, GUEST, G + 1, 1),
};

interface State {
  H: string;
  Y: string;
  G0: string;
  G1: string;
  pins: number;
  count: number;
}
const NOPAGE_OWNED: State = { H: 'NOPAGE', Y: 'OWNED', G0: 'NOPAGE', G1: 'NOPAGE', pins: 0, count: 0 };
const OWNED_NOPAGE: State = { ...NOPAGE_OWNED, H: 'OWNED', Y: 'NOPAGE' };
const SO_SB: State = { ...OWNED_NOPAGE, H: 'SHARED_OWNED', Y: 'SHARED_BORROWED' };

/** One row: a call, its expected result (0 or an errno name), and the state it must leave. */
type Row = [call: keyof typeof calls, result: 0 | ErrnoName, after: State];

const vector: { step: string; rows: Row[] }[] = [
  {
    step: 'start: H=NOPAGE, Y=OWNED',
    rows: [
      ['donate_hyp', 'EPERM', NOPAGE_OWNED],
      ['share_hyp', 'EPERM', NOPAGE_OWNED],
      ['unshare_hyp', 'EPERM', NOPAGE_OWNED],
      ['share_ffa', 'EPERM', NOPAGE_OWNED],
      ['unshare_ffa', 'EPERM', NOPAGE_OWNED],
      ['pin', 'EPERM', NOPAGE_OWNED],
      ['share_guest', 'EPERM', NOPAGE_OWNED],
      ['unshare_guest', 'ENOENT', NOPAGE_OWNED],
    ],
  },
  {
    step: 'hyp_donate_host = 0: H=OWNED, Y=NOPAGE',
    rows: [
      ['hyp_donate_host', 0, OWNED_NOPAGE],
      ['hyp_donate_host', 'EPERM', OWNED_NOPAGE],
      ['unshare_hyp', 'EPERM', OWNED_NOPAGE],
      ['unshare_ffa', 'EPERM', OWNED_NOPAGE],
      ['pin', 'EPERM', OWNED_NOPAGE],
      ['unshare_guest', 'ENOENT', OWNED_NOPAGE],
    ],
  },
  {
    step: 'share_hyp = 0: SHARED_OWNED / SHARED_BORROWED, pins and -EBUSY',
    rows: [
      ['share_hyp', 0, SO_SB],
      ['share_hyp', 'EPERM', SO_SB],
      ['donate_hyp', 'EPERM', SO_SB],
      ['share_ffa', 'EPERM', SO_SB],
      ['hyp_donate_host', 'EPERM', SO_SB],
      ['share_guest', 'EPERM', SO_SB],
      ['pin', 0, { ...SO_SB, pins: 1 }],
      ['pin', 0, { ...SO_SB, pins: 2 }],
      ['unpin', 0, { ...SO_SB, pins: 1 }],
      ['unshare_hyp', 'EBUSY', { ...SO_SB, pins: 1 }],
      ['unpin', 0, SO_SB],
    ],
  },
  { step: 'unshare_hyp = 0: OWNED / NOPAGE', rows: [['unshare_hyp', 0, OWNED_NOPAGE]] },
  {
    step: 'share_ffa = 0: H=SHARED_OWNED, Y=NOPAGE',
    rows: [
      ['share_ffa', 0, { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['share_ffa', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['donate_hyp', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['share_hyp', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['unshare_hyp', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['hyp_donate_host', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['share_guest', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['pin', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
      ['unshare_guest', 'ENOENT', { ...OWNED_NOPAGE, H: 'SHARED_OWNED' }],
    ],
  },
  {
    step: 'unshare_ffa = 0: OWNED',
    rows: [
      ['unshare_ffa', 0, OWNED_NOPAGE],
      ['unshare_ffa', 'EPERM', OWNED_NOPAGE],
    ],
  },
  {
    step: 'share_guest(g) = 0: H=SHARED_OWNED, G[g]=SHARED_BORROWED',
    rows: [
      ['share_guest', 0, { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['share_guest', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['share_ffa', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['donate_hyp', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['share_hyp', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['unshare_hyp', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['hyp_donate_host', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
      ['pin', 'EPERM', { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', count: 1 }],
    ],
  },
  {
    step: 'share_guest(g+1) = 0: count=2, then unshare both',
    rows: [
      ['share_guest_g1', 0, { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G0: 'SHARED_BORROWED', G1: 'SHARED_BORROWED', count: 2 }],
      ['unshare_guest', 0, { ...OWNED_NOPAGE, H: 'SHARED_OWNED', G1: 'SHARED_BORROWED', count: 1 }],
      ['unshare_guest_g1', 0, OWNED_NOPAGE],
    ],
  },
  { step: 'donate_hyp = 0: H=NOPAGE, Y=OWNED', rows: [['donate_hyp', 0, NOPAGE_OWNED]] },
];

function stateOf(s: Stage2, p: Pfn): State {
  const guest = s.spaces.get(GUEST)!;
  const m = s.memory.meta.get(p)!;
  return {
    H: viewState(s.host.table.lookup(p).desc),
    Y: m.hyp,
    G0: viewState(guest.table.lookup(G).desc),
    G1: viewState(guest.table.lookup(G + 1).desc),
    pins: m.pins,
    count: m.guestShares,
  };
}

describe('§A7 pkvm_ownership_selftest', () => {
  const s = new Stage2(DEFAULT_STAGE2_CONFIG);
  const ram = s.memory.regions.find((r) => r.kind === 'RAM')!;
  const page = asPfn(ram.base + 0x1234);
  // The guest's stage-2: root and pool pages donated by the host (seed 003).
  expect(createAddressSpace(s, GUEST, 40, [{ base: asPfn(ram.base + 0x100), count: 8 }]).ok).toBe(true);
  // Selftest precondition: the page starts donated to HYP.
  expect(t.hostDonateHyp(s, page, 1)).toEqual({ ok: true, value: undefined });
  expect(stateOf(s, page)).toEqual(NOPAGE_OWNED);

  for (const { step, rows } of vector) {
    test.each(rows.map(([call, result, after], i) => ({ i, call, result, after })))(`${step} — #$i $call → $result`, ({ call, result, after }) => {
      const r = calls[call]!(s, page);
      expect(r.ok ? 0 : r.error.errno).toBe(result);
      expect(stateOf(s, page)).toEqual(after);
      expect(checkInvariants(s)).toEqual([]);
    });
  }
});
