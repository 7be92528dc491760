/**
 * The RM's gRPC server: hypmesh.rm.v1.RmService (both faces) over one ResourceManager, plus
 * grpc.health.v1 and server reflection like the core (grpc-ecosystem.md §2.1).
 *
 * `startRmServer` is what main.ts runs and what tests use (address 127.0.0.1:0 picks a port). The
 * core is a CoreGrantPort: `grpcCore(address)` for a separate core process, or @hypmesh/rm's
 * `inProcessCore(stage2)` for an embedded one.
 */

import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { PROTO_ROOT } from '@hypmesh/proto';
import { RM_PROTO_FILES, RM_SERVICE_NAME, RmServiceService } from '@hypmesh/proto/rm';
import { reflectionPackageDefinition, type BugLog } from '@hypmesh/rpc';
import { ResourceManager, type CoreGrantPort, type RmConfig } from '@hypmesh/rm';
import { HealthImplementation } from 'grpc-health-check';
import { ByteFaceStats, type ByteFace } from './byte-face.js';
import { createRmHandlers } from './handlers.js';
import { Notifier } from './notifier.js';

/** Idle and aged connections are closed, as the core does (grpc-node #2975). */
export const RM_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_connection_idle_ms': 30_000,
  'grpc.max_connection_age_ms': 300_000,
  'grpc.max_connection_age_grace_ms': 10_000,
};

export interface RmServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  /** Where the RM's stage-2 effects go. */
  readonly core: CoreGrantPort;
  readonly rmConfig?: RmConfig;
  /** Where bugs (INTERNAL errors) are logged. */
  readonly log?: BugLog;
}

export interface RmServer {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  /** The RM state both faces act on (tests may inspect it). */
  readonly rm: ResourceManager;
  readonly stats: ByteFaceStats;
  readonly health: HealthImplementation;
  /** Health → NOT_SERVING, open streams ended, then a graceful shutdown forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

const consoleLog: BugLog = { error: (obj, msg) => console.error(msg, obj) };

export async function startRmServer(options: RmServerOptions): Promise<RmServer> {
  const log = options.log ?? consoleLog;
  const rm = options.rmConfig ? new ResourceManager(options.core, options.rmConfig) : new ResourceManager(options.core);
  const face: ByteFace = { rm, notifier: new Notifier(rm), stats: new ByteFaceStats(), log, open: new Set() };

  const server = new grpc.Server(RM_SERVER_OPTIONS);
  server.addService(RmServiceService, createRmHandlers(face, log));
  const health = new HealthImplementation({ '': 'SERVING', [RM_SERVICE_NAME]: 'SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition(PROTO_ROOT, RM_PROTO_FILES)).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );

  const shutdown = (graceMs = 5_000): Promise<void> =>
    new Promise((resolve) => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(RM_SERVICE_NAME, 'NOT_SERVING');
      for (const s of [...face.open]) s.end();
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  return { server, port, rm, stats: face.stats, health, shutdown };
}

export { grpcCore, type GrpcCorePort } from './core-client.js';
