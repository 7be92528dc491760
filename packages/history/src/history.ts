/**
 * A history as data and as JSON lines (DESIGN.md §7, issue 8 item 4), in Jepsen's shape: every client
 * operation is an `invoke` line, then exactly one completion line from the same process:
 *
 *   ok    the operation happened, `value` is its result
 *   fail  the operation certainly did not happen (a refusal the service answered)
 *   info  the outcome is unknown (timeout, UNAVAILABLE, a lost reply): it may or may not have happened
 *
 * Between operations the recorder writes `observe` lines: what the system looked like at that point
 * (its parcels, the core's ownership map, the invariant checkers' reports, and which handles each
 * client still believes it holds). Phases: `boot` (before the first op), `run` (after the workload,
 * quiesced, before teardown), `final` (after teardown and quiescence).
 *
 * Operations name their effect by a client-chosen `label` (the RM parcel label, gunyah-rm.md §3.2),
 * so that the checker can find an operation's parcel without trusting the reply that carried its
 * handle (a lost reply is exactly the case that matters).
 */
import { err, ok, type Result } from './result.js';

/** What an operation does, for the checker: create a labelled parcel, or remove it. */
export type OpKind = 'create_parcel' | 'reclaim_parcel' | 'other';

export interface Invoke {
  readonly type: 'invoke';
  readonly process: number;
  /** The operation's name, e.g. "mem_lend", "vm_cycle". */
  readonly f: string;
  readonly kind: OpKind;
  /** The parcel label the operation creates or reclaims (create_parcel, reclaim_parcel). */
  readonly label?: number;
  readonly value?: unknown;
}

export interface Completion {
  readonly type: 'ok' | 'fail' | 'info';
  readonly process: number;
  readonly f: string;
  readonly value?: unknown;
  /** Why it failed or why its outcome is unknown (a gRPC code and message, an RM error). */
  readonly error?: string;
}

/** One RM parcel as observed. */
export interface ObservedParcel {
  readonly handle: number;
  readonly owner: number;
  readonly label: number;
  readonly state: string;
  /** Whether the core still holds the grant backing it (its pages are not back with the owner). */
  readonly coreGrant: boolean;
}

/** One run of the core's ownership map, as a comparable string per run. */
export interface Observation {
  readonly type: 'observe';
  readonly phase: 'boot' | 'run' | 'final';
  readonly parcels: readonly ObservedParcel[];
  /** The core's ownership map as runs, e.g. "0x80000-0x8ffff owner=3 host=OWNED". */
  readonly ownership: readonly string[];
  /** Every invariant checker's report (core, RM, cross-service); empty when consistent. */
  readonly invariantViolations: readonly string[];
  /** Handles each client (by VMID, as a decimal string) still believes it holds. */
  readonly clientHandles: Readonly<Record<string, readonly number[]>>;
}

export type HistoryEntry = Invoke | Completion | Observation;
export type History = readonly HistoryEntry[];

/** One line per entry, no trailing spaces; bigints as decimal strings. */
export function historyToJsonLines(h: History): string {
  return h.map((e) => JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).join('\n') + (h.length > 0 ? '\n' : '');
}

const TYPES = new Set(['invoke', 'ok', 'fail', 'info', 'observe']);

/** Parses JSON lines; every bad line is reported as `line N: why`. */
export function parseHistory(text: string): Result<History, readonly string[]> {
  const out: HistoryEntry[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      problems.push(`line ${i + 1}: not JSON (${e instanceof Error ? e.message : String(e)})`);
      return;
    }
    if (typeof v !== 'object' || v === null || !TYPES.has((v as { type?: string }).type ?? '')) {
      problems.push(`line ${i + 1}: type must be one of invoke, ok, fail, info, observe`);
      return;
    }
    const e = v as HistoryEntry;
    if (e.type === 'observe') {
      if (!Array.isArray(e.parcels) || !Array.isArray(e.ownership) || !Array.isArray(e.invariantViolations) || typeof e.clientHandles !== 'object') {
        problems.push(`line ${i + 1}: observe needs parcels, ownership, invariantViolations and clientHandles`);
        return;
      }
    } else if (typeof e.process !== 'number' || typeof e.f !== 'string') {
      problems.push(`line ${i + 1}: ${e.type} needs a numeric process and a string f`);
      return;
    }
    out.push(e);
  });
  return problems.length > 0 ? err(problems) : ok(out);
}

/** An invoke paired with its completion (absent if the history ends first: treated as info). */
export interface Operation {
  readonly invoke: Invoke;
  readonly completion: Completion['type'];
  readonly completionEntry?: Completion;
  /** Index of the invoke line. */
  readonly at: number;
}

/** Pairs each invoke with the next completion of the same process (Jepsen's one-op-per-process rule). */
export function operations(h: History): Result<readonly Operation[], readonly string[]> {
  const open = new Map<number, { invoke: Invoke; at: number }>();
  const ops: Operation[] = [];
  const problems: string[] = [];
  h.forEach((e, i) => {
    if (e.type === 'observe') return;
    if (e.type === 'invoke') {
      if (open.has(e.process)) problems.push(`entry ${i}: process ${e.process} invoked ${e.f} while its previous operation is open`);
      open.set(e.process, { invoke: e, at: i });
      return;
    }
    const o = open.get(e.process);
    if (o === undefined) {
      problems.push(`entry ${i}: ${e.type} of ${e.f} for process ${e.process} without an invoke`);
      return;
    }
    open.delete(e.process);
    ops.push({ invoke: o.invoke, completion: e.type, completionEntry: e, at: o.at });
  });
  for (const o of open.values()) ops.push({ invoke: o.invoke, completion: 'info', at: o.at });
  ops.sort((a, b) => a.at - b.at);
  return problems.length > 0 ? err(problems) : ok(ops);
}

/** One `observe` ownership line parsed: frames [base, base+count), the owner and the host's view. */
export interface ParsedOwnershipRun {
  readonly base: number;
  readonly count: number;
  readonly owner: number;
  readonly host: string;
}

/**
 * Parses an ownership line as the recorders write it, "0x80000+0x10000 owner=3 host=OWNED" (base
 * and count in frames), or as first, "0x80000-0x8ffff owner=3 host=OWNED" (inclusive end); other
 * `key=value` words are ignored. Undefined for anything else (the run report skips it).
 */
export function parseOwnershipRun(text: string): ParsedOwnershipRun | undefined {
  const m = /^(0x[0-9a-f]+|\d+)([+-])(0x[0-9a-f]+|\d+)\s+(.*)$/i.exec(text.trim());
  if (m === null) return undefined;
  const base = Number(m[1]);
  const count = m[2] === '+' ? Number(m[3]) : Number(m[3]) - base + 1;
  const kv = new Map([...m[4]!.matchAll(/(\w+)=(\S+)/g)].map((x) => [x[1]!, x[2]!]));
  const owner = Number(kv.get('owner'));
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(count) || count <= 0 || !Number.isInteger(owner)) return undefined;
  return { base, count, owner, host: kv.get('host') ?? '?' };
}
