/**
 * The RM's durable state (durable-state.ts): a fresh RM over the same core, given the state of one
 * with VMs, parcels, accepted IPAs and queued notifications, is that RM (the same digest), goes on
 * from it (the next handle and VMID are not ones in use), and the persist port sees each call's
 * result before the call's outcome is given back.
 */
import { describe, expect, test } from 'vitest';
import { ResourceManager } from './resource-manager.js';
import { inProcessCore } from './in-process-core.js';
import { restoreRm, rmDurableState } from './durable-state.js';
import { snapshotRm } from './snapshot.js';
import { RW, acceptReq, createReq, rmFixture, sgl } from './test-support.js';
import { VMID_HLOS } from './vmid.js';

describe('durable state', () => {
  test('restored into a fresh RM over the same core: the same digest, and it goes on from there', async () => {
    const f = rmFixture();
    const a = await f.vm();
    const b = await f.vm();
    const lent = await f.rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: a, rights: RW }], [sgl(0x10000, 0x4000)]));
    if (!lent.ok) throw new Error('lend refused');
    expect(await f.rm.call(a, 'MEM_ACCEPT', acceptReq(lent.value.handle, 'LEND'))).toMatchObject({ ok: true });
    const shared = await f.rm.call(VMID_HLOS, 'MEM_SHARE', createReq([{ vmid: VMID_HLOS, rights: RW }, { vmid: b, rights: RW }], [sgl(0x20000, 0x1000)]));
    expect(shared).toMatchObject({ ok: true });
    await f.rm.idle();

    // structuredClone stands in for the service's store: plain data, Maps, Sets and bigints kept.
    const state = structuredClone(rmDurableState(f.rm));
    const again = new ResourceManager(inProcessCore(f.s));
    restoreRm(again, state);
    expect(snapshotRm(again, f.s)).toEqual(snapshotRm(f.rm, f.s));

    const vm = await again.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    expect(vm.ok && vm.value.vmid).not.toBe(a);
    expect(vm.ok && vm.value.vmid).not.toBe(b);
    const next = await again.call(VMID_HLOS, 'MEM_SHARE', createReq([{ vmid: VMID_HLOS, rights: RW }, { vmid: b, rights: RW }], [sgl(0x30000, 0x1000)]));
    expect(next.ok && [...again.parcels.keys()].filter((h) => h === next.value.handle)).toHaveLength(1);
    expect(next.ok && next.value.handle).toBeGreaterThan(shared.ok ? shared.value.handle : Infinity);
  });

  test('the persist port takes each call\'s state before the outcome is given back, and its core call\'s intent before the core hears it', async () => {
    const f = rmFixture();
    const spaces = (): number => f.s.spaces.size;
    const before = spaces();
    const taken: { vms: number; intents: string[]; spaces: number }[] = [];
    let release = (): void => {};
    f.rm.persist = (rm) => {
      taken.push({ vms: rm.vms.size, intents: [...rm.intents.values()].map((i) => i.op.method), spaces: spaces() });
      return new Promise((resolve) => (release = resolve));
    };
    let answered = false;
    const call = f.rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 }).then((r) => ((answered = true), r));
    await new Promise((r) => setImmediate(r));
    // Write-ahead (intents.ts): the CreateAddressSpace is recorded and committed, not yet made.
    expect(taken).toEqual([{ vms: 0, intents: ['createVmSpace'], spaces: before }]);
    release();
    await new Promise((r) => setImmediate(r));
    // Made, folded into the RM's state with the intent dropped, committed before the reply.
    expect(taken[1]).toEqual({ vms: 1, intents: [], spaces: before + 1 });
    expect(answered).toBe(false);
    release();
    expect((await call).ok).toBe(true);
  });
});
