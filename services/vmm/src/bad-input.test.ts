/**
 * Bad input of any kind gets a clear error and changes nothing (DESIGN.md §6): every VmmService
 * RPC with a missing or malformed field answers INVALID_ARGUMENT naming the field, or the domain's
 * own errno, over real gRPC (127.0.0.1, port 0) — never UNKNOWN or INTERNAL — and the core is left
 * exactly as it booted.
 */
import * as grpc from '@grpc/grpc-js';
import { VmType, VmmServiceClient, VmmServiceService } from '@hypmesh/proto/vmm';
import { STATUS_MESSAGE_MAX_BYTES, decodeStatusDetails } from '@hypmesh/rpc';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { DEFAULT_STAGE2_CONFIG, Stage2, checkInvariants, snapshot } from '@hypmesh/stage2';
import { ManualClock, inProcessCorePort, inProcessRm } from '@hypmesh/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVmmServer, type VmmServer } from './server.js';

let s: Stage2;
let server: VmmServer;
let client: VmmServiceClient;
let sessionId = '';
const bugs: unknown[] = [];

type Unary = (req: object, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
function call(method: unknown, req: object): Promise<string> {
  return new Promise((resolve) =>
    (method as Unary).call(client, req, (e) => {
      if (e === null) return resolve('ok');
      const d = decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata });
      resolve(`${grpc.status[e.code]} ${d.badRequest?.fieldViolations[0]?.field ?? d.errorDetail?.rule ?? '-'}`);
    }),
  );
}

beforeAll(async () => {
  s = new Stage2(DEFAULT_STAGE2_CONFIG);
  const rm = new ResourceManager(inProcessCore(s));
  server = await startVmmServer({
    address: '127.0.0.1:0',
    rm: inProcessRm(rm),
    core: inProcessCorePort(s),
    clock: new ManualClock(),
    log: { error: (obj, msg) => bugs.push({ msg, obj }) },
  });
  client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  sessionId = await new Promise<string>((resolve) =>
    (client.openLease as unknown as Unary).call(client, { ttlMs: 60_000 }, (_e, r: never) => resolve((r as { lease: { sessionId: string } }).lease.sessionId)),
  );
});

afterAll(async () => {
  client.close();
  await server.shutdown(1_000);
  expect(bugs).toEqual([]);
});

describe('VmmService: malformed requests are refused, naming the field, and change nothing', () => {
  const cases: [string, () => Promise<string>, RegExp][] = [
    // A field left out is its default on the wire ('' and 0), as a client in any language sends it.
    ['CreateVm without a session', () => call(client.createVm, { sessionId: '', type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }), /^INVALID_ARGUMENT session_id$/],
    ['CreateVm with an unknown session', () => call(client.createVm, { sessionId: 'nope', type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }), /^NOT_FOUND session_unknown$/],
    ['CreateVm with type UNSPECIFIED', () => call(client.createVm, { sessionId, type: VmType.VM_TYPE_UNSPECIFIED, ipaBits: 40 }), /^INVALID_ARGUMENT type$/],
    ['CreateVm with an unknown type number', () => call(client.createVm, { sessionId, type: 99, ipaBits: 40 }), /^INVALID_ARGUMENT type$/],
    ['CreateVm with an IPA width of 12', () => call(client.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 12 }), /^INVALID_ARGUMENT /],
    ['MapMem without a handle', () => call(client.mapMem, { sessionId, handle: 0n, binding: { guestAddr: 0n, hostAddr: 0n, size: 4096n, mode: 1, allowRead: true } }), /^INVALID_ARGUMENT handle$/],
    ['MapMem without a binding', () => call(client.mapMem, { sessionId, handle: 1n, unmap: false }), /^INVALID_ARGUMENT binding/],
    ['MapMem of an unknown handle', () => call(client.mapMem, { sessionId, handle: 77n, binding: { guestAddr: 0n, hostAddr: 0xc000_0000n, size: 4096n, mode: 1, allowRead: true } }), /^NOT_FOUND /],
    ['SetDtbConfig of an unknown handle', () => call(client.setDtbConfig, { sessionId, handle: 77n, guestAddr: 0n, size: 4096n }), /^NOT_FOUND /],
    ['SetBootContext with reg_set UNSPECIFIED', () => call(client.setBootContext, { sessionId, handle: 1n, regSet: 0, index: 0, value: 0n }), /^INVALID_ARGUMENT reg_set$/],
    ['StartVm without a handle', () => call(client.startVm, { sessionId, handle: 0n }), /^INVALID_ARGUMENT handle$/],
    ['StopVm of an unknown handle', () => call(client.stopVm, { sessionId, handle: 77n }), /^NOT_FOUND /],
    ['GetVm with a handle beyond its width', () => call(client.getVm, { sessionId, handle: 1n << 60n }), /^INVALID_ARGUMENT handle$/],
    ['DestroyVm of an unknown handle', () => call(client.destroyVm, { sessionId, handle: 77n }), /^NOT_FOUND /],
    ['GetVm of an unknown handle', () => call(client.getVm, { sessionId, handle: 77n }), /^NOT_FOUND /],
    ['OpenLease with a TTL of 0', () => call(client.openLease, { ttlMs: 0 }), /^INVALID_ARGUMENT /],
    ['RenewLease of an unknown lease', () => call(client.renewLease, { sessionId: 'lease-nope' }), /^NOT_FOUND session_unknown$/],
  ];
  test.each(cases)('%s', async (_what, run, expected) => {
    const before = snapshot(s);
    expect(await run()).toMatch(expected);
    expect(snapshot(s)).toEqual(before);
    expect(checkInvariants(s)).toEqual([]);
  });
});

