/**
 * The VM manager's gRPC server: hypmesh.vmm.v1.VmmService over one @hypmesh/vmm VmManager, plus
 * grpc.health.v1 and server reflection like the core and the RM (@hypmesh/rpc serveGrpc).
 *
 * `startVmmServer` is what main.ts and the suite run and what tests use (address 127.0.0.1:0 picks
 * a port). The RM is an RmPort: `grpcRm(address)` (HLOS's msgq over RmService.Exchange, which
 * drains HLOS's notification queue, see rm-client.ts) or @hypmesh/vmm's `inProcessRm`; the core
 * is a CorePort: `grpcCorePort(address)` or `inProcessCorePort(stage2)`.
 *
 * Shutdown is the process closing every /dev/gunyah fd: each open session stream ends and every
 * live lease ends, so every VM is torn down (gh_vm_release), and the server waits for those
 * teardowns within the grace period. With a data dir (`store`, durable.ts) the leases and their VMs
 * are kept for the next process instead; the stream sessions still end.
 */

import { randomBytes } from 'node:crypto';
import type { HealthImplementation } from 'grpc-health-check';
import type * as grpc from '@grpc/grpc-js';
import { VMM_SERVICE_NAME, VmmServiceService, type VmmServiceServer } from '@hypmesh/proto/vmm';
import type { FaultEngine } from '@hypmesh/fault';
import { delegating, frontDoorFaults, serveGrpc, unaryWith, type BugLog, type DependencyWatch, type RpcLog, type ServeSecurity, type ServiceMetrics } from '@hypmesh/rpc';
import { DEFAULT_VMM_CONFIG, VmManager, donationRegionFrom, donationRegionProblem, type CorePort, type FrameRun, type HoldingsPort, type RmPort, type SweepOutcome, type VmmClock, type VmmConfig, type VmmDurableState } from '@hypmesh/vmm';
import { VmmAdmission, vmmAdmissionLimits } from './admission.js';
import { systemClock } from './clock.js';
import { repliesAfterCommit, type VmmStore } from './durable.js';
import { createVmmHandlers, type OpenStreams } from './handlers.js';
import { guardSessions } from './session-guard.js';

export interface VmmServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  readonly address: string;
  /** mTLS and the authorisation table (@hypmesh/rpc serveSecurity); none: plaintext, insecure local use. */
  readonly security?: ServeSecurity | undefined;
  /** Dependencies whose reachability health reflects (main.ts: the services it reaches over gRPC). */
  readonly dependencies?: DependencyWatch;
  readonly rm: RmPort;
  readonly core: CorePort;
  readonly vmmConfig?: Partial<VmmConfig>;
  /** Time for RM waits and lease expiry (default: the process's timers; tests pass a ManualClock). */
  readonly clock?: VmmClock;
  /** Where bugs (INTERNAL errors) are logged. */
  readonly log?: BugLog;
  /** Where each call is counted and timed (GET /metrics, README "Metrics"); none by default. */
  readonly metrics?: ServiceMetrics;
  /** Where each call is logged at debug level (the service's pino logger). */
  readonly rpcLog?: RpcLog;
  /**
   * The process's fault engine at CLIENT_TO_VMM (FaultService arms it; the outbound boundaries are
   * the ports', grpcRm and grpcCorePort). Default: an unarmed engine of its own; 'off': none.
   */
  readonly faults?: FaultEngine | 'off';
  /**
   * What HLOS holds in the RM and the core (holdings-client.ts). Given, the VMM takes back what an
   * earlier process left before it serves (@hypmesh/vmm restart-sweep.ts); the service's main
   * always gives it, tests that start from a clean RM and core need not.
   */
  readonly holdings?: HoldingsPort;
  /** `--quota` specs (NAME=N, CLIENT:NAME=N) over admission.ts VMM_ADMISSION; a bad spec throws. */
  readonly quota?: readonly string[];
  /**
   * Durable state (`--data-dir`, durable.ts): the leases and VM records are saved before each reply
   * and re-adopted at start (with `holdings`); on shutdown the leases and their VMs are kept for the
   * next process instead of torn down (stream sessions still end: their streams do).
   */
  readonly store?: VmmStore;
}

export interface VmmServer {
  readonly server: grpc.Server;
  /** The port actually bound. */
  readonly port: number;
  /** The VM manager the service acts on now (tests may inspect it); Reset replaces it. */
  readonly vmm: VmManager;
  /** What each client holds under the VMM's quotas now; Reset replaces it. */
  readonly admission: VmmAdmission;
  readonly health: HealthImplementation;
  /** The restart sweep (with `holdings`): the VMIDs and realms it took over, and its report once every teardown ended. */
  readonly sweep: SweepOutcome | undefined;
  /** Health → NOT_SERVING, every session ended and its VMs torn down, then a graceful shutdown forced after `graceMs`. */
  shutdown(graceMs?: number): Promise<void>;
}

const consoleLog: BugLog = { error: (obj, msg) => console.error(msg, obj) };

/** Attempts, 250 ms apart, to read the core's memory map and HLOS's holdings at start (the core or the RM may still be starting). */
const START_READ_ATTEMPTS_MAX = 40;

/**
 * The donation region (VmmConfig.donationRegion): the configured one, checked against the core's
 * map, else derived from it (host-pages.ts). Throws when the core never answers or the configured
 * region is not the host's RAM: the VMM cannot place a single table page without it.
 */
