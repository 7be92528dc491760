#!/usr/bin/env node
/**
 * hypmesh VM manager service: reads config (flags, then env, then defaults), connects to the RM (as
 * HLOS, over RmService.Exchange) and the core (as HOST), serves VmmService + FaultService + health +
 * reflection (faults from --faults/--fault-seed at CLIENT_TO_VMM, VMM_TO_CORE, VMM_TO_RM and its fragments),
 * and on SIGTERM/SIGINT ends every session (tearing its VMs down) before it exits; with --data-dir
 * (durable.ts) it keeps the leases and their VMs for the next process, which re-adopts them.
 */

import { Command, InvalidArgumentError, Option } from 'commander';
import { clientCredentials, DEPENDENCY_GRACE_MS_DEFAULT, enableOtlpTracing, flushTracing, orRefuseStartup, processFaultEngine, ProcessMetrics, serveMetrics, serveSecurity, serviceTls, timeoutMsParser, TLS_OPTIONS, type TlsFlagValues } from '@hypmesh/rpc';
import { vmmGauges } from './metrics.js';
import { parseBytes } from '@hypmesh/stage2';
import type { FrameRun } from '@hypmesh/vmm';
import { pino } from 'pino';
import { VMM_ADMISSION, vmmAdmissionLimits } from './admission.js';
import { CORE_CALL_TIMEOUT_MS } from './core-client.js';
import { openVmmStore } from './durable.js';
import { grpcHoldings } from './holdings-client.js';
import { RM_CALL_TIMEOUT_MS, RM_RECONNECT_MS_MAX } from './rm-client.js';
import { grpcCorePort, grpcRm, startVmmServer } from './server.js';

const SHUTDOWN_GRACE_MS = 5_000;
/**
 * Waits between a teardown step's attempts: 1, 2, 4 s, so its last attempt comes 7 s after its first,
 * past the msgq stream's longest reopen wait and its channel's longest reconnect wait (2 s each).
 * With the domain's default (at once), all four attempts fell within one reconnect wait, and a
 * vmm↔rm partition of under a second during a teardown leaked the VM, its parcels and its pool
 * pages for good (test/toxiproxy.e2e.test.ts, the partition scenario). A step the RM or the core
 * refuses for good is reported 7 s later than before.
 */
const TEARDOWN_RETRY_BACKOFF_MS = RM_RECONNECT_MS_MAX / 2;

/** `<base>:<size>` in bytes (0x-hex or decimal, K/M/G suffixes), 4 KiB aligned → frames. */
function frameRun(text: string): FrameRun {
  const [b, z] = text.split(':');
  const base = b === undefined ? undefined : parseBytes(b);
  const size = z === undefined ? undefined : parseBytes(z);
  if (base === undefined || size === undefined || size === 0 || base % 4096 !== 0 || size % 4096 !== 0)
    throw new InvalidArgumentError('expected <base>:<size>, both 4 KiB aligned, size > 0 (e.g. 0x47c000000:64M)');
  return { base: base / 4096, count: size / 4096 };
}

const ms = timeoutMsParser(InvalidArgumentError);

