/**
 * Tracing (issue 11 item 6) over real grpc-js servers on 127.0.0.1:0: a call into service A whose
 * handler calls service B is one trace (A's server span → A's client span → B's server span), and a
 * context carried outside metadata (an RM message beside its msgq fragments) continues the trace.
 */

import * as grpc from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CORE_SERVICE_NAME, CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { CALLER_VMID_KEY } from './caller.js';
import { callUnary, serviceClientOptions } from './client-call.js';
import { serveGrpc, type Served } from './server.js';
import { enableTracing, traceparentOf, withRemoteParent } from './tracing.js';
import { unaryWith } from './unary.js';

const exporter = new InMemorySpanExporter();
enableTracing(exporter, true);
const unary = unaryWith({ error: () => {} });
let b: Served;
let a: Served;
let toB: CoreServiceClient;
let client: CoreServiceClient;
let carried = '';

const serve = (name: string, ownershipCounts: unknown): Promise<Served> =>
  serveGrpc({
    address: '127.0.0.1:0',
    serviceName: CORE_SERVICE_NAME,
    register: (s) => s.addService(CoreServiceService, { ownershipCounts } as unknown as grpc.UntypedServiceImplementation),
  }).then((served) => Object.assign(served, { name }));

beforeAll(async () => {
  b = await serve('b', unary(() => ({ ok: true, value: OwnershipCountsResponse.fromPartial({}) })));
  toB = new CoreServiceClient(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure(), serviceClientOptions());
  a = await serve('a', async (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    await new Promise((r) => setTimeout(r, 1)); // the context survives an await
    const r = await callUnary(toB, toB.ownershipCounts, {}, 3, 5_000);
    carried = traceparentOf();
    callback(null, r.ok ? r.value : OwnershipCountsResponse.fromPartial({}));
  });
  client = new CoreServiceClient(`127.0.0.1:${a.port}`, grpc.credentials.createInsecure(), serviceClientOptions());
});

afterAll(async () => {
  client?.close();
  toB?.close();
  await a?.shutdown(100);
  await b?.shutdown(100);
});

const callA = (): Promise<void> =>
  new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, '3');
    client.ownershipCounts({}, md, { deadline: Date.now() + 5_000 }, (e) => (e ? reject(e) : resolve()));
  });

describe('one trace across services', () => {
  test("A's server span, its client span to B and B's server span share one trace, parent to child", async () => {
    exporter.reset();
    await callA();
    const spans = exporter.getFinishedSpans().filter((s) => s.name === 'hypmesh.core.v1.CoreService/OwnershipCounts');
    const servers = spans.filter((s) => s.kind === SpanKind.SERVER);
    const clients = spans.filter((s) => s.kind === SpanKind.CLIENT);
    // The test's own client span, A's and B's server spans, and A's client span to B.
    expect([servers.length, clients.length]).toEqual([2, 2]);
    const traceIds = new Set(spans.map((s) => s.spanContext().traceId));
    expect(traceIds.size).toBe(1);
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: (typeof spans)[number]) => byId.get(s.parentSpanContext?.spanId ?? '');
    // B's server span → A's client span → A's server span → the test's client span.
    const bServer = servers.find((s) => parentOf(s)?.kind === SpanKind.CLIENT && parentOf(parentOf(s)!)?.kind === SpanKind.SERVER)!;
    expect(bServer).toBeDefined();
    expect(bServer.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'hypmesh.core.v1.CoreService', 'rpc.method': 'OwnershipCounts', 'rpc.grpc.status_code': 0 });
  });

  test('a traceparent carried outside metadata continues the trace (withRemoteParent)', async () => {
    exporter.reset();
    await callA();
    expect(carried).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const traceId = carried.split('-')[1];
    const n = withRemoteParent(carried, 'rm.msgq VM_START', { 'hypmesh.rm.message': 'VM_START' }, () => 7);
    expect(n).toBe(7);
    const msgq = exporter.getFinishedSpans().find((s) => s.name === 'rm.msgq VM_START')!;
    expect(msgq.spanContext().traceId).toBe(traceId);
  });

  test('no traceparent: a new trace; the function still runs', () => {
    expect(withRemoteParent('', 'x', {}, () => 'ran')).toBe('ran');
    expect(withRemoteParent('garbage', 'y', {}, () => 'ran')).toBe('ran');
  });
});
