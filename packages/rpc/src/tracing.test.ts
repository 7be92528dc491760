/**
 * Tracing (issue 11 item 6) over real grpc-js servers on 127.0.0.1:0: a call into service A whose
 * handler calls service B is one trace (A's server span → A's client span → B's server span), and a
 * context carried outside metadata (an RM message beside its msgq fragments) continues the trace.
 */

import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { InMemorySpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CORE_SERVICE_NAME, CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { CALLER_VMID_KEY } from './caller.js';
import { callUnary, serviceClientOptions } from './client-call.js';
import { serveGrpc, type Served } from './server.js';
import { carrierSpan, enableOtlpTracing, enableTracing, exportTransitionsLogged, traceparentOf, withRemoteParent } from './tracing.js';
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

  test("a message on a non-metadata carrier: the sender's CLIENT span → the receiver's span, one trace (carrierSpan, withRemoteParent)", () => {
    exporter.reset();
    const tracer = trace.getTracer('test');
    let sent = { traceparent: '', end: (_e?: string) => {} };
    tracer.startActiveSpan('caller', (caller) => {
      sent = carrierSpan('rm.msgq VM_START', { 'hypmesh.rm.message': 'VM_START' });
      caller.end();
    });
    // The receiver has its own active context (the Exchange stream's): the carried parent wins.
    tracer.startActiveSpan('stream', (stream) => {
      withRemoteParent(sent.traceparent, 'rm.msgq VM_START', {}, () => undefined);
      // None carried: the message stays in the stream's trace, under the stream's span.
      withRemoteParent('', 'rm.msgq VM_STOP', {}, () => undefined);
      stream.end();
    });
    sent.end('BUSY (msgq_timeout): no reply');
    const spans = exporter.getFinishedSpans();
    const named = (n: string, k: SpanKind) => spans.find((s) => s.name === n && s.kind === k)!;
    const [caller, client, server, stream, stop] = [named('caller', SpanKind.INTERNAL), named('rm.msgq VM_START', SpanKind.CLIENT), named('rm.msgq VM_START', SpanKind.SERVER), named('stream', SpanKind.INTERNAL), named('rm.msgq VM_STOP', SpanKind.SERVER)];
    expect(client.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
    expect(server.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    expect(server.spanContext().traceId).toBe(caller.spanContext().traceId);
    expect(stop.parentSpanContext?.spanId).toBe(stream.spanContext().spanId);
    expect(client.status).toEqual({ code: SpanStatusCode.ERROR, message: 'BUSY (msgq_timeout): no reply' });
  });

  test('health checks are not traced (dependency probes poll them every second)', async () => {
    exporter.reset();
    const probe = new grpc.Client(`127.0.0.1:${a.port}`, grpc.credentials.createInsecure(), serviceClientOptions());
    const raw = (b: Buffer): Buffer => b;
    const err = await new Promise<grpc.ServiceError | null>((resolve) => probe.makeUnaryRequest('/grpc.health.v1.Health/Check', raw, raw, Buffer.alloc(0), (e) => resolve(e)));
    probe.close();
    expect(err).toBeNull();
    // The caller's client span only; no server span.
    expect(exporter.getFinishedSpans().map((s) => [s.name, s.kind])).toEqual([['grpc.health.v1.Health/Check', SpanKind.CLIENT]]);
  });

  test('a collector lost and regained: one log line per transition, not per batch', () => {
    const outcomes = [ExportResultCode.FAILED, ExportResultCode.FAILED, ExportResultCode.SUCCESS, ExportResultCode.SUCCESS, ExportResultCode.FAILED];
    const inner: SpanExporter = { export: (_spans, done) => done({ code: outcomes.shift()!, error: new Error('14 UNAVAILABLE: No connection established') }), shutdown: async () => {} };
    const lines: [string, string][] = [];
    const log = { info: (_o: object, msg: string) => lines.push(['info', msg]), warn: (_o: object, msg: string) => lines.push(['warn', msg]) };
    const logged = exportTransitionsLogged(inner, 'http://127.0.0.1:4317', log);
    const results: ExportResultCode[] = [];
    for (let i = 0; i < 5; i++) logged.export([], (r) => results.push(r.code));
    // Every batch's own result still reaches the processor.
    expect(results).toEqual([ExportResultCode.FAILED, ExportResultCode.FAILED, ExportResultCode.SUCCESS, ExportResultCode.SUCCESS, ExportResultCode.FAILED]);
    expect(lines).toEqual([
      ['warn', 'trace export to the collector failing: spans are lost until it succeeds'],
      ['info', 'trace export to the collector succeeds again'],
      ['warn', 'trace export to the collector failing: spans are lost until it succeeds'],
    ]);
  });

  test('--otlp-endpoint must be an http(s) URL: anything else is refused, naming it', () => {
    expect(() => enableOtlpTracing('localhost:4317', 'hypmesh-test')).toThrow('--otlp-endpoint "localhost:4317": the scheme must be http or https, not localhost:');
    expect(() => enableOtlpTracing('not a url', 'hypmesh-test')).toThrow('--otlp-endpoint "not a url" is not a URL (e.g. http://127.0.0.1:4317)');
  });
});
