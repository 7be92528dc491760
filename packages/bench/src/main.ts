/**
 * `npm run bench` prints a table of named figures against their targets; `npm run bench -- --json`
 * prints one JSON object of the same figures; `--only core,grpc,rm,fault,mtls,durable,abuse,tracing` runs only those groups
 * (comma-separated). Benchmarks are not tests: nothing here fails a build.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ABUSE_CPU_ROUNDS, ABUSE_PHASE_MS, ABUSE_PHASES, maximalRequestCpuMs, p99UnderAbuse } from './abuse-bench.js';
import { lend1GiBBlockCycleMs, lendScaling, lendScattered65536PagesMs, shareUnsharePairsPerS } from './core-bench.js';
import { RPC_CONCURRENCY, coreRpcVersusEcho } from './core-rpc-bench.js';
import { DURABLE_BENCH_ROUNDS, durableCoreRpc } from './durable-bench.js';
import { MTLS_BENCH_BLOCKS, mtlsOverhead } from './mtls-bench.js';
import { FAULT_BENCH_BLOCKS, faultInterceptorOverhead } from './fault-bench.js';
import { BYTE_FACE_IN_FLIGHT, CYCLES_IN_FLIGHT, rmFigures } from './rm-bench.js';
import { checkInvariantsUs, realmLifecycle, stage2LifecycleStepsPerS } from './stage2-lifecycle-bench.js';
import { TRACING_BENCH_BLOCKS, tracingOverhead } from './tracing-bench.js';
import { SIM_BENCH_CHECK_EVERY, SIM_BENCH_FAULT_RATE, SIM_BENCH_JOBS, SIM_BENCH_SEEDS, SIM_BENCH_STEPS, simCampaignStepsPerS, simStepsPerS } from './sim-bench.js';

interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** Human-readable target, e.g. ">= 200000". */
  readonly target?: string;
  readonly meets?: boolean;
}

