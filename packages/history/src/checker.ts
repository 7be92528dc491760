/**
 * The history checker (DESIGN.md §7, issue 8 item 4): one verdict per check, each a pure function
 * of the history. The checks and what they need:
 *
 *   ok_visible            every ok operation's effect is in the `run` observation (a created parcel
 *                         is there, a reclaimed one is gone), unless a later op on its label changed it
 *   failed_absent         no failed operation's effect is (a refused create left no parcel, a refused
 *                         reclaim left its parcel)
 *   info_at_most_once     an operation with unknown outcome was applied at most once: never two
 *                         parcels with one label in any observation
 *   ownership_equals_boot after teardown and quiescence the core's ownership map equals boot's
 *   invariants_hold       no observation carries an invariant violation
 *   no_orphaned_parcel    no parcel whose owner no longer knows its handle, or whose core grant is gone
 *
 * A check that lacks the observation it needs is `skipped`, with the reason; skipped is not a pass
 * and not a violation (`hypmesh check` says so). Nothing here trusts a reply: effects are found by
 * label in what was observed.
 */
import { operations, type History, type Observation, type ObservedParcel, type Operation } from './history.js';

export const CHECKS = ['ok_visible', 'failed_absent', 'info_at_most_once', 'ownership_equals_boot', 'invariants_hold', 'no_orphaned_parcel'] as const;
export type CheckName = (typeof CHECKS)[number];

export interface Verdict {
  readonly check: CheckName;
  readonly status: 'pass' | 'fail' | 'skipped';
  /** One line per violation (fail) or the reason (skipped). */
  readonly details: readonly string[];
}

