/**
 * `hypmesh sim`: the deterministic simulation (@hypmesh/sim) from the command line. The package
 * is pure; this file reads the plan and replay files and writes the log and replay files.
 *
 *   hypmesh sim --seed N --steps K [--faults plan.json] [--fault-rate p] [--check-every N]
 *               [--log FILE] [--out replay.json]
 *   hypmesh sim --seeds A..B --steps K ...      a campaign: one run per seed, stops at nothing,
 *               [--jobs N]                      exits 1 if any seed failed (each writes its replay);
 *                                               N worker threads (default one per CPU), output
 *                                               in seed order whatever N
 *   hypmesh sim --replay FILE [--log FILE]      reproduce a run from its replay file
 *   hypmesh sim --seed N ... --html report.html one run's self-contained HTML report (also with
 *                                               --replay; html-report.ts, README "Console")
 *   hypmesh sim --replay FILE --shrink [--out small.json]
 *                                               smallest schedule and plan that still fail
 *   (--shrink also works on a fresh --seed run that fails)
 *
 * HYPMESH_SIM_SEEDS (e.g. "0..999") and JOB_COMPLETION_INDEX with --seeds-per-index split a
 * campaign over a Kubernetes Indexed Job: pod i runs seeds [base + i·n, base + (i+1)·n).
 *
 * Exit status: 0 every run passed; 1 a run failed (its seed, first violations and replay file are
 * printed); 2 bad arguments.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadPlanJson, type FaultPlan } from '@hypmesh/fault';
import { replayOf, runReplay, shrink, type ReplayFile, type SimMoment, type SimResult } from '@hypmesh/sim';
import { integer } from './args.js';
import { lookAt, simReport, writeHtmlReport, type WorldLook } from './html-report.js';
import { emit, progress } from './output.js';
import { defaultJobs, runCampaign } from './sim-campaign.js';

const fraction = (text: string): number => {
  const p = Number(text);
  if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError('expected a probability in [0, 1]');
  return p;
};

const positive = (text: string): number => {
  const n = integer(text);
  if (n === 0) throw new InvalidArgumentError('expected at least 1');
  return n;
};

/** "A..B" (both inclusive) → [A, B]. */
export const seedRange = (text: string): readonly [number, number] => {
  const m = /^(\d+)\.\.(\d+)$/.exec(text.trim());
  if (m === null || Number(m[2]) < Number(m[1])) throw new InvalidArgumentError('expected A..B with A <= B');
  return [Number(m[1]), Number(m[2])];
};

interface SimOpts {
  seed?: number;
  seeds?: readonly [number, number];
  seedsPerIndex?: number;
  steps: number;
  faults?: string;
  faultRate: number;
  checkEvery: number;
  log?: string;
  out?: string;
  replay?: string;
  shrink?: boolean;
  jobs: number;
  html?: string;
}

function readPlan(file: string | undefined): FaultPlan {
  if (file === undefined) return { rules: [] };
  const plan = loadPlanJson(readFileSync(file, 'utf8'));
  if (!plan.ok) {
    process.stderr.write(`hypmesh sim: ${file}:\n${plan.error.map((i) => `  ${i.path}: ${i.message}`).join('\n')}\n`);
    process.exit(2);
  }
  return plan.value;
}

/** A line of the run's text output; under --output json, progress on stderr (results are emitted as JSON lines). */
const say = progress;

/** One seed's result: a text block, or one JSON object per seed under --output json (JSON lines). */
function report(r: SimResult, ms: number, out: string | undefined): void {
  const sps = Math.round((r.steps / Math.max(1, ms)) * 1000);
  const summary = { seed: r.seed, ok: r.ok, steps: r.steps, faultsInjected: r.faultsInjected, leaked: r.leaked, logHash: r.logHash, stepsPerS: sps };
  if (r.ok) {
    emit(summary, () => say(`seed ${r.seed}: ok, ${r.steps} steps, ${r.faultsInjected} faults injected, ${r.leaked.length} leak(s) reported, log ${r.logHash}, ${sps} steps/s`));
    return;
  }
  const file = out ?? `sim-replay-${r.seed}.json`;
  writeFileSync(file, `${JSON.stringify(r.replay)}\n`);
  emit({ ...summary, failure: r.failure, replayFile: file }, () => {
    say(`seed ${r.seed}: FAILED after step ${r.failure!.step} (${r.faultsInjected} faults injected, log ${r.logHash})`);
    for (const v of r.failure!.violations.slice(0, 10)) say(`  ${v}`);
    say(`  replay: hypmesh sim --replay ${file}   shrink: hypmesh sim --replay ${file} --shrink`);
  });
}

