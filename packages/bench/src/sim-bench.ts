/**
 * The deterministic simulation's speed (@hypmesh/sim) with random faults, cross-service checks after
 * every step and the whole-memory invariants every SIM_BENCH_CHECK_EVERY steps, the final checks
 * included. Two figures, same bench run:
 *
 *   sim_steps_per_s         a campaign as `hypmesh sim --seeds A..B --jobs N` runs it, N = one per
 *                           CPU: total steps ÷ the campaign's wall time (workers' start-up
 *                           included). The target, 20,000 steps/s, is this one: issue 8 asks for a
 *                           1,000,000-step campaign in under 2 minutes on the 2-core machine.
 *   sim_steps_per_s_single  one run in this thread, after a warm-up run.
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
/** Seeds per job in the campaign: enough that every worker stays busy most of the run. */
const SEEDS_PER_JOB = 2;

const CLI = fileURLToPath(new URL('../../../tools/cli/dist/main.js', import.meta.url));

export async function simStepsPerS(): Promise<{ stepsPerS: number; ok: boolean }> {
  // A short warm-up run so the measured one sees optimised code.
  await runSim({ seed: 1, steps: 1_000, faultRate: SIM_BENCH_FAULT_RATE, checkEvery: SIM_BENCH_CHECK_EVERY });
  const t = performance.now();
  const r = await runSim({ seed: 2, steps: SIM_BENCH_STEPS, faultRate: SIM_BENCH_FAULT_RATE, checkEvery: SIM_BENCH_CHECK_EVERY });
  return { stepsPerS: (SIM_BENCH_STEPS / (performance.now() - t)) * 1000, ok: r.ok };
}

/** The CLI's campaign over SEEDS_PER_JOB seeds per job: its own summary line's steps/s. */
export async function simCampaignStepsPerS(): Promise<{ stepsPerS: number; ok: boolean }> {
  const seeds = `2..${1 + SEEDS_PER_JOB * SIM_BENCH_JOBS}`;
  const args = ['sim', '--seeds', seeds, '--steps', String(SIM_BENCH_STEPS), '--fault-rate', String(SIM_BENCH_FAULT_RATE), '--check-every', String(SIM_BENCH_CHECK_EVERY), '--jobs', String(SIM_BENCH_JOBS)];
  // Exit 1 (a seed failed) still prints the summary; the figure is then flagged, not lost.
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { maxBuffer: 1 << 20 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const m = /^campaign: .*, (\d+) failed, .*, (\d+) steps\/s,/m.exec(stdout);
  if (m === null) throw new Error(`sim bench: no campaign line from hypmesh sim ${args.join(' ')}:\n${stdout}`);
  return { stepsPerS: Number(m[2]), ok: m[1] === '0' };
}
