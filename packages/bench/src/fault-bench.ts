/**
 * What the fault engine costs a service that is not being faulted (issue 8 "Done when"): the core's
 * Translate over gRPC with the engine installed (FaultService, the CLIENT_TO_CORE front door) and a
 * plan armed whose rule is evaluated on every call but never fires, against the same core with no
 * engine at all ('off'), same process, same run. Target ≥ 0.95.
 *
 * On a shared, loaded machine the throughput of one configuration swings by 2× from round to round,
 * so the figure is the median of paired ratios: short rounds, each pair run back to back, the order
 * swapped every other pair (ab, ba, …) so drift inside a pair favours neither side. More, shorter
 * pairs (15 × 400 ms, about the old 9 × 600 ms in time) narrow the median's spread, and a full GC
 * before every round (bench runs with --expose-gc) keeps one round's garbage out of the next.
 */
import * as grpc from '@grpc/grpc-js';
import { startCoreServer } from '@hypmesh/core-service';
import { FaultEngine } from '@hypmesh/fault';
import { CoreServiceClient, type TranslateRequest } from '@hypmesh/proto';
import { drive } from './grpc-bench.js';
import { RPC_CONCURRENCY } from './core-rpc-bench.js';

const ROUND_MS = 400;
export const FAULT_BENCH_PAIRS = 15;

/** A full collection between rounds, when node runs with --expose-gc (npm run bench does). */
const collect = (): void => (globalThis as { gc?: () => void }).gc?.();

/** Matches every Translate by method, then fails on the caller: evaluated each call, fires never. */
const NEVER = {
  rules: [{ id: 'never', boundary: 'CLIENT_TO_CORE', match: { method: 'Translate', callerVmid: 0xffff_fffe }, action: { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } } }],
} as const;

const median = (xs: readonly number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

export async function faultInterceptorOverhead(): Promise<{ ratio: number; armedPerS: number; barePerS: number; fired: number }> {
  const engine = new FaultEngine({ nowMs: Date.now });
  const armed = engine.arm(NEVER, 1);
  if (!armed.ok) throw new Error(`bench plan refused: ${JSON.stringify(armed.error)}`);
  const withFaults = await startCoreServer({ address: '127.0.0.1:0', faults: engine });
  const bare = await startCoreServer({ address: '127.0.0.1:0', faults: 'off' });
  const host = new grpc.Metadata();
  host.set('x-hypmesh-caller-vmid', '3');
  const req: TranslateRequest = { vmid: 3, ipa: 2n ** 31n + 0x1234_5000n };
  const clientOf = (port: number): CoreServiceClient => new CoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const a = clientOf(withFaults.port);
  const b = clientOf(bare.port);
  const translate = (c: CoreServiceClient) => (): Promise<void> =>
    new Promise((resolve, reject) => c.translate(req, host, (e) => (e ? reject(e) : resolve())));
  try {
    const armedRuns: number[] = [];
    const bareRuns: number[] = [];
    const ratios: number[] = [];
    for (let i = 0; i < FAULT_BENCH_PAIRS; i++) {
      const armedFirst = i % 2 === 0;
      collect();
      const first = (await drive(RPC_CONCURRENCY, ROUND_MS, translate(armedFirst ? a : b))).callsPerS;
      collect();
      const second = (await drive(RPC_CONCURRENCY, ROUND_MS, translate(armedFirst ? b : a))).callsPerS;
      const [armedPerS, barePerS] = armedFirst ? [first, second] : [second, first];
      armedRuns.push(armedPerS);
      bareRuns.push(barePerS);
      ratios.push(armedPerS / barePerS);
    }
    return { ratio: median(ratios), armedPerS: median(armedRuns), barePerS: median(bareRuns), fired: engine.list().rules.reduce((n, r) => n + r.fired, 0) };
  } finally {
    a.close();
    b.close();
    await withFaults.shutdown(100);
    await bare.shutdown(100);
  }
}
