/**
 * Unknown RM outcomes settled by query (@hypmesh/vmm reconcile.ts), with the fault engine on the
 * VMM's msgq client against a real RM server on 127.0.0.1 (embedded core): a VMM_TO_RM fail_after
 * is a call the RM applied whose reply was lost. For each mutating call of a VM's life, the VM
 * manager asks the RM what it holds and ends with exactly the RM's state: the VMIDs and parcels it
 * records are the RM's, nothing more, nothing less; a call the RM never saw (fail_before) records
 * nothing; and the life completes with everything back with the host.
 */
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { FaultEngine, type FaultRule } from '@hypmesh/fault';
import { inProcessCore } from '@hypmesh/rm';
import { startRmServer, type RmServer } from '@hypmesh/rm-service';
import { createStage2, DEFAULT_STAGE2_CONFIG, checkInvariants, type Stage2 } from '@hypmesh/stage2';
import { DEFAULT_VMM_CONFIG, RIGHTS, VmManager, donationRegionOf, inProcessCorePort, inProcessHoldings, type HoldingsPort } from '@hypmesh/vmm';
import { systemClock } from './clock.js';
import { grpcRm, type GrpcRmPort } from './rm-client.js';

const TIMEOUT_MS = 2_000;
const MiB = 2 ** 20;
const RWX = RIGHTS.R | RIGHTS.W | RIGHTS.X;

let s: Stage2;
let rmSrv: RmServer;
let port: GrpcRmPort;
let holdings: HoldingsPort;
const engine = new FaultEngine({ nowMs: Date.now });

// A fresh core, RM and msgq client per test: a failing test leaves nothing to the next.
beforeEach(async () => {
  const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
  if (!stage2.ok) throw new Error(stage2.error.join('; '));
  s = stage2.value;
  rmSrv = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(s), log: { error: () => {} } });
  port = grpcRm(`127.0.0.1:${rmSrv.port}`, TIMEOUT_MS, engine);
  holdings = inProcessHoldings(rmSrv.rm, s);
  for (let i = 0; i < 200 && !port.connected(); i++) await new Promise((r) => setTimeout(r, 10));
});

afterEach(async () => {
  engine.disarm('all');
  port?.close();
  await rmSrv?.shutdown(500);
});

/**
 * Loses the reply of each of `rmMessages` (`NAME`: its first; `NAME#n`: its nth), which the RM
 * applied (or refused), or with `before`, never sends it. One plan: arming replaces the last.
 */
function lose(rmMessages: readonly string[], before = false): void {
  const action: FaultRule['action'] = before ? { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } } : { kind: 'fail_after', code: 'UNAVAILABLE' };
  const armed = engine.arm({ rules: rmMessages.map((m) => ({ id: `lose-${m.replace('#', '.')}`, boundary: 'VMM_TO_RM', match: { rmMessage: m.split('#')[0]!, nth: Number(m.split('#')[1] ?? 1) }, action })) }, 1);
  if (!armed.ok) throw new Error(JSON.stringify(armed.error));
}

const manager = (): VmManager => new VmManager(port, inProcessCorePort(s), { ...DEFAULT_VMM_CONFIG, waitMs: 2_000, donationRegion: donationRegionOf(s) }, systemClock, holdings);

/** The VMIDs and HLOS parcels the manager records, and those the RM holds. */
async function recordedAndHeld(vmm: VmManager): Promise<{ recorded: { vmids: number[]; parcels: number[] }; held: { vmids: number[]; parcels: number[] } }> {
  const saved = vmm.durableState(0).vms;
  const vms = await holdings.rmVms();
  const parcels = await holdings.rmParcels();
  if (!vms.ok || !parcels.ok) throw new Error('holdings');
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  return {
    recorded: { vmids: sorted(saved.map((v) => v.vmid)), parcels: sorted(saved.flatMap((v) => v.parcels.map((p) => p.handle))) },
    held: { vmids: sorted(vms.value.map((v) => v.vmid)), parcels: sorted(parcels.value.filter((p) => p.ownerVmid === 3).map((p) => p.handle)) },
  };
}

