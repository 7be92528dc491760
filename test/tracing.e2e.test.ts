/**
 * Tracing across the three services as separate processes (issue 11 item 6, README "Tracing"):
 * each runs with `HYPMESH_OTLP_ENDPOINT` at a collector stub in this test (a grpc-js server of OTLP's
 * TraceService/Export, decoding with test/fixtures/otlp-trace-subset.proto), and one StartVm through
 * the VMM is one trace: the VMM's server span, its span per RM message, the RM's span for each
 * message (parented through ExchangeRequest.traceparent on the msgq Exchange) and the core calls the
 * RM and the VMM make, every span's parent in the same trace.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CoreServiceClient } from '@hypmesh/proto';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, openSession } from './support/calls.js';
import { Processes, ROOT, serving } from './support/processes.js';

const SERVER = 2;
const CLIENT = 3;
const MiB = 1024 * 1024;
const GUEST_RAM = 0x8800_0000n;

/** One span as the stub keeps it: ids in hex, the exporting process's service.name. */
interface Span {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Readonly<Record<string, string>>;
}

interface KeyValue {
  key: string;
  value?: { stringValue?: string; intValue?: string; boolValue?: boolean; doubleValue?: number };
}
interface ExportRequest {
  resourceSpans: { resource?: { attributes: KeyValue[] }; scopeSpans: { spans: { traceId: Buffer; spanId: Buffer; parentSpanId: Buffer; name: string; kind: number; attributes: KeyValue[] }[] }[] }[];
}

const attrs = (kvs: readonly KeyValue[]): Record<string, string> =>
  Object.fromEntries(kvs.map((kv) => [kv.key, String(kv.value?.stringValue ?? kv.value?.intValue ?? kv.value?.boolValue ?? kv.value?.doubleValue ?? '')]));

