/**
 * `--html report.html` of `hypmesh sim` and `hypmesh check` (issue 12 item 2): turns a simulation
 * run or a checked history into the console's RunReport (tools/console report.ts, which renders
 * the page and draws the maps with the console's own map code) and writes the one file.
 *
 * Where each part comes from:
 * - sim: the event log (kept for the report), the failure and its violations, the world's ownership
 *   map and grants at the start, when a checker first failed and at the end (runReplay's `look`);
 *   the verdict per checker is read from the violations' prefixes (packages/sim checks.ts words
 *   them: cross/rm bug = step checks, core/rm = core checks, final = final checks);
 * - check: the history's entries, its observations' ownership lines (boot, the observation where
 *   the first violation was found, final) and the checker's six verdicts.
 */
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import type { ReportEntry, ReportMap, ReportVerdict, RunReport, RunView, GrantView } from '@hypmesh/console';
import { parseOwnershipRun, type CheckReport, type History, type Observation } from '@hypmesh/history';
import { STEP_MS, type SimMoment, type SimResult, type World } from '@hypmesh/sim';
import { ownershipMap } from '@hypmesh/stage2';

/** What the world looked like at one moment: the ownership runs and the grants (for lent frames' colour). */
export interface WorldLook {
  readonly runs: readonly RunView[];
  readonly grants: readonly GrantView[];
}

/** The world's whole ownership map (paged like the core's OwnershipMap) and its grants. */
export function lookAt(w: World): WorldLook {
  const runs: RunView[] = [];
  for (let base: number | undefined = 0; base !== undefined; ) {
    const page = ownershipMap(w.s, base, w.s.memory.frameCount - base);
    if (!page.ok) break;
    for (const r of page.value.runs)
      runs.push({ base: r.base, count: r.count, owner: r.owner, kind: r.kind, host: r.host, hyp: r.hyp, granule: r.rmi, grant: r.grant === 0 ? '' : String(r.grant), pins: r.pins, guestShares: r.guestShares });
    base = page.value.next;
  }
  const grants = [...w.s.grants.values()].map((g) => ({ id: String(g.id), type: g.type, owner: g.owner, acl: g.acl.map((e) => e.vmid), borrowers: [...g.borrowers.keys()], frames: g.frames }));
  return { runs, grants };
}

/** The sim's checkers, each with the violation prefixes it writes (packages/sim checks.ts). */
const SIM_CHECKERS: readonly { readonly check: string; readonly when: string; readonly owns: (v: string) => boolean }[] = [
  { check: 'actors', when: 'no actor threw', owns: (v) => / threw: /.test(v) },
  { check: 'step checks', when: 'cross-service rules, after every step', owns: (v) => v.startsWith('cross:') || v.startsWith('rm bug:') },
  { check: 'core checks', when: 'core and RM invariants, granule owners, every --check-every steps', owns: (v) => v.startsWith('core:') || v.startsWith('rm:') },
  { check: 'final checks', when: 'after every session closed: all back with the host or reported leaked', owns: (v) => v.startsWith('final:') },
];

/** Timeline lines of the sim's event log (simulation.ts writes them). */
function simEntry(line: string, steps: number): ReportEntry {
  const step = /^#(\d+) /.exec(line);
  if (step !== null) return { kind: 'step', step: `#${step[1]}`, text: line.slice(step[0].length) };
  const fault = /^fault (\S+) .* t=(\d+) /.exec(line);
  if (fault !== null) {
    // The simulated clock moves STEP_MS per step: the fault's time names its step.
    const at = Math.floor(Number(fault[2]) / STEP_MS);
    return { kind: 'fault', rule: fault[1]!, step: at < steps ? `#${at}` : 'final', text: line };
  }
  for (const [prefix, kind] of [['teardown ', 'teardown'], ['hlos reclaim', 'hlos'], ['final reclaim', 'final'], ['leaked ', 'leak'], ['result ', 'result']] as const)
    if (line.startsWith(prefix)) return { kind, text: line };
  return { kind: 'other', text: line };
}

/** The console's likelyCause (report.ts) over what a client or actor did: passed in, as the console package loads late. */
export type CauseFinder = (timeline: readonly ReportEntry[], violation: string, before: number) => { at: number; why: string } | undefined;

