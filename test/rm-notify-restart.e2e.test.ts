/**
 * Issue 9 item 3, notification delivery across an RM restart: while HLOS's subscriber (the VMM) is
 * away (killed), notifications for HLOS queue at the RM, more than its queue holds (256, the
 * oldest dropped and counted, gunyah-rm.md §1.3). The RM is killed with SIGKILL and restarted on
 * its data dir. When a subscriber for HLOS returns, the queued notifications are delivered, in
 * order, with the drop count (Subscribe's `dropped`), and GetStats reports the same counters as
 * before the kill. Then a new VMM starts and `hypmesh check --live` finds the services agreeing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MemNotifyKind, MemShareRequest, MemType, RmServiceClient, type GetStatsResponse, type SubscribeResponse } from '@hypmesh/proto/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, expect, test } from 'vitest';
import { ask, checkLive, HOST } from './support/calls.js';
import { kill9, restart, startCluster } from './support/cluster.js';
import { Processes } from './support/processes.js';

/** More than the 256 a client's queue holds. */
const NOTIFICATIONS = 300;
const QUEUE_DEPTH = 256;

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-rm-notify-'));
afterAll(async () => {
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

const counters = (s: GetStatsResponse): { pending: bigint; queued: bigint; dropped: bigint } => ({ pending: s.notificationsPending, queued: s.notificationsQueued, dropped: s.notificationsDropped });

test('notifications queued for HLOS while its subscriber is away survive kill -9 of the RM, and arrive with the drop count', async () => {
  const c = await startCluster(processes, dir);
  await kill9(c, 'vmm');
  let rm = new RmServiceClient(c.addrs.rm, grpc.credentials.createInsecure());

  // A guest VM tells HLOS, NOTIFICATIONS times, that it released (never accepted) a parcel HLOS shared with it: MEM_RELEASED to HLOS.
  const { vmid } = await ask<{ vmid: number }>(rm, rm.vmAllocate, { vmid: 0 });
  const { handle } = await ask<{ handle: number }>(
    rm,
    rm.memShare,
    MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 1, acl: [{ vmid, rights: 6 }, { vmid: HOST, rights: 7 }], sgl: [{ base: 5n << 30n, size: 0x1000n }] }),
  );
  const before = counters(await ask<GetStatsResponse>(rm, rm.getStats, {}));
  for (let i = 0; i < NOTIFICATIONS; i++) await ask(rm, rm.memNotify, { handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_RELEASED, memInfoTag: 0, vmids: [] }, vmid);
  const queued = counters(await ask<GetStatsResponse>(rm, rm.getStats, {}));
  expect(queued.pending).toBe(BigInt(QUEUE_DEPTH));
  expect(queued.queued - before.queued).toBe(BigInt(NOTIFICATIONS));
  expect(queued.dropped).toBe(before.pending + BigInt(NOTIFICATIONS) - BigInt(QUEUE_DEPTH) + before.dropped);
  rm.close();

  await kill9(c, 'rm');
  const { servingMs } = await restart(c, 'rm');
  console.log(`RM restart with ${QUEUE_DEPTH} notifications queued: SERVING in ${servingMs.toFixed(0)} ms`);
  rm = new RmServiceClient(c.addrs.rm, grpc.credentials.createInsecure());
  expect(counters(await ask<GetStatsResponse>(rm, rm.getStats, {}))).toEqual(queued);

  // HLOS's subscriber returns.
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(HOST));
  const stream = rm.subscribe({}, md);
  const got: SubscribeResponse[] = [];
  stream.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${QUEUE_DEPTH} notifications arrived`)), 20_000);
    stream.on('data', (n: SubscribeResponse) => {
      got.push(n);
      if (got.length === QUEUE_DEPTH) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  stream.cancel();
  const released = got.filter((n) => n.memReleased !== undefined);
  expect(released.length).toBeGreaterThanOrEqual(QUEUE_DEPTH - Number(before.pending));
  expect(released.every((n) => n.memReleased!.handle === handle && n.memReleased!.vmid === vmid)).toBe(true);
  // In order, none missing between the first and the last (the §1.3 sequence is 16 bits).
  for (let i = 1; i < got.length; i++) expect(got[i]!.seq).toBe((got[i - 1]!.seq + 1) & 0xffff);
  expect(got.every((n) => n.dropped === queued.dropped)).toBe(true);
  expect(counters(await ask<GetStatsResponse>(rm, rm.getStats, {}))).toEqual({ pending: 0n, queued: queued.queued, dropped: queued.dropped });

  await ask(rm, rm.memReclaim, { handle, sanitize: false });
  await ask(rm, rm.vmDeallocate, { vmid });
  rm.close();
  await restart(c, 'vmm');
  const live = await checkLive(c.addrs);
  expect({ code: live.code, out: live.out, err: live.err }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n", err: '' });
  expect(processes.bugs()).toEqual([]);
}, 120_000);
