/**
 * The RM's gRPC server: hypmesh.rm.v1.RmService (both faces) over one ResourceManager, plus
 * grpc.health.v1 and server reflection like the core (grpc-ecosystem.md §2.1).
 *
 * `startRmServer` is what main.ts runs and what tests use (address 127.0.0.1:0 picks a port). The
 * core is a CoreGrantPort: `grpcCore(address)` for a separate core process, or @hypmesh/rm's
 * `inProcessCore(stage2)` for an embedded one.
 */

import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { RM_SERVICE_NAME, RmServiceService, type RmServiceServer } from '@hypmesh/proto/rm';
import { FaultEngine } from '@hypmesh/fault';
import { delegating, frontDoorFaults, requireCaller, serveGrpc, SERVER_OPTIONS, unaryWith, type BugLog, type DependencyWatch, type RpcLog, type ServeSecurity, type ServiceMetrics } from '@hypmesh/rpc';
import { ResourceManager, resumeResets, type CoreGrantPort, type RmConfig } from '@hypmesh/rm';
import type { HealthImplementation } from 'grpc-health-check';
import type { Journal } from '@hypmesh/journal';
import { RmAdmission, rmAdmissionLimits } from './admission.js';
import { ByteFaceStats, type ByteFace } from './byte-face.js';
import { persistAdmissionTo, persistTo, restoreFrom, storedAdmission } from './durable.js';
import { createRmHandlers } from './handlers.js';
import { Notifier } from './notifier.js';

/** Server channel options: @hypmesh/rpc's, shared by every service (idle and aged connections closed). */
export const RM_SERVER_OPTIONS: grpc.ServerOptions = SERVER_OPTIONS;

export interface RmServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  /** mTLS and the authorisation table (@hypmesh/rpc serveSecurity); none: plaintext, insecure local use. */
  readonly security?: ServeSecurity | undefined;
  /** Dependencies whose reachability health reflects (main.ts: the services it reaches over gRPC). */
  readonly dependencies?: DependencyWatch;
  /** Where the RM's stage-2 effects go. */
  readonly core: CoreGrantPort;
  readonly rmConfig?: RmConfig;
  /** Where bugs (INTERNAL errors) are logged. */
  readonly log?: BugLog;
  /** Where each call is counted and timed (GET /metrics, README "Metrics"); none by default. */
  readonly metrics?: ServiceMetrics;
  /** Where each call is logged at debug level (the service's pino logger). */
  readonly rpcLog?: RpcLog;
  /**
   * The process's fault engine: CLIENT_TO_RM (typed RPCs by the front door's handler wrapper, byte-face messages by the
   * Exchange hook) and RM_NOTIFICATION; FaultService arms it. Default: an unarmed engine of its own;
   * 'off': no FaultService, nothing intercepted.
   */
  readonly faults?: FaultEngine | 'off';
  /**
   * Durable mode (`--data-dir`, durable.ts): the store the RM's state is restored from at start and
   * kept in, each call's change committed before its reply.
   */
  readonly store?: Journal;
  /** Durable mode: a commit failed (the service should exit and recover). Default: log it as a bug. */
  readonly storeFailed?: (e: Error) => void;
  /** `--quota` specs (NAME=N, CLIENT:NAME=N) over admission.ts RM_ADMISSION; a bad spec throws. */
  readonly quota?: readonly string[];
}

