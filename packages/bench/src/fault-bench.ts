/**
 * What the fault engine costs a service that is not being faulted (issue 8 "Done when"): the core's
 * Translate over gRPC with the engine installed (FaultService, the CLIENT_TO_CORE front door) and a
 * plan armed whose rule is evaluated on every call but never fires, against the same core with no
 * engine at all ('off'), same process, same run. Target ≥ 0.95.
 *
 * On a shared, loaded machine the throughput of one configuration swings by 2× from round to round,
 * so the figure is the median of many short ABBA blocks: four rounds a, b, b, a back to back, the
 * block's ratio (a₁ + a₂) ÷ (b₁ + b₂), which cancels a load that drifts linearly across the block.
 * A full GC before every round (bench runs with --expose-gc) keeps one round's garbage out of the
 * next.
 *
 * How much is noise: the same measurement of two identical bare cores (A/A) in the same run is
 * reported beside the figure; the armed ÷ bare figure is only meaningful when the A/A figure is
 * close to 1. Calls per CPU second of this process (client and both servers live in it) are
 * reported too.
 */
import * as grpc from '@grpc/grpc-js';
import { startCoreServer } from '@hypmesh/core-service';
import { FaultEngine } from '@hypmesh/fault';
import { CoreServiceClient, type TranslateRequest } from '@hypmesh/proto';
import { drive } from './grpc-bench.js';
import { RPC_CONCURRENCY } from './core-rpc-bench.js';

const ROUND_MS = 150;
export const FAULT_BENCH_BLOCKS = 24;

/** A full collection between rounds, when node runs with --expose-gc (npm run bench does). */
const collect = (): void => (globalThis as { gc?: () => void }).gc?.();

/** Matches every Translate by method, then fails on the caller: evaluated each call, fires never. */
const NEVER = {
  rules: [{ id: 'never', boundary: 'CLIENT_TO_CORE', match: { method: 'Translate', callerVmid: 0xffff_fffe }, action: { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } } }],
} as const;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

/** One round's rates: calls per wall second, and per second of this process's CPU (user + system). */
interface Rates {
  readonly wallPerS: number;
  readonly cpuPerS: number;
}

/** Keeps `concurrency` calls in flight for `durationMs` (no warm-up: pairedRatio warms once). */
async function round(concurrency: number, durationMs: number, issue: () => Promise<void>): Promise<Rates> {
  let done = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(durationMs) * 1_000_000n;
  const worker = async (): Promise<void> => {
    while (process.hrtime.bigint() < end) {
      await issue();
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { wallPerS: done / wallS, cpuPerS: done / ((cpu.user + cpu.system) / 1e6) };
}

export interface PairedRatio {
  /** Median of the per-block ratios a ÷ b of calls per wall second (the figure). */
  readonly ratio: number;
  /** Median of the per-block ratios a ÷ b of calls per second of this process's CPU (a second view). */
  readonly cpuRatio: number;
  /** Medians of each side's calls per wall second. */
  readonly aPerS: number;
  readonly bPerS: number;
}

/**
 * a ÷ b as the median of `blocks` ABBA blocks (module header), a full GC before every round; both
 * sides warmed first (connections, JIT) and the warm-up discarded.
 */
export async function pairedRatio(a: () => Promise<void>, b: () => Promise<void>, blocks = FAULT_BENCH_BLOCKS, roundMs = ROUND_MS): Promise<PairedRatio> {
  await drive(RPC_CONCURRENCY, 2 * roundMs, a);
  await drive(RPC_CONCURRENCY, 2 * roundMs, b);
  const aRuns: number[] = [];
  const bRuns: number[] = [];
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  const measured = async (issue: () => Promise<void>): Promise<Rates> => {
    collect();
    return round(RPC_CONCURRENCY, roundMs, issue);
  };
  for (let i = 0; i < blocks; i++) {
    const a1 = await measured(a);
    const b1 = await measured(b);
    const b2 = await measured(b);
    const a2 = await measured(a);
    aRuns.push(a1.wallPerS, a2.wallPerS);
    bRuns.push(b1.wallPerS, b2.wallPerS);
    ratios.push((a1.wallPerS + a2.wallPerS) / (b1.wallPerS + b2.wallPerS));
    cpuRatios.push((a1.cpuPerS + a2.cpuPerS) / (b1.cpuPerS + b2.cpuPerS));
  }
  return { ratio: median(ratios), cpuRatio: median(cpuRatios), aPerS: median(aRuns), bPerS: median(bRuns) };
}

/** The core's Translate over gRPC from this process, as HOST. */
export function translateCall(c: CoreServiceClient): () => Promise<void> {
  const host = new grpc.Metadata();
  host.set('x-hypmesh-caller-vmid', '3');
  const req: TranslateRequest = { vmid: 3, ipa: 2n ** 31n + 0x1234_5000n };
  return () => new Promise((resolve, reject) => c.translate(req, host, (e) => (e ? reject(e) : resolve())));
}

export const coreClient = (port: number): CoreServiceClient => new CoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());

export interface FaultOverhead {
  /** Armed ÷ bare, calls per wall second (the issue's figure), and per CPU second. */
  readonly ratio: number;
  readonly cpuRatio: number;
  readonly armedPerS: number;
  readonly barePerS: number;
  /** Bare ÷ another bare core, measured the same way in the same run: how far from 1 noise alone moves the figure. */
  readonly aaRatio: number;
  readonly fired: number;
}

export async function faultInterceptorOverhead(): Promise<FaultOverhead> {
  const engine = new FaultEngine({ nowMs: Date.now });
  const armed = engine.arm(NEVER, 1);
  if (!armed.ok) throw new Error(`bench plan refused: ${JSON.stringify(armed.error)}`);
  const withFaults = await startCoreServer({ address: '127.0.0.1:0', faults: engine });
  const bare = await startCoreServer({ address: '127.0.0.1:0', faults: 'off' });
  const twin = await startCoreServer({ address: '127.0.0.1:0', faults: 'off' });
  const a = coreClient(withFaults.port);
  const b = coreClient(bare.port);
  const t = coreClient(twin.port);
  try {
    const r = await pairedRatio(translateCall(a), translateCall(b));
    const aa = await pairedRatio(translateCall(t), translateCall(b));
    return {
      ratio: r.ratio,
      cpuRatio: r.cpuRatio,
      armedPerS: r.aPerS,
      barePerS: r.bPerS,
      aaRatio: aa.ratio,
      fired: engine.list().rules.reduce((n, x) => n + x.fired, 0),
    };
  } finally {
    for (const c of [a, b, t]) c.close();
    for (const s of [withFaults, bare, twin]) await s.shutdown(100);
  }
}
