#!/usr/bin/env node
/**
 * Every line of the simulation's event log for a fixed set of seeds, for comparing two builds
 * byte for byte (a speed-up must not change behaviour, issue 8):
 *
 *   node scripts/sim-log-digest.mjs [ROOT] > after.log     ROOT: a checkout whose dist is built (default: this one)
 *   cmp before.log after.log
 *
 * Seeds 1..20, 3,000 steps each, random faults at 1% and 5%, core checks every 500 steps.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(process.argv[2] ?? new URL('..', import.meta.url).pathname);
const { runSim } = await import(pathToFileURL(`${root}/packages/sim/dist/index.js`).href);
const SEEDS = 20;
const STEPS = Number(process.env.SIM_DIGEST_STEPS ?? 3000);
for (let seed = 1; seed <= SEEDS; seed++) {
  const r = await runSim({ seed, steps: STEPS, faultRate: seed % 2 === 0 ? 0.01 : 0.05, checkEvery: 500, keepLog: true });
  process.stdout.write(`== seed ${seed} ok=${r.ok} hash=${r.logHash} faults=${r.faultsInjected}\n`);
  for (const line of r.log) process.stdout.write(`${line}\n`);
}