/** A sim run as a report. `looks` are the world at its moments (runReplay's `look`). */
export function simReport(r: SimResult, looks: ReadonlyMap<SimMoment, WorldLook>, command: string, likelyCauseOf: CauseFinder): RunReport {
  const timeline: ReportEntry[] = r.log.map((l) => simEntry(l, r.steps));
  const f = r.failure;
  const violations = f?.violations ?? [];
  let failure: RunReport['failure'];
  if (f !== undefined) {
    // The violations go where the run stopped: before the trailing leaked and result lines.
    let at = timeline.length;
    while (at > 0 && (timeline[at - 1]!.kind === 'leak' || timeline[at - 1]!.kind === 'result')) at--;
    const where = f.step < r.steps ? `#${f.step}` : 'final';
    timeline.splice(at, 0, ...violations.map((v) => ({ kind: 'violation', step: where, text: v })));
    const actor = r.replay.schedule[f.step]?.[0];
    const found = f.step < r.steps ? `after step #${f.step} (${actor})` : `by the final checks, after step #${r.steps - 1} and teardown`;
    let cause = likelyCauseOf(timeline, violations[0] ?? '', at);
    if (cause === undefined && f.step < r.steps) {
      const own = timeline.findIndex((e) => e.kind === 'step' && e.step === `#${f.step}`);
      if (own >= 0) cause = { at: own, why: 'the step after which the checker failed (nothing earlier is named)' };
    }
    failure = { violation: violations[0] ?? '', where: found, at, ...(cause && { cause }) };
  }
  const finalRan = f === undefined || f.step >= r.steps;
  const verdicts: ReportVerdict[] = SIM_CHECKERS.map((c) => {
    const mine = violations.filter(c.owns);
    if (mine.length > 0) return { check: c.check, status: 'fail', details: mine };
    if (c.check === 'final checks' && !finalRan) return { check: c.check, status: 'not run', details: ['the run stopped at the first failing step'] };
    return { check: c.check, status: 'pass', details: [c.when] };
  });
  const moments: readonly [SimMoment, string][] = [
    ['start', 'before the first step'],
    ['failure', f === undefined ? '' : `when the checkers first failed, ${failure!.where}`],
    // A sim run ends where it fails: a failing step stops it, and the final checks run at the end.
    ['end', f === undefined ? 'after every session closed and HLOS reclaimed' : f.step < r.steps ? 'the same moment as the failure: the run stopped there (no teardown)' : 'the same moment as the failure: after every session closed and HLOS reclaimed'],
  ];
  const maps: ReportMap[] = moments.flatMap(([moment, note]) => {
    const look = looks.get(moment);
    return look === undefined ? [] : [{ moment, note, runs: look.runs, grants: look.grants }];
  });
  return {
    title: `hypmesh sim, seed ${r.seed}`,
    command,
    ok: r.ok,
    summary: [`${r.steps} steps, ${r.faultsInjected} fault(s) injected, ${r.leaked.length} leak(s) reported, log hash ${r.logHash}`, ...r.leaked.slice(0, LEAKS_SHOWN).map((l) => `reported leak: ${l}`), ...(r.leaked.length > LEAKS_SHOWN ? [`… and ${r.leaked.length - LEAKS_SHOWN} more reported leak(s)`] : [])],
    verdicts,
    ...(failure && { failure }),
    faults: timeline.flatMap((e, i) => (e.kind === 'fault' ? [i] : [])),
    maps,
    timeline,
  };
}


/** Which observation phase a check's violation is about (checker.ts: the effect checks read `run`, ownership `final`, the rest name it). */
function phaseOf(check: string, detail: string): Observation['phase'] | undefined {
  if (check === 'ok_visible' || check === 'failed_absent') return 'run';
  if (check === 'ownership_equals_boot') return 'final';
  return /^(boot|run|final):/.exec(detail)?.[1] as Observation['phase'] | undefined;
}

const short = (v: unknown): string => {
  if (v === undefined) return '';
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
};

function observedMap(o: Observation): { runs: RunView[]; grants: GrantView[] } {
  const runs = o.ownership.flatMap((line) => {
    const p = parseOwnershipRun(line);
    // A history records the owner and the host's view only: the rest is unknown ('?' draws as NS).
    return p === undefined ? [] : [{ base: p.base, count: p.count, owner: p.owner, kind: 'memory', host: p.host, hyp: '?', granule: '?', grant: '', pins: 0, guestShares: 0 }];
  });
  return { runs, grants: [] };
}

