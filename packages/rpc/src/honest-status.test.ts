/**
 * Status codes and messages that mean what they say (issue 10), over a real grpc-js server on
 * 127.0.0.1:0 started by serveGrpc: caller input is echoed bounded, so its status always reaches
 * the client. The RPC is CoreService.OwnershipCounts with a handler that reads the caller header
 * (any unary RPC would do).
 */

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CORE_SERVICE_NAME, CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { CALLER_VMID_KEY, callerVmid } from './caller.js';
import { serveGrpc, type Served } from './server.js';
import { STATUS_MESSAGE_MAX_BYTES, decodeStatusDetails } from './status-details.js';
import { unaryWith } from './unary.js';

const unary = unaryWith({ error: () => {} });
let served: Served;
let client: CoreServiceClient;

beforeAll(async () => {
  const core = {
    ownershipCounts: unary((_req, call) => (callerVmid(call), { ok: true, value: OwnershipCountsResponse.fromPartial({}) })),
  };
  served = await serveGrpc({
    address: '127.0.0.1:0',
    serviceName: CORE_SERVICE_NAME,
    register: (s) => s.addService(CoreServiceService, core as unknown as grpc.UntypedServiceImplementation),
  });
  client = new CoreServiceClient(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await served?.shutdown(100);
});

type Outcome = { readonly code: grpc.status; readonly details: string; readonly error?: grpc.ServiceError };

/** OwnershipCounts with `caller` as the header, 3 s deadline (far above an answer's few ms). */
const counts = (caller: string): Promise<Outcome> =>
  new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, caller);
    client.ownershipCounts({}, md, { deadline: Date.now() + 3_000 }, (e) => resolve(e === null ? { code: grpc.status.OK, details: '' } : { code: e.code, details: e.details, error: e }));
  });

describe('echoed input is bounded (issue 10 "echoed input")', () => {
  test('a 40 KB caller header is refused INVALID_ARGUMENT at once, quoting at most 200 bytes of it, marked truncated', async () => {
    const r = await counts('9'.repeat(40_000));
    expect(grpc.status[r.code]).toBe('INVALID_ARGUMENT');
    expect(Buffer.byteLength(r.details)).toBeLessThanOrEqual(STATUS_MESSAGE_MAX_BYTES + 64);
    expect(r.details).toContain(`"${'9'.repeat(200)}"… (truncated, 40000 bytes)`);
    const d = decodeStatusDetails(r.error!);
    expect(d.badRequest?.fieldViolations[0]?.field).toBe(CALLER_VMID_KEY);
    expect(Buffer.byteLength(d.badRequest?.fieldViolations[0]?.description ?? '')).toBeLessThan(400);
  });

  test('the same connection answers the next call at once (no stall behind the refused one)', async () => {
    const bad = counts('x'.repeat(60_000));
    const good = counts('3');
    expect(grpc.status[(await bad).code]).toBe('INVALID_ARGUMENT');
    // OK within the call's own 3 s deadline: the stall behind an oversized status lasted 5–20 s and
    // ended in DEADLINE_EXCEEDED (the deadline is the bound, not a timer in the test).
    expect(grpc.status[(await good).code]).toBe('OK');
  });
});

describe('undecodable request bytes are INVALID_ARGUMENT, not INTERNAL (issue 10)', () => {
  const identity = (b: Buffer): Buffer => b;
  const raw = (body: Buffer): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      md.set(CALLER_VMID_KEY, '3');
      client.makeUnaryRequest(CoreServiceService.ownershipCounts.path, identity, identity, body, md, { deadline: Date.now() + 3_000 }, (e) => resolve(e));
    });

  test.each([
    ['a truncated varint', Buffer.from([0x08, 0xff])],
    ['wire type 7', Buffer.from([0x0f])],
    ['a length past the end', Buffer.from([0x0a, 0x7f, 0x01])],
  ])('%s → INVALID_ARGUMENT naming the method, and the call never reaches the handler', async (_what, body) => {
    const e = await raw(body);
    expect(grpc.status[e?.code ?? 0]).toBe('INVALID_ARGUMENT');
    expect(e?.details).toContain(`${CoreServiceService.ownershipCounts.path} do not decode as its request message`);
    expect(decodeStatusDetails(e!).badRequest?.fieldViolations[0]?.field).toBe('request');
  });

  test('decodable bytes still reach the handler', async () => {
    expect(await raw(Buffer.alloc(0))).toBeNull();
  });
});
