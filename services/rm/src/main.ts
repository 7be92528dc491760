#!/usr/bin/env node
/**
 * hypmesh RM service: reads config (flags, then env, then defaults), connects to the core (or runs
 * one in-process with `--core embedded`), serves RmService + FaultService + health + reflection
 * (faults from --faults/--fault-seed, at CLIENT_TO_RM, RM_TO_CORE and RM_NOTIFICATION), and shuts down
 * gracefully on SIGTERM/SIGINT.
 */

import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { inProcessCore, type CoreGrantPort } from '@hypmesh/rm';
import { clientCredentials, DEPENDENCY_GRACE_MS_DEFAULT, enableOtlpTracing, flushTracing, orRefuseStartup, processFaultEngine, ProcessMetrics, serveMetrics, serveSecurity, serviceTls, timeoutMsParser, TLS_OPTIONS, type TlsFlagValues } from '@hypmesh/rpc';
import { rmGauges } from './metrics.js';
import { RM_ADMISSION, rmAdmissionLimits } from './admission.js';
import { createStage2, DEFAULT_STAGE2_CONFIG, parseMemorySpec } from '@hypmesh/stage2';
import { CORE_CALL_TIMEOUT_MS, grpcCore } from './core-client.js';
import { durableRmOptions, startRmServer } from './server.js';

const SHUTDOWN_GRACE_MS = 5_000;