describe('VmmService: echoed input is bounded (issue 10)', () => {
  test('a 60 KB session_id is refused at once, its status message bounded and marked truncated', async () => {
    const e = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.createVm({ sessionId: 's'.repeat(60_000), type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }, new grpc.Metadata(), { deadline: Date.now() + 3_000 }, (err) => resolve(err)),
    );
    expect(grpc.status[e?.code ?? 0]).toBe('NOT_FOUND');
    expect(decodeStatusDetails(e!).errorDetail?.rule).toBe('session_unknown');
    expect(Buffer.byteLength(e!.details)).toBeLessThanOrEqual(STATUS_MESSAGE_MAX_BYTES + 64);
    expect(e!.details).toMatch(/… \(truncated, \d+ bytes\)$/);
  });
});

describe('VmmService: empty and random request bytes on every unary RPC', () => {
  const identity = (b: Buffer): Buffer => b;
  // Deterministic "random" bytes (a fixed-seed LCG): the same bodies on every run.
  let seed = 20261121;
  const bytes = (n: number): Buffer =>
    Buffer.from(Array.from({ length: n }, () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff));
  // Reset (any body decodes to its empty request) drops every session: swept last, on its own.
  const unary = Object.entries(VmmServiceService).filter(([name, d]) => !d.requestStream && !d.responseStream && name !== 'reset');
  const raw = (path: string, body: Buffer): Promise<{ code: grpc.status | 'ok'; details: string }> =>
    new Promise((resolve) => client.makeUnaryRequest(path, identity, identity, body, (e) => resolve(e === null ? { code: 'ok', details: '' } : { code: e.code, details: e.details })));

  test.each(unary.map(([name, d]) => [name, d.path] as const))('%s: never UNKNOWN, never a bug; the core stays consistent', async (_name, path) => {
    // An empty body is a valid message of all defaults: the handler answers it.
    expect([grpc.status.UNKNOWN, grpc.status.INTERNAL]).not.toContain((await raw(path, Buffer.alloc(0))).code);
    for (let i = 0; i < 6; i++) {
      const r = await raw(path, bytes(1 + i * 9));
      // Bytes that are no protobuf of the request type are the caller's mistake (serveGrpc's decode guard).
      if (r.code !== 'ok' && /decode/.test(r.details)) expect(r.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect([grpc.status.UNKNOWN, grpc.status.INTERNAL]).not.toContain(r.code);
    }
    // Random bytes can decode to a valid request (e.g. OpenLease with some TTL); the core must stay consistent.
    expect(checkInvariants(s)).toEqual([]);
  });

  test('WatchVm (a server stream) with bytes that are no WatchVmRequest: INVALID_ARGUMENT, not INTERNAL', async () => {
    const stream = client.makeServerStreamRequest(VmmServiceService.watchVm.path, identity, identity, Buffer.from([0x0a, 0x7f, 0x01]));
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      stream.on('status', resolve);
      stream.on('error', () => {});
      stream.on('data', () => {});
    });
    expect(grpc.status[status.code]).toBe('INVALID_ARGUMENT');
    expect(status.details).toContain('do not decode as its request message');
  });

  test('still serving afterwards', async () => {
    expect(await call(client.listVms, { sessionId })).toBe('ok');
  });

  test('Reset with empty and random bytes: never UNKNOWN or INTERNAL from a bug; the session is gone, the core consistent', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await raw(VmmServiceService.reset.path, i === 0 ? Buffer.alloc(0) : bytes(1 + i * 9));
      expect([grpc.status.UNKNOWN, grpc.status.INTERNAL]).not.toContain(r.code);
    }
    expect(await call(client.listVms, { sessionId })).toBe('NOT_FOUND session_unknown');
    expect(checkInvariants(s)).toEqual([]);
  });
});
