/**
 * The core's gRPC server: hypmesh.core.v1.CoreService over one @hypmesh/stage2 core, plus the
 * standard day-2 services (grpc.health.v1 and server reflection, grpc-ecosystem.md §2.1), so
 * grpcurl, grpcui and grpc_health_probe work without the .proto files.
 *
 * `startCoreServer` is what main.ts runs and what tests use (address 127.0.0.1:0 picks a port).
 */

import type * as grpc from '@grpc/grpc-js';
import type { HealthImplementation } from 'grpc-health-check';
import { CORE_SERVICE_NAME, CoreServiceService, type CoreServiceServer } from '@hypmesh/proto';
import type { FaultEngine } from '@hypmesh/fault';
import { CALLER_VMID_KEY, delegating, frontDoorFaults, keyReused, principalOf, requestIdOf, RequestKeys, requireCaller, serveGrpc, SERVER_OPTIONS, unaryWith, type BugLog, type Principal, type RpcLog, type ServeSecurity, type ServiceMetrics } from '@hypmesh/rpc';
import { VMID_HOST, checkInvariants, createStage2, DEFAULT_STAGE2_CONFIG, type Stage2, type Stage2Config } from '@hypmesh/stage2';
import type { Journal } from '@hypmesh/journal';
import { CoreAdmission } from './admission.js';
import { memoryMapIn, memoryMapOut } from './codec.js';
import { journalStep, randomBootGeneration, recoveryBase, replayJournal, type ReplyStep } from './durable.js';
import { createCoreHandlers } from './handlers.js';
import { digestOf, type CoreKeys } from './keys.js';

/** Server channel options: @hypmesh/rpc's, shared by every service (idle and aged connections closed). */
export const CORE_SERVER_OPTIONS: grpc.ServerOptions = SERVER_OPTIONS;

export interface CoreServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  /** mTLS and the authorisation table (@hypmesh/rpc serveSecurity); none: plaintext, insecure local use. */
  readonly security?: ServeSecurity | undefined;
  readonly stage2Config?: Stage2Config;
  /** Where bugs (INTERNAL errors) are logged. */
  readonly log?: BugLog;
  /** Where each call is counted and timed (GET /metrics, README "Metrics"); none by default. */
  readonly metrics?: ServiceMetrics;
  /** Where each call is logged at debug level (the service's pino logger). */
  readonly rpcLog?: RpcLog;
  /**
   * Test and chaos mode (DESIGN.md §2): run the invariant checker after every mutation that
   * succeeded and log each violation as a bug. Off by default (it walks the whole core).
   */
  readonly checkInvariants?: boolean;
  /**
   * The process's fault engine (@hypmesh/rpc processFaultEngine), applied at CLIENT_TO_CORE and
   * controlled over FaultService. Default: an unarmed engine of its own, so FaultService is always
   * there to arm; 'off' serves no FaultService and intercepts nothing (the benchmark's baseline).
   */
  readonly faults?: FaultEngine | 'off';
  /**
   * Durable mode (`--data-dir`): the journal from openCoreJournal (durable.ts), replayed before
   * serving; `stage2Config` must then be the configuration openCoreJournal gave.
   */
  readonly journal?: Journal;
  /** Durable mode: a journal commit failed (the service should exit and recover). Default: log it. */
  readonly journalFailed?: (e: Error) => void;
  /** Durable mode: records between core images (durable.ts; 0: never). Default SNAPSHOT_EVERY_DEFAULT. */
  readonly snapshotEvery?: number;
  /** Request ids remembered (keys.ts); default REQUEST_KEYS_MAX. */
  readonly requestKeys?: number;
  /** Admission control (admission.ts): the --quota specs over the defaults. Default: the defaults. */
  readonly quotas?: readonly string[];
}

/** RPCs that change nothing: no invariant check after them, nothing journaled. */
const READ_ONLY_RPCS = new Set(['translate', 'readEntry', 'addressSpaceMap', 'ownershipMap', 'ownershipCounts', 'tablePageCounts', 'listAddressSpaces', 'listGrants', 'listRealms', 'checkInvariants', 'rttReadEntry', 'getMemoryMap', 'reset']);

