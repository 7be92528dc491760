/**
 * Property: any sequence of calls — pKVM transitions, grants, pool top-ups and drains, with random
 * and often invalid arguments — keeps every invariant after every step, and a refused call changes
 * nothing. Seeded and bounded: SEED=<n> replays a run; the seed is in the test name.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { createGrant, destroyGrant, mapGrant, unmapGrant, GRANT_TYPES } from './grant/grant.js';
import { checkInvariants } from './invariants.js';
import * as t from './pkvm/transitions.js';
import { snapshot } from './snapshot.js';
import { drainTablePool, topUpTablePool } from './spaces.js';
import type { Stage2 } from './stage2.js';
import { addGuest, ramFrame, smallStage2 } from './testing.js';
import { VMID_HOST, pfn, vmid, type Vmid } from './types.js';

const SEED = Number(process.env.SEED ?? 20261121);
const RUNS = Number(process.env.RUNS ?? 25);
const GUESTS = [vmid(0x80), vmid(0x81)];
const WINDOW = 2048; // host frames the calls aim at: 8 MiB, four 2 MiB blocks
const HOST_BASE = 0x4000; // frames from the start of RAM

// Mostly a few hot frames so that calls meet each other's state; sometimes anything, or nonsense.
const hot = [0, 1, 512];
const frame = fc.oneof(
  { arbitrary: fc.constantFrom(...hot), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: WINDOW - 1 }), weight: 2 },
  { arbitrary: fc.constantFrom(-1, 0.5, 2 ** 40, Number.NaN), weight: 1 },
);
const count = fc.oneof({ arbitrary: fc.constantFrom(1, 1, 1, 2, 512), weight: 8 }, { arbitrary: fc.integer({ min: -1, max: 600 }), weight: 1 });
const gfn = fc.oneof({ arbitrary: fc.constantFrom(...hot), weight: 8 }, { arbitrary: fc.constantFrom(-3, 2 ** 28, 4095), weight: 1 });
const who = fc.oneof({ arbitrary: fc.constantFrom<Vmid>(...GUESTS), weight: 6 }, { arbitrary: fc.constantFrom<Vmid>(VMID_HOST, vmid(0x99)), weight: 1 });
const perms = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 7 }), weight: 8 }, { arbitrary: fc.constantFrom(0, 8, -1), weight: 1 });
const range = fc.record({ base: frame, count });

type Op = { name: string; run: (s: Stage2) => { ok: boolean } };
const pick = <T>(list: readonly T[], sel: number): T | undefined => (list.length === 0 ? undefined : list[sel % list.length]);
/** A frame the guest maps in the hot IPA window (some state-directed calls aim at live mappings). */
function mappedGfn(s: Stage2, v: Vmid, sel: number): number | undefined {
  const sp = s.spaces.get(v);
  const found: number[] = [];
  sp?.table.leafRuns(0, 4096, (l) => void (l.desc % 2 === 1 && found.push(l.start)));
  return sel % 3 === 0 ? undefined : pick(found, sel);
}
/** A host frame of the window that HYP borrows, if any. */
function hypShared(s: Stage2, sel: number): number {
  const found: number[] = [];
  s.memory.meta.runs(host(s, 0), WINDOW, (st, _n, m) => void (m?.hyp === 'SHARED_BORROWED' && found.push(st)));
  return pick(found, sel) ?? host(s, hot[sel % hot.length]!);
}
const host = (s: Stage2, f: number): number => ramFrame(s, HOST_BASE + f);

