/**
 * The VM manager's gRPC server: hypmesh.vmm.v1.VmmService over one @hypmesh/vmm VmManager, plus
 * grpc.health.v1 and server reflection like the core and the RM (@hypmesh/rpc serveGrpc).
 *
 * `startVmmServer` is what main.ts and the suite run and what tests use (address 127.0.0.1:0 picks
 * a port). The RM is an RmPort: `grpcRm(address)` (HLOS's msgq over RmService.Exchange; the VMM
 * must be HLOS's only RM subscriber, see rm-client.ts) or @hypmesh/vmm's `inProcessRm`; the core
 * is a CorePort: `grpcCorePort(address)` or `inProcessCorePort(stage2)`.
 *
 * Shutdown is the process closing every /dev/gunyah fd: each open session stream ends and every
 * live lease ends, so every VM is torn down (gh_vm_release), and the server waits for those
 * teardowns within the grace period.
 */

import { randomBytes } from 'node:crypto';
import type { HealthImplementation } from 'grpc-health-check';
import type * as grpc from '@grpc/grpc-js';
import { PROTO_ROOT } from '@hypmesh/proto';
import { VMM_PROTO_FILES, VMM_SERVICE_NAME, VmmServiceService } from '@hypmesh/proto/vmm';
import { serveGrpc, type BugLog } from '@hypmesh/rpc';
import { DEFAULT_VMM_CONFIG, VmManager, type CorePort, type RmPort, type VmmClock, type VmmConfig } from '@hypmesh/vmm';
import { systemClock } from './clock.js';
import { createVmmHandlers, type OpenStreams } from './handlers.js';

export interface VmmServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  readonly rm: RmPort;
  readonly core: CorePort;
  readonly vmmConfig?: Partial<VmmConfig>;
  /** Time for RM waits and lease expiry (default: the process's timers; tests pass a ManualClock). */
  readonly clock?: VmmClock;
  /** Where bugs (INTERNAL errors) are logged. */
  readonly log?: BugLog;
}

export interface VmmServer {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  /** The VM manager the service acts on (tests may inspect it). */
  readonly vmm: VmManager;
  readonly health: HealthImplementation;
  /** Health → NOT_SERVING, every session ended and its VMs torn down, then a graceful shutdown forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

const consoleLog: BugLog = { error: (obj, msg) => console.error(msg, obj) };

export async function startVmmServer(options: VmmServerOptions): Promise<VmmServer> {
  const log = options.log ?? consoleLog;
  // A random id prefix per boot: a session id kept from an earlier VMM process names nothing here.
  const sessionIdPrefix = `${randomBytes(4).toString('hex')}-`;
  const vmm = new VmManager(options.rm, options.core, { ...DEFAULT_VMM_CONFIG, sessionIdPrefix, ...options.vmmConfig }, options.clock ?? systemClock);
  const open: OpenStreams = new Set();
  const served = await serveGrpc({
    address: options.address,
    serviceName: VMM_SERVICE_NAME,
    protoRoot: PROTO_ROOT,
    protoFiles: VMM_PROTO_FILES,
    register: (server) => server.addService(VmmServiceService, createVmmHandlers(vmm, open, log)),
    drain: async () => {
      for (const s of [...open]) s.end();
      vmm.endLeases();
      await vmm.idle();
      vmm.close();
    },
  });
  return { ...served, vmm };
}

export { grpcRm, type GrpcRmPort } from './rm-client.js';
export { grpcCorePort, type GrpcCorePort } from './core-client.js';
