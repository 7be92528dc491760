/**
 * A durable RM killed between a core call and its own commit (intents.ts, DESIGN.md §8; issue 9
 * items 1 and 2): the RM dies the moment its call reaches the core (after the core applied it, or
 * before), and a fresh RM restored from the last committed state settles its intents. Afterwards the
 * RM and the core agree: every parcel is one live grant with the same borrowers, every grant is a
 * parcel's, every dynamic VMID's stage-2 is a VM's; the call in flight happened whole or not at all.
 */
import { ACCEPT_FLAGS, MEM_TYPE, VM_STATUS } from '@hypmesh/rm-wire';
import { Stage2, checkInvariants, topUpTablePool, vmid, type Stage2 as Core } from '@hypmesh/stage2';
import { describe, expect, test } from 'vitest';
import type { CoreGrantPort, CoreResult } from './core-port.js';
import { restoreRm, rmDurableState, type RmDurableState } from './durable-state.js';
import { inProcessCore } from './in-process-core.js';
import { rmInvariants } from './invariants.js';
import { ResourceManager } from './resource-manager.js';
import { RM_TEST_MEMORY, RW, acceptReq, createReq, drained, outcome, sgl } from './test-support.js';
import { resumeResets } from './vm.js';
import { VMID_DYNAMIC_FIRST, VMID_HLOS } from './vmid.js';

type Method = keyof CoreGrantPort;

/**
 * The core as the RM sees it over gRPC: a repeated request id is answered with its first outcome
 * (services/core keys.ts). `kill(method, applied)` makes the next call of `method` the RM's last:
 * the core applies it (or not, `applied` false) and the RM never hears back.
 */
function rig(s: Core) {
  const inner = inProcessCore(s);
  const first = new Map<string, Promise<CoreResult<unknown>>>();
  let kill: { method: Method; applied: boolean; died: () => void } | undefined;
  let lost: Method | undefined;
  const port = {} as Record<Method, (a: { requestId?: string }) => Promise<CoreResult<unknown>>>;
  for (const m of Object.keys(inner) as Method[]) {
    port[m] = (a) => {
      if (kill?.method === m) {
        const { applied, died } = kill;
        kill = undefined;
        if (applied) first.set(a.requestId!, (inner[m] as (x: object) => Promise<CoreResult<unknown>>)(a));
        died();
        return new Promise(() => {});
      }
      if (lost === m) {
        // Applied, and every try's reply lost: the core client's answer (services/rm core-client).
        lost = undefined;
        first.set(a.requestId!, (inner[m] as (x: object) => Promise<CoreResult<unknown>>)(a));
        return Promise.resolve({ ok: false, error: { errno: 'EIO', rule: 'outcome_unknown', message: 'no reply' } });
      }
      let r = a.requestId === undefined ? undefined : first.get(a.requestId);
      if (r === undefined) {
        r = (inner[m] as (x: object) => Promise<CoreResult<unknown>>)(a);
        if (a.requestId !== undefined) first.set(a.requestId, r);
      }
      return r;
    };
  }
  let disk: RmDurableState | undefined;
  const rm = (): ResourceManager => {
    const r = new ResourceManager(port as unknown as CoreGrantPort);
    r.intentPrefix = 'rm-test';
    if (disk !== undefined) restoreRm(r, structuredClone(disk));
    // The service's store: every commit replaces the state row.
    r.persist = (x) => ((disk = structuredClone(rmDurableState(x))), Promise.resolve());
    return r;
  };
  return {
    rm,
    /** Runs `call` on `live` until it reaches `method` at the core; `live` is dead from then on. */
    async killAt(live: ResourceManager, method: Method, applied: boolean, call: () => unknown): Promise<void> {
      const died = new Promise<void>((resolve) => (kill = { method, applied, died: resolve }));
      void call();
      await died;
      live.persist = undefined;
    },
    /** The next call of `method` is applied by the core, but the RM hears no definite answer. */
    lose(method: Method): void {
      lost = method;
    },
    /** A restart: a fresh RM from the last commit, its intents settled, its resets resumed (services/rm server.ts). */
    async restart(): Promise<ResourceManager> {
      const again = rm();
      expect(await again.settleIntents()).toBe(0);
      resumeResets(again);
      await again.idle();
      return again;
    },
  };
}