const ops: fc.Arbitrary<Op>[] = [
  fc.tuple(frame).map(([f]) => ({ name: `share_hyp ${f}`, run: (s) => t.hostShareHyp(s, host(s, f)) })),
  fc.tuple(frame).map(([f]) => ({ name: `unshare_hyp ${f}`, run: (s) => t.hostUnshareHyp(s, host(s, f)) })),
  fc.tuple(frame, count).map(([f, n]) => ({ name: `donate_hyp ${f}+${n}`, run: (s) => t.hostDonateHyp(s, host(s, f), n) })),
  fc.tuple(frame, count).map(([f, n]) => ({ name: `hyp_donate_host ${f}+${n}`, run: (s) => t.hypDonateHost(s, host(s, f), n) })),
  fc.tuple(frame, count).map(([f, n]) => ({ name: `pin ${f}+${n}`, run: (s) => t.hypPinSharedMem(s, host(s, f), n) })),
  fc.tuple(frame, count).map(([f, n]) => ({ name: `unpin ${f}+${n}`, run: (s) => t.hypUnpinSharedMem(s, host(s, f), n) })),
  fc.tuple(frame, count).map(([f, n]) => ({ name: `share_ffa ${f}+${n}`, run: (s) => t.hostShareFfa(s, host(s, f), n) })),
  fc.tuple(frame, count).map(([f, n]) => ({ name: `unshare_ffa ${f}+${n}`, run: (s) => t.hostUnshareFfa(s, host(s, f), n) })),
  fc.tuple(who, frame, gfn, fc.constantFrom(1, 512, 3), perms).map(([v, f, g, n, p]) => ({
    name: `share_guest ${v} ${f}→${g}+${n} ${p}`,
    run: (s) => t.hostShareGuest(s, v, host(s, f), g, n, p),
  })),
  fc.tuple(who, gfn, fc.constantFrom(1, 512)).map(([v, g, n]) => ({ name: `unshare_guest ${v} ${g}+${n}`, run: (s) => t.hostUnshareGuest(s, v, g, n) })),
  fc.tuple(who, frame, gfn).map(([v, f, g]) => ({ name: `donate_guest ${v} ${f}→${g}`, run: (s) => t.hostDonateGuest(s, v, host(s, f), g) })),
  fc.tuple(who, gfn, fc.nat()).map(([v, g, sel]) => ({ name: `guest_share_host ${v} ${g}/#${sel}`, run: (s) => t.guestShareHost(s, v, mappedGfn(s, v, sel) ?? g) })),
  fc.tuple(who, gfn, fc.nat()).map(([v, g, sel]) => ({ name: `reclaim ${v} ${g}/#${sel}`, run: (s) => t.hostReclaimPageGuest(s, v, mappedGfn(s, v, sel) ?? g) })),
  fc.tuple(who, fc.nat()).map(([v, sel]) => ({ name: `unshare_guest ${v} #${sel}`, run: (s) => t.hostUnshareGuest(s, v, mappedGfn(s, v, sel) ?? 0, 1) })),
  fc.tuple(fc.nat()).map(([sel]) => ({ name: `pin #${sel}`, run: (s) => t.hypPinSharedMem(s, hypShared(s, sel), 1) })),
  fc.tuple(fc.nat()).map(([sel]) => ({ name: `unpin #${sel}`, run: (s) => t.hypUnpinSharedMem(s, hypShared(s, sel), 1) })),
  fc.tuple(fc.nat()).map(([sel]) => ({ name: `unshare_hyp #${sel}`, run: (s) => t.hostUnshareHyp(s, hypShared(s, sel)) })),
  fc
    .tuple(
      fc.oneof({ arbitrary: fc.constant(VMID_HOST), weight: 4 }, { arbitrary: who, weight: 1 }),
      fc.constantFrom(...GRANT_TYPES, 'LEND'),
      fc.oneof(
        { arbitrary: fc.uniqueArray(fc.constantFrom(64, 72, 600, 1100, 1536), { minLength: 1, maxLength: 3 }).map((bs) => bs.map((base) => ({ base, count: 4 }))), weight: 4 },
        { arbitrary: fc.array(range, { minLength: 1, maxLength: 3 }), weight: 1 },
      ),
      fc.oneof(
        { arbitrary: fc.uniqueArray(fc.tuple(fc.constantFrom(...GUESTS), fc.integer({ min: 1, max: 7 })), { minLength: 1, maxLength: 2, selector: ([v]) => v }), weight: 4 },
        { arbitrary: fc.array(fc.tuple(who, perms), { minLength: 1, maxLength: 2 }), weight: 1 },
      ),
    )
    .map(([owner, type, ranges, acl]) => ({
      name: `create_grant ${owner} ${type} ${JSON.stringify(ranges)} ${JSON.stringify(acl)}`,
      run: (s) =>
        createGrant(s, {
          owner,
          type,
          ranges: ranges.map((r) => ({ base: owner === VMID_HOST ? host(s, r.base) : r.base, count: r.count })),
          acl: acl.map(([v, p]) => ({ vmid: v, perms: p })),
        }),
    })),
  // State-directed: a live grant, one of its ACL entries, rights within it, one range of its size.
  fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 7 }), gfn).map(([gs, bs, mask, g]) => ({
    name: `map_grant #${gs} acl#${bs} mask ${mask} at ${g}`,
    run: (s) => {
      const grant = pick([...s.grants.values()], gs);
      if (grant === undefined) return mapGrant(s, { grantId: 1, borrower: GUESTS[0]!, perms: mask, ranges: [{ base: g, count: 1 }] });
      const e = pick(grant.acl, bs)!;
      return mapGrant(s, { grantId: grant.id, borrower: e.vmid, perms: e.perms & mask || e.perms, ranges: [{ base: g, count: grant.frames }] });
    },
  })),
  fc.tuple(fc.nat(), fc.nat()).map(([gs, bs]) => ({
    name: `unmap_grant #${gs} borrower#${bs}`,
    run: (s) => {
      const grant = pick([...s.grants.values()], gs);
      return unmapGrant(s, grant?.id ?? 1, pick([...(grant?.borrowers.keys() ?? [])], bs) ?? GUESTS[0]!);
    },
  })),
  fc.tuple(fc.nat(), who).map(([gs, v]) => ({
    name: `destroy_grant #${gs} by ${v}`,
    run: (s) => {
      const grant = pick([...s.grants.values()], gs);
      return destroyGrant(s, grant?.id ?? 1, gs % 4 === 0 ? v : (grant?.owner ?? v));
    },
  })),
  fc.tuple(who, frame, fc.integer({ min: 1, max: 4 })).map(([v, f, n]) => ({ name: `top_up ${v} ${f}+${n}`, run: (s) => topUpTablePool(s, v, [{ base: pfn(host(s, f)), count: n }]) })),
  fc.tuple(who, fc.integer({ min: 0, max: 4 })).map(([v, n]) => ({ name: `drain ${v} ${n}`, run: (s) => drainTablePool(s, v, n) })),
];

test(`random call sequences keep every invariant (SEED=${SEED}, ${RUNS} runs)`, () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(...ops), { minLength: 1, maxLength: 80, size: 'large' }), (seq) => {
      const s = smallStage2();
      GUESTS.forEach((g, i) => addGuest(s, g, 0x100 + i * 0x100, 4));
      for (const op of seq) {
        const before = snapshot(s);
        const r = op.run(s);
        if (!r.ok) expect(snapshot(s), `refused ${op.name} changed state`).toEqual(before);
        expect(checkInvariants(s), `after ${op.name}`).toEqual([]);
      }
    }),
    { seed: SEED, numRuns: RUNS },
  );
}, 180_000); // bounded by RUNS; generous for slow CI machines