const opts = new Command('hypmesh-rm')
  .description('The hypmesh resource manager: Gunyah RM VMIDs, VM life cycle, memory parcels and notifications over gRPC (typed and byte-exact msgq faces).')
  .addOption(new Option('--address <host:port>', 'listen address').env('HYPMESH_RM_LISTEN').default('127.0.0.1:50052'))
  .addOption(new Option('--core <host:port|embedded>', "the core's address, or `embedded` for an in-process core with default memory").env('HYPMESH_CORE_ADDR').default('127.0.0.1:50051'))
  .addOption(new Option('--core-timeout-ms <ms>', 'deadline of one core call').env('HYPMESH_CORE_TIMEOUT_MS').argParser(timeoutMsParser(InvalidArgumentError)).default(CORE_CALL_TIMEOUT_MS))
  .addOption(new Option('--dependency-grace-ms <ms>', 'health is NOT_SERVING once the core has been unreachable this long').env('HYPMESH_DEPENDENCY_GRACE_MS').argParser(timeoutMsParser(InvalidArgumentError)).default(DEPENDENCY_GRACE_MS_DEFAULT))
  .addOption(new Option('--memory <map>', 'with --core embedded: its memory map (ram@0x80000000:16G,mmio@0x10000000:256M[,pa=40])').env('HYPMESH_MEMORY'))
  .addOption(new Option('--faults <plan.json>', 'fault plan to arm at startup (hypmesh.fault.v1 JSON; README "Fault injection")').env('HYPMESH_FAULTS'))
  .addOption(new Option('--fault-seed <n>', "the fault plan's PRNG seed, u32 (decimal or 0x-hex; default 0): the same plan and seed inject the same faults").env('HYPMESH_FAULT_SEED'))
  .addOption(new Option('--data-dir <dir>', "durable state: keep the RM's state here (rm.sqlite) and restore it at start (default: in memory only)").env('HYPMESH_DATA_DIR'))
  .addOption(new Option('--data-sync <mode>', 'normal: survives kill -9; full: also survives power loss (an fsync per group commit)').env('HYPMESH_DATA_SYNC').choices(['normal', 'full']).default('normal'))
  .addOption(
    new Option('--quota <specs>', `admission quotas, comma-separated or repeated: NAME=N for every client, CLIENT:NAME=N for one (N a count or "unlimited"); rules: ${Object.keys(RM_ADMISSION).join(', ')} (README "Admission control")`)
      .env('HYPMESH_RM_QUOTA')
      .argParser((v: string, prev: string[] = []) => [...prev, ...v.split(',').map((x) => x.trim()).filter((x) => x !== '')]),
  )
  .addOption(new Option('--metrics-address <host:port>', 'serve Prometheus metrics on GET /metrics here (README "Metrics"); default: none').env('HYPMESH_RM_METRICS'))
  .addOption(new Option(TLS_OPTIONS.cert.flags, TLS_OPTIONS.cert.help).env(TLS_OPTIONS.cert.env))
  .addOption(new Option(TLS_OPTIONS.key.flags, TLS_OPTIONS.key.help).env(TLS_OPTIONS.key.env))
  .addOption(new Option(TLS_OPTIONS.ca.flags, TLS_OPTIONS.ca.help).env(TLS_OPTIONS.ca.env))
  .addOption(new Option(TLS_OPTIONS.clientCert.flags, TLS_OPTIONS.clientCert.help).env(TLS_OPTIONS.clientCert.env))
  .addOption(new Option(TLS_OPTIONS.clientKey.flags, TLS_OPTIONS.clientKey.help).env(TLS_OPTIONS.clientKey.env))
  .addOption(new Option('--otlp-endpoint <url>', 'export trace spans to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (README "Tracing"); default: tracing off').env('HYPMESH_OTLP_ENDPOINT'))
  .addOption(new Option('--log-level <level>', 'pino log level').env('HYPMESH_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
  .parse()
  .opts<TlsFlagValues & { otlpEndpoint?: string; metricsAddress?: string; address: string; core: string; coreTimeoutMs: number; dependencyGraceMs: number; memory?: string; logLevel: string; faults?: string; faultSeed?: string; dataDir?: string; dataSync: 'normal' | 'full'; quota?: string[] }>();

const log = pino({ name: 'hypmesh-rm', level: opts.logLevel });
/** Tracing before any server or client is made (their interceptors are installed only when on); a bad URL refuses startup. */
orRefuseStartup(log, undefined, () => {
  if (opts.otlpEndpoint !== undefined && opts.otlpEndpoint !== '') enableOtlpTracing(opts.otlpEndpoint, 'hypmesh-rm', log);
});
/** Faults: a bad plan or seed refuses startup with every problem named (issue 8 §2). */
const faults = processFaultEngine(opts);
if (!faults.ok) {
  log.fatal({ problems: faults.error.split('\n') }, `invalid fault configuration:\n${faults.error}`);
  process.exit(2);
}
const engine = faults.value.engine;
/** mTLS (README "Security"): a partial or unreadable set refuses startup, naming the flag and file. */
const tls = orRefuseStartup(log, 'invalid TLS configuration', () => serviceTls(opts));
/** The RM's own calls (to the core, its health probes) present its client identity (rm-client: VMID 0xff, client rm). */
const credentials = tls === undefined ? undefined : clientCredentials(tls.client);

/** Quotas: a bad --quota spec refuses startup, naming it. */
orRefuseStartup(log, undefined, () => rmAdmissionLimits(opts.quota));

function core(): { port: CoreGrantPort; close(): void } {
  if (opts.core !== 'embedded') {
    const port = grpcCore(opts.core, opts.coreTimeoutMs, engine, credentials);
    return { port, close: () => port.close() };
  }
  const memory = opts.memory === undefined ? undefined : parseMemorySpec(opts.memory);
  if (memory !== undefined && !memory.ok) throw new Error(`invalid --memory: ${memory.error.join('; ')}`);
  const built = createStage2(memory === undefined ? DEFAULT_STAGE2_CONFIG : { memory: memory.value });
  if (!built.ok) throw new Error(`invalid core configuration: ${built.error.join('; ')}`);
  return { port: inProcessCore(built.value), close: () => {} };
}

/** Durable mode: a data dir of another configuration is refused before anything is served. */
if (opts.dataDir !== undefined && opts.dataDir !== '' && opts.core === 'embedded') {
  // A restored RM over a freshly booted core would name grants and spaces the core never had.
  log.fatal('--data-dir needs a separate core (--core host:port): the embedded core is in memory only');
  process.exit(2);
}
const durable = durableRmOptions(opts.dataDir, undefined, opts.dataSync, log);
if (!durable.ok) {
  log.fatal(durable.error);
  process.exit(2);
}

try {
  const c = core();
  const dependencies = opts.core === 'embedded' ? undefined : { dependencies: [{ name: 'core' as const, address: opts.core }], graceMs: opts.dependencyGraceMs, log, ...(credentials && { credentials }) };
  const metrics = opts.metricsAddress === undefined ? undefined : new ProcessMetrics();
  metrics?.countFaults(engine);
  const rm = await startRmServer({ address: opts.address, security: serveSecurity(tls), core: c.port, log, rpcLog: log, ...(metrics && { metrics: metrics.service('rm') }), faults: engine, quota: opts.quota ?? [], ...durable.value, ...(dependencies && { dependencies }) });
  if (metrics !== undefined) {
    rmGauges(metrics.service('rm'), rm);
    log.info({ metrics: opts.metricsAddress, port: (await serveMetrics(opts.metricsAddress!, metrics)).port }, 'metrics on GET /metrics');
  }
  if (rm.restored) log.info({ dataDir: opts.dataDir, vms: rm.rm.vms.size, parcels: rm.rm.parcels.size, intents: rm.rm.intents.size }, 'restored from the data dir');
  log.info({ address: opts.address, port: rm.port, tls: tls !== undefined, core: opts.core, faultSeed: faults.value.seed, faultRules: faults.value.rulesArmed }, 'hypmesh rm serving');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    void rm.shutdown(SHUTDOWN_GRACE_MS).then(flushTracing).then(() => {
      c.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (e) {
  log.fatal({ err: e }, 'hypmesh rm failed to start');
  process.exit(1);
}