/** The RM and the core agree (what `hypmesh check --live` compares), and each is consistent. */
function agree(rm: ResourceManager, s: Core): void {
  expect(rmInvariants(rm, s)).toEqual([]);
  expect(checkInvariants(s)).toEqual([]);
  expect([...s.grants.keys()].sort()).toEqual([...rm.parcels.values()].map((p) => p.grantId).sort());
  const dynamic = [...s.spaces.keys()].filter((v) => v >= VMID_DYNAMIC_FIRST).map(Number);
  expect(dynamic.sort()).toEqual([...rm.vms.keys()].sort());
  expect(rm.intents.size).toBe(0);
}

async function setup() {
  const s = new Stage2({ memory: RM_TEST_MEMORY });
  const r = rig(s);
  const rm = r.rm();
  const a = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
  if (!a.ok || a.value.vmid === null) throw new Error('VM_ALLOCATE refused');
  const vm = a.value.vmid;
  const topped = topUpTablePool(s, vmid(vm), [{ base: (2 * 2 ** 30) / 4096 + 0x30000, count: 64 } as never]);
  if (!topped.ok) throw new Error(topped.error.message);
  const lend = async (at: ResourceManager, offset = 0x40000) => {
    const l = await at.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: vm, rights: RW }], [sgl(offset, 0x2000)]));
    if (!l.ok) throw new Error('MEM_LEND refused');
    return l.value.handle;
  };
  return { s, r, rm, vm, lend };
}

