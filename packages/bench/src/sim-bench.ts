/**
 * `sim_steps_per_s`: actor steps per second of the deterministic simulation (@hypmesh/sim) with
 * random faults, cross-service checks after every step and the whole-memory invariants every
 * SIM_BENCH_CHECK_EVERY steps, the final checks included. Target 20,000 steps/s on the 2-core
 * machine (issue 8: a 1,000,000-step campaign in under 2 minutes). The profile is flat: the stage-2
 * core's per-call checks, table-pool top-ups and space create/destroy, then the RM and VMM, the
 * per-step cross checks, GC (README "Deterministic simulation", Speed).
 */
import { runSim } from '@hypmesh/sim';

export const SIM_BENCH_STEPS = 20_000;
export const SIM_BENCH_FAULT_RATE = 0.01;
export const SIM_BENCH_CHECK_EVERY = 10_000;

export async function simStepsPerS(): Promise<{ stepsPerS: number; ok: boolean }> {
  // A short warm-up run so the measured one sees optimised code.
  await runSim({ seed: 1, steps: 1_000, faultRate: SIM_BENCH_FAULT_RATE, checkEvery: SIM_BENCH_CHECK_EVERY });
  const t = performance.now();
  const r = await runSim({ seed: 2, steps: SIM_BENCH_STEPS, faultRate: SIM_BENCH_FAULT_RATE, checkEvery: SIM_BENCH_CHECK_EVERY });
  return { stepsPerS: (SIM_BENCH_STEPS / (performance.now() - t)) * 1000, ok: r.ok };
}
