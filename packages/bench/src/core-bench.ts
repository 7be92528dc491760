/**
 * In-process benchmarks of the stage-2 core (DESIGN.md §6): cost must follow ranges and blocks
 * touched, not bytes. Each function returns figures; main.ts prints them.
 */

import {
  PERM_RW,
  Stage2,
  VMID_HOST,
  createAddressSpace,
  createGrant,
  destroyGrant,
  hostShareHyp,
  hostUnshareHyp,
  mapGrant,
  unmapGrant,
  vmid,
  type FrameRange,
  type MemoryConfig,
  type Pfn,
  type Result,
} from '@hypmesh/stage2';

const GiB = 2 ** 30;
const FRAMES_PER_GIB = GiB / 4096;
const GUEST = vmid(0x80);

export const benchMemory = (ramGiB: number): MemoryConfig => ({
  paBits: 40,
  ram: [{ base: 2 * GiB, sizeBytes: ramGiB * GiB }],
  mmio: [{ base: 0, sizeBytes: 1 * GiB }],
});

function must<T>(r: Result<T, { message: string }>, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.message}`);
  return r.value;
}

const ramBase = (s: Stage2): number => s.memory.regions.find((r) => r.kind === 'RAM')!.base;

/** A guest with `poolPages` table pages donated from the start of RAM (frames [at, at+2+poolPages)). */
export function addGuest(s: Stage2, id: number, at: number, poolPages: number): void {
  must(createAddressSpace(s, vmid(id), 40, [{ base: at as Pfn, count: 2 + poolPages }]), 'create guest');
}

/** Runs `fn` for at least `minMs`, after a warm-up; returns nanoseconds per call. */
export function timeIt(fn: (i: number) => void, minMs = 300): number {
  for (let i = 0; i < 1000; i++) fn(i);
  let n = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0n;
  const min = BigInt(minMs) * 1_000_000n;
  while (elapsed < min) {
    for (let i = 0; i < 1000; i++) fn(n + i);
    n += 1000;
    elapsed = process.hrtime.bigint() - t0;
  }
  return Number(elapsed) / n;
}

/** Times `cycle` `reps` times after one warm-up run; returns the median in ms. */
export function medianMs(cycle: () => void, reps: number): number {
  cycle();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    cycle();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** host_share_hyp + host_unshare_hyp of single pages, cycling over 4096 distinct pages. */
export function shareUnsharePairsPerS(): number {
  const s = new Stage2({ memory: benchMemory(16) });
  const base = ramBase(s) + FRAMES_PER_GIB;
  const ns = timeIt((i) => {
    const p = (base + (i & 4095)) as Pfn;
    must(hostShareHyp(s, p), 'share');
    must(hostUnshareHyp(s, p), 'unshare');
  });
  return 1e9 / ns;
}

/**
 * One grant of `ranges` ranges (each `framesEach` frames, spaced apart), mapped by a guest at one
 * IPA range, unmapped and destroyed: the lend cycle.
 */
export function lendCycle(s: Stage2, ranges: readonly FrameRange<number>[], ipaBase: number): void {
  const frames = ranges.reduce((n, r) => n + r.count, 0);
  const { grantId } = must(createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges, acl: [{ vmid: GUEST, perms: PERM_RW }] }), 'create');
  must(mapGrant(s, { grantId, borrower: GUEST, perms: PERM_RW, ranges: [{ base: ipaBase, count: frames }] }), 'map');
  must(unmapGrant(s, grantId, GUEST), 'unmap');
  must(destroyGrant(s, grantId, VMID_HOST), 'destroy');
}

/** LEND of a 2 MiB-aligned 1 GiB range (1 GiB-aligned here: one L1 block), full cycle. */
export function lend1GiBBlockCycleMs(): number {
  const s = new Stage2({ memory: benchMemory(16) });
  addGuest(s, GUEST, ramBase(s), 64);
  const ranges = [{ base: ramBase(s) + 4 * FRAMES_PER_GIB, count: FRAMES_PER_GIB }];
  return medianMs(() => lendCycle(s, ranges, FRAMES_PER_GIB), 50);
}

/** One grant of 65,536 discontiguous 4 KiB pages (every other page), full cycle. */
export function lendScattered65536PagesMs(): number {
  const s = new Stage2({ memory: benchMemory(16) });
  addGuest(s, GUEST, ramBase(s), 1024);
  const base = ramBase(s) + 4 * FRAMES_PER_GIB;
  const ranges = Array.from({ length: 65536 }, (_, i) => ({ base: base + 2 * i, count: 1 }));
  return medianMs(() => lendCycle(s, ranges, FRAMES_PER_GIB), 5);
}

/** Cycle time for 1, 4, 16, 64, 256 ranges of 2 MiB each, spaced 4 MiB apart. */
export function lendScaling(): { ranges: number; ms: number }[] {
  const s = new Stage2({ memory: benchMemory(16) });
  addGuest(s, GUEST, ramBase(s), 1024);
  const base = ramBase(s) + 4 * FRAMES_PER_GIB;
  return [1, 4, 16, 64, 256].map((n) => {
    const ranges = Array.from({ length: n }, (_, i) => ({ base: base + i * 1024, count: 512 }));
    return { ranges: n, ms: medianMs(() => lendCycle(s, ranges, FRAMES_PER_GIB), 20) };
  });
}

/** A 64 GiB host that lends 256 MiB to each of 60 guests, all mapped (the RSS scenario). */
export function sixtyGuests(): Stage2 {
  const s = new Stage2({ memory: benchMemory(64) });
  const base = ramBase(s);
  const lendBase = base + 8 * FRAMES_PER_GIB;
  const quarterGiB = FRAMES_PER_GIB / 4;
  for (let g = 0; g < 60; g++) {
    const id = 0x80 + g;
    addGuest(s, id, base + g * 64, 16);
    const { grantId } = must(
      createGrant(s, { owner: VMID_HOST, type: 'LEND', ranges: [{ base: lendBase + g * quarterGiB, count: quarterGiB }], acl: [{ vmid: vmid(id), perms: PERM_RW }] }),
      'lend',
    );
    must(mapGrant(s, { grantId, borrower: vmid(id), perms: PERM_RW, ranges: [{ base: FRAMES_PER_GIB, count: quarterGiB }] }), 'map');
  }
  return s;
}
