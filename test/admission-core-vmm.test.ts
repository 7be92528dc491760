/**
 * The VMM's side of the core's `frames_per_call` cap (services/core admission.ts): a pool top-up
 * larger than the cap goes to the core in calls of at most TOP_UP_PAGES_PER_CALL frames, each
 * recorded, and a chunk the core refuses frees only its own run (the VMM against an in-process RM
 * and core, with a CorePort that records and can refuse top-ups).
 */
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { CORE_ADMISSION } from '@hypmesh/core-service';
import { DEFAULT_STAGE2_CONFIG, Stage2 } from '@hypmesh/stage2';
import { DEFAULT_VMM_CONFIG, TOP_UP_PAGES_PER_CALL, VmManager, donationRegionOf, inProcessCorePort, inProcessRm, type CorePort, type FrameRun } from '@hypmesh/vmm';
import { expect, test } from 'vitest';

const clock = {
  nowMs: () => performance.now(),
  after: (ms: number, fn: () => void) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

function fixture(initialPoolPages: number, refuseTopUp?: number) {
  const s = new Stage2(DEFAULT_STAGE2_CONFIG);
  const inner = inProcessCorePort(s);
  const topUps: number[] = [];
  const core: CorePort = {
    ...inner,
    topUpTablePool: (vmid: number, runs: readonly FrameRun[]) => {
      topUps.push(runs.reduce((n, r) => n + r.count, 0));
      if (topUps.length === refuseTopUp) return Promise.resolve({ ok: false, error: { errno: 'EIO', rule: 'cap_frames_per_call', message: 'refused by the test' } });
      return inner.topUpTablePool(vmid, runs);
    },
  };
  const vmm = new VmManager(inProcessRm(new ResourceManager(inProcessCore(s))), core, { ...DEFAULT_VMM_CONFIG, donationRegion: donationRegionOf(s), waitMs: 1_000, initialPoolPages }, clock);
  return { vmm, topUps, session: vmm.openSession() };
}

test("the VMM's chunk is the core's default frames_per_call", () => {
  expect(TOP_UP_PAGES_PER_CALL).toBe(CORE_ADMISSION.frames_per_call.limit);
});

test('a 10,000-page top-up is calls of at most the cap; the VM holds them all and gives them all back', async () => {
  const f = fixture(10_000);
  const made = await f.vmm.create(f.session, 'GUNYAH', 40);
  if (!made.ok) throw new Error(made.error.message);
  const cap = TOP_UP_PAGES_PER_CALL;
  expect(f.topUps).toEqual([...Array<number>(Math.floor(10_000 / cap)).fill(cap), 10_000 % cap]);
  expect(made.value.hostPages).toBeGreaterThanOrEqual(10_000);
  const gone = await f.vmm.destroy(made.value.handle);
  if (!gone.ok) throw new Error(gone.error.message);
  expect(gone.value.hostPages).toBe(0);
  expect(gone.value.leaked).toEqual([]);
  expect(f.vmm.pages.inUse()).toBe(0);
});

test('a chunk refused by the core fails the create; nothing is left allocated', async () => {
  const f = fixture(10_000, 2);
  const made = await f.vmm.create(f.session, 'GUNYAH', 40);
  expect(made.ok).toBe(false);
  expect(f.topUps).toEqual([TOP_UP_PAGES_PER_CALL, TOP_UP_PAGES_PER_CALL]);
  expect(f.vmm.list()).toEqual([]);
  expect(f.vmm.pages.inUse()).toBe(0);
});
