/**
 * Property: any sequence of RMI commands — with random and often invalid arguments, over a small
 * pool of granules and IPAs so that commands meet each other's state — keeps every invariant after
 * every step (the RMM's and the whole core's), and a refused command changes nothing. At the end,
 * KVM's teardown (seed 004) of every realm, then undelegating what is left, must bring the core
 * back to its boot state exactly. Seeded and bounded: SEED=<n> replays a run; the seed is in the
 * test name.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { checkInvariants } from '../invariants.js';
import type { RmiGranuleState } from '../memory/granule.js';
import type { Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE } from '../types.js';
import { dataCreate, dataCreateUnknown, dataDestroy } from './data.js';
import { granuleDelegate, granuleUndelegate } from './granule.js';
import { rmiInvariants } from './invariants.js';
import { realmTearDown, stage2RmiPort } from './kvm-host.js';
import { realmActivate, realmCreate, realmDestroy, realmRootRttCount } from './realm.js';
import { recCreate, recDestroy, recRequestRipasChange } from './rec.js';
import { rttInitRipas, rttSetRipas } from './ripas.js';
import { HOST_NS_ATTRS_DEFAULT } from './rtt-entry.js';
import { rttCreate, rttDestroy, rttFold, rttReadEntry } from './rtt.js';
import { rmiSnapshot } from './snapshot.js';
import type { RmiError } from './status.js';
import { GiB, MMIO_BASE, MiB, RAM_BASE, TestHost, newCore } from './test-support.js';
import { rttMapUnprotected, rttUnmapUnprotected } from './unprotected.js';

const SEED = Number(process.env.SEED ?? 20261121);
const RUNS = Number(process.env.RUNS ?? 20);
const POOL = 40; // granules the commands aim at (the first 28 start delegated)
const POOL_BASE = RAM_BASE + 64 * MiB;

const poolAddr = (i: number): number => POOL_BASE + i * GRANULE_SIZE;
/** Two realms exist at the start: A (40-bit, level 1, 2 roots) and B (32-bit, level 2, 4 roots), and a REC of A. */
const RD_A = poolAddr(0);
const RD_B = poolAddr(3);
const REC_A = poolAddr(8);
function setup(s: Stage2): void {
  for (let i = 0; i < 28; i++) granuleDelegate(s, poolAddr(i));
  realmCreate(s, RD_A, { s2sz: 40, rttLevelStart: 1, rttNumStart: 2, rttBase: poolAddr(1) });
  realmCreate(s, RD_B, { s2sz: 32, rttLevelStart: 2, rttNumStart: 4, rttBase: poolAddr(4) });
  recCreate(s, RD_A, REC_A);
}

const granule = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: POOL - 1 }).map(poolAddr), weight: 8 },
  { arbitrary: fc.constantFrom(MMIO_BASE, POOL_BASE + 1, Number.NaN, -GRANULE_SIZE, 2 ** 52), weight: 1 },
);
/**
 * An argument resolved against the state when the command runs: the i-th pool granule in `state`
 * (so commands meet live objects), or, less often, any pool granule or nonsense. Deterministic in
 * the state, so a seed replays.
 */
type Arg = (s: Stage2) => number;
const inState = (state: RmiGranuleState): fc.Arbitrary<Arg> =>
  fc.oneof(
    {
      arbitrary: fc.nat().map((i) => (s: Stage2): number => {
        const found: number[] = [];
        for (let j = 0; j < POOL; j++) if (s.memory.meta.get(poolAddr(j) / GRANULE_SIZE)?.rmi === state) found.push(poolAddr(j));
        return found.length === 0 ? poolAddr(i % POOL) : (found[i % found.length] as number);
      }),
      weight: 8,
    },
    { arbitrary: granule.map((g) => (): number => g), weight: 2 },
  );
const rd = inState('RD');
const rec = inState('REC');
const free = inState('DELEGATED');
const ns = inState('NS');
// Protected IPAs near 0 and 1 GiB, unprotected ones above 512 GiB (s2sz 40), and nonsense.
const ipa = fc.oneof(
  { arbitrary: fc.constantFrom(0, 4096, 8192, 2 * MiB, 2 * MiB + 4096, GiB, GiB + 2 * MiB), weight: 10 },
  { arbitrary: fc.integer({ min: 0, max: 1023 }).map((i) => i * GRANULE_SIZE), weight: 3 },
  { arbitrary: fc.constantFrom(512 * GiB, 512 * GiB + 4096, 512 * GiB + 2 * MiB, 513 * GiB, 2 * GiB, 16 * 2 ** 20 * 4096), weight: 4 },
  { arbitrary: fc.constantFrom(Number.NaN, -4096, 2 ** 40, 100), weight: 1 },
);
/** Pages where the RTT commands below build level-3 tables. */
const page = fc.oneof(
  { arbitrary: fc.tuple(fc.constantFrom(0, 2 * MiB, 4 * MiB, GiB, GiB + 2 * MiB), fc.integer({ min: 0, max: 7 })).map(([b, k]) => b + k * GRANULE_SIZE), weight: 8 },
  { arbitrary: ipa, weight: 2 },
);
const level = fc.oneof({ arbitrary: fc.constantFrom(1, 2, 3, 3), weight: 10 }, { arbitrary: fc.constantFrom(-1, 0, 4, 2.5), weight: 1 });
/** (addr, level) pairs a structure or map command accepts, often enough to build trees; else anything. */
const placed = fc.oneof(
  { arbitrary: fc.tuple(fc.constantFrom(0, GiB, 2 * GiB, 512 * GiB, 513 * GiB), fc.constant(2)), weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom(0, 2 * MiB, 4 * MiB, GiB, GiB + 2 * MiB, 512 * GiB, 512 * GiB + 2 * MiB), fc.constant(3)), weight: 6 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 1023 }).map((i) => 512 * GiB + i * GRANULE_SIZE), fc.constant(3)), weight: 2 },
  { arbitrary: fc.tuple(ipa, level), weight: 3 },
);
const ripas = fc.constantFrom('EMPTY' as const, 'RAM' as const);
const realmShape = fc.constantFrom({ s2sz: 40, sl: 1 }, { s2sz: 40, sl: 1 }, { s2sz: 32, sl: 2 }, { s2sz: 39, sl: 1 });