export interface CheckReport {
  readonly verdicts: readonly Verdict[];
  /** Whether no check failed (skipped checks do not fail a history). */
  readonly valid: boolean;
  /** Problems with the history itself (unpaired completions); they make it invalid. */
  readonly malformed: readonly string[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const pass = (check: CheckName): Verdict => ({ check, status: 'pass', details: [] });
const verdict = (check: CheckName, details: readonly string[]): Verdict => (details.length === 0 ? pass(check) : { check, status: 'fail', details });
const skipped = (check: CheckName, why: string): Verdict => ({ check, status: 'skipped', details: [why] });

const observations = (h: History, phase: Observation['phase']): Observation[] => h.filter((e): e is Observation => e.type === 'observe' && e.phase === phase);
const last = <T>(xs: readonly T[]): T | undefined => xs[xs.length - 1];

/** Ops on one label, invoked before history index `before`, in invoke order. */
function opsByLabel(ops: readonly Operation[], before: number): Map<number, Operation[]> {
  const m = new Map<number, Operation[]>();
  for (const o of ops) {
    if (o.at >= before || o.invoke.label === undefined || o.invoke.kind === 'other') continue;
    const xs = m.get(o.invoke.label) ?? [];
    xs.push(o);
    m.set(o.invoke.label, xs);
  }
  return m;
}

/**
 * What the ops on a label say about its parcel's presence: `true`/`false` when the last op that
 * could have changed it was ok or fail with a known prior state, `undefined` once an info op left it open.
 */
function expectedPresence(ops: readonly Operation[], onlyDefinite: 'ok' | 'fail'): { expect: boolean; op: Operation } | undefined {
  let present: boolean | undefined = false;
  let decidedBy: { expect: boolean; op: Operation } | undefined;
  for (const o of ops) {
    const creates = o.invoke.kind === 'create_parcel';
    if (o.completion === 'ok') {
      present = creates;
      decidedBy = onlyDefinite === 'ok' ? { expect: present, op: o } : undefined;
    } else if (o.completion === 'fail') {
      decidedBy = onlyDefinite === 'fail' && present !== undefined ? { expect: present, op: o } : undefined;
    } else {
      present = undefined;
      decidedBy = undefined;
    }
  }
  return decidedBy;
}

function effectCheck(check: 'ok_visible' | 'failed_absent', h: History, ops: readonly Operation[]): Verdict {
  let runIndex = -1;
  h.forEach((e, i) => {
    if (e.type === 'observe' && e.phase === 'run') runIndex = i;
  });
  if (runIndex < 0) return skipped(check, 'no `run` observation (taken after the workload, before teardown)');
  const run = h[runIndex] as Observation;
  const details: string[] = [];
  for (const [label, labelOps] of opsByLabel(ops, runIndex)) {
    const d = expectedPresence(labelOps, check === 'ok_visible' ? 'ok' : 'fail');
    if (d === undefined) continue;
    const found = run.parcels.filter((p) => p.label === label);
    const what = `${d.op.invoke.f} of label ${label} (${d.op.completion})`;
    if (d.expect && found.length === 0) details.push(`${what}: its parcel should exist but the RM has none with label ${label}`);
    if (!d.expect && found.length > 0) details.push(`${what}: no parcel should exist but the RM holds ${found.map((p) => hex(p.handle)).join(', ')} with label ${label}`);
  }
  return verdict(check, details);
}

function infoAtMostOnce(h: History, ops: readonly Operation[]): Verdict {
  const infoLabels = new Set(ops.filter((o) => o.completion === 'info' && o.invoke.kind === 'create_parcel').map((o) => o.invoke.label));
  const details: string[] = [];
  for (const o of h) {
    if (o.type !== 'observe') continue;
    const byLabel = new Map<number, ObservedParcel[]>();
    for (const p of o.parcels) byLabel.set(p.label, [...(byLabel.get(p.label) ?? []), p]);
    for (const [label, ps] of byLabel) {
      const labelled = opsByLabel(ops, Number.MAX_SAFE_INTEGER).has(label);
      if (ps.length > 1 && labelled) {
        const why = infoLabels.has(label) ? 'an operation with unknown outcome was applied' : 'an operation was applied';
        details.push(`${o.phase}: ${why} ${ps.length} times: parcels ${ps.map((p) => hex(p.handle)).join(', ')} share label ${label}`);
      }
    }
  }
  return verdict('info_at_most_once', details);
}

/** Differing runs listed per side before the rest is counted (a 600-page share is 1,200 runs). */
const OWNERSHIP_RUNS_SHOWN = 6;

function ownershipEqualsBoot(h: History): Verdict {
  const boot = last(observations(h, 'boot'));
  const final = last(observations(h, 'final'));
  if (boot === undefined || final === undefined) return skipped('ownership_equals_boot', 'needs a `boot` and a `final` observation');
  const b = new Set(boot.ownership);
  const f = new Set(final.ownership);
  const gone = boot.ownership.filter((r) => !f.has(r));
  const added = final.ownership.filter((r) => !b.has(r));
  const lines = (what: string, runs: readonly string[]): string[] =>
    runs.length <= OWNERSHIP_RUNS_SHOWN ? runs.map((r) => `${what} ${r}`) : [...runs.slice(0, OWNERSHIP_RUNS_SHOWN).map((r) => `${what} ${r}`), `${what} … and ${runs.length - OWNERSHIP_RUNS_SHOWN} more run(s)`];
  return verdict('ownership_equals_boot', [...lines('boot had', gone), ...lines('after teardown:', added)]);
}

function invariantsHold(h: History): Verdict {
  const obs = h.filter((e): e is Observation => e.type === 'observe');
  if (obs.length === 0) return skipped('invariants_hold', 'no observation');
  return verdict(
    'invariants_hold',
    obs.flatMap((o) => o.invariantViolations.map((v) => `${o.phase}: ${v}`)),
  );
}

/** The orphan rule on one observation's parcels (exported for the scenarios' own reports). */
export function orphanedParcels(o: Observation): string[] {
  const details: string[] = [];
  for (const p of o.parcels) {
    const known = o.clientHandles[String(p.owner)];
    const forgotten = known !== undefined && !known.includes(p.handle);
    if (!forgotten && p.coreGrant) continue;
    const held = `RM still holds it (${p.state})`;
    const memory = p.coreGrant ? 'its memory is still lent or shared (the core grant is there)' : 'its core grant is gone';
    const owner = forgotten ? `, and VM ${p.owner} no longer knows the handle` : '';
    details.push(`${o.phase}: parcel ${hex(p.handle)} (label ${p.label}) of VM ${p.owner}: ${held}, ${memory}${owner}`);
  }
  return details;
}

function noOrphanedParcel(h: History): Verdict {
  const obs = [last(observations(h, 'run')), last(observations(h, 'final'))].filter((o): o is Observation => o !== undefined);
  if (obs.length === 0) return skipped('no_orphaned_parcel', 'needs a `run` or `final` observation');
  return verdict('no_orphaned_parcel', obs.flatMap(orphanedParcels));
}

/** Every check, in CHECKS order. */
export function checkHistory(h: History): CheckReport {
  const paired = operations(h);
  const ops = paired.ok ? paired.value : [];
  const verdicts: Verdict[] = [
    effectCheck('ok_visible', h, ops),
    effectCheck('failed_absent', h, ops),
    infoAtMostOnce(h, ops),
    ownershipEqualsBoot(h),
    invariantsHold(h),
    noOrphanedParcel(h),
  ];
  const malformed = paired.ok ? [] : paired.error;
  return { verdicts, malformed, valid: malformed.length === 0 && verdicts.every((v) => v.status !== 'fail') };
}

/** The report as `hypmesh check` prints it: one line per check, its details indented. */
export function formatReport(r: CheckReport): string {
  const lines: string[] = [];
  for (const m of r.malformed) lines.push(`malformed history: ${m}`);
  for (const v of r.verdicts) {
    lines.push(`${v.status === 'pass' ? 'PASS' : v.status === 'fail' ? 'FAIL' : 'SKIP'}  ${v.check}`);
    for (const d of v.details) lines.push(`      ${d}`);
  }
  lines.push(r.valid ? 'history valid' : 'history INVALID');
  return lines.join('\n') + '\n';
}
