/**
 * Time as the VM manager sees it: a port (STYLE "Invariants": the domain receives time as a
 * parameter, so a seeded simulation can replay it). The domain never reads the wall clock; the
 * service passes a clock over the real timers (services/vmm), tests pass a ManualClock and move it.
 *
 * Used for the RM waits (config.waitMs) and for lease expiry (lease.ts).
 */

export interface VmmClock {
  /** Milliseconds on a monotonic scale; only differences mean anything. */
  nowMs(): number;
  /** Runs `fn` once `ms` from now; returns a cancel. */
  after(ms: number, fn: () => void): () => void;
}

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told (tests, simulations). `advance` runs every timer that falls
 * due, in due order (ties in the order they were set), each with the clock at its due time,
 * including timers set by the callbacks themselves.
 */
export class ManualClock implements VmmClock {
  private now: number;
  private seq = 0;
  private readonly timers = new Set<Timer>();

  constructor(startMs = 0) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  after(ms: number, fn: () => void): () => void {
    const t: Timer = { atMs: this.now + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(t);
    return () => this.timers.delete(t);
  }

  /** Timers set and not yet run or cancelled. */
  pending(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.timers) if (t.atMs <= until && (next === undefined || t.atMs < next.atMs || (t.atMs === next.atMs && t.seq < next.seq))) next = t;
      if (next === undefined) break;
      this.timers.delete(next);
      this.now = next.atMs;
      next.fn();
    }
    this.now = until;
  }
}
