/**
 * The CI simulation (issue 8 "Done when"): 100,000 steps with random faults at every boundary must
 * pass every checker. Runtime: 8–13 s on the 2-core machine with other jobs running (README
 * "Deterministic simulation"); the timeout leaves room for a much busier machine.
 */
import { expect, test } from 'vitest';
import { runSim } from './simulation.js';

test('sim_100k_steps_random_faults_pass_every_checker', async () => {
  const r = await runSim({ seed: 2026, steps: 100_000, faultRate: 0.01, checkEvery: 10_000 });
  expect(r.failure?.violations ?? [], `seed ${r.seed}: replay with \`hypmesh sim --seed ${r.seed} --steps 100000 --fault-rate 0.01 --check-every 10000\``).toEqual([]);
  expect(r.ok).toBe(true);
  expect(r.faultsInjected).toBeGreaterThan(1_000);
}, 240_000);