const opts = new Command('hypmesh-vmm')
  .description('The hypmesh host VM manager: session-bound VM handles, the Linux start and teardown sequences against the RM, realm VMs over the core RMI, over gRPC.')
  .addOption(new Option('--address <host:port>', 'listen address').env('HYPMESH_VMM_LISTEN').default('127.0.0.1:50053'))
  .addOption(new Option('--rm <host:port>', "the RM's address (the VMM drains HLOS's notification queue; other HLOS subscribers get copies)").env('HYPMESH_RM_ADDR').default('127.0.0.1:50052'))
  .addOption(new Option('--core <host:port>', "the core's address").env('HYPMESH_CORE_ADDR').default('127.0.0.1:50051'))
  .addOption(new Option('--rm-timeout-ms <ms>', 'deadline of one RM call over the msgq, send to reply').env('HYPMESH_RM_TIMEOUT_MS').argParser(ms).default(RM_CALL_TIMEOUT_MS))
  .addOption(new Option('--core-timeout-ms <ms>', 'deadline of one core call').env('HYPMESH_CORE_TIMEOUT_MS').argParser(ms).default(CORE_CALL_TIMEOUT_MS))
  .addOption(new Option('--dependency-grace-ms <ms>', 'health is NOT_SERVING once the RM or the core has been unreachable this long').env('HYPMESH_DEPENDENCY_GRACE_MS').argParser(ms).default(DEPENDENCY_GRACE_MS_DEFAULT))
  .addOption(new Option('--donation-region <base:size>', "host RAM the VMM donates from (default: the top 64 MiB below HYP's carve-out in the core's highest RAM region)").env('HYPMESH_DONATION_REGION').argParser(frameRun))
  .addOption(new Option('--data-dir <dir>', "durable state: keep the VMM's leases and VM records here (vmm.sqlite); a restart re-adopts the live leases and their VMs (default: in memory only; a restart tears every VM down)").env('HYPMESH_DATA_DIR'))
  .addOption(new Option('--data-sync <mode>', 'normal: survives kill -9; full: also survives power loss (an fsync per group commit)').env('HYPMESH_DATA_SYNC').choices(['normal', 'full']).default('normal'))
  .addOption(new Option('--faults <plan.json>', 'fault plan to arm at startup (hypmesh.fault.v1 JSON; README "Fault injection")').env('HYPMESH_FAULTS'))
  .addOption(new Option('--fault-seed <n>', "the fault plan's PRNG seed, u32 (decimal or 0x-hex; default 0): the same plan and seed inject the same faults").env('HYPMESH_FAULT_SEED'))
  .addOption(
    new Option('--quota <specs>', `admission quotas, comma-separated or repeated: NAME=N for every client, CLIENT:NAME=N for one (N a count or "unlimited"); rules: ${Object.keys(VMM_ADMISSION).join(', ')} (README "Admission control")`)
      .env('HYPMESH_VMM_QUOTA')
      .argParser((v: string, prev: string[] = []) => [...prev, ...v.split(',').map((x) => x.trim()).filter((x) => x !== '')]),
  )
  .addOption(new Option('--metrics-address <host:port>', 'serve Prometheus metrics on GET /metrics here (README "Metrics"); default: none').env('HYPMESH_VMM_METRICS'))
  .addOption(new Option(TLS_OPTIONS.cert.flags, TLS_OPTIONS.cert.help).env(TLS_OPTIONS.cert.env))
  .addOption(new Option(TLS_OPTIONS.key.flags, TLS_OPTIONS.key.help).env(TLS_OPTIONS.key.env))
  .addOption(new Option(TLS_OPTIONS.ca.flags, TLS_OPTIONS.ca.help).env(TLS_OPTIONS.ca.env))
  .addOption(new Option(TLS_OPTIONS.clientCert.flags, TLS_OPTIONS.clientCert.help).env(TLS_OPTIONS.clientCert.env))
  .addOption(new Option(TLS_OPTIONS.clientKey.flags, TLS_OPTIONS.clientKey.help).env(TLS_OPTIONS.clientKey.env))
  .addOption(new Option('--otlp-endpoint <url>', 'export trace spans to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (README "Tracing"); default: tracing off').env('HYPMESH_OTLP_ENDPOINT'))
  .addOption(new Option('--log-level <level>', 'pino log level').env('HYPMESH_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
  .parse()
  .opts<TlsFlagValues & { otlpEndpoint?: string; metricsAddress?: string; address: string; rm: string; core: string; donationRegion?: FrameRun; rmTimeoutMs: number; coreTimeoutMs: number; dependencyGraceMs: number; logLevel: string; faults?: string; faultSeed?: string; quota?: string[]; dataDir?: string; dataSync: 'normal' | 'full' }>();

const log = pino({ name: 'hypmesh-vmm', level: opts.logLevel });
/** Tracing before any server or client is made (their interceptors are installed only when on); a bad URL refuses startup. */
orRefuseStartup(log, undefined, () => {
  if (opts.otlpEndpoint !== undefined && opts.otlpEndpoint !== '') enableOtlpTracing(opts.otlpEndpoint, 'hypmesh-vmm', log);
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
/** The VMM's own calls (RM as HLOS, core as HOST, health probes) present its client identity (host-vmm: VMID 3, client vmm). */
const credentials = tls === undefined ? undefined : clientCredentials(tls.client);
const stored = openVmmStore(opts.dataDir, opts.dataSync, log);
if (!stored.ok) {
  log.fatal({ dataDir: opts.dataDir }, stored.error);
  process.exit(2);
}
const store = stored.value;

/** Quotas: a bad --quota spec refuses startup, naming it. */
orRefuseStartup(log, undefined, () => vmmAdmissionLimits(opts.quota));

try {
  const rm = grpcRm(opts.rm, opts.rmTimeoutMs, engine, {}, credentials);
  const core = grpcCorePort(opts.core, opts.coreTimeoutMs, engine, credentials);
  const holdings = grpcHoldings(opts.core, opts.rm, opts.coreTimeoutMs, credentials);
  const dependencies = { dependencies: [{ name: 'rm' as const, address: opts.rm }, { name: 'core' as const, address: opts.core }], graceMs: opts.dependencyGraceMs, log, ...(credentials && { credentials }) };
  const metrics = opts.metricsAddress === undefined ? undefined : new ProcessMetrics();
  metrics?.countFaults(engine);
  const vmm = await startVmmServer({ address: opts.address, security: serveSecurity(tls), rm, core, log, rpcLog: log, ...(metrics && { metrics: metrics.service('vmm') }), faults: engine, dependencies, holdings, quota: opts.quota ?? [], ...(store && { store }), vmmConfig: { retryBackoffMs: TEARDOWN_RETRY_BACKOFF_MS, ...(opts.donationRegion && { donationRegion: opts.donationRegion }) } });
  if (metrics !== undefined) {
    vmmGauges(metrics.service('vmm'), vmm);
    log.info({ metrics: opts.metricsAddress, port: (await serveMetrics(opts.metricsAddress!, metrics)).port }, 'metrics on GET /metrics');
  }
  if (vmm.sweep !== undefined) {
    if (vmm.sweep.adopted.length > 0) log.info({ vmids: vmm.sweep.adopted }, 'VMs of live leases re-adopted from the data dir');
    if (vmm.sweep.orphans.length + vmm.sweep.realms.length > 0) log.warn({ vmids: vmm.sweep.orphans, realms: vmm.sweep.realms }, 'VMs of an earlier VMM process found: tearing them down');
    void vmm.sweep.swept.then((report) => {
      // Logged whatever it found, even nothing: a watcher waits for this line to know the sweep ended.
      if (report.leaked.length > 0 || report.framesStillHeld > 0) log.error({ report }, 'restart sweep left something behind');
      else log.info({ report }, 'restart sweep done: everything an earlier VMM held is back');
    });
  }
  log.info({ address: opts.address, port: vmm.port, tls: tls !== undefined, rm: opts.rm, core: opts.core, donationRegion: vmm.vmm.config.donationRegion, faultSeed: faults.value.seed, faultRules: faults.value.rulesArmed, dataDir: opts.dataDir ?? null }, 'hypmesh vmm serving');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    void vmm.shutdown(SHUTDOWN_GRACE_MS).then(flushTracing).then(() => {
      rm.close();
      core.close();
      holdings.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (e) {
  log.fatal({ err: e }, 'hypmesh vmm failed to start');
  process.exit(1);
}
