/**
 * The seeded scheduler (FoundationDB's simulation, TigerBeetle's VOPR): `runSim` builds a world,
 * draws a schedule of actor steps from the seed, starts one actor per step without waiting for it,
 * lets every call that can finish finish, moves the simulated clock by STEP_MS (lease expiry, RM
 * waits, injected delays fall due), then runs the checkers. After the last step every session
 * closes, HLOS reclaims what it still holds, and the final checks run.
 *
 * Determinism: the only sources of choice are the seed (schedule), each step's own draw (the
 * actor's picks) and the engine's per-rule streams (faults); promise callbacks run in a fixed
 * order, and `settle` lets them all run before the clock moves. So the same replay (seed, schedule,
 * plan) gives a byte-identical event log.
 *
 * A replay file is the whole run as data: seed, checkEvery, the effective plan (random faults
 * included as rules) and the schedule. `shrink` drops schedule steps and plan rules while the run
 * still fails, and returns the smallest replay found.
 */
import { Prng, type FaultEvent, type FaultPlan } from '@hypmesh/fault';
import { ownershipCounts } from '@hypmesh/stage2';
import { ACTORS, ACTOR_INDEX, ClientState, hlosReclaim, hlosReclaimFor } from './actors.js';
import { coreChecks, finalChecks, stepChecks } from './checks.js';
import { withRandomFaults } from './random-faults.js';
import { buildWorld, type World } from './world.js';

/** Simulated milliseconds per step. */
export const STEP_MS = 1;
/** Rounds of (settle, advance DRAIN_STEP_MS) the final phase may take before it calls the run hung. */
const DRAIN_ROUNDS_MAX = 20_000;
const DRAIN_STEP_MS = 10;
/** HLOS's attempts to reclaim one parcel at the end (faults stay armed). */
const FINAL_RECLAIM_ATTEMPTS = 8;

/** One step: the actor's name and the u32 its picks are drawn from. */
export type ScheduleEntry = readonly [actor: string, draw: number];

export interface ReplayFile {
  readonly version: 1;
  readonly seed: number;
  readonly checkEvery: number;
  readonly plan: FaultPlan;
  readonly schedule: readonly ScheduleEntry[];
}

export interface SimOptions {
  readonly seed: number;
  readonly steps: number;
  readonly plan?: FaultPlan;
  /** Probability of each random-fault rule per matching call (random-faults.ts); 0 = none. */
  readonly faultRate?: number;
  /** Core (whole-memory) checks every N steps; the cheap checks run after every step. */
  readonly checkEvery?: number;
  /** Keep every event-log line in the result (tests, --log); else only the hash. */
  readonly keepLog?: boolean;
}

export interface SimFailure {
  /** The step after which a checker failed (steps = the final phase). */
  readonly step: number;
  readonly violations: readonly string[];
}

export interface SimResult {
  readonly ok: boolean;
  readonly seed: number;
  readonly steps: number;
  readonly failure?: SimFailure;
  readonly log: readonly string[];
  /** FNV-1a of the whole log (every line and its newline), hex. */
  readonly logHash: string;
  readonly faultsInjected: number;
  readonly leaked: readonly string[];
  readonly replay: ReplayFile;
}

/**
 * Lets every promise callback that can run, run. Node runs a tick queued by a microtask only once
 * the microtask queue is empty (processTicksAndRejections: the ticks, then every microtask, again
 * while ticks remain), so the tick resumes the simulation exactly where a macrotask turn
 * (setImmediate) would, without an event-loop iteration per call (two per step). The tick is
 * queued from a microtask: queued from synchronous code it would run before the microtasks
 * already waiting.
 */
const settle = (): Promise<void> => new Promise((resolve) => queueMicrotask(() => process.nextTick(resolve)));

const TOTAL_WEIGHT = ACTORS.reduce((n, a) => n + a.weight, 0);

/** The schedule of `seed`: `steps` actors drawn by weight, each with its own draw. */
export function scheduleOf(seed: number, steps: number): ScheduleEntry[] {
  const rng = new Prng(seed);
  const out: ScheduleEntry[] = [];
  for (let i = 0; i < steps; i++) {
    let x = rng.nextIntInclusive(0, TOTAL_WEIGHT - 1);
    let k = 0;
    while (x >= ACTORS[k]!.weight) x -= ACTORS[k++]!.weight;
    out.push([ACTORS[k]!.name, rng.nextU32()]);
  }
  return out;
}

