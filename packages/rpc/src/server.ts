/**
 * One hypmesh gRPC server: a service plus the standard day-2 services (grpc.health.v1 and server
 * reflection, grpc-ecosystem.md §2.1), so grpcurl, grpcui and grpc_health_probe work without the
 * .proto files; bound, and shut down the same way by every service (core, RM, VMM).
 *
 * Shutdown order: health → NOT_SERVING (probes stop routing to us), the service's own `drain`
 * (end the streams it holds open, finish background work), then a graceful server shutdown that
 * is forced after `graceMs`. The grace bounds the whole sequence, drain included.
 */

import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { reflectionPackageDefinition } from './reflection.js';

/**
 * Server channel options. Idle and aged connections are closed (clients reconnect transparently):
 * frequent health-probe connections have been seen to grow grpc-js server memory without them
 * (grpc-node #2975, grpc-ecosystem.md §5).
 */
export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_connection_idle_ms': 30_000,
  'grpc.max_connection_age_ms': 300_000,
  'grpc.max_connection_age_grace_ms': 10_000,
};

export const SHUTDOWN_GRACE_MS_DEFAULT = 5_000;

export interface ServeOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  /** The fully qualified service name health reports (hypmesh.rm.v1.RmService). */
  readonly serviceName: string;
  /** Where the .proto files live, and the service's files relative to it (for reflection). */
  readonly protoRoot: string;
  readonly protoFiles: readonly string[];
  /** Adds the service's handlers to the server. */
  readonly register: (server: grpc.Server) => void;
  /** At shutdown, after health goes NOT_SERVING: end open streams, finish background work. */
  readonly drain?: () => void | Promise<void>;
  /** Server interceptors, outermost first (the fault interceptor, fault-interceptor.ts). */
  readonly interceptors?: readonly grpc.ServerInterceptor[];
}

export interface Served {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  readonly health: HealthImplementation;
  /** Health → NOT_SERVING, drain, then a graceful shutdown forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

export async function serveGrpc(options: ServeOptions): Promise<Served> {
  const server = new grpc.Server(options.interceptors === undefined ? SERVER_OPTIONS : { ...SERVER_OPTIONS, interceptors: [...options.interceptors] });
  options.register(server);
  const health = new HealthImplementation({ '': 'SERVING', [options.serviceName]: 'SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition(options.protoRoot, options.protoFiles)).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );

  let stopped: Promise<void> | undefined;
  const shutdown = (graceMs = SHUTDOWN_GRACE_MS_DEFAULT): Promise<void> =>
    (stopped ??= new Promise((resolve) => {
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
      Promise.resolve()
        .then(() => options.drain?.())
        .then(close, close);
    }));

  return { server, port, health, shutdown };
}
