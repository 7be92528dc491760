/**
 * `npm run bench` prints a table of named figures against their targets; `npm run bench -- --json`
 * prints one JSON object of the same figures. Benchmarks are not tests: nothing here fails a build.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lend1GiBBlockCycleMs, lendScaling, lendScattered65536PagesMs, shareUnsharePairsPerS } from './core-bench.js';
import { RPC_CONCURRENCY, coreRpcVersusEcho } from './core-rpc-bench.js';
import { BYTE_FACE_IN_FLIGHT, CYCLES_IN_FLIGHT, rmFigures } from './rm-bench.js';
import { SIM_BENCH_CHECK_EVERY, SIM_BENCH_FAULT_RATE, simStepsPerS } from './sim-bench.js';

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

/** The deterministic simulation (issue 8 item 3). */
async function simFigures(): Promise<Figure[]> {
  const r = await simStepsPerS();
  return [
    {
      name: 'sim_steps_per_s',
      value: Math.round(r.stepsPerS),
      unit: `steps/s (fault rate ${SIM_BENCH_FAULT_RATE}, core checks every ${SIM_BENCH_CHECK_EVERY}${r.ok ? '' : ', RUN FAILED'})`,
      target: '>= 20000',
      meets: r.ok && r.stepsPerS >= 20_000,
    },
  ];
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const figures = [...coreFigures(), ...(await grpcFigures()), ...(await rmGrpcFigures()), ...(await simFigures())];
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
