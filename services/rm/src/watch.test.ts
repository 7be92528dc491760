/**
 * RmService.WatchNotifications over real gRPC (rm_service.proto; notifier.ts watch): an HLOS
 * watcher sees a MEM_SHARED queued for a guest, with the guest's VMID, while the guest's own
 * Subscribe still receives it (a tap takes nothing off the queue); a vmid filter keeps only that
 * VM's; a caller other than HLOS is refused; and the Notifier's tap is bounded (a full observer
 * skips and counts, never buffers).
 */

import * as grpc from '@grpc/grpc-js';
import { MemNotifyKind, MemNotifyRequest, MemShareRequest, MemType, RmServiceClient, type SubscribeResponse, type WatchNotificationsResponse } from '@hypmesh/proto/rm';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { createStage2 } from '@hypmesh/stage2';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Notifier } from './notifier.js';
import { startRmServer, type RmServer } from './server.js';

const HLOS = 3;
let server: RmServer;
let client: RmServiceClient;
const bugs: unknown[] = [];

beforeAll(async () => {
  const s = createStage2({ memory: { paBits: 40, ram: [{ base: 0x8000_0000, sizeBytes: 2 ** 30 }], mmio: [] } });
  if (!s.ok) throw new Error(s.error.join('; '));
  server = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(s.value), log: { error: (obj, msg) => bugs.push({ msg, obj }) } });
  client = new RmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(1_000);
  expect(bugs).toEqual([]);
});

const md = (caller: number): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set(CALLER_VMID_KEY, String(caller));
  return m;
};

/** A server stream's messages as they arrive, and its error once it ends with one. */
function collect<T>(stream: grpc.ClientReadableStream<T>) {
  const got: T[] = [];
  let error: grpc.ServiceError | undefined;
  stream.on('data', (m: T) => got.push(m));
  stream.on('error', (e: grpc.ServiceError) => (error = e));
  // The RM sends headers once the tap is attached (handlers.ts watchNotifications).
  const attached = new Promise<void>((resolve) => stream.once('metadata', () => resolve()));
  return { got, error: () => error, cancel: () => stream.cancel(), attached };
}

async function waitFor<T>(f: () => T | undefined, ms = 5_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const unary = <Res>(f: (cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown): Promise<Res> =>
  new Promise((resolve, reject) => f((e, r) => (e ? reject(e) : resolve(r))));

test('a watcher sees MEM_SHARED queued for a guest, which the guest’s Subscribe still receives', async () => {
  const all = collect(client.watchNotifications({}, md(HLOS)));
  const { vmid: guest } = await unary<{ vmid: number }>((cb) => client.vmAllocate({ vmid: 0 }, md(HLOS), cb));
  const only = collect(client.watchNotifications({ vmid: guest }, md(HLOS)));
  const inbox = collect(client.subscribe({}, md(guest)));
  await Promise.all([all.attached, only.attached]);
  // Subscribe has no such headers: the guest's queue keeps what it is sent until a stream drains it.
  const { handle } = await unary<{ handle: number }>((cb) =>
    client.memShare(MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 0x55, acl: [{ vmid: guest, rights: 6 }, { vmid: HLOS, rights: 7 }], sgl: [{ base: 0x8010_0000n, size: 0x1000n }] }), md(HLOS), cb),
  );
  await unary((cb) => client.memNotify(MemNotifyRequest.fromPartial({ handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_SHARED, memInfoTag: 4, vmids: [guest] }), md(HLOS), cb));

  const seen = await waitFor(() => all.got.find((w: WatchNotificationsResponse) => w.notification?.memShared !== undefined));
  expect(seen.vmid).toBe(guest);
  expect(seen.missed).toBe(0n);
  expect(seen.notification).toMatchObject({ messageId: 0x51100011, memShared: { handle, ownerVmid: HLOS, label: 0x55, memInfoTag: 4 } });
  const delivered = await waitFor(() => inbox.got.find((n: SubscribeResponse) => n.memShared !== undefined));
  expect(delivered.seq).toBe(seen.notification!.seq);
  expect(delivered.memShared?.handle).toBe(handle);
  // The filtered watch saw the same one, and nothing for another VM.
  await waitFor(() => only.got.find((w) => w.notification?.memShared !== undefined));
  expect(only.got.every((w) => w.vmid === guest)).toBe(true);
  for (const s of [all, only, inbox]) s.cancel();
});

test('a caller other than HLOS is refused PERMISSION_DENIED', async () => {
  const { vmid: guest } = await unary<{ vmid: number }>((cb) => client.vmAllocate({ vmid: 0 }, md(HLOS), cb));
  const w = collect(client.watchNotifications({}, md(guest)));
  const e = await waitFor(() => w.error());
  expect(grpc.status[e.code]).toBe('PERMISSION_DENIED');
  expect(e.message).toMatch(/WatchNotifications may be called by VMID 0x3 only/);
  expect(w.got).toEqual([]);
});

test('bounded: while the observer is full, notifications are skipped and counted, taking nothing off the queue', () => {
  const s = createStage2({ memory: { paBits: 40, ram: [{ base: 0x8000_0000, sizeBytes: 2 ** 30 }], mmio: [] } });
  if (!s.ok) throw new Error(s.error.join('; '));
  const rm = new ResourceManager(inProcessCore(s.value));
  const notifier = new Notifier(rm);
  const seen: { vmid: number; seq: number; missed: number }[] = [];
  let room = 1;
  const watch = notifier.watch(undefined, (vmid, n, _id, _dropped, missed) => (seen.push({ vmid, seq: n.seq, missed }), --room > 0));
  const notify = (to: number): void => rm.notify(to, 'VM_STATUS', { vmid: 0x80, vmStatus: 'RUNNING' } as never);
  notify(HLOS); // taken; the observer is full after it
  notify(0x80); // skipped
  notify(HLOS); // skipped
  expect(seen).toEqual([{ vmid: HLOS, seq: 0, missed: 0 }]);
  room = 10;
  watch.resume();
  notify(0x80);
  expect(seen).toEqual([{ vmid: HLOS, seq: 0, missed: 0 }, { vmid: 0x80, seq: 3, missed: 2 }]);
  // Nothing was taken off a queue: HLOS still has 2, the guest 2.
  expect([rm.pendingFor(HLOS), rm.pendingFor(0x80)]).toEqual([2, 2]);
  watch.stop();
  notify(HLOS);
  expect(seen).toHaveLength(2);
});
