import { describe, expect, test } from 'vitest';
import { VMID_HLOS } from '@hypmesh/rm';
import { MEM_TYPE, TRANS_TYPE } from '@hypmesh/rm-wire';
import { inProcessCorePort, inProcessHoldings, inProcessRm } from './in-process.js';
import { orphansOf, vmmParcelLabel } from './restart-sweep.js';
import { bind, HOST_GUEST_RAM, MiB, timerClock, vmmFixture, type VmmFixture } from './test-support.js';
import { DEFAULT_VMM_CONFIG, VmManager } from './vm-manager.js';

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { errno?: string; rmError?: string; rule: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.errno ?? r.error.rmError} ${r.error.rule}: ${r.error.message}`);
  return r.value;
};

/** The fixture's VMM dies without a teardown call (kill -9); a new one starts over the same RM and core. */
function restarted(f: VmmFixture): VmManager {
  f.vmm.abandon();
  return new VmManager(inProcessRm(f.rm), inProcessCorePort(f.s), { ...DEFAULT_VMM_CONFIG, waitMs: 1_000, donationRegion: f.vmm.pages.region }, timerClock);
}

describe('issue 9 §3 a restarted VMM takes back what its previous process held', () => {
  test("orphansOf: only what the VMM made (its labelled parcels and the grants backing no parcel, each naming one orphan alone); other HLOS clients' parcels naming an orphan are left alone", () => {
    const vms = [
      { vmid: 0x81, status: 'RUNNING' as const },
      { vmid: 0x80, status: 'LOAD' as const },
    ];
    const parcels = [
      { handle: 1, ownerVmid: 3, label: vmmParcelLabel(0x81), aclVmids: [0x81], grantId: 5 },
      // Another HLOS client's parcels for the orphans: a share with HLOS in the ACL, a lend to 0x81 alone, a lend with the label of another VM.
      { handle: 2, ownerVmid: 3, label: 7, aclVmids: [3, 0x81], grantId: 6 },
      { handle: 5, ownerVmid: 3, label: 8, aclVmids: [0x81], grantId: 12 },
      { handle: 6, ownerVmid: 3, label: vmmParcelLabel(0x80), aclVmids: [0x81], grantId: 13 },
      { handle: 7, ownerVmid: 3, label: vmmParcelLabel(0x80), aclVmids: [0x80], grantId: 14 },
      { handle: 3, ownerVmid: 3, label: vmmParcelLabel(0x90), aclVmids: [0x90], grantId: 10 },
      { handle: 4, ownerVmid: 0x81, label: vmmParcelLabel(0x80), aclVmids: [0x80], grantId: 11 },
    ];
    const grants = [
      { grantId: 5, aclVmids: [0x81], borrowerVmids: [0x81] },
      { grantId: 12, aclVmids: [0x81], borrowerVmids: [0x81] },
      { grantId: 7, aclVmids: [0x81], borrowerVmids: [0x81] },
      { grantId: 8, aclVmids: [0x81], borrowerVmids: [] },
      { grantId: 15, aclVmids: [3, 0x81], borrowerVmids: [] },
      { grantId: 9, aclVmids: [0x42], borrowerVmids: [0x42] },
    ];
    expect(orphansOf(vms, parcels, grants)).toEqual([
      { vmid: 0x80, status: 'LOAD', parcels: [7], grants: [] },
      {
        vmid: 0x81,
        status: 'RUNNING',
        parcels: [1],
        grants: [
          { grantId: 7, mapped: true },
          { grantId: 8, mapped: false },
        ],
      },
    ]);
  });

  test('kill -9 with a RUNNING VM and a created one: creates work at once, the sweep tears both down and everything is back with the host', async () => {
    const f = vmmFixture();
    const running = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(running.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(f.vmm.mapMem(running.handle, bind(0x9000_0000, 8 * MiB, 64 * 1024, 'SHARE', 6)));
    must(f.vmm.setDtbConfig(running.handle, 0x8000_0010n, 0x2000n));
    must(await f.vmm.start(running.handle));
    const created = must(await f.vmm.create(f.session, 'GUNYAH', 40));

    const vmm = restarted(f);
    const sweep = must(await vmm.sweepOrphans(inProcessHoldings(f.rm, f.s)));
    expect(sweep.orphans).toEqual([running.vmid, created.vmid]);
    expect(vmm.list().map((v) => [v.vmid, v.session])).toEqual([
      [running.vmid, 'orphaned-at-restart'],
      [created.vmid, 'orphaned-at-restart'],
    ]);

    // The held frames are not handed out again: a create donates other pages (the core would
    // refuse pages it no longer gives the host, EPERM host_not_owned).
    const session = vmm.openSession();
    const fresh = must(await vmm.create(session, 'GUNYAH', 40));

    const report = await sweep.swept;
    expect(report).toEqual({ tornDown: [running.vmid, created.vmid], realmsTornDown: [], leaked: [], framesHeld: expect.any(Number) as number, framesStillHeld: 0 });
    expect(report.framesHeld).toBeGreaterThanOrEqual(2 * DEFAULT_VMM_CONFIG.initialPoolPages);
    expect([...f.rm.vms.keys()]).toEqual([fresh.vmid]);

    must(await vmm.destroy(fresh.handle));
    f.expectAllBack(vmm);
  });

  test("another HLOS client's parcels for a swept VM (a share and a lend, one accepted) survive the sweep; the sweep ends clean and gives every pool page back", async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(f.vmm.setDtbConfig(vm.handle, 0x8000_0010n, 0x2000n));
    must(await f.vmm.start(vm.handle));
    // Another HLOS client (not the VMM) shares one page with the VM and lends it another; the VM accepts the share.
    const other = (label: number, name: 'MEM_SHARE' | 'MEM_LEND', acl: { vmid: number; rights: number }[], at: bigint) =>
      f.rm.call(VMID_HLOS, name, { memType: MEM_TYPE.NORMAL, flags: 0, label, acl, sgl: [{ base: HOST_GUEST_RAM + at, size: 4096n }], attrs: [] });
    const shared = must(await other(1, 'MEM_SHARE', [{ vmid: VMID_HLOS, rights: 7 }, { vmid: vm.vmid, rights: 6 }], 64n * BigInt(MiB)));
    const lent = must(await other(2, 'MEM_LEND', [{ vmid: vm.vmid, rights: 6 }], 65n * BigInt(MiB)));
    must(await f.rm.call(vm.vmid, 'MEM_ACCEPT', { handle: shared.handle, memType: MEM_TYPE.NORMAL, transType: TRANS_TYPE.SHARE, flags: 0, label: 0, acl: [], sgl: [], attrs: [], mapVmid: 0 }));

    const vmm = restarted(f);
    const sweep = must(await vmm.sweepOrphans(inProcessHoldings(f.rm, f.s)));
    // The sweep leaves the other client's parcels alone, and waits for that client to reclaim them
    // (VM_DEALLOCATE is refused while a grant names the VM); it does so once the reset released the share.
    const mine = new Set([shared.handle, lent.handle]);
    for (let i = 0; i < 100 && mine.size > 0; i++) {
      expect([...f.rm.parcels.keys()]).toEqual(expect.arrayContaining([...mine]));
      for (const h of [...mine]) if ((await f.rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle: h, flags: 0 })).ok) mine.delete(h);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(mine.size).toBe(0);
    const report = await sweep.swept;
    expect(report).toMatchObject({ tornDown: [vm.vmid], leaked: [], framesStillHeld: 0 });
    expect(report.framesHeld).toBeGreaterThan(0);
    f.expectAllBack(vmm);
  });

  test('a started realm and granules delegated for a realm that was never created: torn down and undelegated, everything back', async () => {
    const f = vmmFixture();
    const realm = must(await f.vmm.create(f.session, 'REALM', 40));
    must(f.vmm.mapMem(realm.handle, bind(0x1000_0000, 0, 64 * 1024)));
    const started = must(await f.vmm.start(realm.handle));
    // A create that died after GRANULE_DELEGATE: two DELEGATED granules nothing uses.
    const stray = f.vmm.pages.allocRun(2)!;
    for (let i = 0; i < 2; i++) expect((await inProcessCorePort(f.s).granuleDelegate((stray.base + i) * 4096)).ok).toBe(true);
    const rd = f.s.rmm.realms.values().next().value!.rd * 4096;

    const vmm = restarted(f);
    const sweep = must(await vmm.sweepOrphans(inProcessHoldings(f.rm, f.s)));
    expect({ orphans: sweep.orphans, realms: sweep.realms }).toEqual({ orphans: [], realms: [rd] });
    const report = await sweep.swept;
    expect(report).toMatchObject({ realmsTornDown: [rd], leaked: [], framesStillHeld: 0 });
    // The RD, roots, RTTs and DATA granules, and the two stray ones.
    expect(report.framesHeld).toBe(started.hostPages + 2);
    f.expectAllBack(vmm);
  });

  test('a core restarting as the sweep ends (its region read fails twice): asked again, the frames the teardown gave back are free, none counted still held', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    const vmm = restarted(f);
    const inner = inProcessHoldings(f.rm, f.s);
    let reads = 0;
    let failing = 0;
    const holdings = {
      ...inner,
      // The sweep's first read (at its start) answers; the next two, after the teardown, do not.
      regionRuns: (run: Parameters<typeof inner.regionRuns>[0]) => {
        if (++reads === 1 || failing === 2) return inner.regionRuns(run);
        failing++;
        return Promise.resolve({ ok: false as const, error: 'UNAVAILABLE core' });
      },
    };
    const sweep = must(await vmm.sweepOrphans(holdings));
    const report = await sweep.swept;
    expect(failing).toBe(2);
    expect(report).toMatchObject({ tornDown: [vm.vmid], leaked: [], framesStillHeld: 0 });
    expect(report.framesHeld).toBeGreaterThan(0);
    f.expectAllBack(vmm);
  });

  test('holdings that cannot be read: EIO holdings_unreadable, nothing held or registered', async () => {
    const f = vmmFixture();
    const vmm = restarted(f);
    const holdings = { ...inProcessHoldings(f.rm, f.s), rmVms: () => Promise.resolve({ ok: false as const, error: 'UNAVAILABLE rm' }) };
    const r = await vmm.sweepOrphans(holdings);
    expect(r.ok ? 'ok' : `${r.error.errno} ${r.error.rule}`).toBe('EIO holdings_unreadable');
    expect(vmm.pages.inUse()).toBe(0);
    expect(vmm.list()).toEqual([]);
  });
});
