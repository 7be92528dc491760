/**
 * Life-cycle benchmarks of the stage-2 core as the deterministic simulation drives it: many small
 * operations (create a space, map and share a few pages, grants, reclaim, destroy; realm create,
 * activate, teardown), with checkInvariants after every step. Cost should follow the mapped and
 * live state, not the size of the IPA space or of physical memory.
 */

import {
  PERM_RW,
  Stage2,
  VMID_HOST,
  checkInvariants,
  createAddressSpace,
  createGrant,
  destroyAddressSpace,
  destroyGrant,
  granuleDelegate,
  hostDonateGuest,
  hostReclaimPageGuest,
  hostShareGuest,
  hostUnshareGuest,
  mapGrant,
  realmActivate,
  realmCreate,
  realmRootRttCount,
  realmTearDown,
  realmCreateRttLevels,
  dataCreateUnknown,
  stage2RmiPort,
  unmapGrant,
  vmid,
  type Pfn,
  type RealmHost,
  type RmiPort,
  type Result,
} from '@hypmesh/stage2';
import { benchMemory } from './core-bench.js';

const GiB = 2 ** 30;
const FRAMES_PER_GIB = GiB / 4096;
const GRANULE = 4096;

function must<T>(r: Result<T, { message: string }>, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.message}`);
  return r.value;
}

/** A step as the simulation counts it: the operation, then the full invariant check. */
function step<T>(s: Stage2, r: Result<T, { message: string }>, what: string): T {
  const v = must(r, what);
  const violations = checkInvariants(s);
  if (violations.length > 0) throw new Error(`${what}: ${violations[0]}`);
  return v;
}

/** Steps per second of wall time, and per second of this process's CPU time (steadier on a shared machine). */
export interface StepRate {
  readonly wall: number;
  readonly cpu: number;
}

/** Runs `cycle` (returning its step count) for at least `minMs` after a warm-up. */
async function stepsPerS(cycle: (i: number) => number | Promise<number>, minMs: number): Promise<StepRate> {
  for (let i = 0; i < 20; i++) await cycle(i);
  let steps = 0;
  let i = 20;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const min = BigInt(minMs) * 1_000_000n;
  while (process.hrtime.bigint() - t0 < min) steps += await cycle(i++);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  return { wall: steps / wallS, cpu: steps / ((cpu.user + cpu.system) / 1e6) };
}

/**
 * One guest life cycle, 11 steps: create a 40-bit space (2 roots + 8 pool pages), donate 2 pages,
 * share 1 page, a SHARE grant mapped into the guest, unmap and destroy it, unshare, reclaim,
 * destroy the space. Host frames come from a window of RAM that moves each cycle.
 */
export async function stage2LifecycleStepsPerS(minMs = 1000): Promise<StepRate> {
  const s = new Stage2({ memory: benchMemory(16) });
  const ram = s.memory.regions.find((r) => r.kind === 'RAM')!.base + FRAMES_PER_GIB;
  const guest = vmid(0x80);
  return await stepsPerS((i) => {
    const at = ram + (i % 1024) * 64;
    step(s, createAddressSpace(s, guest, 40, [{ base: at as Pfn, count: 10 }]), 'create');
    step(s, hostDonateGuest(s, guest, at + 16, 0x100), 'donate');
    step(s, hostDonateGuest(s, guest, at + 17, 0x101), 'donate');
    step(s, hostShareGuest(s, guest, at + 20, 0x200, 1, PERM_RW), 'share guest');
    const g = step(s, createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: [{ base: at + 24, count: 4 }], acl: [{ vmid: guest, perms: PERM_RW }] }), 'grant');
    step(s, mapGrant(s, { grantId: g.grantId, borrower: guest, perms: PERM_RW, ranges: [{ base: 0x1000, count: 4 }] }), 'map grant');
    step(s, unmapGrant(s, g.grantId, guest), 'unmap grant');
    step(s, destroyGrant(s, g.grantId, VMID_HOST), 'destroy grant');
    step(s, hostUnshareGuest(s, guest, 0x200, 1), 'unshare guest');
    step(s, hostReclaimPageGuest(s, guest, 0x100), 'reclaim');
    step(s, hostReclaimPageGuest(s, guest, 0x101), 'reclaim');
    step(s, destroyAddressSpace(s, guest), 'destroy space');
    return 12;
  }, minMs);
}

/** A host page allocator over a window of RAM (freed pages reused first), as realm teardown sees KVM's. */
class BenchHost implements RealmHost {
  private readonly freed: number[] = [];
  private next: number;
  constructor(base: number) {
    this.next = base;
  }
  alloc(): number {
    const reused = this.freed.pop();
    if (reused !== undefined) return reused;
    const a = this.next;
    this.next += GRANULE;
    return a;
  }
  free(addr: number): void {
    this.freed.push(addr);
  }
  warn(message: string): void {
    throw new Error(`realm host WARN: ${message}`);
  }
}

/**
 * One realm life cycle, 8 steps (6 + the roots), each followed by the invariant check: delegate the RD and 2 roots,
 * REALM_CREATE (40-bit IPA, start level 1), RTTs down to level 3 at IPA 0 (KVM's
 * realm_create_rtt_levels), one DATA granule there (DATA_CREATE_UNKNOWN), REALM_ACTIVATE, then
 * KVM's whole teardown (kvm-host.ts realmTearDown). `teardownRmiCalls` counts the RMI calls of one
 * teardown.
 */
export async function realmLifecycle(minMs = 1000): Promise<{ stepsPerS: StepRate; teardownRmiCalls: number }> {
  const s = new Stage2({ memory: benchMemory(16) });
  const ramBytes = s.memory.regions.find((r) => r.kind === 'RAM')!.base * GRANULE;
  const port = stage2RmiPort(s);
  let calls = 0;
  const counted = Object.fromEntries(
    Object.entries(port).map(([k, f]) => [k, (...a: number[]) => (calls++, (f as (...x: number[]) => unknown)(...a))]),
  ) as unknown as RmiPort;
  // RD and roots at fixed addresses (roots must be consecutive); the teardown frees them to `fixed`.
  const rd = ramBytes + 2 * GiB;
  const count = realmRootRttCount(40, 1);
  const roots = Array.from({ length: count }, (_, i) => rd + (i + 1) * GRANULE);
  const fixed: RealmHost = { alloc: () => undefined, free: () => undefined, warn: (m) => { throw new Error(m); } };
  const host = new BenchHost(ramBytes + 3 * GiB);
  let teardownRmiCalls = 0;
  const stepsPerS_ = await stepsPerS(async () => {
    step(s, granuleDelegate(s, rd), 'delegate rd');
    for (const r of roots) step(s, granuleDelegate(s, r), 'delegate root');
    step(s, realmCreate(s, rd, { s2sz: 40, rttLevelStart: 1, rttNumStart: count, rttBase: roots[0]! }), 'realm create');
    step(s, await realmCreateRttLevels(port, rd, host, 0, 1, 3), 'rtt levels');
    const data = host.alloc();
    step(s, granuleDelegate(s, data), 'delegate data');
    step(s, dataCreateUnknown(s, rd, data, 0), 'data create');
    step(s, realmActivate(s, rd), 'realm activate');
    calls = 0;
    const teardownHost: RealmHost = { alloc: () => host.alloc(), free: (a) => (a === rd || roots.includes(a) ? fixed.free(a) : host.free(a)), warn: fixed.warn };
    step(s, await realmTearDown(counted, { rd, roots, ipaBits: 40, startLevel: 1, recs: [] }, teardownHost), 'realm teardown');
    teardownRmiCalls = calls;
    return 6 + count;
  }, minMs);
  return { stepsPerS: stepsPerS_, teardownRmiCalls };
}

/**
 * One checkInvariants call, in µs: on a freshly booted core (16 GiB RAM, 40-bit PA) and with a
 * guest (one donated, one shared page) and a realm (RTTs down to level 3) beside the host. Each
 * figure is the best of 15 slices of 50 ms, which a shared machine disturbs least.
 */
export async function checkInvariantsUs(): Promise<{ idle: number; busy: number }> {
  const idle = new Stage2({ memory: benchMemory(16) });
  const busy = new Stage2({ memory: benchMemory(16) });
  const ram = busy.memory.regions.find((r) => r.kind === 'RAM')!.base;
  const guest = vmid(0x80);
  must(createAddressSpace(busy, guest, 40, [{ base: (ram + FRAMES_PER_GIB) as Pfn, count: 10 }]), 'create');
  must(hostDonateGuest(busy, guest, ram + FRAMES_PER_GIB + 16, 0x100), 'donate');
  must(hostShareGuest(busy, guest, ram + FRAMES_PER_GIB + 20, 0x200, 1, PERM_RW), 'share');
  const rd = (ram + 4 * FRAMES_PER_GIB) * GRANULE;
  for (let i = 0; i < 3; i++) must(granuleDelegate(busy, rd + i * GRANULE), 'delegate');
  must(realmCreate(busy, rd, { s2sz: 40, rttLevelStart: 1, rttNumStart: 2, rttBase: rd + GRANULE }), 'realm create');
  must(await realmCreateRttLevels(stage2RmiPort(busy), rd, new BenchHost(rd + GiB), 0, 1, 3), 'rtt levels');
  const best = (s: Stage2): number => {
    let min = Infinity;
    for (let slice = 0; slice < 15; slice++) {
      let n = 0;
      const t0 = process.hrtime.bigint();
      while (process.hrtime.bigint() - t0 < 50_000_000n) {
        if (checkInvariants(s).length > 0) throw new Error('violations');
        n++;
      }
      min = Math.min(min, Number(process.hrtime.bigint() - t0) / n / 1000);
    }
    return min;
  };
  return { idle: best(idle), busy: best(busy) };
}

/** Standalone: `node packages/bench/dist/stage2-lifecycle-bench.js` prints the figures as JSON. */
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const minMs = Number(process.env['BENCH_MS'] ?? 2000);
  const spaces = await stage2LifecycleStepsPerS(minMs);
  const realm = await realmLifecycle(minMs);
  const check = await checkInvariantsUs();
  process.stdout.write(
    JSON.stringify({
      stage2_lifecycle_steps_per_s: Math.round(spaces.wall),
      stage2_lifecycle_steps_per_cpu_s: Math.round(spaces.cpu),
      realm_lifecycle_steps_per_s: Math.round(realm.stepsPerS.wall),
      realm_lifecycle_steps_per_cpu_s: Math.round(realm.stepsPerS.cpu),
      realm_teardown_rmi_calls: realm.teardownRmiCalls,
      check_invariants_us_idle: Number(check.idle.toFixed(1)),
      check_invariants_us_busy: Number(check.busy.toFixed(1)),
    }) + '\n',
  );
}
