#!/usr/bin/env node
/**
 * hypmesh core service: reads config (flags, then env, then defaults), builds the core, serves
 * CoreService + FaultService + health + reflection (faults from --faults/--fault-seed), and shuts down gracefully on SIGTERM/SIGINT.
 */

import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { enableOtlpTracing, flushTracing, orRefuseStartup, processFaultEngine, ProcessMetrics, serveMetrics, serveSecurity, serviceTls, TLS_OPTIONS, type TlsFlagValues } from '@hypmesh/rpc';
import { coreGauges } from './metrics.js';
import { DEFAULT_MEMORY_CONFIG } from '@hypmesh/stage2';
import { admissionHelp, CoreAdmission, durableCoreOptions, memoryFromOptions, quotaSpecs, SNAPSHOT_EVERY_DEFAULT, startCoreServer } from './server.js';

const GiB = 2 ** 30;
const SHUTDOWN_GRACE_MS = 5_000;

const number = (min: number, max: number) => (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
  return n;
};

const ramDefault = DEFAULT_MEMORY_CONFIG.ram[0]!;
const mmioDefault = DEFAULT_MEMORY_CONFIG.mmio[0]!;

const opts = new Command('hypmesh-core')
  .description('The hypmesh core: stage-2 tables, page ownership, pKVM, grants and CCA RMI over gRPC.')
  .addOption(new Option('--address <host:port>', 'listen address').env('HYPMESH_CORE_LISTEN').default('127.0.0.1:50051'))
  .addOption(new Option('--memory <map>', 'memory map, e.g. ram@0x80000000:16G,mmio@0x10000000:256M[,pa=40] (overrides the --ram/--mmio flags)').env('HYPMESH_MEMORY'))
  .addOption(new Option('--memory-config <file.json>', 'memory map as JSON: {"paBits":40,"regions":[{"kind":"ram","base":"0x80000000","size":"16G"}]}').env('HYPMESH_MEMORY_CONFIG'))
  .addOption(new Option('--ram-gib <n>', 'RAM size in GiB').env('HYPMESH_RAM_GIB').argParser(number(1, 1024)).default(ramDefault.sizeBytes / GiB))
  .addOption(new Option('--ram-base-gib <n>', 'RAM base address in GiB').env('HYPMESH_RAM_BASE_GIB').argParser(number(0, 1024)).default(ramDefault.base / GiB))
  .addOption(new Option('--mmio-gib <n>', 'MMIO size in GiB, at address 0 (0: none)').env('HYPMESH_MMIO_GIB').argParser(number(0, 1024)).default(mmioDefault.sizeBytes / GiB))
  .addOption(new Option('--pa-bits <n>', 'physical address width (also the host IPA width)').env('HYPMESH_PA_BITS').argParser(number(32, 48)).default(DEFAULT_MEMORY_CONFIG.paBits))
  .addOption(new Option('--check-invariants', 'test/chaos mode: check every invariant after each mutation').env('HYPMESH_CHECK_INVARIANTS').default(false))
  .addOption(new Option('--faults <plan.json>', 'fault plan to arm at startup (hypmesh.fault.v1 JSON; README "Fault injection")').env('HYPMESH_FAULTS'))
  .addOption(new Option('--fault-seed <n>', "the fault plan's PRNG seed, u32 (decimal or 0x-hex; default 0): the same plan and seed inject the same faults").env('HYPMESH_FAULT_SEED'))
  .addOption(new Option('--data-dir <dir>', 'durable state: journal every accepted mutation here and recover from it at start (default: in memory only)').env('HYPMESH_DATA_DIR'))
  .addOption(new Option('--data-sync <mode>', 'normal: survives kill -9; full: also survives power loss (an fsync per group commit)').env('HYPMESH_DATA_SYNC').choices(['normal', 'full']).default('normal'))
  .addOption(new Option('--snapshot-every <records>', 'with --data-dir: write a core image every this many journal records (0: never), so recovery replays at most that many').env('HYPMESH_SNAPSHOT_EVERY').argParser(number(0, 1e9)).default(SNAPSHOT_EVERY_DEFAULT))
  .addOption(
    new Option('--quota <specs>', 'admission limits, comma-separated and repeatable: NAME=N for every client or CLIENT:NAME=N for one (N a count or "unlimited"); also HYPMESH_CORE_QUOTA (the flags win)')
      .argParser((specs: string, previous: string[] = []) => [...previous, ...quotaSpecs([], specs)])
      .default([]),
  )
  .addOption(new Option('--metrics-address <host:port>', 'serve Prometheus metrics on GET /metrics here (README "Metrics"); default: none').env('HYPMESH_CORE_METRICS'))
  .addOption(new Option(TLS_OPTIONS.cert.flags, TLS_OPTIONS.cert.help).env(TLS_OPTIONS.cert.env))
  .addOption(new Option(TLS_OPTIONS.key.flags, TLS_OPTIONS.key.help).env(TLS_OPTIONS.key.env))
  .addOption(new Option(TLS_OPTIONS.ca.flags, TLS_OPTIONS.ca.help).env(TLS_OPTIONS.ca.env))
  .addOption(new Option('--otlp-endpoint <url>', 'export trace spans to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (README "Tracing"); default: tracing off').env('HYPMESH_OTLP_ENDPOINT'))
  .addOption(new Option('--log-level <level>', 'pino log level').env('HYPMESH_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
  .addHelpText('after', `\n${admissionHelp()}`)
  .parse()
  .opts<TlsFlagValues & { otlpEndpoint?: string; metricsAddress?: string; quota: string[]; address: string; memory?: string; memoryConfig?: string; ramGib: number; ramBaseGib: number; mmioGib: number; paBits: number; checkInvariants: boolean; logLevel: string; faults?: string; faultSeed?: string; dataDir?: string; dataSync: 'normal' | 'full'; snapshotEvery: number }>();

const log = pino({ name: 'hypmesh-core', level: opts.logLevel });
/** Tracing before any server or client is made (their interceptors are installed only when on); a bad URL refuses startup. */
orRefuseStartup(log, undefined, () => {
  if (opts.otlpEndpoint !== undefined && opts.otlpEndpoint !== '') enableOtlpTracing(opts.otlpEndpoint, 'hypmesh-core', log);
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
const given = memoryFromOptions(opts);
if (!given.ok) {
  log.fatal({ problems: given.error }, `invalid memory map: ${given.error.join('; ')}`);
  process.exit(2);
}
const memory = given.value ?? {
  paBits: opts.paBits,
  ram: [{ base: opts.ramBaseGib * GiB, sizeBytes: opts.ramGib * GiB }],
  mmio: opts.mmioGib > 0 ? [{ base: 0, sizeBytes: opts.mmioGib * GiB }] : [],
};

/** Admission limits: a bad --quota spec refuses startup, naming it. */
const quotas = quotaSpecs(opts.quota, process.env.HYPMESH_CORE_QUOTA);
orRefuseStartup(log, `invalid admission limits (${quotas.join(', ')})`, () => new CoreAdmission(quotas));

/** Durable mode: a data dir of another configuration is refused before anything is served. */
const durable = durableCoreOptions(opts.dataDir, { memory }, opts.dataSync, log);
if (!durable.ok) {
  log.fatal(durable.error);
  process.exit(2);
}

try {
  const stage2Config = durable.value.stage2Config ?? { memory };
  const metrics = opts.metricsAddress === undefined ? undefined : new ProcessMetrics();
  metrics?.countFaults(engine);
  const core = await startCoreServer({ address: opts.address, security: serveSecurity(tls), log, rpcLog: log, ...(metrics && { metrics: metrics.service('core') }), checkInvariants: opts.checkInvariants, faults: engine, ...durable.value, stage2Config, snapshotEvery: opts.snapshotEvery, quotas });
  if (metrics !== undefined) {
    coreGauges(metrics.service('core'), core);
    log.info({ metrics: opts.metricsAddress, port: (await serveMetrics(opts.metricsAddress!, metrics)).port }, 'metrics on GET /metrics');
  }
  if (core.recovered) log.info({ dataDir: opts.dataDir, fromImage: core.recovered.fromImage, records: core.recovered.records, recoveryMs: Math.round(core.recovered.ms) }, 'recovered from the journal');
  log.info({ address: opts.address, port: core.port, tls: tls !== undefined, memory: stage2Config.memory, faultSeed: faults.value.seed, faultRules: faults.value.rulesArmed, quotas }, 'hypmesh core serving');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    void core.shutdown(SHUTDOWN_GRACE_MS).then(flushTracing).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (e) {
  log.fatal({ err: e }, 'hypmesh core failed to start');
  process.exit(1);
}
