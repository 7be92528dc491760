/**
 * Issue 10 (5, last bullet): "VMM memory grew 88 → 114 MiB over 6,000 sessions without levelling
 * off". Every structure the VM manager keeps per session or per VM is back to its size before the
 * sessions once they have ended: stream sessions, leases closed, leases expired, with and without
 * VMs. Ended-lease tombstones are the one thing kept on purpose (a late call's EBADF message); they
 * are bounded by count (ENDED_LEASES_MAX) and by age (ENDED_LEASE_KEEP_MS), so they too go back to
 * none. Sizes, not heap bytes: deterministic (the heap figure is `npm run bench`'s).
 */
import { describe, expect, test } from 'vitest';
import { ManualClock } from './clock.js';
import { ENDED_LEASE_KEEP_MS, ENDED_LEASES_MAX, LEASE_TTL_MS_MIN } from './lease.js';
import { vmmFixture } from './test-support.js';

const SESSIONS = 6_000;
/** Every this many sessions, one holds a VM (creates are the slow part of the loop). */
const WITH_VM_EVERY = 50;

describe('session memory is freed when sessions end', () => {
  test(`${SESSIONS} sessions (streams, leases closed, leases expired; some with a VM) leave every per-session structure at its baseline`, async () => {
    const clock = new ManualClock();
    const f = vmmFixture({}, clock);
    f.vmm.endSession(f.session);
    const baseline = f.vmm.footprint();
    expect(baseline).toEqual({ sessions: 0, leases: 0, endedLeases: 0, vms: 0, byVmid: 0, listeners: 0, background: 0, rmWaiters: 0 });

    for (let i = 0; i < SESSIONS; i++) {
      const kind = i % 3;
      const id = kind === 0 ? f.vmm.openSession() : (f.vmm.openLease(LEASE_TTL_MS_MIN) as { ok: true; value: { sessionId: string } }).value.sessionId;
      const stop = f.vmm.watch(() => {});
      if (i % WITH_VM_EVERY === 0) expect((await f.vmm.create(id, 'GUNYAH', 40)).ok).toBe(true);
      stop();
      if (kind === 0) f.vmm.endSession(id);
      else if (kind === 1) expect((await f.vmm.closeLease(id)).ok).toBe(true);
      else clock.advance(LEASE_TTL_MS_MIN);
      await f.vmm.idle();
    }

    const after = f.vmm.footprint();
    // The ended leases' tombstones are capped by count…
    expect(after.endedLeases).toBe(ENDED_LEASES_MAX);
    expect({ ...after, endedLeases: 0 }).toEqual(baseline);
    // …and by age: once no client can still be waiting on them, none is left.
    clock.advance(ENDED_LEASE_KEEP_MS);
    expect(f.vmm.footprint()).toEqual(baseline);
    expect(clock.pending()).toBe(0);
    f.expectAllBack();
  }, 120_000);
});
