/**
 * The RM's gRPC server: hypmesh.rm.v1.RmService (both faces) over one ResourceManager, plus
 * grpc.health.v1 and server reflection like the core (grpc-ecosystem.md §2.1).
 *
 * `startRmServer` is what main.ts runs and what tests use (address 127.0.0.1:0 picks a port). The
 * core is a CoreGrantPort: `grpcCore(address)` for a separate core process, or @hypmesh/rm's
 * `inProcessCore(stage2)` for an embedded one.
 */

import type * as grpc from '@grpc/grpc-js';
import { PROTO_ROOT } from '@hypmesh/proto';
import { RM_PROTO_FILES, RM_SERVICE_NAME, RmServiceService } from '@hypmesh/proto/rm';
import { serveGrpc, SERVER_OPTIONS, type BugLog } from '@hypmesh/rpc';
import { ResourceManager, type CoreGrantPort, type RmConfig } from '@hypmesh/rm';
import type { HealthImplementation } from 'grpc-health-check';
import { ByteFaceStats, type ByteFace } from './byte-face.js';
import { createRmHandlers } from './handlers.js';
import { Notifier } from './notifier.js';

/** Server channel options: @hypmesh/rpc's, shared by every service (idle and aged connections closed). */
export const RM_SERVER_OPTIONS: grpc.ServerOptions = SERVER_OPTIONS;

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

  const served = await serveGrpc({
    address: options.address,
    serviceName: RM_SERVICE_NAME,
    protoRoot: PROTO_ROOT,
    protoFiles: RM_PROTO_FILES,
    register: (server) => server.addService(RmServiceService, createRmHandlers(face, log)),
    drain: () => {
      for (const s of [...face.open]) s.end();
    },
  });
  return { ...served, rm, stats: face.stats };
}

export { grpcCore, type GrpcCorePort } from './core-client.js';
