/**
 * A simulation campaign on worker threads: seeds are independent runs, so `jobs` workers each take
 * the next seed as they finish one. Results are handed on in seed order, one at a time, exactly as
 * a sequential campaign hands them on, so the CLI's output, its replay files and its shrinking do
 * not depend on the job count. One job runs in this thread (no worker at all).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { runSim, type SimOptions, type SimResult } from '@hypmesh/sim';

/** One seed's run and its duration (its own thread's wall time). */
export interface SeedRun {
  readonly result: SimResult;
  readonly ms: number;
}

/** Everything of SimOptions but the seed: the same for every seed of a campaign. */
export type CampaignOptions = Omit<SimOptions, 'seed'>;

/** The default job count: one per CPU. */
export const defaultJobs = (): number => availableParallelism();

export async function runSeed(seed: number, o: CampaignOptions): Promise<SeedRun> {
  const t = performance.now();
  const result = await runSim({ ...o, seed });
  return { result, ms: performance.now() - t };
}

/** Runs `seeds` on `jobs` threads; `onResult` sees each seed's run in seed order and is awaited before the next. */
export async function runCampaign(seeds: readonly number[], o: CampaignOptions, jobs: number, onResult: (r: SeedRun) => Promise<void> | void): Promise<void> {
  const workers = Math.min(jobs, seeds.length);
  if (workers <= 1) {
    for (const seed of seeds) await onResult(await runSeed(seed, o));
    return;
  }
  const runs: (SeedRun | undefined)[] = [];
  let next = 0;
  let handed = 0;
  let chain = Promise.resolve();
  const pool: Worker[] = [];
  /** Workers this side stopped (no seed left): their exit is no failure. */
  const retired = new Set<Worker>();
  await new Promise<void>((resolve, reject) => {
    const fail = (e: unknown): void => {
      for (const w of pool) {
        retired.add(w);
        void w.terminate();
      }
      reject(e instanceof Error ? e : new Error(String(e)));
    };
    const feed = (w: Worker): void => {
      if (next < seeds.length) w.postMessage(next++);
      else {
        retired.add(w);
        void w.terminate();
      }
    };
    // Hands on every run that is next in seed order (serialised on `chain`: onResult may await).
    const handOn = async (): Promise<void> => {
      for (let r = runs[handed]; r !== undefined; r = runs[handed]) {
        runs[handed++] = undefined;
        await onResult(r);
      }
      if (handed === seeds.length) resolve();
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./sim-worker.js', import.meta.url), { workerData: { seeds, options: o } });
      pool.push(w);
      w.on('message', ({ index, run }: { index: number; run: SeedRun }) => {
        runs[index] = run;
        feed(w);
        chain = chain.then(handOn).catch(fail);
      });
      w.on('error', fail);
      w.on('exit', (code) => {
        if (!retired.has(w)) fail(new Error(`sim worker exited with code ${code} before the campaign ended`));
      });
      feed(w);
    }
  });
}
