/**
 * The cost of durable state (issue 9 item 1): the same mutating core RPC workload (HostShareHyp +
 * HostUnshareHyp pairs, each in-flight slot on its own page, 64 in flight) against a core with
 * `--data-dir` (a temp dir; the journal's group commit) and an in-memory one, in interleaved rounds
 * of one run. Both journal modes: `normal` (survives kill -9) and `full` (an fsync per group).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { openCoreJournal, startCoreServer } from '@hypmesh/core-service';
import { CoreServiceClient } from '@hypmesh/proto';
import { DEFAULT_STAGE2_CONFIG } from '@hypmesh/stage2';
import { drive, type Throughput } from './grpc-bench.js';
import { RPC_CONCURRENCY } from './core-rpc-bench.js';

const ROUND_MS = 1500;
export const DURABLE_BENCH_ROUNDS = 3;
/** Pages the pairs share and unshare: one per in-flight slot, above the default RAM base. */
const PAIR_BASE_PFN = 2 ** 31 / 4096 + 65_536;

interface Target {
  readonly pairs: () => Promise<Throughput>;
  /** Group commits and records so far (zero in memory). */
  readonly groups: () => { groups: number; records: number };
  close(): Promise<void>;
}

/** A core in memory, or with a fresh data dir journaled in `journalSync` mode, and its client. */
async function target(journalSync?: 'normal' | 'full'): Promise<Target> {
  const dir = journalSync === undefined ? undefined : mkdtempSync(join(tmpdir(), 'hypmesh-bench-data-'));
  const opened = dir === undefined ? undefined : openCoreJournal(dir, DEFAULT_STAGE2_CONFIG, journalSync);
  if (opened?.ok === false) throw new Error(opened.error);
  const journal = opened?.value.journal;
  const core = await startCoreServer({ address: '127.0.0.1:0', ...(journal && { journal }) });
  const client = new CoreServiceClient(`127.0.0.1:${core.port}`, grpc.credentials.createInsecure());
  const host = new grpc.Metadata();
  host.set('x-hypmesh-caller-vmid', '3');
  const unary = (method: 'hostShareHyp' | 'hostUnshareHyp', pfn: bigint): Promise<void> =>
    new Promise((resolve, reject) => client[method]({ pfn }, host, (e) => (e ? reject(e) : resolve())));
  const pair = async (i: number): Promise<void> => {
    const pfn = BigInt(PAIR_BASE_PFN + (i % RPC_CONCURRENCY));
    await unary('hostShareHyp', pfn);
    await unary('hostUnshareHyp', pfn);
  };
  return {
    pairs: () => drive(RPC_CONCURRENCY, ROUND_MS, pair),
    groups: () => ({ ...(journal?.stats ?? { groups: 0, records: 0 }) }),
    close: async () => {
      client.close();
      await core.shutdown(100);
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

export interface DurableFigures {
  readonly memoryPairsPerS: number;
  readonly normalPairsPerS: number;
  readonly fullPairsPerS: number;
  /** Median of the per-round ratios (each round's durable ÷ the memory round next to it). */
  readonly normalRatio: number;
  readonly fullRatio: number;
  /** Records per group commit, averaged over the run. */
  readonly normalRecordsPerGroup: number;
  readonly fullRecordsPerGroup: number;
}

export async function durableCoreRpc(): Promise<DurableFigures> {
  const memory = await target();
  const normal = await target('normal');
  const full = await target('full');
  try {
    const m: number[] = [];
    const n: number[] = [];
    const f: number[] = [];
    for (let r = 0; r < DURABLE_BENCH_ROUNDS; r++) {
      m.push((await memory.pairs()).callsPerS);
      n.push((await normal.pairs()).callsPerS);
      f.push((await full.pairs()).callsPerS);
    }
    const perGroup = (t: Target): number => {
      const g = t.groups();
      return g.groups === 0 ? 0 : g.records / g.groups;
    };
    return {
      memoryPairsPerS: median(m),
      normalPairsPerS: median(n),
      fullPairsPerS: median(f),
      normalRatio: median(n.map((x, i) => x / m[i]!)),
      fullRatio: median(f.map((x, i) => x / m[i]!)),
      normalRecordsPerGroup: perGroup(normal),
      fullRecordsPerGroup: perGroup(full),
    };
  } finally {
    await memory.close();
    await normal.close();
    await full.close();
  }
}
