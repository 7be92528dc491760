/**
 * Metrics and per-RPC debug logs (issue 11 item 6) over a real grpc-js server on 127.0.0.1:0 started by
 * serveGrpc, scraped over HTTP as Prometheus would.
 */

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CORE_SERVICE_NAME, CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { FaultEngine } from '@hypmesh/fault';
import { CALLER_VMID_KEY, callerVmid } from './caller.js';
import { ProcessMetrics, serveMetrics } from './metrics.js';
import { serveGrpc, type Served } from './server.js';
import { unaryWith } from './unary.js';

const unary = unaryWith({ error: () => {} });
const process_ = new ProcessMetrics();
const metrics = process_.service('core');
const logged: object[] = [];
const engine = new FaultEngine({ nowMs: () => 0 });
let served: Served;
let scrape: { port: number; close(): Promise<void> };
let client: CoreServiceClient;

beforeAll(async () => {
  process_.countFaults(engine);
  metrics.gauge('test_frames', 'frames by owner', ['owner'], () => [
    [{ owner: 'HOST' }, 7],
    [{ owner: 'HYP' }, 2],
  ]);
  const core = { ownershipCounts: unary((_req, call) => (callerVmid(call), { ok: true, value: OwnershipCountsResponse.fromPartial({}) })) };
  served = await serveGrpc({
    address: '127.0.0.1:0',
    serviceName: CORE_SERVICE_NAME,
    register: (s) => s.addService(CoreServiceService, core as unknown as grpc.UntypedServiceImplementation),
    metrics,
    rpcLog: { isLevelEnabled: () => true, debug: (obj) => void logged.push(obj) },
  });
  scrape = await serveMetrics('127.0.0.1:0', process_);
  client = new CoreServiceClient(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await scrape?.close();
  await served?.shutdown(100);
});

const counts = (caller: string): Promise<grpc.status> =>
  new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, caller);
    client.ownershipCounts({}, md, { deadline: Date.now() + 5_000 }, (e) => resolve(e === null ? grpc.status.OK : e.code));
  });

const get = async (path: string): Promise<{ status: number; text: string }> => {
  const r = await fetch(`http://127.0.0.1:${scrape.port}${path}`);
  return { status: r.status, text: await r.text() };
};

describe('metrics on GET /metrics', () => {
  test('RPCs by method and code, with a latency histogram', async () => {
    expect(await counts('3')).toBe(grpc.status.OK);
    expect(await counts('3')).toBe(grpc.status.OK);
    expect(await counts('0x3')).toBe(grpc.status.INVALID_ARGUMENT);
    const { status, text } = await get('/metrics');
    expect(status).toBe(200);
    const method = '/hypmesh.core.v1.CoreService/OwnershipCounts';
    expect(text).toContain(`hypmesh_rpc_requests_total{service="core",method="${method}",code="OK"} 2`);
    expect(text).toContain(`hypmesh_rpc_requests_total{service="core",method="${method}",code="INVALID_ARGUMENT"} 1`);
    expect(text).toContain(`hypmesh_rpc_duration_seconds_count{service="core",method="${method}"} 3`);
  });

  test('domain gauges are read at scrape time; faults are counted by boundary and action', async () => {
    expect(engine.arm({ rules: [{ id: 'd', boundary: 'CLIENT_TO_CORE', match: { method: 'X' }, action: { kind: 'delay', fixedMs: 1, jitterMs: 0 } }] }, 1).ok).toBe(true);
    expect(engine.decide({ boundary: 'CLIENT_TO_CORE', method: 'X' }).fault).toBe(true);
    const { text } = await get('/metrics');
    expect(text).toContain('hypmesh_test_frames{service="core",owner="HOST"} 7');
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toContain('hypmesh_faults_injected_total{boundary="CLIENT_TO_CORE",action="delay"} 1');
  });

  test('anything but GET /metrics is 404', async () => {
    expect((await get('/')).status).toBe(404);
  });
});

describe('per-RPC debug log', () => {
  test('one line per call: method, code, ms and the caller as sent', async () => {
    logged.length = 0;
    await counts('3');
    expect(logged).toEqual([expect.objectContaining({ rpc: '/hypmesh.core.v1.CoreService/OwnershipCounts', code: 'OK', caller: '3', ms: expect.any(Number) })]);
  });
});
