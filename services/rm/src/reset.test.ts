/**
 * RmService.Reset over real gRPC: mutate (allocate VMs, a VMID taken), Reset, and the RM's state
 * equals a freshly booted one (snapshotRm); VMID allocation starts over; only HLOS may reset, and a
 * refused Reset changes nothing.
 */

import * as grpc from '@grpc/grpc-js';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { inProcessCore, snapshotRm, ResourceManager } from '@hypmesh/rm';
import { CALLER_VMID_KEY, decodeStatusDetails, type DecodedStatus } from '@hypmesh/rpc';
import { createStage2, type Stage2 } from '@hypmesh/stage2';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startRmServer, type RmServer } from './server.js';

let stage2: Stage2;
let server: RmServer;
let client: RmServiceClient;
const bugs: unknown[] = [];

beforeAll(async () => {
  const s = createStage2({ memory: { paBits: 40, ram: [{ base: 0x8000_0000, sizeBytes: 2 ** 30 }], mmio: [] } });
  if (!s.ok) throw new Error(s.error.join('; '));
  stage2 = s.value;
  server = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(stage2), log: { error: (obj, msg) => bugs.push({ msg, obj }) } });
  client = new RmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(1_000);
  expect(bugs).toEqual([]);
});

type Outcome<T> = { ok: true; value: T } | { ok: false; error: DecodedStatus };
// The generated client's last overload (request, metadata, options, callback), so that Req and Res infer.
type Unary<Req, Res> = (req: Req, md: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown;
function call<Req, Res>(fn: Unary<Req, Res>, req: Req, caller = 3): Promise<Outcome<Res>> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(caller));
  return new Promise((resolve) => fn.call(client, req, md, {}, (e, r) => resolve(e ? { ok: false, error: decodeStatusDetails(e) } : { ok: true, value: r })));
}
const ok = <T>(o: Outcome<T>): T => {
  if (!o.ok) throw new Error(`expected OK, got ${grpc.status[o.error.code]}: ${o.error.message}`);
  return o.value;
};

const bootSnapshot = (): unknown => snapshotRm(new ResourceManager(inProcessCore(stage2)));

test('mutate, Reset: the RM equals a freshly booted one, and VMID allocation starts over', async () => {
  const first = ok(await call(client.vmAllocate, { vmid: 0 })).vmid;
  ok(await call(client.vmAllocate, { vmid: 0 }));
  expect(snapshotRm(server.rm)).not.toEqual(bootSnapshot());

  expect(ok(await call(client.reset, {}))).toEqual({ vmsDropped: 2, parcelsDropped: 0 });
  expect(snapshotRm(server.rm)).toEqual(bootSnapshot());
  expect(ok(await call(client.vmAllocate, { vmid: 0 })).vmid).toBe(first);
  ok(await call(client.reset, {}));
});

test('a caller other than HLOS is PERMISSION_DENIED; nothing changed', async () => {
  ok(await call(client.vmAllocate, { vmid: 0 }));
  const before = snapshotRm(server.rm);
  const r = await call(client.reset, {}, 0x80);
  expect(r.ok ? 'OK' : grpc.status[r.error.code]).toBe('PERMISSION_DENIED');
  expect(snapshotRm(server.rm)).toEqual(before);
});
