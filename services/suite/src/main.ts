#!/usr/bin/env node
/**
 * hypmesh embedded (`npm start`): the core, the resource manager and the VM manager in one process,
 * each its own gRPC server, the RM reaching the core and the VMM reaching both over real gRPC on
 * loopback exactly as they would across containers (the VMM as HLOS over the RM's Exchange stream,
 * which drains HLOS's notification queue). Prints where each listens; SIGTERM/SIGINT stops them in reverse order
 * (the VMM first, tearing down every session's VMs).
 *
 * Faults: one engine for the process (engine.ts: one per process), armed from --faults/--fault-seed,
 * at every boundary the three services have (CLIENT_TO_*, RM_TO_CORE, VMM_TO_CORE, VMM_TO_RM and its
 * fragments, RM_NOTIFICATION); each server's FaultService arms that same engine. A `crash` ends
 * the whole process, all three services together.
 */

import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { clientCredentials, enableOtlpTracing, flushTracing, orRefuseStartup, processFaultEngine, ProcessMetrics, serveMetrics, serveSecurity, serviceTls, timeoutMsParser, TLS_OPTIONS, type TlsFlagValues } from '@hypmesh/rpc';
import { coreGauges, durableCoreOptions, memoryFromOptions, startCoreServer } from '@hypmesh/core-service';
import { CORE_CALL_TIMEOUT_MS, durableRmOptions, grpcCore, rmGauges, startRmServer } from '@hypmesh/rm-service';
import { RM_CALL_TIMEOUT_MS, grpcCorePort, grpcRm, startVmmServer, vmmGauges } from '@hypmesh/vmm-service';

const SHUTDOWN_GRACE_MS = 5_000;
const ms = timeoutMsParser(InvalidArgumentError);