/** The replay of a fresh run. */
export function replayOf(o: SimOptions): ReplayFile {
  return { version: 1, seed: o.seed >>> 0, checkEvery: Math.max(1, o.checkEvery ?? 1), plan: withRandomFaults(o.plan ?? { rules: [] }, o.faultRate ?? 0), schedule: scheduleOf(o.seed >>> 0, o.steps) };
}

export function runSim(o: SimOptions): Promise<SimResult> {
  return runReplay(replayOf(o), o.keepLog ?? false);
}

class EventLog {
  readonly lines: string[] = [];
  private hash = 0x811c9dc5;
  constructor(private readonly keep: boolean) {}
  add(line: string): void {
    if (this.keep) this.lines.push(line);
    // The line, then its newline: no concatenated copy of every line.
    this.hash = fnv1a32Step(fnv1a32Step(this.hash, line), '\n');
  }
  get hex(): string {
    return (this.hash >>> 0).toString(16).padStart(8, '0');
  }
}

/** FNV-1a (the engine's rule-id hash, prng.ts fnv1a32) continued over `text`: the whole log's hash, line by line. */
function fnv1a32Step(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const faultLine = (e: FaultEvent): string => `fault ${e.ruleId} at ${e.boundary} ${e.rmMessage ?? e.method ?? ''} op ${e.globalOpIndex} t=${e.timeMs} ${e.action.kind}`;

/** When `runReplay` lets a caller look at the world (the HTML report's ownership maps). */
export type SimMoment = 'start' | 'failure' | 'end';

/**
 * Runs a replay file: the one way a simulation runs (a fresh run is the replay of its seed).
 * `look`, if given, sees the world at the start, when a checker first fails, and at the end; it
 * must only read (the run stays the same run).
 */
export async function runReplay(replay: ReplayFile, keepLog = false, look?: (moment: SimMoment, w: World) => void): Promise<SimResult> {
  const log = new EventLog(keepLog);
  let faults = 0;
  const w = buildWorld(replay.plan, replay.seed, (e) => {
    faults++;
    log.add(faultLine(e));
  });
  const c = new ClientState();
  const boot = ownershipCounts(w.s);
  look?.('start', w);
  let inflight = 0;
  const bugs: string[] = [];
  const start = (what: string, p: Promise<string>): void => {
    inflight++;
    // Counted down in both handlers rather than by a .finally (two promises and a turn per step):
    // `inflight` is read only after a settle, when every handler has run either way.
    p.then(
      (res) => {
        inflight--;
        log.add(`${what} ${res}`);
      },
      (e: unknown) => {
        inflight--;
        bugs.push(`${what} threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      },
    );
  };
  watchTeardowns(w, c, log, start);

  let failure: SimFailure | undefined;
  const steps = replay.schedule.length;
  for (let i = 0; i < steps && failure === undefined; i++) {
    const [name, draw] = replay.schedule[i]!;
    const k = ACTOR_INDEX.get(name);
    if (k === undefined) throw new Error(`sim: replay names unknown actor ${name}`);
    start(`#${i} ${name}`, ACTORS[k]!.run(w, c, new Prng(draw)));
    await settle();
    w.clock.advance(STEP_MS);
    await settle();
    const v = bugs.length > 0 ? bugs.splice(0) : stepChecks(w, c);
    const all = v.length === 0 && (i + 1) % replay.checkEvery === 0 ? coreChecks(w, c) : v;
    if (all.length > 0) failure = { step: i, violations: all };
  }
  if (failure !== undefined) look?.('failure', w);

  if (failure === undefined) {
    // The end: every client goes away (leases too), then HLOS takes back what it lent.
    for (const s of c.sessions.splice(0)) w.vmm.endSession(s.id);
    w.vmm.endLeases();
    await drain(w, () => inflight === 0 && w.vmm.counts().vms === 0);
    for (const p of [...c.parcels]) {
      for (let n = 0; n < FINAL_RECLAIM_ATTEMPTS && c.parcels.includes(p); n++) start(`final reclaim ${p.handle}`, hlosReclaim(w, c, p)), await drain(w, () => inflight === 0);
      if (c.parcels.includes(p)) c.leaked.push(`parcel ${p.handle} (HLOS ${p.trans}): MEM_RECLAIM kept failing`);
    }
    await drain(w, () => inflight === 0);
    const v = bugs.length > 0 ? bugs : finalChecks(w, c, boot);
    if (v.length > 0) failure = { step: steps, violations: v };
    if (failure !== undefined) look?.('failure', w);
  }
  look?.('end', w);
  w.vmm.close();
  for (const l of c.leaked) log.add(`leaked ${l}`);
  log.add(failure === undefined ? 'result ok' : `result FAIL after step ${failure.step}: ${failure.violations.join(' | ')}`);
  return {
    ok: failure === undefined,
    seed: replay.seed,
    steps,
    ...(failure === undefined ? {} : { failure }),
    log: log.lines,
    logHash: log.hex,
    faultsInjected: faults,
    leaked: [...c.leaked],
    replay,
  };
}

/** Settles and moves the clock until `done`, or DRAIN_ROUNDS_MAX rounds. */
async function drain(w: World, done: () => boolean): Promise<void> {
  for (let n = 0; n < DRAIN_ROUNDS_MAX; n++) {
    await settle();
    if (done()) return;
    w.clock.advance(DRAIN_STEP_MS);
  }
}

/**
 * Every teardown's outcome, however it started (destroy, a session that ended, a lease that
 * expired): its `leaked` list is what the final check accepts as reported. The VMM emits DESTROYING
 * before it records the teardown's promise, so the destroy call that joins it waits a microtask.
 */
function watchTeardowns(w: World, c: ClientState, log: EventLog, start: (what: string, p: Promise<string>) => void): void {
  w.vmm.watch((e) => {
    if (e.kind !== 'STATE' || e.state !== 'DESTROYING' || c.watched.has(e.handle)) return;
    const handle = e.handle;
    c.watched.add(handle);
    const vmid = w.vmm.view(handle)?.vmid ?? 0;
    if (vmid !== 0) c.dying.add(vmid);
    if (vmid !== 0) start(`hlos reclaim for vm ${handle}`, hlosReclaimFor(w, c, vmid));
    queueMicrotask(() => {
      void w.vmm.destroy(handle).then((r) => {
        if (!r.ok) return;
        const v = r.value;
        for (const l of v.leaked) c.leaked.push(`vm ${handle}: ${l}`);
        const slot = c.slotOf.get(handle);
        if (slot !== undefined && v.leaked.length === 0) c.bindingSlotUsed[slot] = 0;
        c.slotOf.delete(handle);
        for (const s of c.sessions) {
          const i = s.vms.findIndex((x) => x.handle === handle);
          if (i >= 0) s.vms.splice(i, 1);
        }
        if (v.type === 'GUNYAH') {
          c.dying.delete(v.vmid);
          // The VMID may be handed out again: what its guest knew is gone with it.
          c.accepted.delete(v.vmid);
          w.inbox.delete(v.vmid);
        }
        log.add(`teardown vm ${handle} ${v.type} vmid ${v.vmid} failed [${v.teardown.filter((t) => !t.ok).map((t) => `${t.step}: ${t.error}`).join('; ')}] leaked ${v.leaked.length}`);
      });
    });
  });
}

/** Whether a replay still fails, and with the same first violation kind (digits stripped). */
const failureKind = (r: SimResult): string | undefined => r.failure?.violations[0]?.replace(/\d+/g, 'N').slice(0, 80);

/**
 * Shrinks a failing replay: cut the schedule after the failing step, then remove chunks of steps
 * (halving the chunk size down to one) and single plan rules, keeping each removal that leaves the
 * run failing the same way. Returns the smallest failing replay found and its result.
 */
export async function shrink(replay: ReplayFile, onProgress?: (steps: number, rules: number) => void): Promise<{ replay: ReplayFile; result: SimResult }> {
  let best = replay;
  let result = await runReplay(best);
  const kind = failureKind(result);
  if (kind === undefined) return { replay: best, result };
  const tryReplay = async (candidate: ReplayFile): Promise<boolean> => {
    const r = await runReplay(candidate);
    if (failureKind(r) !== kind) return false;
    best = candidate;
    result = r;
    onProgress?.(best.schedule.length, best.plan.rules.length);
    return true;
  };
  if (result.failure!.step + 1 < best.schedule.length) await tryReplay({ ...best, schedule: best.schedule.slice(0, result.failure!.step + 1) });
  for (let chunk = Math.max(1, Math.floor(best.schedule.length / 2)); chunk >= 1; chunk = Math.floor(chunk / 2)) {
    for (let at = 0; at < best.schedule.length; ) {
      const schedule = [...best.schedule.slice(0, at), ...best.schedule.slice(at + chunk)];
      if (!(await tryReplay({ ...best, schedule }))) at += chunk;
    }
    if (chunk === 1) break;
  }
  for (let i = 0; i < best.plan.rules.length; ) {
    const rules = best.plan.rules.filter((_, k) => k !== i);
    if (!(await tryReplay({ ...best, plan: { rules } }))) i++;
  }
  return { replay: best, result };
}
