/**
 * The two findings, each judged by the history checker, and the control run: the same driver over
 * the same in-process RM without faults leaves nothing behind.
 */
import { describe, expect, test } from 'vitest';
import { FaultEngine } from '@hypmesh/fault';
import { MsgqEndpoint, ResourceManager, VMID_HLOS, inProcessCore, rmInvariants } from '@hypmesh/rm';
import { Stage2, checkInvariants } from '@hypmesh/stage2';
import { GhRm } from './gh-rm-call.js';
import { MsgqClient } from './msgq-client.js';
import { inProcessTransport } from './msgq-in-process.js';
import { GH_MEM_HANDLE_INVAL, gh_rm_mem_reclaim, gh_rm_mem_share, newTrace } from './rsc-mgr-rpc.js';
import { SCENARIO_MEMORY, linuxAppendOrphan, linuxUncheckedReplySize } from './scenarios.js';

const failed = (r: Awaited<ReturnType<typeof linuxAppendOrphan>>) => r.report.verdicts.filter((v) => v.status === 'fail').map((v) => v.check);

describe('scenario linux-append-orphan', () => {
  test('the checker reports the orphaned parcel: RM holds it, memory still shared, driver forgot the handle', async () => {
    const r = await linuxAppendOrphan();
    expect(r.events.map((e) => [e.ruleId, e.rmMessage])).toEqual([
      ['append-fails', 'MEM_APPEND'],
      ['reclaim-fails', 'MEM_RECLAIM'],
    ]);
    expect(r.trace.ignoredReclaims).toEqual([-16]);
    expect(failed(r)).toEqual(['failed_absent', 'ownership_equals_boot', 'no_orphaned_parcel']);
    const orphan = r.report.verdicts.find((v) => v.check === 'no_orphaned_parcel')!.details;
    expect(orphan).toContain('final: parcel 0x0 (label 79) of VM 3: RM still holds it (INIT), its memory is still lent or shared (the core grant is there), and VM 3 no longer knows the handle');
    expect(r.report.verdicts.find((v) => v.check === 'invariants_hold')!.status).toBe('pass');
  });
  test('deterministic: the same seed gives the same history', async () => {
    expect((await linuxAppendOrphan(5)).history).toEqual((await linuxAppendOrphan(5)).history);
  });
});

describe('scenario linux-unchecked-reply-size', () => {
  test('the driver keeps handle 0x6b6b0000 read past a 2-byte reply; its reclaim fails; the real parcel is orphaned', async () => {
    const r = await linuxUncheckedReplySize();
    expect(r.events.map((e) => [e.ruleId, e.boundary, e.action])).toEqual([['short-share-reply', 'RM_TO_CLIENT_FRAGMENT', { kind: 'truncate', keepBytes: 14 }]]);
    expect(r.trace.handleReads).toEqual([{ value: 0x6b6b0000, respSize: 2, bytesBeyondReply: 2 }]);
    expect(r.findings).toContain('gh_rm_mem_reclaim(0x6b6b0000) returned -22');
    expect(failed(r)).toEqual(['ownership_equals_boot', 'no_orphaned_parcel']);
  });
});

describe('control: no faults', () => {
  test('a 1100-entry share over the in-process byte face, then its reclaim, leaves the core and RM as at boot', async () => {
    const s = new Stage2({ memory: SCENARIO_MEMORY });
    const rm = new ResourceManager(inProcessCore(s));
    const g = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    const guest = g.ok ? g.value.vmid! : -1;
    const engine = new FaultEngine({ nowMs: () => 0 }); // armed with nothing: every op still numbered
    const ghRm = new GhRm(new MsgqClient(inProcessTransport(new MsgqEndpoint(rm, VMID_HLOS), engine)));
    const p = {
      mem_type: 0,
      label: 1,
      acl_entries: [{ vmid: VMID_HLOS, perms: 7 }, { vmid: guest, perms: 6 }],
      mem_entries: Array.from({ length: 1100 }, (_, i) => ({ phys_addr: BigInt(0x8000_0000 + i * 0x2000), size: 0x1000n })),
      mem_handle: GH_MEM_HANDLE_INVAL,
    };
    const trace = newTrace();
    expect(await gh_rm_mem_share(ghRm, p, trace)).toBe(0);
    await rm.idle();
    expect([...rm.parcels.values()].map((x) => [x.handle, x.regions.length])).toEqual([[p.mem_handle, 1100]]);
    expect(await gh_rm_mem_reclaim(ghRm, p)).toBe(0);
    await rm.idle();
    expect(rm.parcels.size).toBe(0);
    expect(s.grants.size).toBe(0);
    expect(checkInvariants(s)).toEqual([]);
    expect(rmInvariants(rm, s)).toEqual([]);
    ghRm.close();
  });
});
