/**
 * The caller's half of idempotent cross-service mutations (issue 9 item 2; the callee's half is
 * request-keys.ts): every mutating call carries a request id, and a call whose outcome is unknown
 * (the reply was lost or the deadline passed: UNAVAILABLE, DEADLINE_EXCEEDED, no response) is sent
 * again with the SAME id, with back-off, until a definite answer or the budget's end. The callee
 * answers a repeat with its first outcome, so a retry never applies a change twice.
 *
 * Keys are per logical operation (OperationKeys): one stays open while its operation's outcome is
 * unknown, so when a caller gives up and its own client later asks for the same operation again (a
 * second MEM_RECLAIM of the parcel), the call reuses the key and hears what the first one did. It
 * closes on a definite answer; the next request for the same operation is a new one, with a new key.
 */

/** Back-off between attempts: doubling from the first, capped (a deterministic schedule). */
export const RETRY_BACKOFF_MS = { first: 50, max: 1_000 } as const;
/** Open keys a caller keeps; beyond it the oldest is forgotten (its operation's next try is fresh). */
export const OPEN_KEYS_MAX = 4_096;

/** Request ids per logical operation: `<prefix>-<n>`, reused while the operation is unsettled. */
export class OperationKeys {
  private next = 0;
  private readonly open = new Map<string, string>();

  /** `prefix` must differ between the caller's lives (the callee remembers keys across them). */
  constructor(
    private readonly prefix: string,
    private readonly capacity = OPEN_KEYS_MAX,
  ) {}

  /** The key of `operation` (e.g. the RPC, the caller and the request bytes): the open one, or a new one. */
  keyFor(operation: string): string {
    const open = this.open.get(operation);
    if (open !== undefined) return open;
    const key = `${this.prefix}-${++this.next}`;
    this.open.set(operation, key);
    if (this.open.size > this.capacity) this.open.delete(this.open.keys().next().value!);
    return key;
  }

  /** `operation` got a definite answer: its next request is a new one. */
  settled(operation: string): void {
    this.open.delete(operation);
  }

  /** Operations whose outcome is unknown now. */
  get unsettled(): number {
    return this.open.size;
  }
}

export interface Attempt<T> {
  readonly result: T;
  /** Whether the callee's outcome is unknown after this attempt (worth the same call again). */
  readonly ambiguous: boolean;
}

export interface RetryClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: RetryClock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/**
 * Runs `attempt(deadline)` until an unambiguous result or until `budgetMs` is spent; each attempt's
 * deadline is the budget's end, so the whole call, retries included, ends by then. Gives the last
 * result, how many attempts were made, and whether it is still ambiguous.
 */
export async function retryAmbiguous<T>(attempt: (deadline: number) => Promise<Attempt<T>>, budgetMs: number, clock: RetryClock = realClock): Promise<{ result: T; attempts: number; ambiguous: boolean }> {
  const end = clock.now() + budgetMs;
  let backoff: number = RETRY_BACKOFF_MS.first;
  for (let attempts = 1; ; attempts++) {
    const a = await attempt(end);
    const left = end - clock.now();
    if (!a.ambiguous || left <= backoff) return { result: a.result, attempts, ambiguous: a.ambiguous };
    await clock.sleep(backoff);
    backoff = Math.min(backoff * 2, RETRY_BACKOFF_MS.max);
  }
}
