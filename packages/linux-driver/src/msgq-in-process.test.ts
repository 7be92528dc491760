/**
 * The in-process byte-face transport applies each action as the RM service would (module header of
 * msgq-in-process.ts): checked through the driver's MEM_RECLAIM and MEM_SHARE against a real RM.
 */
import { describe, expect, test } from 'vitest';
import { FaultEngine, type FaultAction, type FaultMatch } from '@hypmesh/fault';
import { MsgqEndpoint, ResourceManager, VMID_HLOS, inProcessCore } from '@hypmesh/rm';
import { Stage2 } from '@hypmesh/stage2';
import { ERRNO, GhRm } from './gh-rm-call.js';
import { MsgqClient } from './msgq-client.js';
import { inProcessTransport } from './msgq-in-process.js';
import { GH_MEM_HANDLE_INVAL, gh_rm_mem_reclaim, gh_rm_mem_share, type gh_rm_mem_parcel } from './rsc-mgr-rpc.js';
import { SCENARIO_MEMORY } from './scenarios.js';

async function setup(boundary: 'CLIENT_TO_RM' | 'RM_TO_CLIENT_FRAGMENT', match: FaultMatch, action: FaultAction) {
  const s = new Stage2({ memory: SCENARIO_MEMORY });
  const rm = new ResourceManager(inProcessCore(s));
  const g = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
  const guest = g.ok ? g.value.vmid! : -1;
  const engine = new FaultEngine({ nowMs: () => 0 });
  const armed = engine.arm({ rules: [{ id: 'r', boundary, match, action }] }, 1);
  expect(armed.ok).toBe(true);
  const ghRm = new GhRm(new MsgqClient(inProcessTransport(new MsgqEndpoint(rm, VMID_HLOS), engine), 200));
  const p = (): gh_rm_mem_parcel => ({ mem_type: 0, label: 9, acl_entries: [{ vmid: VMID_HLOS, perms: 7 }, { vmid: guest, perms: 6 }], mem_entries: [{ phys_addr: 0x8000_0000n, size: 0x1000n }], mem_handle: GH_MEM_HANDLE_INVAL });
  const settled = async () => {
    await rm.idle();
    return rm.parcels.size;
  };
  return { ghRm, p, settled };
}

describe('CLIENT_TO_RM, per whole message', () => {
  test('fail_before with an RM error: answered as the RM would, nothing applied', async () => {
    const t = await setup('CLIENT_TO_RM', { rmMessage: 'MEM_SHARE' }, { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } });
    expect(await gh_rm_mem_share(t.ghRm, t.p())).toBe(-ERRNO.ENOMEM);
    expect(await t.settled()).toBe(0);
  });
  test('fail_after: applied, the reply lost (the caller times out)', async () => {
    const t = await setup('CLIENT_TO_RM', { rmMessage: 'MEM_SHARE' }, { kind: 'fail_after', code: 'UNAVAILABLE' });
    expect(await gh_rm_mem_share(t.ghRm, t.p())).toBe(-ERRNO.ETIMEDOUT);
    expect(await t.settled()).toBe(1);
  });
  test('duplicate: applied twice, the first reply delivered', async () => {
    const t = await setup('CLIENT_TO_RM', { rmMessage: 'MEM_SHARE' }, { kind: 'duplicate' });
    const p = t.p();
    expect(await gh_rm_mem_share(t.ghRm, p)).toBe(0);
    expect(await t.settled()).toBe(1); // the second create of the same pages is refused by the RM
    expect(await gh_rm_mem_reclaim(t.ghRm, p)).toBe(0);
  });
  test('crash before commit: not applied, no reply', async () => {
    const t = await setup('CLIENT_TO_RM', { rmMessage: 'MEM_SHARE' }, { kind: 'crash', point: 'BEFORE_COMMIT' });
    expect(await gh_rm_mem_share(t.ghRm, t.p())).toBe(-ERRNO.ETIMEDOUT);
    expect(await t.settled()).toBe(0);
  });
});

describe('RM_TO_CLIENT_FRAGMENT, per reply fragment', () => {
  test('drop: applied, the caller never hears', async () => {
    const t = await setup('RM_TO_CLIENT_FRAGMENT', { rmMessage: 'MEM_SHARE' }, { kind: 'drop' });
    expect(await gh_rm_mem_share(t.ghRm, t.p())).toBe(-ERRNO.ETIMEDOUT);
    expect(await t.settled()).toBe(1);
  });
  test('truncate below the error word: a short reply (-EIO in the model)', async () => {
    const t = await setup('RM_TO_CLIENT_FRAGMENT', { rmMessage: 'MEM_SHARE' }, { kind: 'truncate', keepBytes: 10 });
    expect(await gh_rm_mem_share(t.ghRm, t.p())).toBe(-ERRNO.EIO);
  });
});
