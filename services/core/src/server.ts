/**
 * The core's gRPC server: hypmesh.core.v1.CoreService over one @hypmesh/stage2 core, plus the
 * standard day-2 services (grpc.health.v1 and server reflection, grpc-ecosystem.md §2.1), so
 * grpcurl, grpcui and grpc_health_probe work without the .proto files.
 *
 * `startCoreServer` is what main.ts runs and what tests use (address 127.0.0.1:0 picks a port).
 */

import type * as grpc from '@grpc/grpc-js';
import type { HealthImplementation } from 'grpc-health-check';
import { CORE_PROTO_FILES, CORE_SERVICE_NAME, CoreServiceService, PROTO_ROOT, type CoreServiceServer } from '@hypmesh/proto';
import { serveGrpc, SERVER_OPTIONS, type BugLog } from '@hypmesh/rpc';
import { checkInvariants, createStage2, DEFAULT_STAGE2_CONFIG, type Stage2, type Stage2Config } from '@hypmesh/stage2';
import { createCoreHandlers } from './handlers.js';

/** Server channel options: @hypmesh/rpc's, shared by every service (idle and aged connections closed). */
export const CORE_SERVER_OPTIONS: grpc.ServerOptions = SERVER_OPTIONS;

export interface CoreServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  readonly stage2Config?: Stage2Config;
  /** Where bugs (INTERNAL errors) are logged. */
  readonly log?: BugLog;
  /**
   * Test and chaos mode (DESIGN.md §2): run the invariant checker after every mutation that
   * succeeded and log each violation as a bug. Off by default (it walks the whole core).
   */
  readonly checkInvariants?: boolean;
}

/** RPCs that change nothing: no invariant check after them. */
const READ_ONLY_RPCS = new Set(['translate', 'readEntry', 'addressSpaceMap', 'ownershipMap', 'ownershipCounts', 'tablePageCounts', 'checkInvariants', 'rttReadEntry']);

/** Wraps every mutating handler so that a success is followed by a full invariant check. */
function checkedAfterMutations(handlers: CoreServiceServer, stage2: Stage2, log: BugLog): CoreServiceServer {
  const wrapped: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(handlers) as [string, grpc.handleUnaryCall<unknown, unknown>][]) {
    wrapped[name] = READ_ONLY_RPCS.has(name)
      ? handler
      : (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
          handler(call, (err, value) => {
            if (err === null) {
              const violations = checkInvariants(stage2);
              if (violations.length > 0) log.error({ rpc: name, violations }, 'invariant violated after a mutation');
            }
            callback(err, value);
          });
  }
  return wrapped as unknown as CoreServiceServer;
}

export interface CoreServer {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  /** The core state the service acts on (tests may inspect it). */
  readonly stage2: Stage2;
  readonly health: HealthImplementation;
  /** Health → NOT_SERVING, then a graceful shutdown, forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

const consoleLog: BugLog = { error: (obj, msg) => console.error(msg, obj) };

export async function startCoreServer(options: CoreServerOptions): Promise<CoreServer> {
  const built = createStage2(options.stage2Config ?? DEFAULT_STAGE2_CONFIG);
  if (!built.ok) throw new Error(`invalid core configuration: ${built.error.join('; ')}`);
  const stage2 = built.value;

  const log = options.log ?? consoleLog;
  const handlers = createCoreHandlers(stage2, log);
  const served = await serveGrpc({
    address: options.address,
    serviceName: CORE_SERVICE_NAME,
    protoRoot: PROTO_ROOT,
    protoFiles: CORE_PROTO_FILES,
    register: (server) =>
      server.addService(CoreServiceService, options.checkInvariants === true ? checkedAfterMutations(handlers, stage2, log) : handlers),
  });
  return { ...served, stage2 };
}
