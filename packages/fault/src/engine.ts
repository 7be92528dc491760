/**
 * The fault engine: one object per process (or per simulated process) that, for every call reaching
 * one of its boundaries, decides whether a fault is injected and which (DESIGN.md §7). It only
 * decides; adapters apply the decision (apply.ts for async calls, fragment.ts for msgq bytes; the
 * gRPC interceptors and the simulation's ports are such adapters).
 *
 * State and who changes it: `arm` replaces the plan and resets every counter; `disarm` removes rules
 * and keeps the others' counters; `decide` advances the op counters, the matching rules' occurrence
 * counters and PRNG streams, and the firing rule's fire count. Nothing else.
 *
 * Per call (`decide`), in this order:
 *   1. number the op: the boundary's op index and the engine's global op index, both from 1;
 *   2. for each rule at that boundary, in plan order: skip unless method, RM message and caller
 *      match (the rules matching a method and RM message are looked up, not scanned: byName); count the occurrence; check nth / every, the op window and times_max; then draw the
 *      probability from the rule's own stream; a rule that passes every check "would fire" and
 *      draws its action's random values (jitter, corrupted offsets);
 *   3. the first rule that would fire fires: its fire count goes up and its event is emitted.
 * Every rule draws from its own stream whether or not an earlier rule fired, so its draws depend on
 * its own matches only (removing a rule when shrinking leaves the others' faults where they were).
 *
 * Adapters call `decide` for every call at their boundary, armed or not, so op indices number the
 * same calls in the simulation and over gRPC.
 *
 * Deterministic: the same plan, seed and sequence of points give the same decisions and events.
 * Time only labels events (the injected clock), it never changes a decision.
 */

import { ruleStream, type Prng } from './prng.js';
import { BOUNDARIES, type Boundary, type CrashPoint, type Failure, type FaultPlan, type FaultRule, type LostReplyCode } from './plan.js';
import { err, ok, type Result } from './result.js';
import { matchedRmMessage, validatePlan, type PlanIssue } from './validate.js';

/** A call (or message, fragment, notification) reaching a boundary. */
export interface FaultPoint {
  readonly boundary: Boundary;
  /** gRPC method without its service ("MemAppend"); absent on fragments and notifications. */
  readonly method?: string;
  /** RM message name (gunyah-rm.md §2) where the point carries one (byte face, msgq, notification). */
  readonly rmMessage?: string;
  /** The caller's VMID (the notified VM at RM_NOTIFICATION), where known. */
  readonly callerVmid?: number;
}

/** An action with every random draw resolved: what to do, exactly. */
export type AppliedAction =
  | { readonly kind: 'delay'; readonly delayMs: number }
  | { readonly kind: 'fail_before'; readonly failure: Failure }
  | { readonly kind: 'fail_after'; readonly code: LostReplyCode; readonly message?: string }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'corrupt'; readonly draws: readonly number[] }
  | { readonly kind: 'reorder' }
  | { readonly kind: 'crash'; readonly point: CrashPoint }
  | { readonly kind: 'pause'; readonly durationMs: number }
  | { readonly kind: 'truncate'; readonly keepBytes: number };

/** One injected fault (hypmesh.fault.v1.FaultEvent). */
export interface FaultEvent {
  readonly ruleId: string;
  readonly boundary: Boundary;
  readonly method?: string;
  readonly rmMessage?: string;
  readonly callerVmid?: number;
  /** 1-based, per boundary, per engine. */
  readonly opIndex: number;
  /** 1-based, over every boundary of the engine. */
  readonly globalOpIndex: number;
  readonly seed: number;
  readonly action: AppliedAction;
  /** The engine clock's milliseconds. */
  readonly timeMs: number;
}

export type Decision = { readonly fault: false } | { readonly fault: true; readonly event: FaultEvent };

/** The decision for a call no rule fires on (shared: the hot path allocates nothing). */
export const NO_FAULT: Decision = Object.freeze({ fault: false });

/** One rule as armed, with its counters (FaultService.List). */
export interface ArmedRule {
  readonly rule: FaultRule;
  readonly matched: number;
  readonly fired: number;
}

export interface FaultEnginePorts {
  /** Milliseconds, for event timestamps only: Date.now in services, the simulated clock in `sim`. */
  readonly nowMs: () => number;
}

export type FaultListener = (event: FaultEvent) => void;

