/**
 * What tracing costs the core (issue 11 item 6): Translate over gRPC against a core process started
 * with `--otlp-endpoint` (a server span per call, batched and exported over OTLP/gRPC to a sink in
 * this process that accepts and discards) ÷ the same against a core process without it, same run.
 *
 * The cores are child processes (services/core/dist/main.js), so none shares this process's
 * OpenTelemetry globals: one traced (T), one not (U) and a second untraced twin (W) whose ratio to U
 * is the noise floor (A/A). Each block runs the rounds T U W W U T (a palindrome, so a load that
 * drifts linearly across the block cancels, as fault-bench.ts's ABBA blocks do), every process
 * equally warm; the figures are the medians of the blocks' (T₁ + T₂) ÷ (U₁ + U₂) and (W₁ + W₂) ÷
 * (U₁ + U₂). The client here is not traced: the figure is the server's cost (span, context,
 * export), not a caller's client span.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { RPC_CONCURRENCY } from './core-rpc-bench.js';
import { FAULT_BENCH_BLOCKS, coreClient, translateCall } from './fault-bench.js';
import { drive } from './grpc-bench.js';

export const TRACING_BENCH_BLOCKS = FAULT_BENCH_BLOCKS;
const ROUND_MS = 150;
const WARM_MS = 1_000;

/** A full collection between rounds, when node runs with --expose-gc (npm run bench does). */
const collect = (): void => (globalThis as { gc?: () => void }).gc?.();

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

/** Calls per second of one round against one core. */
async function rate(issue: () => Promise<void>): Promise<number> {
  collect();
  return (await drive(RPC_CONCURRENCY, ROUND_MS, issue)).callsPerS;
}

const CORE_MAIN = fileURLToPath(new URL('../../../services/core/dist/main.js', import.meta.url));

/** An OTLP/gRPC trace collector that counts export requests and their bytes, and decodes nothing. */
async function otlpSink(): Promise<{ port: number; exports: () => { requests: number; bytes: number }; close: () => void }> {
  let requests = 0;
  let bytes = 0;
  const server = new grpc.Server();
  const raw = (b: Buffer): Buffer => b;
  server.addService(
    {
      export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestDeserialize: raw,
        requestSerialize: raw,
        // An empty ExportTraceServiceResponse: full success.
        responseSerialize: () => Buffer.alloc(0),
        responseDeserialize: raw,
      },
    },
    {
      export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        requests++;
        bytes += call.request.length;
        cb(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, exports: () => ({ requests, bytes }), close: () => server.forceShutdown() };
}

/** A core process on an ephemeral port with `args`; resolves once it logs that it is serving. */
async function coreProcess(args: readonly string[]): Promise<{ port: number; child: ChildProcess }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_') && !k.startsWith('OTEL_')));
  const child = spawn(process.execPath, [CORE_MAIN, '--address', '127.0.0.1:0', ...args], { env: { ...env, HYPMESH_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the core exited (${code}) before serving`)));
    lines.on('line', (text) => {
      try {
        const line = JSON.parse(text) as { msg?: string; port?: number };
        if (line.msg === 'hypmesh core serving' && typeof line.port === 'number') resolve(line.port);
      } catch {
        // not a log line
      }
    });
  });
  return { port, child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

export interface TracingOverhead {
  /** Traced ÷ untraced, calls per wall second (the issue's figure). */
  readonly ratio: number;
  readonly tracedPerS: number;
  readonly untracedPerS: number;
  /** Untraced ÷ another untraced core process, measured the same way: the noise floor. */
  readonly aaRatio: number;
  /** OTLP export requests the sink received, and their bytes: the exporter really ran. */
  readonly exportRequests: number;
  readonly exportBytes: number;
}

export async function tracingOverhead(): Promise<TracingOverhead> {
  const sink = await otlpSink();
  const cores = await Promise.all([coreProcess(['--otlp-endpoint', `http://127.0.0.1:${sink.port}`]), coreProcess([]), coreProcess([])]);
  const [traced, untraced, twin] = cores.map((c) => coreClient(c.port)) as [ReturnType<typeof coreClient>, ReturnType<typeof coreClient>, ReturnType<typeof coreClient>];
  try {
    const [t, u, w] = [translateCall(traced), translateCall(untraced), translateCall(twin)];
    for (const issue of [t, u, w]) await drive(RPC_CONCURRENCY, WARM_MS, issue);
    const ratios: number[] = [];
    const aaRatios: number[] = [];
    const tRates: number[] = [];
    const uRates: number[] = [];
    for (let i = 0; i < TRACING_BENCH_BLOCKS; i++) {
      const t1 = await rate(t);
      const u1 = await rate(u);
      const w1 = await rate(w);
      const w2 = await rate(w);
      const u2 = await rate(u);
      const t2 = await rate(t);
      ratios.push((t1 + t2) / (u1 + u2));
      aaRatios.push((w1 + w2) / (u1 + u2));
      tRates.push(t1, t2);
      uRates.push(u1, u2);
    }
    for (const c of cores) await stop(c.child); // the traced core flushes its last batch as it stops
    const { requests, bytes } = sink.exports();
    return { ratio: median(ratios), tracedPerS: median(tRates), untracedPerS: median(uRates), aaRatio: median(aaRatios), exportRequests: requests, exportBytes: bytes };
  } finally {
    for (const c of [traced, untraced, twin]) c.close();
    for (const c of cores) await stop(c.child);
    sink.close();
  }
}