/** A GUNYAH VM with one lent binding and its DTB, in a new session; `lost` calls lose their replies on the way. */
async function createAndStart(vmm: VmManager, lost: readonly string[]) {
  const session = vmm.openSession();
  lose(lost);
  const vm = await vmm.create(session, 'GUNYAH', 40);
  if (!vm.ok) throw new Error(`create: ${vm.error.rule}: ${vm.error.message}`);
  const h = vm.value.handle;
  vmm.mapMem(h, { guestAddr: 0x8000_0000n, hostAddr: BigInt(3 * 2 ** 30), sizeBytes: BigInt(4 * MiB), mode: 'LEND', rights: RWX }, false, session);
  vmm.setDtbConfig(h, 0x8000_0010n, 0x2000n, session);
  return { session, handle: h, started: await vmm.start(h, session) };
}

describe('a lost RM reply is settled by asking the RM (VMM_TO_RM fail_after)', () => {
  test('VM_ALLOCATE, MEM_LEND, VM_INIT and VM_START applied with their replies lost: the VM runs, and the manager records exactly what the RM holds', async () => {
    const vmm = manager();
    const { handle, started } = await createAndStart(vmm, ['VM_ALLOCATE', 'MEM_LEND', 'VM_INIT', 'VM_START']);
    expect(started).toMatchObject({ ok: true, value: { state: 'RUNNING', rmStatus: 'RUNNING' } });
    expect(vmm.reconciler!.settled.map((x) => [x.call, x.applied])).toEqual([
      ['VM_ALLOCATE', true],
      ['MEM_LEND', true],
      ['VM_INIT', true],
      ['VM_START', true],
    ]);
    const { recorded, held } = await recordedAndHeld(vmm);
    expect(recorded).toEqual(held);
    expect(held.vmids).toHaveLength(1);
    expect(held.parcels).toHaveLength(1);

    // Teardown with VM_STOP, both MEM_RECLAIMs, VM_RESET and VM_DEALLOCATE replies lost: nothing leaks.
    lose(['VM_STOP', 'MEM_RECLAIM#1', 'MEM_RECLAIM#2', 'VM_RESET', 'VM_DEALLOCATE']);
    const gone = await vmm.destroy(handle);
    expect(gone).toMatchObject({ ok: true, value: { state: 'DESTROYED', leaked: [] } });
    expect(vmm.reconciler!.settled.slice(4).map((x) => [x.call, x.applied])).toEqual([
      ['VM_STOP', true],
      // The first reclaim comes before the reset, while the guest has the DTB parcel accepted: the
      // RM refused it, and asked after, the parcel is still there. The second, after the reset, applied.
      ['MEM_RECLAIM', false],
      ['VM_RESET', true],
      ['MEM_RECLAIM', true],
      ['VM_DEALLOCATE', true],
    ]);
    expect(await recordedAndHeld(vmm)).toEqual({ recorded: { vmids: [], parcels: [] }, held: { vmids: [], parcels: [] } });
    expect(vmm.pages.inUse()).toBe(0);
    expect(checkInvariants(s)).toEqual([]);
    vmm.close();
  }, 60_000);

  test('a call the RM never saw (fail_before) is settled as not applied: the create fails and nothing is recorded or held', async () => {
    const vmm = manager();
    const session = vmm.openSession();
    lose(['VM_ALLOCATE'], true);
    const r = await vmm.create(session, 'GUNYAH', 40);
    expect(r).toMatchObject({ ok: false, error: { errno: 'EIO', rule: 'vm_allocate' } });
    expect(r.ok ? '' : r.error.message).toContain('the RM shows it not applied');
    expect(vmm.reconciler!.settled).toEqual([{ call: 'VM_ALLOCATE', applied: false }]);
    expect(await recordedAndHeld(vmm)).toEqual({ recorded: { vmids: [], parcels: [] }, held: { vmids: [], parcels: [] } });
    // The next create works: the failure left nothing behind.
    const again = await vmm.create(session, 'GUNYAH', 40);
    expect(again.ok).toBe(true);
    vmm.endSession(session);
    await vmm.idle();
    expect(await recordedAndHeld(vmm)).toEqual({ recorded: { vmids: [], parcels: [] }, held: { vmids: [], parcels: [] } });
    vmm.close();
  }, 60_000);
});