interface RuleState {
  readonly rule: FaultRule;
  /** "MEM_APPEND" and its typed RPC's name "MemAppend", when the match names an RM message. */
  readonly rmMessage: string | undefined;
  readonly rmMethod: string | undefined;
  readonly prng: Prng;
  matched: number;
  fired: number;
}

/** RM message name → the typed RPC named after it (MEM_QCOM_LOOKUP_SGL → MemQcomLookupSgl). */
export const rmMessageMethod = (name: string): string =>
  name
    .toLowerCase()
    .split('_')
    .map((w) => (w.length === 0 ? w : w[0]!.toUpperCase() + w.slice(1)))
    .join('');

/** Boundary → its index in BOUNDARIES (decide's first step, once per call). */
const BOUNDARY_INDEX: ReadonlyMap<Boundary, number> = new Map(BOUNDARIES.map((b, i) => [b, i]));

export class FaultEngine {
  private seed = 0;
  private rules: RuleState[] = [];
  /** Rules per boundary (indices into BOUNDARIES), in plan order; empty = the fast path. */
  private byBoundary: RuleState[][] = BOUNDARIES.map(() => []);
  /**
   * Per boundary, method → RM message → the boundary's rules whose method and RM message match
   * (plan order), filled on a pair's first call and emptied by arm and disarm: a call that no rule
   * names costs two map lookups and allocates nothing. The pairs are the services' own method and
   * message names, a fixed set.
   */
  private byName: Map<string | undefined, Map<string | undefined, readonly RuleState[]>>[] = BOUNDARIES.map(() => new Map());
  private opIndex: number[] = BOUNDARIES.map(() => 0);
  private globalOpIndex = 0;
  private readonly listeners = new Set<FaultListener>();

  constructor(private readonly ports: FaultEnginePorts) {}

  /** Validate and arm a plan, replacing the armed one and resetting every counter. */
  arm(plan: FaultPlan, seed: number): Result<number, readonly PlanIssue[]> {
    const valid = validatePlan(plan);
    if (!valid.ok) return valid;
    const s = seed >>> 0;
    this.seed = s;
    this.rules = plan.rules.map((rule) => {
      const named = matchedRmMessage(rule.match);
      const rmMessage = named.ok ? named.value : undefined;
      return {
        rule,
        rmMessage,
        rmMethod: rmMessage === undefined ? undefined : rmMessageMethod(rmMessage),
        prng: ruleStream(s, rule.id),
        matched: 0,
        fired: 0,
      };
    });
    this.opIndex = BOUNDARIES.map(() => 0);
    this.globalOpIndex = 0;
    this.index();
    return ok(this.rules.length);
  }

