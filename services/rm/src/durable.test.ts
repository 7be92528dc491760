/**
 * The RM's durable mode in process (durable.ts): an RM started on the data dir of another holds
 * its VMs (restored), and after a Reset the restored RM is the booted one. Kill -9 of a separate
 * process and the agreement check are test/durable-rm.e2e.test.ts.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MemNotifyKind, MemShareRequest, MemType, RmServiceClient } from '@hypmesh/proto/rm';
import { inProcessCore } from '@hypmesh/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { createStage2, type Stage2 } from '@hypmesh/stage2';
import { afterAll, expect, test } from 'vitest';
import { durableRmOptions } from './durable.js';
import { startRmServer } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'hypmesh-rm-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const built = createStage2({ memory: { paBits: 40, ram: [{ base: 0x8000_0000, sizeBytes: 2 ** 30 }], mmio: [] } });
if (!built.ok) throw new Error(built.error.join('; '));
const stage2: Stage2 = built.value;
const fatal = { fatal: (obj: object, msg: string) => expect.fail(`${msg} ${JSON.stringify(obj)}`) };

async function withRm<T>(body: (client: RmServiceClient, restored: boolean) => Promise<T>): Promise<T> {
  const durable = durableRmOptions(dir, undefined, 'normal', fatal);
  if (!durable.ok) throw new Error(durable.error);
  const bugs: unknown[] = [];
  const server = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(stage2), log: { error: (obj, msg) => bugs.push({ msg, obj }) }, ...durable.value });
  const client = new RmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  try {
    return await body(client, server.restored);
  } finally {
    client.close();
    await server.shutdown(100);
    expect(bugs).toEqual([]);
  }
}

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
function ask<Res>(client: RmServiceClient, method: unknown, req: object, caller = 3): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(caller));
  return new Promise((resolve, reject) => (method as Unary).call(client, req, md, {}, (e, r) => (e ? reject(e) : resolve(r as Res))));
}
const vmids = async (c: RmServiceClient): Promise<number[]> => (await ask<{ vms: { vmid: number }[] }>(c, c.listVms, {})).vms.map((v) => v.vmid);

test('restored VMs, then a Reset is what the next start restores', async () => {
  await withRm(async (c, restored) => {
    expect(restored).toBe(false);
    await ask(c, c.vmAllocate, { vmid: 0 });
    await ask(c, c.vmAllocate, { vmid: 0 });
  });
  const before = await withRm(async (c, restored) => {
    expect(restored).toBe(true);
    const listed = await vmids(c);
    await ask(c, c.reset, {});
    return listed;
  });
  expect(before).toEqual(expect.arrayContaining([0x80, 0x81]));
  await withRm(async (c) => {
    expect(await vmids(c)).not.toContain(0x80);
    // The booted RM hands out 0x80 again (Reset started VMID allocation over).
    expect((await ask<{ vmid: number }>(c, c.vmAllocate, { vmid: 0 })).vmid).toBe(0x80);
  });
});

test("HLOS's queue counters (dropped because full, ever queued) are restored with its waiting notifications", async () => {
  type Stats = { notificationsPending: bigint; notificationsQueued: bigint; notificationsDropped: bigint };
  const counters = (x: Stats): bigint[] => [x.notificationsPending, x.notificationsQueued, x.notificationsDropped];
  const before = await withRm(async (c) => {
    const { vmid } = await ask<{ vmid: number }>(c, c.vmAllocate, { vmid: 0 });
    const share = MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 1, acl: [{ vmid, rights: 6 }, { vmid: 3, rights: 7 }], sgl: [{ base: 0x8010_0000n, size: 0x1000n }] });
    const { handle } = await ask<{ handle: number }>(c, c.memShare, share);
    // 300 MEM_RELEASED for HLOS from a borrower that never accepted: its queue holds 256.
    for (let i = 0; i < 300; i++) await ask(c, c.memNotify, { handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_RELEASED, memInfoTag: 0, vmids: [] }, vmid);
    return counters(await ask<Stats>(c, c.getStats, {}));
  });
  expect(before[0]).toBe(256n);
  expect(before[2]).toBeGreaterThanOrEqual(44n);
  await withRm(async (c, restored) => {
    expect(restored).toBe(true);
    expect(counters(await ask<Stats>(c, c.getStats, {}))).toEqual(before);
  });
});