type Reply = grpc.sendUnaryData<unknown>;

/**
 * Wraps every handler with what must happen around it. Before a mutation: its request id, if it has
 * one (keys.ts): a repeat of a remembered (caller, key) is answered with the first outcome and not
 * applied again, a key reused for another call is refused, a new one's outcome is remembered. After
 * the result and before the reply: in test mode a full invariant check after each mutation that
 * succeeded; in durable mode the journal's step (durable.ts), which may hold the reply until a
 * commit (a repeat's reply too: the first call's record may still be pending).
 */
function aroundHandlers(handlers: CoreServiceServer, stage2: Stage2, log: BugLog, checkInvariantsToo: boolean, journal: ReplyStep | undefined, keys: CoreKeys, admission: CoreAdmission): CoreServiceServer {
  const wrapped: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(handlers) as [string, grpc.handleUnaryCall<unknown, unknown>][]) {
    const mutating = !READ_ONLY_RPCS.has(name);
    if (!mutating && journal === undefined) {
      wrapped[name] = handler;
      continue;
    }
    const afterResult = (call: grpc.ServerUnaryCall<unknown, unknown>, err: grpc.ServerErrorResponse | null, value: unknown, callback: Reply): void => {
      if (err === null && mutating && checkInvariantsToo) {
        const violations = checkInvariants(stage2);
        if (violations.length > 0) log.error({ rpc: name, violations }, 'invariant violated after a mutation');
      }
      if (journal === undefined) return callback(err, value);
      journal(name, mutating, call, err, (instead) => (instead === undefined ? callback(err, value) : callback(instead)));
    };
    const governed = admission.governs(name);
    // Admission (admission.ts) before the domain: a refusal changes nothing and is not remembered
    // under the request id (a retry may be admitted once the principal holds less).
    const admitted = (call: grpc.ServerUnaryCall<unknown, unknown>, who: Principal | undefined, callback: Reply, then: (err: grpc.ServerErrorResponse | null, value: unknown) => void): void => {
      const refused = who && admission.refusal(name, who, call.request, stage2);
      if (refused !== undefined) return afterResult(call, refused as grpc.ServerErrorResponse, undefined, callback);
      handler(call, (err, value) => {
        if (err === null && who !== undefined) admission.applied(name, who, call.request, value, stage2);
        then(err as grpc.ServerErrorResponse | null, value);
      });
    };
    wrapped[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: Reply) => {
      let key: string | undefined;
      let who: Principal | undefined;
      try {
        key = mutating ? requestIdOf(call.metadata) : undefined;
        who = governed ? principalOf(call) : undefined;
      } catch (e) {
        return callback(e as grpc.ServiceError);
      }
      if (key === undefined) return admitted(call, who, callback, (err, value) => afterResult(call, err, value, callback));
      const caller = String(call.metadata.get(CALLER_VMID_KEY)[0]);
      const digest = digestOf(name, call.request);
      const seen = keys.lookup(caller, key, name, digest);
      if (seen.kind === 'reused') return callback(keyReused(key, name, seen.rpc) as grpc.ServiceError);
      if (seen.kind === 'repeat') {
        const first = seen.outcome;
        const answer = (): void => (first.ok ? callback(null, first.value) : callback(first.error));
        return journal === undefined ? answer() : journal(name, false, call, null, (instead) => (instead === undefined ? answer() : callback(instead)));
      }
      admitted(call, who, callback, (err, value) => {
        keys.remember({ caller, key, rpc: name, digest, outcome: err === null ? { ok: true, value } : { ok: false, error: err as grpc.ServiceError } });
        afterResult(call, err, value, callback);
      });
    };
  }
  return wrapped as unknown as CoreServiceServer;
}