const opts = new Command('hypmesh')
  .description('Every hypmesh service in one process, over real gRPC on loopback.')
  .addOption(new Option('--core-address <host:port>', 'core listen address').env('HYPMESH_CORE_LISTEN').default('127.0.0.1:50051'))
  .addOption(new Option('--rm-address <host:port>', 'resource manager listen address').env('HYPMESH_RM_LISTEN').default('127.0.0.1:50052'))
  .addOption(new Option('--vmm-address <host:port>', 'VM manager listen address').env('HYPMESH_VMM_LISTEN').default('127.0.0.1:50053'))
  .addOption(new Option('--memory <map>', "the core's memory map, e.g. ram@0x80000000:16G,mmio@0x10000000:256M[,pa=40]").env('HYPMESH_MEMORY'))
  .addOption(new Option('--memory-config <file.json>', "the core's memory map as a JSON file").env('HYPMESH_MEMORY_CONFIG'))
  .addOption(new Option('--check-invariants', 'check every core invariant after each mutation').env('HYPMESH_CHECK_INVARIANTS').default(false))
  .addOption(new Option('--faults <plan.json>', 'fault plan to arm at startup (hypmesh.fault.v1 JSON; README "Fault injection")').env('HYPMESH_FAULTS'))
  .addOption(new Option('--fault-seed <n>', "the fault plan's PRNG seed, u32 (decimal or 0x-hex; default 0)").env('HYPMESH_FAULT_SEED'))
  .addOption(new Option('--core-timeout-ms <ms>', 'deadline of one call of the RM or the VMM to the core').env('HYPMESH_CORE_TIMEOUT_MS').argParser(ms).default(CORE_CALL_TIMEOUT_MS))
  .addOption(new Option('--rm-timeout-ms <ms>', 'deadline of one VMM call to the RM over the msgq, send to reply').env('HYPMESH_RM_TIMEOUT_MS').argParser(ms).default(RM_CALL_TIMEOUT_MS))
  .addOption(new Option('--data-dir <dir>', 'durable state of the core (core.sqlite) and the RM (rm.sqlite); default: in memory only').env('HYPMESH_DATA_DIR'))
  .addOption(new Option('--data-sync <mode>', 'normal: survives kill -9; full: also survives power loss').env('HYPMESH_DATA_SYNC').choices(['normal', 'full']).default('normal'))
  .addOption(new Option('--console [host:port]', 'also serve the web console (README "Console"); default 127.0.0.1:8080').env('HYPMESH_CONSOLE'))
  .addOption(new Option('--metrics-address <host:port>', 'serve Prometheus metrics on GET /metrics here (README "Metrics"); default: none').env('HYPMESH_METRICS'))
  .addOption(new Option(TLS_OPTIONS.cert.flags, TLS_OPTIONS.cert.help).env(TLS_OPTIONS.cert.env))
  .addOption(new Option(TLS_OPTIONS.key.flags, TLS_OPTIONS.key.help).env(TLS_OPTIONS.key.env))
  .addOption(new Option(TLS_OPTIONS.ca.flags, TLS_OPTIONS.ca.help).env(TLS_OPTIONS.ca.env))
  .addOption(new Option('--tls-rm-cert <file>', "mTLS: the RM's client certificate for its calls to the core (spiffe://hypmesh/vmid/255 + client/rm)").env('HYPMESH_TLS_RM_CERT'))
  .addOption(new Option('--tls-rm-key <file>', 'mTLS: PEM private key of --tls-rm-cert').env('HYPMESH_TLS_RM_KEY'))
  .addOption(new Option('--tls-vmm-cert <file>', "mTLS: the VMM's client certificate for its calls to the RM and the core (spiffe://hypmesh/vmid/3 + client/vmm)").env('HYPMESH_TLS_VMM_CERT'))
  .addOption(new Option('--tls-vmm-key <file>', 'mTLS: PEM private key of --tls-vmm-cert').env('HYPMESH_TLS_VMM_KEY'))
  .addOption(new Option('--otlp-endpoint <url>', 'export trace spans to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317, as service hypmesh-suite (each span names its server in hypmesh.service; README "Tracing"); default: tracing off').env('HYPMESH_OTLP_ENDPOINT'))
  .addOption(new Option('--log-level <level>', 'pino log level').env('HYPMESH_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
  .parse()
  .opts<TlsFlagValues & { console?: string | true; otlpEndpoint?: string; tlsRmCert?: string; tlsRmKey?: string; tlsVmmCert?: string; tlsVmmKey?: string; metricsAddress?: string; memory?: string; memoryConfig?: string; coreAddress: string; rmAddress: string; vmmAddress: string; checkInvariants: boolean; coreTimeoutMs: number; rmTimeoutMs: number; logLevel: string; faults?: string; faultSeed?: string; dataDir?: string; dataSync: 'normal' | 'full' }>();

/** Where a server bound on `address` (host:port, port maybe 0) is reached on loopback. */
const target = (address: string, port: number): string => `${address.replace(/:\d+$/, '')}:${port}`.replace(/^0\.0\.0\.0:/, '127.0.0.1:');

const log = pino({ name: 'hypmesh', level: opts.logLevel });
/** Tracing before any server or client is made (their interceptors are installed only when on); a bad URL refuses startup. */
orRefuseStartup(log, undefined, () => {
  if (opts.otlpEndpoint !== undefined && opts.otlpEndpoint !== '') enableOtlpTracing(opts.otlpEndpoint, 'hypmesh-suite', log);
});

const faults = processFaultEngine(opts);
if (!faults.ok) {
  log.fatal({ problems: faults.error.split('\n') }, `invalid fault configuration:\n${faults.error}`);
  process.exit(2);
}
const engine = faults.value.engine;

/**
 * mTLS (README "Security"): one server certificate for the three servers, and the RM's and the
 * VMM's own client identities (each service's --tls-client-cert when run alone).
 */
const security = orRefuseStartup(log, 'invalid TLS configuration', (): { server?: ReturnType<typeof serveSecurity>; rm?: ReturnType<typeof clientCredentials>; vmm?: ReturnType<typeof clientCredentials> } => {
  const rm = serviceTls({ ...opts, tlsClientCert: opts.tlsRmCert, tlsClientKey: opts.tlsRmKey });
  const vmm = serviceTls({ ...opts, tlsClientCert: opts.tlsVmmCert, tlsClientKey: opts.tlsVmmKey });
  if (rm === undefined || vmm === undefined) return {};
  if (rm.client === rm.server || vmm.client === vmm.server) throw new Error('with --tls-cert, give --tls-rm-cert/--tls-rm-key and --tls-vmm-cert/--tls-vmm-key (the RM and the VMM call as different identities)');
  return { server: serveSecurity(rm), rm: clientCredentials(rm.client), vmm: clientCredentials(vmm.client) };
});

try {
  const memory = memoryFromOptions(opts);
  if (!memory.ok) throw new Error(`invalid memory map: ${memory.error.join('; ')}`);
  const stage2Config = memory.value === undefined ? undefined : { memory: memory.value };
  const durable = durableCoreOptions(opts.dataDir, stage2Config, opts.dataSync, log);
  if (!durable.ok) {
    log.fatal(durable.error);
    process.exit(2);
  }
  const metrics = opts.metricsAddress === undefined ? undefined : new ProcessMetrics();
  metrics?.countFaults(engine);
  const observe = (svc: 'core' | 'rm' | 'vmm') => ({ rpcLog: log, ...(metrics && { metrics: metrics.service(svc) }) });
  const core = await startCoreServer({ address: opts.coreAddress, security: security.server, log, ...observe('core'), checkInvariants: opts.checkInvariants, faults: engine, ...(stage2Config && { stage2Config }), ...durable.value });
  if (core.recovered) log.info({ dataDir: opts.dataDir, fromImage: core.recovered.fromImage, records: core.recovered.records, recoveryMs: Math.round(core.recovered.ms) }, 'core recovered from the journal');
  const coreTarget = target(opts.coreAddress, core.port);
  const coreClient = grpcCore(coreTarget, opts.coreTimeoutMs, engine, security.rm);
  const rmDurable = durableRmOptions(opts.dataDir, undefined, opts.dataSync, log);
  if (!rmDurable.ok) {
    log.fatal(rmDurable.error);
    process.exit(2);
  }
  const rm = await startRmServer({ address: opts.rmAddress, security: security.server, core: coreClient, log, ...observe('rm'), faults: engine, ...rmDurable.value });
  if (rm.restored) log.info({ dataDir: opts.dataDir, vms: rm.rm.vms.size, parcels: rm.rm.parcels.size }, 'rm restored from the data dir');
  const rmTarget = target(opts.rmAddress, rm.port);
  const vmmRm = grpcRm(rmTarget, opts.rmTimeoutMs, engine, {}, security.vmm);
  const vmmCore = grpcCorePort(coreTarget, opts.coreTimeoutMs, engine, security.vmm);
  const vmm = await startVmmServer({ address: opts.vmmAddress, security: security.server, rm: vmmRm, core: vmmCore, log, ...observe('vmm'), faults: engine });
  if (metrics !== undefined) {
    coreGauges(metrics.service('core'), core);
    rmGauges(metrics.service('rm'), rm);
    vmmGauges(metrics.service('vmm'), vmm);
    log.info({ metrics: opts.metricsAddress, port: (await serveMetrics(opts.metricsAddress!, metrics)).port }, 'metrics on GET /metrics');
  }
  const vmmTarget = target(opts.vmmAddress, vmm.port);
  // Loaded only when asked for: the service images ship the suite without the console.
  const webConsole = opts.console === undefined ? undefined : await (await import('@hypmesh/console')).startConsole({ address: opts.console === true ? '127.0.0.1:8080' : opts.console, core: coreTarget, rm: rmTarget, vmm: vmmTarget });
  log.info({ core: coreTarget, rm: rmTarget, vmm: vmmTarget, ...(webConsole && { console: webConsole.url }), faultSeed: faults.value.seed, faultRules: faults.value.rulesArmed }, 'hypmesh serving');
  process.stdout.write(`hypmesh core   listening on ${coreTarget} (hypmesh.core.v1.CoreService)\n`);
  process.stdout.write(`hypmesh rm     listening on ${rmTarget} (hypmesh.rm.v1.RmService)\n`);
  process.stdout.write(`hypmesh vmm    listening on ${vmmTarget} (hypmesh.vmm.v1.VmmService)\n`);
  if (webConsole !== undefined) process.stdout.write(`hypmesh console at ${webConsole.url}\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    void (webConsole?.close() ?? Promise.resolve())
      .then(() => vmm.shutdown(SHUTDOWN_GRACE_MS))
      .then(() => (vmmRm.close(), vmmCore.close()))
      .then(() => rm.shutdown(SHUTDOWN_GRACE_MS))
      .then(() => coreClient.close())
      .then(() => core.shutdown(SHUTDOWN_GRACE_MS))
      .then(flushTracing)
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (e) {
  log.fatal({ err: e }, 'hypmesh failed to start');
  process.exit(1);
}