  /** Remove the named rules (all of them or none: unknown ids refuse the whole call), or every rule. */
  disarm(which: readonly string[] | 'all'): Result<number, { readonly unknownIds: readonly string[] }> {
    if (which === 'all') {
      const n = this.rules.length;
      this.rules = [];
      this.index();
      return ok(n);
    }
    const known = new Set(this.rules.map((r) => r.rule.id));
    const unknownIds = which.filter((id) => !known.has(id));
    if (unknownIds.length > 0) return err({ unknownIds });
    const drop = new Set(which);
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => !drop.has(r.rule.id));
    this.index();
    return ok(before - this.rules.length);
  }

  list(): { readonly seed: number; readonly rules: readonly ArmedRule[] } {
    return { seed: this.seed, rules: this.rules.map((r) => ({ rule: r.rule, matched: r.matched, fired: r.fired })) };
  }

  /** Receive every event from now on; returns the unsubscribe function. */
  subscribe(listener: FaultListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Whether any rule is armed at this boundary. Adapters still call `decide` for every call (so op
   * indices count every call in every mode); this is for cheap diagnostics, not for skipping.
   */
  armedAt(boundary: Boundary): boolean {
    return (this.byBoundary[BOUNDARY_INDEX.get(boundary) ?? -1]?.length ?? 0) > 0;
  }

  /** Number this call and decide its fault (module header, steps 1–3). */
  decide(point: FaultPoint): Decision {
    // The no-fault path allocates nothing: an index lookup, two counters, two map lookups (named), the candidate loop.
    const b = BOUNDARY_INDEX.get(point.boundary);
    if (b === undefined) throw new Error(`FaultEngine.decide: unknown boundary ${String(point.boundary)}`);
    const opIndex = ++this.opIndex[b]!;
    const globalOpIndex = ++this.globalOpIndex;
    if (this.byBoundary[b]!.length === 0) return NO_FAULT;
    const candidates = this.named(b, point.method, point.rmMessage);
    if (candidates.length === 0) return NO_FAULT;

    let winnerState: RuleState | undefined;
    let winnerAction: AppliedAction | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const state = candidates[i]!;
      const action = this.evaluate(state, point, opIndex);
      if (action !== undefined && winnerState === undefined) {
        winnerState = state;
        winnerAction = action;
      }
    }
    if (winnerState === undefined || winnerAction === undefined) return NO_FAULT;
    const winner = { state: winnerState, action: winnerAction };
    winner.state.fired++;
    const event: FaultEvent = {
      ruleId: winner.state.rule.id,
      boundary: point.boundary,
      ...(point.method === undefined ? {} : { method: point.method }),
      ...(point.rmMessage === undefined ? {} : { rmMessage: point.rmMessage }),
      ...(point.callerVmid === undefined ? {} : { callerVmid: point.callerVmid }),
      opIndex,
      globalOpIndex,
      seed: this.seed,
      action: winner.action,
      timeMs: this.ports.nowMs(),
    };
    for (const listener of this.listeners) listener(event);
    return { fault: true, event };
  }

  /** The rules of boundary `b` whose method and RM message match these (byName). */
  private named(b: number, method: string | undefined, rmMessage: string | undefined): readonly RuleState[] {
    const byMethod = this.byName[b]!;
    let byMessage = byMethod.get(method);
    if (byMessage === undefined) byMethod.set(method, (byMessage = new Map()));
    let rules = byMessage.get(rmMessage);
    if (rules === undefined) byMessage.set(rmMessage, (rules = this.byBoundary[b]!.filter((state) => namesMatch(state, method, rmMessage))));
    return rules;
  }

  /** Step 2 for one rule whose names match (named): the applied action if it would fire, else undefined. */
  private evaluate(state: RuleState, point: FaultPoint, opIndex: number): AppliedAction | undefined {
    const m = state.rule.match;
    if (m.callerVmid !== undefined && m.callerVmid !== point.callerVmid) return undefined;
    const occurrence = ++state.matched;
    if (m.nth !== undefined && occurrence !== m.nth) return undefined;
    if (m.every !== undefined && occurrence % m.every !== 0) return undefined;
    if (m.afterOp !== undefined && opIndex <= m.afterOp) return undefined;
    if (m.beforeOp !== undefined && opIndex >= m.beforeOp) return undefined;
    if (m.timesMax !== undefined && m.timesMax > 0 && state.fired >= m.timesMax) return undefined;
    if (m.probability !== undefined && !(state.prng.nextFraction() < m.probability)) return undefined;
    return resolve(state.rule, state.prng);
  }

  private index(): void {
    this.byBoundary = BOUNDARIES.map((b) => this.rules.filter((r) => r.rule.boundary === b));
    this.byName = BOUNDARIES.map(() => new Map());
  }
}

/** Whether a rule's method and RM message match a call's (an RM message also matches its typed RPC's name). */
function namesMatch(state: RuleState, method: string | undefined, rmMessage: string | undefined): boolean {
  const m = state.rule.match;
  if (m.method !== undefined && m.method !== '' && m.method !== method) return false;
  return state.rmMessage === undefined || rmMessage === state.rmMessage || method === state.rmMethod;
}

/** Draw the action's random values from the rule's stream. */
function resolve(rule: FaultRule, prng: Prng): AppliedAction {
  const a = rule.action;
  switch (a.kind) {
    case 'delay':
      return { kind: 'delay', delayMs: a.jitterMs === 0 ? a.fixedMs : Math.max(0, a.fixedMs + prng.nextIntInclusive(-a.jitterMs, a.jitterMs)) };
    case 'corrupt':
      return { kind: 'corrupt', draws: Array.from({ length: a.byteCount }, () => prng.nextU32()) };
    case 'fail_before':
      return { kind: 'fail_before', failure: a.failure };
    case 'fail_after':
      return a.message === undefined ? { kind: 'fail_after', code: a.code } : { kind: 'fail_after', code: a.code, message: a.message };
    case 'crash':
      return { kind: 'crash', point: a.point };
    case 'pause':
      return { kind: 'pause', durationMs: a.durationMs };
    case 'truncate':
      return { kind: 'truncate', keepBytes: a.keepBytes };
    case 'duplicate':
    case 'drop':
    case 'reorder':
      return { kind: a.kind };
  }
}