export interface CoreServer {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  /** The core state the service acts on now (tests may inspect it); Reset replaces it. */
  readonly stage2: Stage2;
  readonly health: HealthImplementation;
  /** Admission control (admission.ts): its limits and what each principal holds (tests read it). */
  readonly admission: CoreAdmission;
  /** Durable mode: whether recovery started from a core image, the records replayed after it, and how long it took. */
  readonly recovered?: { readonly fromImage: boolean; readonly records: number; readonly ms: number };
  /** Health → NOT_SERVING, then a graceful shutdown, forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

const consoleLog: BugLog = { error: (obj, msg) => console.error(msg, obj) };

function built(config: Stage2Config): Stage2 {
  const b = createStage2(config);
  if (!b.ok) throw new Error(`invalid core configuration: ${b.error.join('; ')}`);
  return b.value;
}

export async function startCoreServer(options: CoreServerOptions): Promise<CoreServer> {
  const log = options.log ?? consoleLog;
  const unary = unaryWith(log);
  const journal = options.journal;
  const keys: CoreKeys = new RequestKeys(options.requestKeys);
  const admission = new CoreAdmission(options.quotas);
  const step = journal && journalStep(journal, () => current.stage2, keys, options.journalFailed ?? ((e) => log.error({ err: e }, 'bug: journal commit failed')), log, options.snapshotEvery, admission);
  const handlersOf = (stage2: Stage2): CoreServiceServer => aroundHandlers(createCoreHandlers(stage2, log, reset), stage2, log, options.checkInvariants === true, step, keys, admission);
  const started = performance.now();
  // A core that starts empty gets a fresh boot generation unless told (durable.ts randomBootGeneration).
  const boot = (): Stage2 => built({ bootGeneration: randomBootGeneration(), ...(options.stage2Config ?? DEFAULT_STAGE2_CONFIG) });
  const base = options.journal === undefined ? { stage2: boot(), fromImage: false } : recoveryBase(options.journal, boot, keys, admission);
  let current = { stage2: base.stage2 };

  // Reset (core_service.proto): a new core on the given map or the current one, as a reboot would
  // build it; the map is validated first, so a refused Reset changes nothing.
  const reset: CoreServiceServer['reset'] = unary((req, call) => {
    requireCaller(call, [VMID_HOST], 'Reset');
    const memory = req.memoryMap === undefined ? current.stage2.config.memory : memoryMapIn(req.memoryMap, 'memory_map');
    current = { stage2: built({ ...current.stage2.config, memory, bootGeneration: randomBootGeneration() }) };
    // A reboot: the new core remembers no key (keys.ts) and holds nothing for anyone (admission.ts).
    keys.clear();
    admission.clear();
    handlers = handlersOf(current.stage2);
    return { ok: true, value: { memoryMap: memoryMapOut(memory) } };
  });
  let recovered: CoreServer['recovered'];
  if (journal !== undefined) {
    const replayed = replayJournal(journal, createCoreHandlers(current.stage2, log, reset), keys, (rpc, who, req, value) => admission.applied(rpc, who, req, value, current.stage2));
    if (!replayed.ok) throw new Error(`cannot recover from ${journal.path}: ${replayed.error}`);
    recovered = { fromImage: base.fromImage, records: replayed.value, ms: performance.now() - started };
    const violations = checkInvariants(current.stage2);
    if (violations.length > 0) log.error({ violations }, 'bug: invariant violated after the journal replay');
  }
  let handlers = handlersOf(current.stage2);
  const service = delegating(Object.keys(handlers) as (keyof CoreServiceServer & string)[], () => handlers);
  const served = await serveGrpc({
    address: options.address,
    serviceName: CORE_SERVICE_NAME,
    ...(options.metrics && { metrics: options.metrics }),
    ...(options.rpcLog && { rpcLog: options.rpcLog }),
    register: (server) => server.addService(CoreServiceService, service),
    ...frontDoorFaults(options.faults, 'CLIENT_TO_CORE'),
    ...options.security,
  });
  const shutdown = async (graceMs?: number): Promise<void> => {
    await served.shutdown(graceMs);
    journal?.close();
  };
  return {
    ...served,
    shutdown,
    admission,
    ...(recovered && { recovered }),
    get stage2() {
      return current.stage2;
    },
  };
}
export { memoryFromOptions, type MemoryOptions } from './memory-options.js';
export { admissionHelp, CORE_ADMISSION, CoreAdmission, quotaSpecs } from './admission.js';
export { durableCoreOptions, openCoreJournal, SNAPSHOT_EVERY_DEFAULT } from './durable.js';
export { coreGauges } from './metrics.js';