async function donationRegion(core: CorePort, configured: FrameRun | undefined): Promise<FrameRun> {
  let why = '';
  for (let i = 0; i < START_READ_ATTEMPTS_MAX; i++) {
    const m = await core.memoryMap();
    if (m.ok) {
      if (configured !== undefined) {
        const problem = donationRegionProblem(m.value, configured);
        if (problem !== undefined) throw new Error(`the configured donation region cannot be used: ${problem}`);
        return configured;
      }
      const region = donationRegionFrom(m.value);
      if (region === undefined) throw new Error('the core reports no RAM left for a donation region');
      return region;
    }
    why = `${m.error.errno} ${m.error.rule}: ${m.error.message}`;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the core's memory map could not be read: ${why}`);
}

/** The restart sweep, retried while the RM or the core cannot be asked yet; a start failure after that. */
async function sweepAtStart(vmm: VmManager, holdings: HoldingsPort, saved: VmmDurableState | undefined): Promise<VmmServer['sweep']> {
  let why = '';
  for (let i = 0; i < START_READ_ATTEMPTS_MAX; i++) {
    const r = await vmm.sweepOrphans(holdings, saved && { state: saved, wallMs: Date.now() });
    if (r.ok) return r.value;
    why = r.error.message;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`what HLOS holds could not be read, so an earlier VMM's VMs cannot be taken back: ${why}`);
}

export async function startVmmServer(options: VmmServerOptions): Promise<VmmServer> {
  const log = options.log ?? consoleLog;
  const unary = unaryWith(log);
  const open: OpenStreams = new Set();
  const store = options.store;
  const build = async (): Promise<VmManager> => {
    // A random id prefix per boot: a session id kept from an earlier VMM process (or from before a
    // Reset) names nothing here.
    const sessionIdPrefix = `${randomBytes(4).toString('hex')}-`;
    const region = await donationRegion(options.core, options.vmmConfig?.donationRegion);
    // Session and lease ids are bearer handles: 128 random bits each (issue 11 item 5).
    const sessionIdSecret = (): string => randomBytes(16).toString('hex');
    const made = new VmManager(options.rm, options.core, { ...DEFAULT_VMM_CONFIG, sessionIdPrefix, sessionIdSecret, handlesPerSession: true, ...options.vmmConfig, donationRegion: region }, options.clock ?? systemClock, options.holdings);
    // Background changes (teardown steps, RM status, leases ending) are saved as they happen.
    if (store !== undefined) made.watch(() => store.save());
    return made;
  };
  const limits = vmmAdmissionLimits(options.quota);
  const admit = (m: VmManager): VmmAdmission => new VmmAdmission(limits, { hasSession: (id) => m.hasSession(id), hasVm: (vm) => m.view(vm.handle, vm.session) !== undefined });
  let vmm = await build();
  let admission = admit(vmm);
  store?.bind(() => vmm);
  const sweep = options.holdings === undefined ? undefined : await sweepAtStart(vmm, options.holdings, store?.load());
  store?.save();

  // Reset (vmm_service.proto): drop everything without teardown calls, then a fresh manager.
  const reset: VmmServiceServer['reset'] = unary(async () => {
    const dropped = vmm.counts();
    const next = await build();
    vmm.abandon();
    vmm = next;
    admission = admit(vmm);
    handlers = createVmmHandlers(vmm, open, log, reset, admission);
    for (const s of [...open]) s.end();
    return { ok: true, value: { vmsDropped: dropped.vms, sessionsDropped: dropped.sessions } };
  });
  let handlers = createVmmHandlers(vmm, open, log, reset, admission);
  // Sessions are bound to their opener (session-guard.ts): another principal naming one is answered NOT_FOUND.
  const delegated = guardSessions(VmmServiceService, delegating(Object.keys(handlers) as (keyof VmmServiceServer & string)[], () => handlers) as unknown as grpc.UntypedServiceImplementation, () => vmm) as unknown as VmmServiceServer;
  const service = store === undefined ? delegated : repliesAfterCommit(delegated, ['openSession', 'watchVm'], store);
  const served = await serveGrpc({
    address: options.address,
    serviceName: VMM_SERVICE_NAME,
    ...(options.metrics && { metrics: options.metrics }),
    ...(options.rpcLog && { rpcLog: options.rpcLog }),
    ...(options.dependencies && { dependencies: options.dependencies }),
    register: (server) => server.addService(VmmServiceService, service),
    ...frontDoorFaults(options.faults, 'CLIENT_TO_VMM'),
    ...options.security,
    drain: async () => {
      for (const s of [...open]) s.end();
      if (store === undefined) vmm.endLeases();
      await vmm.idle();
      if (store === undefined) return vmm.close();
      // Durable: the leases and their VMs outlive this process (the next one re-adopts them).
      store.close();
      vmm.detach();
    },
  });
  return {
    ...served,
    sweep,
    get vmm() {
      return vmm;
    },
    get admission() {
      return admission;
    },
  };
}

export { RM_CALL_TIMEOUT_MS, grpcRm, type GrpcRmPort } from './rm-client.js';
export { CORE_CALL_TIMEOUT_MS, grpcCorePort, type GrpcCorePort } from './core-client.js';
export { vmmGauges } from './metrics.js';