describe('a durable RM killed between its core call and its commit, restarted (intents.ts)', () => {
  test.each([true, false])('MEM_RECLAIM (DestroyGrant applied: %s): the parcel is gone with its grant', async (applied) => {
    const { s, r, rm, lend } = await setup();
    const handle = await lend(rm);
    await r.killAt(rm, 'destroyGrant', applied, () => rm.call(VMID_HLOS, 'MEM_RECLAIM', { handle, flags: 0 }));
    expect(s.grants.size).toBe(applied ? 0 : 1);
    const again = await r.restart();
    // The same DestroyGrant again with its id: the core's first answer (or it applies now); the RM folds it.
    expect(again.parcels.has(handle)).toBe(false);
    agree(again, s);
  });

  test.each([true, false])('MEM_LEND (CreateGrant applied: %s): no parcel, and no grant nobody names', async (applied) => {
    const { s, r, rm, vm } = await setup();
    await r.killAt(rm, 'createGrant', applied, () => rm.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: vm, rights: RW }], [sgl(0x50000, 0x1000)])));
    expect(s.grants.size).toBe(applied ? 1 : 0);
    const again = await r.restart();
    expect(again.parcels.size).toBe(0);
    agree(again, s);
    // The memory is the host's again: the same lend succeeds.
    expect(outcome(await again.call(VMID_HLOS, 'MEM_LEND', createReq([{ vmid: vm, rights: RW }], [sgl(0x50000, 0x1000)])))).toBe('OK');
  });

  test('MEM_ACCEPT (MapGrant applied): not accepted and not mapped, and the borrower may accept again', async () => {
    const { s, r, rm, vm, lend } = await setup();
    const handle = await lend(rm);
    await r.killAt(rm, 'mapGrant', true, () => rm.call(vm, 'MEM_ACCEPT', acceptReq(handle, 'LEND')));
    expect(s.grants.get([...s.grants.keys()][0]!)?.borrowers.size).toBe(1);
    const again = await r.restart();
    expect(again.parcels.get(handle)).toMatchObject({ state: 'SHARING' });
    agree(again, s);
    expect(outcome(await again.call(vm, 'MEM_ACCEPT', acceptReq(handle, 'LEND')))).toBe('OK');
    agree(again, s);
  });

  test('VM_ALLOCATE (CreateAddressSpace applied): no VM, no stage-2, and the VMID is handed out again', async () => {
    const { s, r, rm, vm } = await setup();
    await r.killAt(rm, 'createVmSpace', true, () => rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 }));
    const again = await r.restart();
    expect([...again.vms.keys()]).toEqual([vm]);
    agree(again, s);
    const next = await again.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    expect(next).toEqual({ ok: true, value: { vmid: vm + 1 } });
  });

  test("VM_DEALLOCATE (DestroyAddressSpace applied): the VMID stays held until its owner's VM_DEALLOCATE again, which completes", async () => {
    const { s, r, rm, vm } = await setup();
    await r.killAt(rm, 'destroyVmSpace', true, () => rm.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: vm }));
    const again = await r.restart();
    expect([...again.vms.keys()]).toEqual([vm]);
    expect(outcome(await again.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: vm }))).toBe('OK');
    expect(again.vmids.isAllocated(vm)).toBe(false);
    agree(again, s);
  });

  test('VM_DEALLOCATE answered BUSY (the core applied it, its reply lost): its VMID is not handed to a new VM that the retry would then deallocate', async () => {
    const { s, r, rm, vm } = await setup();
    r.lose('destroyVmSpace');
    expect(outcome(await rm.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: vm }))).toBe('BUSY core_outcome_unknown');
    // The background settling hears the core's first answer; the VM is still its owner's to deallocate.
    expect(await rm.settleIntents()).toBe(0);
    const next = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    expect(next).toEqual({ ok: true, value: { vmid: vm + 1 } });
    expect(outcome(await rm.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: vm }))).toBe('OK');
    expect([...rm.vms.keys()]).toEqual([vm + 1]);
    agree(rm, s);
  });

  test("VM_RESET's stage (UnmapGrant applied): the release is kept, the reset resumes to RESET, the teardown is clean", async () => {
    const { s, r, rm, vm, lend } = await setup();
    const dtb = await lend(rm);
    const other = await lend(rm, 0x60000);
    for (const h of [dtb, other]) expect(outcome(await rm.call(vm, 'MEM_ACCEPT', acceptReq(h, 'LEND')))).toBe('OK');
    // A failed CONFIG_IMAGE leaves the VM INIT_FAILED, which may be reset (gunyah-rm.md §4.2).
    expect(outcome(await rm.call(VMID_HLOS, 'VM_CONFIG_IMAGE', { vmid: vm, authMech: 0, memHandle: 999, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x1000n }))).toBe('HANDLE_INVALID image_parcel_unknown');
    drained(rm, VMID_HLOS);
    await r.killAt(rm, 'unmapGrant', true, () => rm.call(VMID_HLOS, 'VM_RESET', { vmid: vm }));
    const again = await r.restart();
    expect(again.vms.get(vm)?.status).toBe('RESET');
    const told = drained(again, VMID_HLOS);
    expect(told.filter((n) => n.name === 'MEM_RELEASED').map((n) => (n.payload as { handle: number }).handle).sort()).toEqual([dtb, other]);
    expect(told.at(-1)).toMatchObject({ name: 'VM_STATUS', payload: { vmid: vm, vmStatus: VM_STATUS.RESET } });
    agree(again, s);
    for (const h of [dtb, other]) expect(outcome(await again.call(VMID_HLOS, 'MEM_RECLAIM', { handle: h, flags: 0 }))).toBe('OK');
    expect(outcome(await again.call(VMID_HLOS, 'VM_DEALLOCATE', { vmid: vm }))).toBe('OK');
    agree(again, s);
  });

  test('a DONATE accept (MapGrant applied) cannot be undone: it completes, the parcel is gone and its IPAs the borrower\'s', async () => {
    const { s, r, rm, vm } = await setup();
    const d = await rm.call(VMID_HLOS, 'MEM_DONATE', createReq([{ vmid: vm, rights: 7 }], [sgl(0x70000, 0x1000)]));
    if (!d.ok) throw new Error(`MEM_DONATE refused: ${outcome(d)}`);
    await r.killAt(rm, 'mapGrant', true, () => rm.call(vm, 'MEM_ACCEPT', acceptReq(d.value.handle, 'DONATE', { flags: ACCEPT_FLAGS.DONE, memType: MEM_TYPE.NORMAL })));
    const again = await r.restart();
    expect(again.parcels.size).toBe(0);
    expect(again.ipas.get(vm)?.ranges().some((h) => h.holder.kind === 'donated')).toBe(true);
    agree(again, s);
  });

  test('an acknowledged call is never undone: a restart after it changes nothing', async () => {
    const { s, r, rm, vm, lend } = await setup();
    const handle = await lend(rm);
    expect(outcome(await rm.call(vm, 'MEM_ACCEPT', acceptReq(handle, 'LEND')))).toBe('OK');
    const again = await r.restart();
    expect(again.parcels.get(handle)?.accepted.has(vm)).toBe(true);
    agree(again, s);
  });
});
