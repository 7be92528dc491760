/**
 * The VM manager against an in-process RM and core: the L24 start sequence (§4.4), teardown in
 * _gunyah_vm_put's order, ENOMEM top-up and retry (seed 003), the realm life cycle (seed 004), and
 * session-bound handles (seed 001). Every scenario ends with all memory back with the host.
 */
import { describe, expect, test } from 'vitest';
import { bind, GiB, MiB, vmmFixture, type VmmFixture } from './test-support.js';
import type { VmView } from './vm-manager.js';

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { errno: string; rule: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.errno} ${r.error.rule}: ${r.error.message}`);
  return r.value;
};

/** A GUNYAH VM with a lent 4 MiB binding holding the DTB, a shared 64 KiB one and two boot registers. */
async function configured(f: VmmFixture): Promise<VmView> {
  const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
  must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
  must(f.vmm.mapMem(vm.handle, bind(0x9000_0000, 8 * MiB, 64 * 1024, 'SHARE', 6)));
  must(f.vmm.setDtbConfig(vm.handle, 0x8000_0000n + 0x10_0010n, 0x2000n));
  must(f.vmm.setBootContext(vm.handle, 'PC', 0, 0x8000_0000n));
  must(f.vmm.setBootContext(vm.handle, 'X', 0, 0x8010_0010n));
  return vm;
}

describe('§4.4 L24 gunyah_vm_start', () => {
  test('the exact RM call order; START is idempotent; the VM is RUNNING with its boot parcels mapped', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    f.calls.length = 0;
    const started = must(await f.vmm.start(vm.handle));
    expect(f.calls).toEqual([
      'MEM_LEND', // the DTB range, 1-ACL parcel
      'MEM_LEND', // the lend binding (less the DTB range)
      'MEM_SHARE', // the share binding
      'VM_CONFIG_IMAGE',
      'VM_SET_DEMAND_PAGING',
      'VM_SET_ADDRESS_LAYOUT',
      'VM_INIT',
      'VM_SET_CONTEXT',
      'VM_SET_CONTEXT',
      'VM_GET_HYP_RESOURCES',
      'VM_START',
    ]);
    expect([started.state, started.rmStatus]).toEqual(['RUNNING', 'RUNNING']);
    expect(f.rm.vms.get(vm.vmid)!.bootContext.get('1:0')).toBe(0x8000_0000n);
    f.calls.length = 0;
    expect(must(await f.vmm.start(vm.handle)).state).toBe('RUNNING');
    expect(f.calls).toEqual([]);
    const late = f.vmm.setBootContext(vm.handle, 'X', 1, 0n);
    expect(late.ok ? 'ok' : `${late.error.errno} ${late.error.rule}`).toBe('EINVAL vm_started');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });

  test('a failing step: START fails with its errno, later STARTs are -ENODEV', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 64 * 1024)));
    must(f.vmm.setDtbConfig(vm.handle, 0x9000_0000n, 0x1000n)); // outside every binding
    const r = await f.vmm.start(vm.handle);
    expect(r.ok ? 'ok' : `${r.error.errno} ${r.error.rule}`).toBe('EINVAL dtb_not_in_binding');
    const again = await f.vmm.start(vm.handle);
    expect(again.ok ? 'ok' : `${again.error.errno} ${again.error.rule}`).toBe('ENODEV not_running');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });
});

describe('§4.4 _gunyah_vm_put: teardown order, every page back', () => {
  test('RUNNING: forced stop, reclaim, reset and wait, reclaim, dealloc; then the core pages', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    must(await f.vmm.start(vm.handle));
    f.calls.length = 0;
    const done = must(await f.vmm.destroy(vm.handle));
    expect(f.calls.filter((c, i, a) => c !== a[i - 1])).toEqual(['VM_STOP', 'MEM_RECLAIM', 'VM_RESET', 'MEM_RECLAIM', 'VM_DEALLOCATE']);
    expect(done.state).toBe('DESTROYED');
    expect(done.leaked).toEqual([]);
    expect(done.teardown.every((t) => t.ok)).toBe(true);
    expect(done.teardown.map((t) => t.step)).toContain('destroy_address_space');
    f.expectAllBack();
  });

  test('stop waits for EXITED; destroy of a never-started VM only deallocates', async () => {
    const f = vmmFixture();
    const vm = await configured(f);
    must(await f.vmm.start(vm.handle));
    const stopped = must(await f.vmm.stop(vm.handle));
    expect([stopped.state, stopped.rmStatus]).toEqual(['STOPPED', 'EXITED']);
    must(await f.vmm.destroy(vm.handle));
    const idle = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    f.calls.length = 0;
    must(await f.vmm.destroy(idle.handle));
    expect(f.calls).toEqual(['VM_DEALLOCATE']);
    f.expectAllBack();
  });
});

describe('seed 003: host donations for the stage-2, ENOMEM top-up and retry', () => {
  test('no pool reserved: VM_START answers NOMEM, the VMM tops up, resets and starts again', async () => {
    const f = vmmFixture({ initialPoolPages: 0, topUpPages: 8, reservePoolAtStart: false, attemptsMax: 6 });
    const vm = await configured(f);
    const r = must(await f.vmm.start(vm.handle));
    expect(r.rmStatus).toBe('RUNNING');
    expect(f.calls.filter((c) => c === 'VM_START').length).toBeGreaterThan(1);
    expect(f.calls).toContain('VM_RESET');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });

  test('create: too few pages for the roots (ENOMEM) → more pages, again', async () => {
    const f = vmmFixture({ initialPoolPages: -2, topUpPages: 1 });
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 41)); // 4 concatenated roots; the first try donates 2 pages
    expect(vm.hostPages).toBe(4);
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });
});

describe('seed 004: realm VMs over the core RMI', () => {
  test('create, data, activate, destroy: no delegated granule left, every page with the host', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'REALM', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x10_0000, 16 * MiB, 8 * 4096)));
    must(f.vmm.mapMem(vm.handle, bind(GiB + 2 * MiB - 4096, 17 * MiB, 2 * 4096)));
    const r = must(await f.vmm.start(vm.handle));
    expect(r.state).toBe('RUNNING');
    expect(f.s.rmm.realms.size).toBe(1);
    expect([...f.s.rmm.realms.values()][0]!.state).toBe('ACTIVE');
    expect(r.hostPages).toBeGreaterThan(10);
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.leaked).toEqual([]);
    expect(done.hostPages).toBe(0);
    f.expectAllBack();
  });

  test('a realm binding must be lent and protected', async () => {
    const f = vmmFixture();
    const vm = must(await f.vmm.create(f.session, 'REALM', 40));
    const r = f.vmm.mapMem(vm.handle, bind(0, 0, 4096, 'SHARE'));
    expect(r.ok ? 'ok' : r.error.rule).toBe('realm_binding_not_private');
    must(await f.vmm.destroy(vm.handle));
    f.expectAllBack();
  });
});

describe('seed 001: handles bound to the client session', () => {
  test('the session ends without DestroyVm: its VMs are torn down in the background', async () => {
    const f = vmmFixture();
    const a = await configured(f);
    must(await f.vmm.start(a.handle));
    const b = must(await f.vmm.create(f.session, 'REALM', 40));
    const other = f.vmm.openSession();
    const c = must(await f.vmm.create(other, 'GUNYAH', 40));
    const states: string[] = [];
    f.vmm.watch((e) => e.kind === 'STATE' && e.handle === a.handle && states.push(e.state));
    f.vmm.endSession(f.session);
    await f.vmm.idle();
    expect(states).toEqual(['DESTROYING', 'DESTROYED']);
    expect(f.vmm.view(a.handle)).toBeUndefined();
    expect(f.vmm.view(b.handle)).toBeUndefined();
    expect(f.vmm.view(c.handle)?.state).toBe('CREATED');
    const r = await f.vmm.create(f.session, 'GUNYAH', 40);
    expect(r.ok ? 'ok' : r.error.rule).toBe('session_unknown');
    expect((await f.vmm.start(c.handle, f.session)).ok).toBe(false); // another session's handle
    f.vmm.endSession(other);
    await f.vmm.idle();
    f.expectAllBack();
  });
});