/** An OTLP/gRPC collector that keeps every span exported to it. */
async function collector(): Promise<{ port: number; spans: Span[]; server: grpc.Server }> {
  const def = protoLoader.loadSync(fileURLToPath(new URL('./fixtures/otlp-trace-subset.proto', import.meta.url)), { longs: String, defaults: true, oneofs: false });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { opentelemetry: { proto: { collector: { trace: { v1: { TraceService: grpc.ServiceClientConstructor } } } } } };
  const spans: Span[] = [];
  const server = new grpc.Server();
  server.addService(pkg.opentelemetry.proto.collector.trace.v1.TraceService.service, {
    export: (call: grpc.ServerUnaryCall<ExportRequest, object>, callback: grpc.sendUnaryData<object>) => {
      for (const rs of call.request.resourceSpans) {
        const service = attrs(rs.resource?.attributes ?? [])['service.name'] ?? '';
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans)
            spans.push({ service, traceId: s.traceId.toString('hex'), spanId: s.spanId.toString('hex'), parentSpanId: s.parentSpanId.toString('hex'), name: s.name, kind: s.kind, attributes: attrs(s.attributes) });
      }
      callback(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, spans, server };
}

const processes = new Processes();
let otlp: Awaited<ReturnType<typeof collector>>;
let vmm: VmmServiceClient;

beforeAll(async () => {
  otlp = await collector();
  // Batches every 100 ms (the default is 5 s), so the spans arrive while the test waits.
  const env = { HYPMESH_OTLP_ENDPOINT: `http://127.0.0.1:${otlp.port}`, OTEL_BSP_SCHEDULE_DELAY: '100' };
  const at = await processes.startServices([], { core: env, rm: env, vmm: env });
  vmm = new VmmServiceClient(at.vmm, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  vmm?.close();
  await processes.stopAll();
  otlp?.server.forceShutdown();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

/** The spans of `traceId` once `done` holds of them (polled every 100 ms, at most 15 s). */
async function traceOf(traceId: () => string | undefined, done: (spans: Span[]) => boolean): Promise<Span[]> {
  for (let i = 0; i < 150; i++) {
    const id = traceId();
    const spans = id === undefined ? [] : otlp.spans.filter((s) => s.traceId === id);
    if (spans.length > 0 && done(spans)) return spans;
    await new Promise((r) => setTimeout(r, 100));
  }
  return otlp.spans.filter((s) => s.traceId === traceId());
}

describe('one StartVm is one trace across the VMM, the RM and the core', () => {
  test('spans from all three services, each parented inside the trace, through the msgq Exchange', async () => {
    const { stream, sessionId } = await openSession(vmm);
    let vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
    const at = (req: object) => ({ sessionId, handle: vm.handle, ...req });
    await ask(vmm, vmm.mapMem, at({ binding: { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true }, unmap: false }));
    await ask(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
    await ask(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
    vm = (await ask<{ vm: Vm }>(vmm, vmm.startVm, at({}))).vm;
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);

    const startVm = (): Span | undefined => otlp.spans.find((s) => s.service === 'hypmesh-vmm' && s.name === 'hypmesh.vmm.v1.VmmService/StartVm' && s.kind === SERVER);
    const services = (spans: Span[]): string[] => [...new Set(spans.map((s) => s.service))].sort();
    const spans = await traceOf(
      () => startVm()?.traceId,
      // Each process exports on its own schedule: wait until every span's parent has arrived too.
      (t) => {
        const ids = new Set(t.map((s) => s.spanId));
        const underRm = (s: Span): boolean => t.some((p) => p.spanId === s.parentSpanId && p.service === 'hypmesh-rm' && p.kind === CLIENT);
        return (
          services(t).length === 3 &&
          t.some((s) => s.service === 'hypmesh-rm' && s.name === 'rm.msgq VM_START') &&
          t.every((s) => s.parentSpanId === '' || ids.has(s.parentSpanId)) &&
          t.some((s) => s.service === 'hypmesh-core' && underRm(s))
        );
      },
    );
    const root = startVm();
    expect(root, 'the VMM exported its StartVm server span').toBeDefined();
    expect(services(spans)).toEqual(['hypmesh-core', 'hypmesh-rm', 'hypmesh-vmm']);

    // One root, the StartVm server span (this test's client is not traced); every other span's parent is in the trace.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect(spans.filter((s) => s.parentSpanId === '').map((s) => s.name)).toEqual(['hypmesh.vmm.v1.VmmService/StartVm']);
    expect(spans.filter((s) => s.parentSpanId !== '' && !byId.has(s.parentSpanId)).map((s) => `${s.service} ${s.name}`)).toEqual([]);
    const ancestors = (s: Span): Span[] => {
      const up: Span[] = [];
      for (let p = byId.get(s.parentSpanId); p !== undefined; p = byId.get(p.parentSpanId)) up.push(p);
      return up;
    };

    // Through the Exchange: the RM's VM_START span is the child of the VMM's span for that message.
    const rmStart = spans.find((s) => s.service === 'hypmesh-rm' && s.name === 'rm.msgq VM_START')!;
    const sent = byId.get(rmStart.parentSpanId)!;
    expect({ service: sent.service, name: sent.name, kind: sent.kind }).toEqual({ service: 'hypmesh-vmm', name: 'rm.msgq VM_START', kind: CLIENT });
    expect(rmStart.attributes).toMatchObject({ 'hypmesh.rm.message': 'VM_START', 'hypmesh.caller_vmid': '3' });
    expect(ancestors(sent)).toContain(root);

    // The core's server spans: each under a client span of the VMM or of the RM, in this trace.
    const coreServers = spans.filter((s) => s.service === 'hypmesh-core' && s.kind === SERVER);
    expect(coreServers.length).toBeGreaterThan(0);
    for (const c of coreServers) {
      const caller = byId.get(c.parentSpanId)!;
      expect([caller.kind, caller.name]).toEqual([CLIENT, c.name]);
      expect(['hypmesh-rm', 'hypmesh-vmm']).toContain(caller.service);
    }
    // vmm → rm → core: at least one core call made by the RM while it handled a message of this StartVm.
    const viaRm = coreServers.filter((c) => ancestors(c).some((a) => a.service === 'hypmesh-rm' && a.name.startsWith('rm.msgq ')));
    expect(viaRm.length).toBeGreaterThan(0);

    // The RM's and the VMM's dependency probes (a health Check each second) are not traced.
    expect(otlp.spans.filter((s) => s.name.startsWith('grpc.')).map((s) => `${s.service} ${s.name}`)).toEqual([]);
    stream.cancel();
  }, 60_000);
});

test('a bad --otlp-endpoint refuses startup (exit 2), naming it', async () => {
  const r = await new Promise<{ code: number | null; out: string }>((resolve) =>
    execFile(process.execPath, ['services/core/dist/main.js', '--address', '127.0.0.1:0', '--otlp-endpoint', 'collector:4317'], { cwd: ROOT, timeout: 20_000 }, (e, out) =>
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, out }),
    ),
  );
  expect(r.code).toBe(2);
  expect(r.out).toContain('--otlp-endpoint \\"collector:4317\\": the scheme must be http or https');
}, 30_000);

test('a collector that is down: the service still answers, and logs once that spans are being lost', async () => {
  // A port nothing listens on: a collector bound and closed again.
  const gone = await collector();
  gone.server.forceShutdown();
  const env = { HYPMESH_OTLP_ENDPOINT: `http://127.0.0.1:${gone.port}`, OTEL_BSP_SCHEDULE_DELAY: '100' };
  const { proc, line } = await processes.spawnNode('core-no-collector', 'services/core/dist/main.js', ['--address', '127.0.0.1:0'], serving('hypmesh core serving'), env);
  const core = new CoreServiceClient(`127.0.0.1:${line['port'] as number}`, grpc.credentials.createInsecure());
  const lost = (): number => proc.logs.filter((l) => l['msg'] === 'trace export to the collector failing: spans are lost until it succeeds').length;
  try {
    for (let i = 0; i < 3; i++) await ask(core, core.ownershipCounts, {});
    // The exporter retries UNAVAILABLE within its 10 s timeout before the batch counts as failed.
    for (let i = 0; i < 200 && lost() === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(lost()).toBe(1);
    expect(proc.logs.find((l) => l['msg'] === 'trace export to the collector failing: spans are lost until it succeeds')).toMatchObject({ level: 40, collector: `http://127.0.0.1:${gone.port}` });
  } finally {
    core.close();
  }
}, 60_000);
