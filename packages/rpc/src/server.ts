/**
 * One hypmesh gRPC server: a service plus the standard day-2 services (grpc.health.v1 and server
 * reflection, grpc-ecosystem.md §2.1), so grpcurl, grpcui and grpc_health_probe work without the
 * .proto files; bound, and shut down the same way by every service (core, RM, VMM).
 *
 * Shutdown order: new calls refused UNAVAILABLE `draining` and health → NOT_SERVING (probes stop
 * routing to us); the unary calls already running finish (drain-door.ts); the service's own `drain`
 * (end the streams it holds open, finish background work); then a graceful server shutdown that
 * is forced after `graceMs`. The grace bounds the whole sequence, drain included.
 *
 * Faults (DESIGN.md §7, issue 8 §2): with `faults`, the server also serves hypmesh.fault.v1.
 * FaultService over the process's engine (reflection lists it), and the service's unary handlers
 * are wrapped by the engine's CLIENT_TO_<svc> front door (fault-handlers.ts), which decides and
 * applies every fault before the handler runs, duplicate included. No server interceptor: one costs
 * every call several objects even when nothing fires (bench: fault_interceptor_overhead). FaultService,
 * health and reflection are added around the front door and are never faulted.
 */

import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Boundary, FaultEngine } from '@hypmesh/fault';
import { FAULT_SERVICE_NAME, FaultServiceService } from '@hypmesh/proto/fault';
import { AUTHZ_TABLE, guardAuthz, type AuthzTable } from './authz.js';
import { guardDecoding } from './decode-guard.js';
import { watchDependencies, type DependencyWatch } from './dependency-health.js';
import { DrainDoor } from './drain-door.js';
import { faultFrontDoor, type FaultHandlerPorts } from './fault-handlers.js';
import { faultServiceHandlers } from './fault-service.js';
import { callObserver, type ServiceMetrics } from './metrics.js';
import { addReflection, serverDescriptors } from './reflection.js';
import { serverCredentials, type ServiceTls, type TlsMaterial } from './tls.js';
import { traceServer, tracingEnabled } from './tracing.js';

/** grpc.health.v1's service, which every server carries (and reflection lists). */
const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/**
 * Server channel options. Idle and aged connections are closed (clients reconnect transparently):
 * frequent health-probe connections have been seen to grow grpc-js server memory without them
 * (grpc-node #2975, grpc-ecosystem.md §5). An aged connection gets GOAWAY, so new calls go to a new
 * connection, but no grace period is set: grpc-js then lets the calls already open run to their
 * end, and the streams that model queues (Exchange, OpenSession, Subscribe) live as long as their
 * client (issue 10: a 10 s grace cut an external driver's msgq pair every five minutes).
 */
export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_connection_idle_ms': 30_000,
  'grpc.max_connection_age_ms': 300_000,
};

export const SHUTDOWN_GRACE_MS_DEFAULT = 5_000;

export interface ServeOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  /** The fully qualified service name health reports (hypmesh.rm.v1.RmService). */
  readonly serviceName: string;
  /** Adds the service's handlers to the server. */
  readonly register: (server: grpc.Server) => void;
  /** At shutdown, after health goes NOT_SERVING: end open streams, finish background work. */
  readonly drain?: () => void | Promise<void>;
  /** Server interceptors, outermost first (faults do not need one: see `faults`). */
  readonly interceptors?: readonly grpc.ServerInterceptor[];
  /** Where each call is counted and timed (metrics.ts); none by default. */
  readonly metrics?: ServiceMetrics;
  /** Where each call is logged at debug level (method, code, ms, caller), when debug is enabled. */
  readonly rpcLog?: RpcLog;
  /** The process's fault engine and this server's front-door boundary (CLIENT_TO_CORE/RM/VMM). */
  readonly faults?: ServeFaults;
  /** Dependencies whose reachability health reflects (dependency-health.ts). */
  readonly dependencies?: DependencyWatch;
  /**
   * mTLS (tls.ts loadTls): clients must present a certificate signed by its CA, and caller identity
   * is the certificate's (caller.ts). Absent: plaintext, identity declared in metadata (insecure local use).
   */
  readonly tls?: TlsMaterial;
  /** The authorisation table (authz.ts) checked before the service's handlers and FaultService run; none by default. */
  readonly authz?: AuthzTable;
}

