/**
 * A lease survives a VMM restart (durable-state.ts, issue 9 §3), in process: the saved state of a
 * killed VMM, handed to the next one's restart sweep, re-adopts the live lease and its VMs as they
 * are in the RM and the core; a lease that expired while no VMM ran is not adopted, and its VMs go
 * with the sweep.
 */
import { describe, expect, test } from 'vitest';
import { ManualClock, type VmmClock } from './clock.js';
import { inProcessCorePort, inProcessHoldings, inProcessRm } from './in-process.js';
import { bind, MiB, timerClock, vmmFixture, type VmmFixture } from './test-support.js';
import { DEFAULT_VMM_CONFIG, VmManager } from './vm-manager.js';

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { errno: string; rule: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.errno} ${r.error.rule}: ${r.error.message}`);
  return r.value;
};

/** The wall clock the tests pretend it is when the state is saved. */
const SAVED_AT = 1_700_000_000_000;

function restarted(f: VmmFixture, clock: VmmClock = timerClock): VmManager {
  f.vmm.abandon();
  return new VmManager(inProcessRm(f.rm), inProcessCorePort(f.s), { ...DEFAULT_VMM_CONFIG, waitMs: 1_000, donationRegion: f.vmm.pages.region }, clock);
}

async function leaseWithRunningVm(f: VmmFixture) {
  const lease = must(f.vmm.openLease(60_000)).sessionId;
  const vm = must(await f.vmm.create(lease, 'GUNYAH', 40));
  must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB), false, lease));
  must(f.vmm.mapMem(vm.handle, bind(0x9000_0000, 8 * MiB, 64 * 1024, 'SHARE', 6), false, lease));
  must(f.vmm.setDtbConfig(vm.handle, 0x8000_0010n, 0x2000n, lease));
  return { lease, vm: must(await f.vmm.start(vm.handle, lease)) };
}

describe('a durable VMM re-adopts its live leases after kill -9', () => {
  test('the lease id keeps working, its VM is RUNNING with the same parcels, grants and pool; the stream VM is swept; closing the lease gives everything back', async () => {
    const f = vmmFixture({}, new ManualClock());
    const { lease, vm } = await leaseWithRunningVm(f);
    const streamVm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    const saved = f.vmm.durableState(SAVED_AT);
    expect(saved.leases.map((l) => l.sessionId)).toEqual([lease]);

    const vmm = restarted(f, new ManualClock());
    const sweep = must(await vmm.sweepOrphans(inProcessHoldings(f.rm, f.s), { state: saved, wallMs: SAVED_AT + 5_000 }));
    expect({ adopted: sweep.adopted, orphans: sweep.orphans }).toEqual({ adopted: [vm.vmid], orphans: [streamVm.vmid] });
    // Adopted with the time it had left (before any call renews it: it still ends at SAVED_AT + 60 s), not a fresh TTL.
    // ...and with the session's next handle, after the re-adopted VM's (a handle is never given twice).
    expect(vmm.durableState(SAVED_AT + 5_000).leases).toEqual([{ sessionId: lease, ttlMs: 60_000, expiresAtWallMs: SAVED_AT + 60_000, nextHandle: 2 }]);
    const report = await sweep.swept;
    expect({ leaked: report.leaked, still: report.framesStillHeld }).toEqual({ leaked: [], still: 0 });

    const again = must(vmm.describe(vm.handle, lease));
    expect(again).toMatchObject({ vmid: vm.vmid, state: 'RUNNING', rmStatus: 'RUNNING', bindings: vm.bindings, donatedRuns: vm.donatedRuns, hostPages: vm.hostPages });
    expect(vmm.pages.inUse()).toBe(vm.hostPages);
    const renewed = must(vmm.renewLease(lease));
    expect(renewed.ttlMs).toBe(60_000);
    const next = must(await vmm.create(lease, 'GUNYAH', 40));
    expect(next.handle).toBeGreaterThan(streamVm.handle);

    const closed = must(await vmm.closeLease(lease));
    expect(closed.map((v) => [v.handle, v.state, v.leaked])).toEqual([
      [vm.handle, 'DESTROYED', []],
      [next.handle, 'DESTROYED', []],
    ]);
    await vmm.idle();
    f.expectAllBack(vmm);
  });

  test('a lease that expired while no VMM ran is not adopted: its VM is an orphan like any other', async () => {
    const f = vmmFixture();
    const { lease, vm } = await leaseWithRunningVm(f);
    const saved = f.vmm.durableState(SAVED_AT);
    const vmm = restarted(f);
    const sweep = must(await vmm.sweepOrphans(inProcessHoldings(f.rm, f.s), { state: saved, wallMs: SAVED_AT + 60_001 }));
    expect({ adopted: sweep.adopted, orphans: sweep.orphans }).toEqual({ adopted: [], orphans: [vm.vmid] });
    await sweep.swept;
    expect(vmm.renewLease(lease)).toMatchObject({ ok: false, error: { rule: 'session_unknown' } });
    await vmm.idle();
    f.expectAllBack(vmm);
  });

  test('a saved VM the RM no longer lists is not adopted (its lease is, empty)', async () => {
    const f = vmmFixture();
    const { lease, vm } = await leaseWithRunningVm(f);
    const saved = f.vmm.durableState(SAVED_AT);
    // Another VMM process tore it down meanwhile (or the RM was reset): the saved record is stale.
    const other = restarted(f);
    await (must(await other.sweepOrphans(inProcessHoldings(f.rm, f.s)))).swept;
    other.abandon();
    const vmm = new VmManager(inProcessRm(f.rm), inProcessCorePort(f.s), { ...DEFAULT_VMM_CONFIG, waitMs: 1_000, donationRegion: f.vmm.pages.region }, timerClock);
    const sweep = must(await vmm.sweepOrphans(inProcessHoldings(f.rm, f.s), { state: saved, wallMs: SAVED_AT }));
    expect(sweep.adopted).toEqual([]);
    expect(must(vmm.listVms(lease))).toEqual([]);
    expect(vmm.describe(vm.handle, lease).ok).toBe(false);
    vmm.close();
    await vmm.idle();
    f.expectAllBack(vmm);
  });
});