/** A checked history as a report. */
export function checkReport(h: History, rep: CheckReport, command: string, likelyCauseOf: CauseFinder): RunReport {
  const timeline: ReportEntry[] = [];
  const obsAt = new Map<Observation, number>();
  const openLabel = new Map<number, number | undefined>();
  h.forEach((e, i) => {
    if (e.type === 'observe') {
      obsAt.set(e, timeline.length);
      timeline.push({ kind: 'observe', step: `${i}`, text: `${e.phase}: ${e.parcels.length} parcel(s), ${e.ownership.length} ownership run(s), ${e.invariantViolations.length} invariant violation(s)` });
    } else if (e.type === 'invoke') {
      openLabel.set(e.process, e.label);
      timeline.push({ kind: 'invoke', step: `${i}`, text: `process ${e.process} ${e.f}${e.label === undefined ? '' : ` label ${e.label}`} ${short(e.value)}`.trim() });
    } else {
      const label = openLabel.get(e.process);
      const rule = /fault[_ ]([\w-]+)/.exec(e.error ?? '')?.[1];
      timeline.push({ kind: e.type, step: `${i}`, ...(rule && { rule }), text: `process ${e.process} ${e.f}${label === undefined ? '' : ` label ${label}`}${e.error === undefined ? '' : `: ${e.error}`} ${short(e.value)}`.trim() });
    }
  });
  // Each violation after the observation it is about (else at the end); the first in timeline order is the first found.
  const observations = h.filter((e): e is Observation => e.type === 'observe');
  const lastOf = (phase: Observation['phase'] | undefined): Observation | undefined => [...observations].reverse().find((o) => o.phase === phase);
  const placed: { after: number; entry: ReportEntry; obs?: Observation }[] = [];
  for (const v of rep.verdicts)
    if (v.status === 'fail')
      for (const d of v.details) {
        const obs = lastOf(phaseOf(v.check, d));
        placed.push({ after: obs === undefined ? timeline.length : obsAt.get(obs)! + 1, entry: { kind: 'violation', step: v.check, text: `${v.check}: ${d}` }, ...(obs && { obs }) });
      }
  for (const m of rep.malformed) placed.push({ after: timeline.length, entry: { kind: 'violation', step: 'malformed', text: m } });
  placed.sort((a, b) => a.after - b.after);
  placed.forEach((p, k) => timeline.splice(p.after + k, 0, p.entry));
  let failure: RunReport['failure'];
  const first = placed[0];
  if (first !== undefined) {
    const at = first.after;
    const cause = likelyCauseOf(timeline, first.entry.text, at);
    failure = { violation: first.entry.text, where: first.obs === undefined ? 'at the end of the history' : `at the ${first.obs.phase} observation (history entry ${timeline[at - 1]?.step ?? '?'})`, at, ...(cause && { cause }) };
  }
  const boot = lastOf('boot');
  const end = lastOf('final') ?? observations[observations.length - 1];
  const maps: ReportMap[] = [];
  if (boot !== undefined) maps.push({ moment: 'start', note: 'the boot observation', ...observedMap(boot) });
  if (first?.obs !== undefined && first.obs !== boot && first.obs !== end) maps.push({ moment: 'failure', note: `the ${first.obs.phase} observation, where the first violation was found`, ...observedMap(first.obs) });
  if (end !== undefined && end !== boot) maps.push({ moment: 'end', note: `the ${end.phase} observation${first?.obs === end ? ', where the first violation was found' : ''}`, ...observedMap(end) });
  const ops = h.filter((e) => e.type !== 'observe' && e.type !== 'invoke');
  return {
    title: 'hypmesh check',
    command,
    ok: rep.valid,
    summary: [`${h.length} history entries: ${ops.length} completion(s) (${['ok', 'fail', 'info'].map((t) => `${ops.filter((o) => o.type === t).length} ${t}`).join(', ')}), ${observations.length} observation(s)`],
    verdicts: rep.verdicts.map((v) => ({ check: v.check, status: v.status, details: v.details })),
    ...(failure && { failure }),
    // A history records no fault events: a completion whose error names an injected rule stands for one.
    faults: timeline.flatMap((e, i) => (e.rule !== undefined ? [i] : [])),
    maps,
    timeline,
  };
}

/** Timeline kinds that are something a client or actor did (sim: step, hlos, final; check: the operations). */
/** Reported leaks listed in the summary before the rest is counted. */
const LEAKS_SHOWN = 20;

const ACTIONS: ReadonlySet<string> = new Set(['step', 'hlos', 'final', 'invoke', 'ok', 'fail', 'info']);

/** Renders and writes the report; returns the page's size in bytes. */
export async function writeHtmlReport(file: string, build: (likelyCause: CauseFinder) => RunReport): Promise<number> {
  // Loaded here, not at the top: the sim image (Dockerfile) ships the CLI without the console.
  const { reportHtml, likelyCause } = await import('@hypmesh/console').catch((e: unknown) => {
    throw new InvalidArgumentError(`--html needs @hypmesh/console (tools/console), which this installation lacks: ${e instanceof Error ? e.message : String(e)}`);
  });
  const html = reportHtml(build((t, v, before) => likelyCause(t, v, before, ACTIONS)));
  try {
    writeFileSync(file, html);
  } catch (e) {
    // A path that cannot be written is bad input (exit 2, main.ts crashed), not a crash.
    throw new InvalidArgumentError(`--html ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return Buffer.byteLength(html);
}