/** A server's mTLS and authorisation: serveGrpc's `tls` and `authz`, as a service's options carry them. */
export interface ServeSecurity {
  readonly tls?: TlsMaterial;
  readonly authz?: AuthzTable;
}

/**
 * What a service serves with under its flags (tls.ts serviceTls): with mTLS, its server certificate
 * and the authorisation table (authz.ts), checked before every handler; without, nothing (plaintext,
 * identity declared in metadata, each handler's own caller checks: insecure local use).
 */
export function serveSecurity(tls: ServiceTls | undefined): ServeSecurity | undefined {
  return tls === undefined ? undefined : { tls: tls.server, authz: AUTHZ_TABLE };
}

export interface ServeFaults {
  readonly engine: FaultEngine;
  readonly boundary: Boundary;
  readonly ports?: FaultHandlerPorts;
}

export interface Served {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  readonly health: HealthImplementation;
  /** Health → NOT_SERVING, drain, then a graceful shutdown forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

/** A pino-like logger: per-RPC lines go out only when debug is enabled. */
export interface RpcLog {
  isLevelEnabled(level: 'debug'): boolean;
  debug(obj: object, msg: string): void;
}

/** The interceptor that feeds metrics and the per-RPC debug log, if either is wanted (outermost: it sees every end). */
function observeCalls(options: ServeOptions): grpc.ServerInterceptor[] {
  const { metrics, rpcLog } = options;
  const debug = rpcLog?.isLevelEnabled('debug') === true ? rpcLog : undefined;
  if (metrics === undefined && debug === undefined) return [];
  return [
    callObserver((e) => {
      metrics?.observe(e);
      debug?.debug({ rpc: e.path, code: grpc.status[e.code], ms: Math.round(e.seconds * 1e6) / 1e3, caller: e.caller }, 'rpc');
    }),
  ];
}

export async function serveGrpc(options: ServeOptions): Promise<Served> {
  const faults = options.faults;
  const interceptors = [...(tracingEnabled() ? [traceServer(options.serviceName)] : []), ...observeCalls(options), ...(options.interceptors ?? [])];
  const server = new grpc.Server(interceptors.length === 0 ? SERVER_OPTIONS : { ...SERVER_OPTIONS, interceptors: [...interceptors] });
  // The service registers through this view: every method refuses undecodable bytes first
  // (decode-guard.ts), then every unary handler goes through the fault front door, if any.
  const frontDoor = faults === undefined ? undefined : faultFrontDoor(faults.engine, faults.boundary, faults.ports);
  // Outermost: once shutting down, new calls are refused before anything else runs (drain-door.ts).
  const door = new DrainDoor(options.serviceName);
  const registrar = Object.create(server) as grpc.Server;
  // Authorisation (authz.ts) before faults: a caller the table refuses never meets an injected fault.
  const authz = options.authz;
  const authorized = (definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation =>
    authz === undefined ? implementation : guardAuthz(definition, implementation, authz);
  registrar.addService = (definition, implementation) =>
    server.addService(
      ...guardDecoding(definition, door.wrap(definition, authorized(definition, frontDoor === undefined ? implementation : frontDoor.wrap(definition, implementation)))),
    );
  options.register(registrar);
  if (faults !== undefined)
    server.addService(...guardDecoding(FaultServiceService, authorized(FaultServiceService, faultServiceHandlers(faults.engine) as unknown as grpc.UntypedServiceImplementation)));
  const health = new HealthImplementation({ '': 'SERVING', [options.serviceName]: 'SERVING' });
  health.addToServer(server);
  addReflection(server, serverDescriptors([options.serviceName, ...(faults === undefined ? [] : [FAULT_SERVICE_NAME]), HEALTH_SERVICE_NAME]));

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.address, options.tls === undefined ? grpc.ServerCredentials.createInsecure() : serverCredentials(options.tls), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const watching = options.dependencies === undefined ? undefined : watchDependencies(health, options.serviceName, options.dependencies);

  let stopped: Promise<void> | undefined;
  const shutdown = (graceMs = SHUTDOWN_GRACE_MS_DEFAULT): Promise<void> =>
    (stopped ??= new Promise((resolve) => {
      door.begin();
      watching?.stop();
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(options.serviceName, 'NOT_SERVING');
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      const close = (): void =>
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      // The calls already running finish first (a StartVm completes), then the service drains.
      door
        .idle()
        .then(() => options.drain?.())
        .then(close, close);
    }));

  return { server, port, health, shutdown };
}