function rssScenario(): { rssMb: number; violations: number } {
  const script = fileURLToPath(new URL('./rss.js', import.meta.url));
  const out = execFileSync(process.execPath, ['--expose-gc', script], { encoding: 'utf8' });
  return JSON.parse(out) as { rssMb: number; violations: number };
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

function coreFigures(): Figure[] {
  const pairs = shareUnsharePairsPerS();
  const block = lend1GiBBlockCycleMs();
  const scattered = lendScattered65536PagesMs();
  const rss = rssScenario();
  const scaling = lendScaling();
  return [
    { name: 'share_unshare_pairs_per_s', value: Math.round(pairs), unit: 'pairs/s', target: '>= 200000', meets: pairs >= 200_000 },
    { name: 'lend_1gib_block_cycle_ms', value: round(block, 3), unit: 'ms', target: '<= 2', meets: block <= 2 },
    { name: 'lend_scattered_65536_pages_ms', value: round(scattered, 1), unit: 'ms', target: '<= 500', meets: scattered <= 500 },
    { name: 'rss_mb_64g_host_60_guests', value: round(rss.rssMb, 1), unit: 'MB', target: '<= 200', meets: rss.rssMb <= 200 && rss.violations === 0 },
    ...scaling.map((x) => ({ name: `lend_cycle_ms_${x.ranges}_ranges`, value: round(x.ms, 3), unit: 'ms' })),
  ];
}

/**
 * The simulation's shape: many small life-cycle operations, each followed by checkInvariants. The
 * target is the simulation's (20k steps/s); a step's cost must follow the mapped and live state.
 */
async function lifecycleFigures(): Promise<Figure[]> {
  const spaces = await stage2LifecycleStepsPerS();
  const realm = await realmLifecycle();
  const check = await checkInvariantsUs();
  return [
    { name: 'stage2_lifecycle_steps_per_s', value: Math.round(spaces.wall), unit: 'steps/s (space create→map/share/grant→destroy, invariants each step)', target: '>= 20000', meets: spaces.wall >= 20_000 },
    { name: 'stage2_lifecycle_steps_per_cpu_s', value: Math.round(spaces.cpu), unit: 'steps per CPU second (same run)' },
    { name: 'realm_lifecycle_steps_per_s', value: Math.round(realm.stepsPerS.wall), unit: 'steps/s (delegate→create→RTTs→data→activate→teardown, invariants each step)', target: '>= 20000', meets: realm.stepsPerS.wall >= 20_000 },
    { name: 'realm_lifecycle_steps_per_cpu_s', value: Math.round(realm.stepsPerS.cpu), unit: 'steps per CPU second (same run)' },
    { name: 'realm_teardown_rmi_calls', value: realm.teardownRmiCalls, unit: 'RMI calls per teardown (40-bit IPA, one DATA granule)' },
    { name: 'check_invariants_us_idle', value: round(check.idle, 1), unit: 'µs (booted core, 16 GiB, best of 15 slices)' },
    { name: 'check_invariants_us_busy', value: round(check.busy, 1), unit: 'µs (plus a guest and a realm with RTTs)' },
  ];
}

/** gRPC figures: the core's RPC against a bare echo of the same size, same run (DESIGN.md §6). */
async function grpcFigures(): Promise<Figure[]> {
  const r = await coreRpcVersusEcho();
  const ratio = r.corePerS / r.echoPerS;
  return [
    { name: 'grpc_echo_per_s', value: Math.round(r.echoPerS), unit: `calls/s (${r.requestBytes}/${r.responseBytes} B, ${RPC_CONCURRENCY} in flight)` },
    { name: 'core_translate_rpc_per_s', value: Math.round(r.corePerS), unit: `calls/s (${RPC_CONCURRENCY} in flight)` },
    { name: 'core_rpc_vs_echo_ratio', value: round(ratio, 3), unit: '', target: '>= 0.8', meets: ratio >= 0.8 },
  ];
}

/** The RM over gRPC (core as a second server, loopback), with echoes of the same shape (issue 3). */
async function rmGrpcFigures(): Promise<Figure[]> {
  const r = await rmFigures();
  return [
    { name: 'rm_parcel_cycles_per_s', value: Math.round(r.parcelCyclesPerS), unit: `cycles/s (share→accept→release→reclaim, ${CYCLES_IN_FLIGHT} in flight)` },
    { name: 'rm_grpc_echo_per_s', value: Math.round(r.unaryEchoPerS), unit: `calls/s (MemShare-sized unary echo, ${CYCLES_IN_FLIGHT} in flight)` },
    { name: 'rm_byte_face_msgs_per_s', value: Math.round(r.byteFaceMsgsPerS), unit: `msgs/s (VM_GET_VMID over Exchange, ${BYTE_FACE_IN_FLIGHT} in flight)` },
    { name: 'grpc_stream_echo_msgs_per_s', value: Math.round(r.streamEchoMsgsPerS), unit: `msgs/s (bidi echo, same fragment sizes and depth)` },
  ];
}

/** The deterministic simulation (issue 8 item 3): a campaign on every CPU (the target), and one thread. */
async function simFigures(): Promise<Figure[]> {
  const single = await simStepsPerS();
  const campaign = await simCampaignStepsPerS();
  const config = `fault rate ${SIM_BENCH_FAULT_RATE}, core checks every ${SIM_BENCH_CHECK_EVERY}`;
  return [
    {
      name: 'sim_steps_per_s',
      value: Math.round(campaign.stepsPerS),
      unit: `steps/s (campaign of ${SIM_BENCH_SEEDS} × ${SIM_BENCH_STEPS} steps, --jobs ${SIM_BENCH_JOBS} on ${SIM_BENCH_JOBS} CPUs, ${config}${campaign.ok ? '' : ', A SEED FAILED'})`,
      target: '>= 20000',
      meets: campaign.ok && campaign.stepsPerS >= 20_000,
    },
    { name: 'sim_campaign_s', value: campaign.seconds, unit: `s (the same ${SIM_BENCH_SEEDS * SIM_BENCH_STEPS}-step campaign's wall time)`, target: '< 120', meets: campaign.ok && campaign.seconds < 120 },
    { name: 'sim_steps_per_s_single', value: Math.round(single.stepsPerS), unit: `steps/s (one thread, ${config}${single.ok ? '' : ', RUN FAILED'})` },
  ];
}

/** The fault engine's cost when nothing fires (issue 8): core RPC throughput armed ÷ without, same run. */
async function faultFigures(): Promise<Figure[]> {
  const r = await faultInterceptorOverhead();
  const ratio = r.ratio;
  return [
    { name: 'core_translate_rpc_per_s_fault_armed', value: Math.round(r.armedPerS), unit: `calls/s (never-matching plan armed, ${RPC_CONCURRENCY} in flight; ${r.fired} fired)` },
    { name: 'core_translate_rpc_per_s_no_faults', value: Math.round(r.barePerS), unit: `calls/s (no engine, ${RPC_CONCURRENCY} in flight)` },
    { name: 'fault_interceptor_overhead', value: round(ratio, 3), unit: `armed ÷ without (median of ${FAULT_BENCH_BLOCKS} ABBA blocks)`, target: '>= 0.95', meets: ratio >= 0.95 && r.fired === 0 },
    { name: 'fault_interceptor_overhead_cpu', value: round(r.cpuRatio, 3), unit: 'the same, calls per CPU second of the bench process' },
    { name: 'fault_bench_aa_ratio', value: round(r.aaRatio, 3), unit: `bare ÷ bare, ${FAULT_BENCH_BLOCKS} ABBA blocks in the same run: the noise floor (1.0 on a quiet machine)` },
  ];
}

/** mTLS's cost (issue 11 item 5): core RPC throughput with mTLS + authz ÷ plaintext, same run (mtls-bench.ts). */
async function mtlsFigures(): Promise<Figure[]> {
  const r = await mtlsOverhead();
  return [
    { name: 'core_translate_rpc_per_s_mtls', value: Math.round(r.mtlsPerS), unit: `calls/s (mTLS + authorisation table, ${RPC_CONCURRENCY} in flight)` },
    { name: 'core_translate_rpc_per_s_plaintext', value: Math.round(r.plainPerS), unit: `calls/s (plaintext, ${RPC_CONCURRENCY} in flight)` },
    { name: 'mtls_core_rpc_ratio', value: round(r.ratio, 3), unit: `mTLS ÷ plaintext (median of ${MTLS_BENCH_BLOCKS} ABBA blocks)` },
    { name: 'mtls_core_rpc_ratio_cpu', value: round(r.cpuRatio, 3), unit: 'the same, calls per CPU second of the bench process' },
  ];
}

/** Durable state's cost (issue 9 item 1): mutating core RPCs with a data dir ÷ in memory, same run. */
async function durableFigures(): Promise<Figure[]> {
  const r = await durableCoreRpc();
  const pairs = `pairs/s (HostShareHyp + HostUnshareHyp, ${RPC_CONCURRENCY} in flight`;
  return [
    { name: 'core_share_unshare_rpc_pairs_per_s_memory', value: Math.round(r.memoryPairsPerS), unit: `${pairs}, in memory)` },
    { name: 'core_share_unshare_rpc_pairs_per_s_durable', value: Math.round(r.normalPairsPerS), unit: `${pairs}, --data-dir, sync normal; ${round(r.normalRecordsPerGroup, 1)} records per group commit)` },
    { name: 'durable_core_rpc_vs_memory_ratio', value: round(r.normalRatio, 3), unit: `durable ÷ memory (median of ${DURABLE_BENCH_ROUNDS} interleaved rounds; survives kill -9)`, target: '>= 0.5', meets: r.normalRatio >= 0.5 },
    { name: 'core_share_unshare_rpc_pairs_per_s_durable_full', value: Math.round(r.fullPairsPerS), unit: `${pairs}, --data-sync full; ${round(r.fullRecordsPerGroup, 1)} records per group commit)` },
    { name: 'durable_full_core_rpc_vs_memory_ratio', value: round(r.fullRatio, 3), unit: 'the same with an fsync per group commit (survives power loss)' },
  ];
}

/**
 * Admission control (issue 10 item 5): a well-behaved client's p99 while a rogue sends the largest
 * requests the core's caps admit, against its p99 alone, same run (abuse-bench.ts).
 */
async function abuseFigures(): Promise<Figure[]> {
  const costs = maximalRequestCpuMs();
  const r = await p99UnderAbuse();
  const how = `Translate one at a time, ${ABUSE_PHASES} interleaved phases of ${ABUSE_PHASE_MS} ms`;
  return [
    { name: 'p99_core_rpc_ms_alone', value: round(r.p99AloneMs, 3), unit: `ms (${how}, ${r.samplesAlone} calls)` },
    {
      name: 'p99_core_rpc_ms_under_abuse',
      value: round(r.p99AbusedMs, 3),
      unit: `ms (the same while a rogue sends maximal admitted requests back to back, ${Math.round(r.rogueCallsPerS)} admitted calls/s, ${r.rogueRefused} refused; ${r.samplesAbused} calls)`,
      target: '<= 3 × alone',
      meets: r.ratio <= 3,
    },
    { name: 'p99_core_rpc_abuse_ratio', value: round(r.ratio, 2), unit: 'under abuse ÷ alone', target: '<= 3', meets: r.ratio <= 3 },
    {
      name: 'abuse_max_request_cpu_ms',
      value: round(costs[0]!.ms, 2),
      unit: `CPU ms, the costliest maximal admitted request (${costs.map((c) => `${c.rpc} ${c.ms.toFixed(2)}`).join(', ')}; median of ${ABUSE_CPU_ROUNDS})`,
    },
  ];
}

/** Tracing's cost (issue 11 item 6): core RPC throughput with --otlp-endpoint ÷ without, same run (tracing-bench.ts). */
async function tracingFigures(): Promise<Figure[]> {
  const r = await tracingOverhead();
  return [
    { name: 'core_translate_rpc_per_s_traced', value: Math.round(r.tracedPerS), unit: `calls/s (core process with --otlp-endpoint, ${RPC_CONCURRENCY} in flight; ${r.exportRequests} OTLP exports, ${Math.round(r.exportBytes / 1024)} KiB)` },
    { name: 'core_translate_rpc_per_s_untraced', value: Math.round(r.untracedPerS), unit: `calls/s (core process without, ${RPC_CONCURRENCY} in flight)` },
    { name: 'tracing_overhead_ratio', value: round(r.ratio, 3), unit: `traced ÷ untraced (median of ${TRACING_BENCH_BLOCKS} blocks T U W W U T of 150 ms rounds)` },
    { name: 'tracing_bench_aa_ratio', value: round(r.aaRatio, 3), unit: 'untraced ÷ another untraced core process, the same way: the noise floor' },
  ];
}

/** Figure groups in run order; `--only` picks some by name. */
const GROUPS = {
  core: async () => coreFigures(),
  stage2: lifecycleFigures,
  grpc: grpcFigures,
  rm: rmGrpcFigures,
  fault: faultFigures,
  mtls: mtlsFigures,
  sim: simFigures,
  durable: durableFigures,
  abuse: abuseFigures,
  tracing: tracingFigures,
} as const satisfies Record<string, () => Promise<Figure[]>>;
type Group = keyof typeof GROUPS;

/** `--only a,b` or `--only=a,b`; every group when absent. */
function selectedGroups(argv: readonly string[]): Group[] {
  const at = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (at < 0) return Object.keys(GROUPS) as Group[];
  const list = argv[at]!.startsWith('--only=') ? argv[at]!.slice('--only='.length) : (argv[at + 1] ?? '');
  const names = list.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const unknown = names.filter((n) => !(n in GROUPS));
  if (names.length === 0 || unknown.length > 0) {
    console.error(`--only: expected a comma-separated list of ${Object.keys(GROUPS).join(', ')}${unknown.length > 0 ? `; unknown: ${unknown.join(', ')}` : ''}`);
    process.exit(2);
  }
  return names as Group[];
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const figures: Figure[] = [];
  for (const g of selectedGroups(process.argv.slice(2))) figures.push(...(await GROUPS[g]()));
  if (json) {
    process.stdout.write(JSON.stringify(Object.fromEntries(figures.map((f) => [f.name, f.value]))) + '\n');
    return;
  }
  const rows = figures.map((f) => [f.name, `${f.value} ${f.unit}`, f.target ?? '', f.meets === undefined ? '' : f.meets ? 'yes' : 'NO']);
  const header = ['figure', 'value', 'target', 'meets'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

await main();
