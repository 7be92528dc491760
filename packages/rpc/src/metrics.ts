/**
 * What a service tells an operator (issue 11 item 6): Prometheus metrics through prom-client, and one
 * debug log line per RPC. Both come from one server interceptor that sees how every call ended (its
 * status, or a cancel), whatever ended it: the handler, the decode guard, the drain door or a fault.
 *
 * Metrics of a process (ProcessMetrics, one registry whichever services it runs):
 *   hypmesh_rpc_requests_total{service,method,code}  calls ended, by full method and gRPC code name
 *   hypmesh_rpc_duration_seconds{service,method}     how long they took (histogram)
 *   hypmesh_faults_injected_total{boundary,action}   faults the fault engine applied (DESIGN.md §7)
 *   plus each service's domain gauges read at scrape time (ServiceMetrics.gauge: ownership by owner,
 *   VMs by state, RM queue drops, ...) and prom-client's default process metrics.
 * `serveMetrics` answers GET /metrics on `--metrics-address` (text exposition format).
 */

import { createServer, type Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FaultEngine } from '@hypmesh/fault';

/** How one call ended, as the interceptor saw it. */
export interface CallEnd {
  /** The full method path, `/hypmesh.core.v1.CoreService/Translate`. */
  readonly path: string;
  /** The status sent; CANCELLED when the client went away first. */
  readonly code: grpc.status;
  readonly seconds: number;
  /** The caller header as sent (for the debug log; not a label: unbounded). */
  readonly caller: string | undefined;
}

/** A server interceptor that reports every call's end once (status sent, or cancelled). */
export function callObserver(onEnd: (e: CallEnd) => void): grpc.ServerInterceptor {
  return (method, call) => {
    const started = process.hrtime.bigint();
    let caller: string | undefined;
    let ended = false;
    const end = (code: grpc.status): void => {
      if (ended) return;
      ended = true;
      onEnd({ path: method.path, code, seconds: Number(process.hrtime.bigint() - started) / 1e9, caller });
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const v = metadata.get('x-hypmesh-caller-vmid')[0];
        if (typeof v === 'string') caller = v.slice(0, 32);
        next(metadata);
      })
      .withOnCancel(() => end(grpc.status.CANCELLED))
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        end(status.code ?? grpc.status.UNKNOWN);
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}

/** Latency buckets, seconds: an in-memory model answers in well under a millisecond. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** A value a gauge reports at scrape time: its labels and the number. */
export type GaugeSample<L extends string> = readonly [Partial<Record<L, string | number>>, number];

/**
 * The process's metrics: one prom-client registry, whichever services the process runs (one under
 * `npm start`, where the suite runs all three), every series labelled with its service.
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  readonly rpcs: Counter<'service' | 'method' | 'code'>;
  readonly latency: Histogram<'service' | 'method'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.rpcs = new Counter({ name: 'hypmesh_rpc_requests_total', help: 'RPCs ended, by service, method and gRPC status code', labelNames: ['service', 'method', 'code'], registers: [this.registry] });
    this.latency = new Histogram({ name: 'hypmesh_rpc_duration_seconds', help: 'RPC latency, from the call arriving to its status', labelNames: ['service', 'method'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  }

  /** Counts every fault the process's engine injects, by boundary and action. */
  countFaults(engine: FaultEngine): () => void {
    const injected = new Counter({ name: 'hypmesh_faults_injected_total', help: 'faults the fault engine injected, by boundary and action', labelNames: ['boundary', 'action'], registers: [this.registry] });
    return engine.subscribe((e) => injected.inc({ boundary: e.boundary, action: e.action.kind }));
  }

  /** The metrics of one service of this process. */
  service(name: string): ServiceMetrics {
    return new ServiceMetrics(this, name);
  }
}

/** One service's view of the process metrics: its calls, and its domain gauges. */
export class ServiceMetrics {
  constructor(
    private readonly process: ProcessMetrics,
    readonly service: string,
  ) {}

  /** Counts a call that ended. */
  observe(e: CallEnd): void {
    this.process.rpcs.inc({ service: this.service, method: e.path, code: grpc.status[e.code] ?? String(e.code) });
    this.process.latency.observe({ service: this.service, method: e.path }, e.seconds);
  }

  /** A gauge `hypmesh_<name>` whose samples are read from the domain each time it is scraped. */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Iterable<GaugeSample<L>>): void {
    const service = this.service;
    new Gauge<L | 'service'>({
      name: `hypmesh_${name}`,
      help,
      labelNames: ['service', ...labelNames],
      registers: [this.process.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set({ service, ...labels } as Partial<Record<L | 'service', string | number>>, value);
      },
    });
  }
}

/** Serves GET /metrics on `address`; the port actually bound. */
export async function serveMetrics(address: string, metrics: ProcessMetrics): Promise<{ readonly port: number; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`),
    );
  });
  const m = /^(.*):(\d+)$/.exec(address);
  if (m === null) throw new Error(`--metrics-address ${JSON.stringify(address)}: expected host:port`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), () => resolve());
  });
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound !== null ? bound.port : Number(m[2]),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
