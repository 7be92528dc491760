import { describe, expect, test } from 'vitest';
import { ResourceManager, VMID_HLOS, inProcessCore } from '@hypmesh/rm';
import { STOP_FLAGS, STOP_REASON } from '@hypmesh/rm-wire';
import { DEFAULT_STAGE2_CONFIG, Stage2 } from '@hypmesh/stage2';
import { donationRegionOf, inProcessCorePort, inProcessHoldings, inProcessRm } from './in-process.js';
import type { RmNotice, RmPort } from './ports.js';
import { bind, MiB, timerClock } from './test-support.js';
import { DEFAULT_VMM_CONFIG, VmManager } from './vm-manager.js';

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { rule: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.rule}: ${r.error.message}`);
  return r.value;
};

/**
 * A VM manager over an in-process RM whose msgq link can be cut: while it is down the RM's
 * notifications to HLOS are lost (an RM restart), and the link's changes reach the manager as LINK
 * notices, as the gRPC adapter sends them (services/vmm rm-client.ts).
 */
function linked() {
  const s = new Stage2(DEFAULT_STAGE2_CONFIG);
  const rm = new ResourceManager(inProcessCore(s));
  const inner = inProcessRm(rm);
  const listeners = new Set<(n: RmNotice) => void>();
  let up = true;
  inner.onNotice((n) => {
    if (up) for (const l of listeners) l(n);
  });
  const port: RmPort = {
    ...inner,
    onNotice: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  const link = (now: boolean): void => {
    up = now;
    for (const l of [...listeners]) l({ kind: 'LINK', up: now });
  };
  const vmm = new VmManager(port, inProcessCorePort(s), { ...DEFAULT_VMM_CONFIG, donationRegion: donationRegionOf(s), waitMs: 300 }, timerClock, inProcessHoldings(rm, s));
  return { s, rm, vmm, link };
}

describe('issue 9 §3 notifications lost while the msgq link was down are re-read when it comes back', () => {
  test('a VM stopped while the link was down: the lost VM_STATUS is re-read at LINK up, and the teardown runs from EXITED with no failed step', async () => {
    const { rm, vmm, link } = linked();
    const session = vmm.openSession();
    const vm = must(await vmm.create(session, 'GUNYAH', 40));
    must(vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(vmm.setDtbConfig(vm.handle, 0x8000_0010n, 0x2000n));
    must(await vmm.start(vm.handle));

    link(false);
    must(await rm.call(VMID_HLOS, 'VM_STOP', { vmid: vm.vmid, flags: STOP_FLAGS.FORCE, stopReason: STOP_REASON.FORCE_STOP }));
    expect(rm.vms.get(vm.vmid)?.status).toBe('EXITED');
    expect(vmm.view(vm.handle)?.rmStatus).toBe('RUNNING');

    link(true);
    for (let i = 0; i < 50 && vmm.view(vm.handle)?.rmStatus !== 'EXITED'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(vmm.view(vm.handle)?.rmStatus).toBe('EXITED');

    const gone = must(await vmm.destroy(vm.handle));
    expect(gone.leaked).toEqual([]);
    expect(gone.teardown.filter((t) => !t.ok)).toEqual([]);
    // No VM_STOP was needed: the RM already had the VM EXITED.
    expect(gone.teardown.map((t) => t.step)).not.toContain('vm_stop');
    expect(rm.vms.has(vm.vmid)).toBe(false);
  });

  test('a teardown whose RM wait fails while the link is down waits for the link, re-reads, and finishes without spending its attempts', async () => {
    const { rm, vmm, link } = linked();
    const session = vmm.openSession();
    const vm = must(await vmm.create(session, 'GUNYAH', 40));
    must(vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(vmm.setDtbConfig(vm.handle, 0x8000_0010n, 0x2000n));
    must(await vmm.start(vm.handle));

    // The link goes down: the teardown's VM_STOP is applied but its EXITED notice is lost, so the
    // wait fails (EIO vm_stop_wait) and the step waits for the link instead of retrying at once.
    link(false);
    const destroying = vmm.destroy(vm.handle);
    await new Promise((r) => setTimeout(r, 800));
    expect(rm.vms.get(vm.vmid)?.status).toBe('EXITED');
    expect(vmm.view(vm.handle)?.state).toBe('DESTROYING');
    link(true);
    const gone = must(await destroying);
    expect(gone.leaked).toEqual([]);
    expect(gone.teardown.filter((t) => !t.ok)).toEqual([]);
    expect(rm.vms.has(vm.vmid)).toBe(false);
  });
});