/** The seeds this process runs: --seed, --seeds, or its Indexed Job slice. */
function seedsOf(o: SimOpts): number[] {
  const env = process.env['HYPMESH_SIM_SEEDS'];
  const range = o.seeds ?? (env === undefined ? undefined : seedRange(env));
  if (range === undefined) return [o.seed ?? 1];
  let [lo, hi] = range;
  const index = process.env['JOB_COMPLETION_INDEX'];
  if (index !== undefined && o.seedsPerIndex !== undefined) {
    lo = lo + Number(index) * o.seedsPerIndex;
    hi = Math.min(hi, lo + o.seedsPerIndex - 1);
  }
  return Array.from({ length: Math.max(0, hi - lo + 1) }, (_, i) => lo + i);
}

/**
 * One run with its HTML report: the event log kept and the world looked at (start, failure, end),
 * in this thread (a report is one run, never a campaign).
 */
async function runWithReport(replay: ReplayFile, o: SimOpts, command: string): Promise<SimResult> {
  const looks = new Map<SimMoment, WorldLook>();
  const r = await runReplay(replay, true, (moment, w) => looks.set(moment, lookAt(w)));
  const bytes = await writeHtmlReport(o.html!, (cause) => simReport(r, looks, command, cause));
  say(`report: ${o.html} (${bytes} bytes)`);
  return r;
}

/** The command line that runs `o`'s fresh run again (the report shows it). */
function simCommandLine(o: SimOpts, seed: number): string {
  return ['hypmesh sim', `--seed ${seed}`, `--steps ${o.steps}`, `--check-every ${o.checkEvery}`, ...(o.faults === undefined ? [] : [`--faults ${o.faults}`]), ...(o.faultRate > 0 ? [`--fault-rate ${o.faultRate}`] : [])].join(' ');
}