const OP_NAMES = ['delegate', 'undelegate', 'realm_create', 'realm_activate', 'realm_destroy', 'rec_create', 'rec_destroy', 'rtt_create', 'rtt_create_levels', 'rtt_destroy', 'rtt_fold', 'rtt_read_entry', 'data_create', 'data_create_unknown', 'data_destroy', 'init_ripas', 'rsi_ipa_state_set', 'set_ripas', 'map_unprotected', 'unmap_unprotected'];

interface Op {
  readonly name: string;
  readonly run: (s: Stage2) => Result<unknown, RmiError>;
}
const hex = (n: number): string => (Number.isFinite(n) ? `0x${n.toString(16)}` : String(n));
/** Runs `call` on resolved arguments and records them in the step's name for the failure report. */
const step = (name: string, args: Arg[], call: (s: Stage2, ...a: number[]) => Result<unknown, RmiError>) => {
  const op = { name, run: (s: Stage2) => {
    const a = args.map((f) => f(s));
    op.name = `${name} [${a.map(hex).join(' ')}]`;
    return call(s, ...a);
  } };
  return op as Op;
};
const opList: fc.Arbitrary<Op>[] = [
  granule.map((g) => ({ name: `delegate ${hex(g)}`, run: (s) => granuleDelegate(s, g) })),
  fc.oneof(free, granule.map((g) => (): number => g)).map((g) => step('undelegate', [g], (s, a) => granuleUndelegate(s, a!))),
  fc.tuple(free, free, realmShape, fc.boolean()).map(([d, base, { s2sz, sl }, right]) => {
    const n = right ? realmRootRttCount(s2sz, sl) : 3;
    return step(`realm_create s2sz ${s2sz} sl ${sl} roots ${n}`, [d, base], (s, r, b) => realmCreate(s, r!, { s2sz, rttLevelStart: sl, rttNumStart: n, rttBase: b! }));
  }),
  rd.map((r) => step('realm_activate', [r], (s, a) => realmActivate(s, a!))),
  rd.map((r) => step('realm_destroy', [r], (s, a) => realmDestroy(s, a!))),
  fc.tuple(rd, free).map(([r, c]) => step('rec_create', [r, c], (s, a, b) => recCreate(s, a!, b!))),
  rec.map((c) => step('rec_destroy', [c], (s, a) => recDestroy(s, a!))),
  fc.tuple(rd, free, placed).map(([r, t, [a, l]]) => step(`rtt_create ${hex(a)} L${l}`, [r, t], (s, x, y) => rttCreate(s, x!, y!, a, l))),
  // KVM's realm_create_rtt_levels with pool granules: RTT_CREATE at level 2, then 3 (each one atomic;
  // the step reports success if any was made, else the last refusal, which changed nothing).
  fc.tuple(rd, free, free, page).map(([r, t2, t3, a]) =>
    step(`rtt_create_levels ${hex(a)}`, [r, t2, t3], (s, x, y, z) => {
      const l2 = rttCreate(s, x!, y!, Number.isInteger(a) ? a - (a % GiB) : a, 2);
      const l3 = rttCreate(s, x!, l2.ok ? z! : y!, Number.isInteger(a) ? a - (a % (2 * MiB)) : a, 3);
      return l2.ok ? { ok: true, value: {} } : l3;
    }),
  ),
  fc.tuple(rd, placed).map(([r, [a, l]]) => step(`rtt_destroy ${hex(a)} L${l}`, [r], (s, x) => rttDestroy(s, x!, a, l))),
  fc.tuple(rd, placed).map(([r, [a, l]]) => step(`rtt_fold ${hex(a)} L${l}`, [r], (s, x) => rttFold(s, x!, a, l))),
  fc.tuple(rd, placed).map(([r, [a, l]]) => step(`rtt_read_entry ${hex(a)} L${l}`, [r], (s, x) => rttReadEntry(s, x!, a, l))),
  fc.tuple(rd, free, page, ns, fc.constantFrom(0, 1, 1, 2)).map(([r, d, a, src, f]) =>
    step(`data_create ${hex(a)} flags ${f}`, [r, d, src], (s, x, y, z) => dataCreate(s, x!, y!, a, z!, f)),
  ),
  fc.tuple(rd, free, page).map(([r, d, a]) => step(`data_create_unknown ${hex(a)}`, [r, d], (s, x, y) => dataCreateUnknown(s, x!, y!, a))),
  fc.tuple(rd, page).map(([r, a]) => step(`data_destroy ${hex(a)}`, [r], (s, x) => dataDestroy(s, x!, a))),
  fc.tuple(rd, page, fc.constantFrom(4096, 2 * MiB, GiB)).map(([r, a, n]) => step(`init_ripas ${hex(a)}+${hex(n)}`, [r], (s, x) => rttInitRipas(s, x!, a, a + n))),
  fc.tuple(rec, page, fc.constantFrom(4096, 2 * MiB), ripas, fc.boolean()).map(([c, a, n, rp, cd]) =>
    step(`rsi_ipa_state_set ${hex(a)}+${hex(n)} ${rp} ${cd}`, [c], (s, x) => recRequestRipasChange(s, x!, a, a + n, rp, cd)),
  ),
  fc.tuple(rd, rec, page, fc.constantFrom(4096, 2 * MiB)).map(([r, c, a, n]) =>
    step(`set_ripas ${hex(a)}+${hex(n)}`, [r, c], (s, x, y) => {
      // Continue the REC's pending request where it stands, as KVM does, or try the random base.
      const req = s.rmm.recs.get(y! / GRANULE_SIZE)?.ripasRequest;
      const base = req !== undefined && req.top > req.addr && a % 8192 === 0 ? req.addr : a;
      return rttSetRipas(s, x!, y!, base, base + n);
    }),
  ),
  fc.tuple(rd, placed, fc.integer({ min: 0, max: 7 })).map(([r, [a, l], i]) => {
    const desc = 0x10_0000_0000 + i * 2 * MiB + HOST_NS_ATTRS_DEFAULT;
    return step(`map_unprotected ${hex(a)} L${l} ${hex(desc)}`, [r], (s, x) => rttMapUnprotected(s, x!, a, l, desc));
  }),
  fc.tuple(rd, placed).map(([r, [a, l]]) => step(`unmap_unprotected ${hex(a)} L${l}`, [r], (s, x) => rttUnmapUnprotected(s, x!, a, l))),
];