export interface RmServer {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  /** The RM state both faces act on now (tests may inspect it); Reset replaces it. */
  readonly rm: ResourceManager;
  readonly stats: ByteFaceStats;
  /** What each client holds under the RM's quotas now; Reset replaces it. */
  readonly admission: RmAdmission;
  readonly health: HealthImplementation;
  /** Durable mode: whether the RM's state came from the data dir. */
  readonly restored: boolean;
  /** Health → NOT_SERVING, open streams ended, then a graceful shutdown forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

const consoleLog: BugLog = { error: (obj, msg) => console.error(msg, obj) };

/** How often open intents (core calls of unknown outcome) are settled again. */
export const INTENT_SETTLE_EVERY_MS = 1_000;

/** HLOS, the only caller that may Reset the RM (rm_service.proto). */
const VMID_HLOS = 3;

export async function startRmServer(options: RmServerOptions): Promise<RmServer> {
  const log = options.log ?? consoleLog;
  const unary = unaryWith(log);
  const engine = options.faults === 'off' ? undefined : (options.faults ?? new FaultEngine({ nowMs: Date.now }));
  const store = options.store;
  const storeFailed = options.storeFailed ?? ((e: Error) => log.error({ err: e }, 'bug: RM state commit failed'));
  const persist = store && persistTo(store, storeFailed);
  const persistAdmission = store && persistAdmissionTo(store, storeFailed);
  const limits = rmAdmissionLimits(options.quota);
  const boot = (): ByteFace => {
    const rm = options.rmConfig ? new ResourceManager(options.core, options.rmConfig) : new ResourceManager(options.core);
    rm.persist = persist;
    // Request ids of core calls must not repeat across RMs (the core remembers them): a data dir
    // keeps its RM's prefix (restoreFrom), a fresh RM or a Reset draws a new one.
    rm.intentPrefix = `rm-${randomUUID()}`;
    const faults = engine === undefined ? undefined : { engine };
    const admission = new RmAdmission(limits, rm, persistAdmission);
    return { rm, admission, notifier: new Notifier(rm, faults), stats: new ByteFaceStats(), log, open: new Set(), ...(faults && { faults }) };
  };
  let face = boot();
  const restored = store !== undefined && restoreFrom(store, face.rm);
  const held = store && storedAdmission(store);
  if (restored && held !== undefined) face.admission.restore(held);
  // A restarted RM first settles the core calls it was making when it stopped, then finishes its
  // resets (@hypmesh/rm intents.ts, DESIGN.md §8); both run before any call, on the RM's queue.
  if (restored) {
    void face.rm.settleIntents();
    resumeResets(face.rm);
  }
  // Intents whose outcome stayed unknown (the core unreachable or late) are settled again in the
  // background until the core answers: a grant made for nobody is destroyed, a zombie parcel goes.
  let settling = false;
  const settler = setInterval(() => {
    const rm = face.rm;
    if (settling || rm.intents.size === 0) return;
    settling = true;
    const open = [...rm.intents.values()].map((i) => `${i.id} ${i.op.method}`);
    void rm
      .settleIntents()
      .then((left) => left < open.length && log.info?.({ settled: open.length - left, open: left, intents: open }, 'core calls of unknown outcome settled'))
      .finally(() => (settling = false));
  }, INTENT_SETTLE_EVERY_MS);
  settler.unref();

  // Reset (rm_service.proto): a fresh RM as at boot; the old one's streams end, nothing reaches the
  // core. In durable mode the fresh state is committed before the reply.
  const reset: RmServiceServer['reset'] = unary(async (_req, call) => {
    requireCaller(call, [VMID_HLOS], 'Reset');
    const old = face;
    old.rm.persist = undefined; // its calls still running must not overwrite the fresh state
    const fresh = boot();
    const value = { vmsDropped: Math.max(0, old.rm.vms.size - fresh.rm.vms.size), parcelsDropped: old.rm.parcels.size };
    face = fresh;
    handlers = createRmHandlers(face, log, reset);
    for (const s of [...old.open]) s.end();
    await persist?.(fresh.rm);
    await persistAdmission?.(fresh.admission.snapshot());
    return { ok: true, value };
  });
  let handlers = createRmHandlers(face, log, reset);
  const service = delegating(Object.keys(handlers) as (keyof RmServiceServer & string)[], () => handlers);

  const served = await serveGrpc({
    address: options.address,
    serviceName: RM_SERVICE_NAME,
    ...(options.metrics && { metrics: options.metrics }),
    ...(options.rpcLog && { rpcLog: options.rpcLog }),
    ...(options.dependencies && { dependencies: options.dependencies }),
    register: (server) => server.addService(RmServiceService, service),
    ...frontDoorFaults(engine ?? 'off', 'CLIENT_TO_RM'),
    ...options.security,
    drain: () => {
      for (const s of [...face.open]) s.end();
    },
  });
  return {
    ...served,
    restored,
    shutdown: async (graceMs?: number) => {
      clearInterval(settler);
      await served.shutdown(graceMs);
      store?.close();
    },
    get rm() {
      return face.rm;
    },
    get stats() {
      return face.stats;
    },
    get admission() {
      return face.admission;
    },
  };
}

export { CORE_CALL_TIMEOUT_MS, grpcCore, type GrpcCorePort } from './core-client.js';
export { durableRmOptions } from './durable.js';
export { rmGauges } from './metrics.js';