async function simCommand(o: SimOpts): Promise<void> {
  if (o.replay !== undefined) {
    const replay = JSON.parse(readFileSync(o.replay, 'utf8')) as ReplayFile;
    if (o.shrink) return shrinkAndPrint(replay, o.out);
    const t = performance.now();
    const r = o.html === undefined ? await runReplay(replay, o.log !== undefined) : await runWithReport(replay, o, `hypmesh sim --replay ${o.replay}`);
    if (o.log !== undefined) writeFileSync(o.log, r.log.map((l) => `${l}\n`).join(''));
    report(r, performance.now() - t, o.out);
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  const plan = readPlan(o.faults);
  let failed = 0;
  const seeds = seedsOf(o);
  if (o.html !== undefined) {
    if (seeds.length !== 1) {
      process.stderr.write('hypmesh sim: --html reports one run: give --seed or --replay, not a campaign\n');
      process.exit(2);
    }
    const t = performance.now();
    const r = await runWithReport(replayOf({ seed: seeds[0]!, steps: o.steps, plan, faultRate: o.faultRate, checkEvery: o.checkEvery }), o, simCommandLine(o, seeds[0]!));
    if (o.log !== undefined) writeFileSync(o.log, r.log.map((l) => `${l}\n`).join(''));
    report(r, performance.now() - t, o.out);
    if (!r.ok && o.shrink) await shrinkAndPrint(r.replay, o.out);
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  const t0 = performance.now();
  const jobs = Math.min(o.jobs, seeds.length);
  await runCampaign(seeds, { steps: o.steps, plan, faultRate: o.faultRate, checkEvery: o.checkEvery, keepLog: o.log !== undefined }, jobs, async ({ result: r, ms }) => {
    if (o.log !== undefined) writeFileSync(seeds.length === 1 ? o.log : `${o.log}.${r.seed}`, r.log.map((l) => `${l}\n`).join(''));
    report(r, ms, seeds.length === 1 ? o.out : undefined);
    if (!r.ok) {
      failed++;
      if (o.shrink) await shrinkAndPrint(r.replay, o.out);
    }
  });
  if (seeds.length > 1) {
    const s = (performance.now() - t0) / 1000;
    const steps = seeds.length * o.steps;
    const campaign = { seeds: seeds.length, first: seeds[0], last: seeds.at(-1), failed, steps, seconds: Number(s.toFixed(1)), stepsPerS: Math.round(steps / s), jobs };
    emit({ campaign }, () => say(`campaign: ${seeds.length} seed(s) ${seeds[0]}..${seeds.at(-1)}, ${failed} failed, ${steps} steps in ${s.toFixed(1)} s, ${campaign.stepsPerS} steps/s, ${jobs} job(s)`));
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

async function shrinkAndPrint(replay: ReplayFile, out: string | undefined): Promise<void> {
  say(`shrinking: ${replay.schedule.length} steps, ${replay.plan.rules.length} rules`);
  const { replay: small, result } = await shrink(replay, (steps, rules) => say(`  still failing with ${steps} steps, ${rules} rules`));
  if (result.ok) {
    say('the replay does not fail: nothing to shrink');
    return;
  }
  const file = out ?? `sim-replay-${small.seed}-min.json`;
  writeFileSync(file, `${JSON.stringify(small, null, 1)}\n`);
  emit({ shrunk: { file, schedule: small.schedule, rules: small.plan.rules, violations: result.failure!.violations } }, () => {
    say(`minimal failing schedule (${small.schedule.length} steps, ${small.plan.rules.length} rules), written to ${file}:`);
    for (const [i, [actor, draw]] of small.schedule.entries()) say(`  ${i}: ${actor} draw ${draw}`);
    for (const rule of small.plan.rules) say(`  rule ${rule.id}: ${rule.boundary} ${JSON.stringify(rule.match)} → ${rule.action.kind}`);
    for (const v of result.failure!.violations.slice(0, 10)) say(`  violation: ${v}`);
  });
  process.exitCode = 1;
}

export function registerSimCommand(program: Command): void {
  program
    .command('sim')
    .description('deterministic simulation of core, RM and VMM in one process (seeded; replay and shrink failures)')
    .option('--seed <n>', 'the run\'s seed', integer)
    .option('--seeds <A..B>', 'a campaign: every seed from A to B', seedRange)
    .option('--seeds-per-index <n>', 'with JOB_COMPLETION_INDEX: this pod runs n seeds of the range, from A + index·n', integer)
    .addOption(new Option('--steps <k>', 'actor steps per run').argParser(integer).default(10_000))
    .option('--faults <plan.json>', 'a fault plan (hypmesh.fault.v1 JSON)')
    .addOption(new Option('--fault-rate <p>', 'probability of each random fault per matching call').argParser(fraction).default(0))
    .addOption(new Option('--check-every <n>', 'whole-memory core and RM invariants every n steps (cross-service checks run every step)').argParser(integer).default(1))
    .option('--log <file>', 'write the event log (one line per event)')
    .option('--out <replay.json>', 'where to write the replay file of a failure (or the shrunk one)')
    .option('--replay <file>', 'run a replay file')
    .option('--shrink', 'shrink a failing run to a minimal schedule and plan')
    .option('--html <report.html>', 'write one run\'s self-contained HTML report (timeline, faults, ownership maps, verdicts)')
    .addOption(new Option('--jobs <n>', 'a campaign\'s worker threads (seeds run in parallel; output stays in seed order)').argParser(positive).default(defaultJobs(), 'one per CPU'))
    .action((o: SimOpts) => simCommand(o));
}