/** Commands that build RTTs and data run more often than those that end a realm. */
const WEIGHTS: Record<string, number> = { realm_destroy: 1, rec_destroy: 1, realm_activate: 1, realm_create: 2, rec_create: 1, rtt_create_levels: 8, data_create: 6, data_create_unknown: 6 };
const ops = opList.map((arbitrary, i) => ({ arbitrary, weight: WEIGHTS[OP_NAMES[i] as string] ?? 4 }));

/** The RMM's invariants and the whole core's (which include them), without duplicates. */
const violations = (s: Stage2): string[] => [...new Set([...rmiInvariants(s), ...checkInvariants(s)])];

test(`random RMI command sequences keep every invariant; teardown returns to boot (SEED=${SEED}, ${RUNS} runs)`, async () => {
  const fresh = rmiSnapshot(newCore());
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(...ops), { minLength: 1, maxLength: 150, size: 'large' }), async (seq) => {
      const s = newCore();
      setup(s);
      for (const op of seq) {
        const before = rmiSnapshot(s);
        const r = op.run(s);
        if (!r.ok) expect(rmiSnapshot(s), `refused ${op.name} changed state`).toEqual(before);
        expect(violations(s), `after ${op.name}`).toEqual([]);
      }
      // Seed 004: tear every realm down the KVM way, then give back what is still delegated.
      const host = new TestHost(RAM_BASE + 512 * MiB);
      for (const realm of [...s.rmm.realms.values()]) {
        const layout = {
          rd: realm.rd * GRANULE_SIZE,
          roots: realm.roots.map((t) => t.frame * GRANULE_SIZE),
          ipaBits: realm.ipaBits,
          startLevel: realm.startLevel,
          recs: [...s.rmm.recs.values()].filter((r) => r.rd === realm.rd).map((r) => r.frame * GRANULE_SIZE),
        };
        const r = await realmTearDown(stage2RmiPort(s), layout, host);
        expect(r.ok ? 'ok' : r.error.message).toBe('ok');
        expect(host.warnings).toEqual([]);
      }
      for (let i = 0; i < POOL; i++) granuleUndelegate(s, POOL_BASE + i * GRANULE_SIZE);
      expect(violations(s)).toEqual([]);
      expect(rmiSnapshot(s)).toEqual(fresh);
    }),
    { seed: SEED, numRuns: RUNS },
  );
}, 180_000); // bounded by RUNS; generous for slow CI machines
