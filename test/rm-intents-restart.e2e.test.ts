/**
 * Issue 9 items 1 and 2, the RM's side, as separate processes and deterministic: the RM dies between
 * a core call and its own commit (a `crash` rule at RM_TO_CORE, AFTER_COMMIT: the core applied the
 * call, the RM exits 137 as its answer arrives) and restarts on its data dir. It recorded the call
 * before making it (@hypmesh/rm intents.ts), settles it with the same request id, and comes back
 * agreeing with the core (`hypmesh check --live` exits 0): a MEM_RECLAIM's parcel is gone with its
 * grant, a MEM_LEND's grant nobody was told of is destroyed, a MEM_ACCEPT's map nobody was told of
 * is undone, a VM_ALLOCATE's stage-2 nobody was told of is destroyed. Before, each left a parcel
 * without a grant, a grant without a parcel, or a space without a VM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { MemAcceptRequest, MemType, RmServiceClient, TransType, type ParcelSummary } from '@hypmesh/proto/rm';
import { CoreServiceClient } from '@hypmesh/proto';
import { afterAll, expect, test } from 'vitest';
import { checkLive } from './support/calls.js';
import { exitOf, restart, startCluster, type Cluster } from './support/cluster.js';
import { Processes } from './support/processes.js';
import { call, eventually, type Outcome } from './support/workload.js';

const RW = 6;
const RAM = BigInt(5 * 2 ** 30);
const CHANNEL = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-rm-intents-'));
afterAll(async () => {
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
}, 30_000);

const lendReq = (vmid: number, offset: bigint, label: number) => ({
  memType: MemType.MEM_TYPE_NORMAL,
  sanitize: false,
  append: false,
  label,
  acl: [{ vmid, rights: RW }],
  sgl: [{ base: RAM + offset, size: 0x2000n }],
  attrs: [],
});

test('the RM killed between a core call and its commit, restarted on its data dir: it settles the call and agrees with the core', async () => {
  const c = await startCluster(processes, dir);
  const creds = grpc.credentials.createInsecure();
  const rm = new RmServiceClient(c.addrs.rm, creds, CHANNEL);
  const core = new CoreServiceClient(c.addrs.core, creds, CHANNEL);
  const faults = new FaultServiceClient(c.addrs.rm, creds, CHANNEL);
  const grants = async (): Promise<{ grantId: bigint; borrowerVmids: number[] }[]> => (await eventually('ListGrants', () => call<{ grants: { grantId: bigint; borrowerVmids: number[] }[] }>(core, core.listGrants, {}))).grants;
  const parcels = async (): Promise<ParcelSummary[]> => (await eventually('ListParcels', () => call<{ parcels: ParcelSummary[] }>(rm, rm.listParcels, { allVms: true }))).parcels;
  const spaces = async (): Promise<number[]> => (await eventually('ListAddressSpaces', () => call<{ spaces: { vmid: number }[] }>(core, core.listAddressSpaces, {}))).spaces.map((s) => s.vmid);
  const vmid = (await eventually('VM_ALLOCATE', () => call<{ vmid: number }>(rm, rm.vmAllocate, { vmid: 0 }))).vmid;

  /** Arms a crash at the RM's next `method` call to the core, runs `rmCall`, restarts the RM; the restored intents. */
  async function crashAt(method: string, rmCall: () => Promise<Outcome<unknown>>, n: number): Promise<number> {
    const rule = { id: `crash-${n}`, boundary: 'BOUNDARY_RM_TO_CORE', match: { method, nth: 1 }, crash: { point: 'CRASH_POINT_AFTER_COMMIT' } };
    expect((await call(faults, faults.arm, { plan: FaultPlan.fromJSON({ rules: [rule] }), seed: 1 })).kind).toBe('ok');
    const exited = exitOf(c.proc.rm);
    // The caller hears no answer (the RM died): the outcome is unknown to it.
    const answered = await rmCall();
    expect(answered, JSON.stringify(answered)).toMatchObject({ kind: 'info' });
    expect(await exited).toBe(137);
    const { proc } = await restart(c as Cluster & { dir: string }, 'rm');
    const restored = proc.logs.find((l) => l['msg'] === 'restored from the data dir');
    // The settling runs before any call; a check once it is done: the three services agree.
    await eventually('check --live', async () => {
      const live = await checkLive(c.addrs);
      return live.code === 0 ? { kind: 'ok', value: live } : { kind: 'fail', error: `${live.out}${live.err}`, code: live.code };
    }, 10);
    return restored?.['intents'] as number;
  }

  // MEM_RECLAIM: the core destroyed the grant; the parcel goes with it.
  const lent = (await eventually('MEM_LEND', () => call<{ handle: number }>(rm, rm.memLend, lendReq(vmid, 0n, 101)))).handle;
  expect(await crashAt('DestroyGrant', () => call(rm, rm.memReclaim, { handle: lent, sanitize: false }), 1)).toBe(1);
  expect((await parcels()).map((p) => p.handle)).not.toContain(lent);
  expect(await grants()).toEqual([]);

  // MEM_LEND: the core made a grant no parcel names; it is destroyed, and the same lend then succeeds.
  expect(await crashAt('CreateGrant', () => call(rm, rm.memLend, lendReq(vmid, 0x10000n, 102)), 2)).toBe(1);
  expect((await parcels()).filter((p) => p.label === 102)).toEqual([]);
  expect(await grants()).toEqual([]);
  const again = (await eventually('MEM_LEND', () => call<{ handle: number }>(rm, rm.memLend, lendReq(vmid, 0x10000n, 102)))).handle;

  // MEM_ACCEPT: the core mapped the grant for the VM; the RM never recorded it, so it is unmapped.
  expect(await crashAt('MapGrant', () => call(rm, rm.memAccept, MemAcceptRequest.fromPartial({ handle: again, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_LEND, done: true }), vmid), 3)).toBe(1);
  expect((await parcels()).find((p) => p.handle === again)).toMatchObject({ acceptedBy: [] });
  expect((await grants()).map((g) => g.borrowerVmids)).toEqual([[]]);
  expect((await call(rm, rm.memReclaim, { handle: again, sanitize: false })).kind).toBe('ok');

  // VM_ALLOCATE: the core made a stage-2 for a VM nobody was told of; it is destroyed.
  const before = await spaces();
  expect(await crashAt('CreateAddressSpace', () => call(rm, rm.vmAllocate, { vmid: 0 }), 4)).toBe(1);
  expect(await spaces()).toEqual(before);
  await eventually('VM_DEALLOCATE', () => call(rm, rm.vmDeallocate, { vmid }));
  expect(await spaces()).not.toContain(vmid);
  for (const x of [rm, core, faults]) x.close();
}, 120_000);
