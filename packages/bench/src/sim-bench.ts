/**
 * The deterministic simulation's speed (@hypmesh/sim) with random faults, cross-service checks after
 * every step and the whole-memory invariants every SIM_BENCH_CHECK_EVERY steps, the final checks
 * included. Three figures, same bench run:
 *
 *   sim_steps_per_s         the campaign issue 8 names: 1,000,000 steps (SIM_BENCH_SEEDS seeds of
 *                           SIM_BENCH_STEPS) as `hypmesh sim --seeds 1..50 --jobs N` runs it, N =
 *                           one per CPU: total steps ÷ the campaign's wall time (the CLI's and the
 *                           workers' start-up and JIT warm-up included). The target, 20,000
 *                           steps/s, is this one; the issue asks for that campaign in under 2
 *                           minutes on the 2-core machine (sim_campaign_s).
 *   sim_campaign_s          that campaign's wall time (target: under 120 s).
 *   sim_steps_per_s_single  one run in this thread, after a warm-up run.
 *
 * A short campaign would mostly measure warm-up: a worker's first seeds run at half the speed of
 * its later ones while V8 optimises (seeds 1-4 of one job, 4.7k → 10k steps/s, then 12k-14k).
 */
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runSim } from '@hypmesh/sim';

export const SIM_BENCH_STEPS = 20_000;
export const SIM_BENCH_FAULT_RATE = 0.01;
export const SIM_BENCH_CHECK_EVERY = 10_000;
export const SIM_BENCH_JOBS = availableParallelism();
/** The campaign's seeds: 50 × 20,000 = the 1,000,000 steps issue 8 names. */
export const SIM_BENCH_SEEDS = 50;

const CLI = fileURLToPath(new URL('../../../tools/cli/dist/main.js', import.meta.url));

export async function simStepsPerS(): Promise<{ stepsPerS: number; ok: boolean }> {
  // A short warm-up run so the measured one sees optimised code.
  await runSim({ seed: 1, steps: 1_000, faultRate: SIM_BENCH_FAULT_RATE, checkEvery: SIM_BENCH_CHECK_EVERY });
  const t = performance.now();
  const r = await runSim({ seed: 2, steps: SIM_BENCH_STEPS, faultRate: SIM_BENCH_FAULT_RATE, checkEvery: SIM_BENCH_CHECK_EVERY });
  return { stepsPerS: (SIM_BENCH_STEPS / (performance.now() - t)) * 1000, ok: r.ok };
}

/** The CLI's 1,000,000-step campaign: its own summary line's steps/s and seconds. */
export async function simCampaignStepsPerS(): Promise<{ stepsPerS: number; seconds: number; ok: boolean }> {
  const seeds = `1..${SIM_BENCH_SEEDS}`;
  const args = ['sim', '--seeds', seeds, '--steps', String(SIM_BENCH_STEPS), '--fault-rate', String(SIM_BENCH_FAULT_RATE), '--check-every', String(SIM_BENCH_CHECK_EVERY), '--jobs', String(SIM_BENCH_JOBS)];
  // Exit 1 (a seed failed) still prints the summary; the figure is then flagged, not lost.
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { maxBuffer: 1 << 20 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const m = /^campaign: .*, (\d+) failed, \d+ steps in ([\d.]+) s, (\d+) steps\/s,/m.exec(stdout);
  if (m === null) throw new Error(`sim bench: no campaign line from hypmesh sim ${args.join(' ')}:\n${stdout}`);
  return { stepsPerS: Number(m[3]), seconds: Number(m[2]), ok: m[1] === '0' };
}
