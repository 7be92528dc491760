/**
 * Per-client notification queue (gunyah-rm.md §1.3, RM `rm-rpc-fifo.c`): up to 256 pending
 * notifications per client VM; beyond that the oldest is dropped, as the real RM does. Drops are
 * counted so a client (or a test) can tell that it fell behind.
 */

/** Pending notifications kept per client (§1.3). */
export const NOTIFY_QUEUE_DEPTH_MAX = 256;

export class NotifyQueue<N> {
  private readonly items: N[] = [];
  /** Notifications dropped because the queue was full, since creation. */
  dropped = 0;
  /** Notifications ever pushed, since creation. */
  pushed = 0;

  constructor(readonly depthMax: number = NOTIFY_QUEUE_DEPTH_MAX) {}

  get length(): number {
    return this.items.length;
  }

  push(n: N): void {
    this.pushed++;
    if (this.items.length === this.depthMax) {
      this.items.shift();
      this.dropped++;
    }
    this.items.push(n);
  }

  /** Takes every pending notification, oldest first. */
  drain(): N[] {
    return this.items.splice(0, this.items.length);
  }

  /** A copy of every pending notification, oldest first; nothing is taken. */
  peekAll(): N[] {
    return [...this.items];
  }

  /** Takes the oldest pending notification, if any. */
  shift(): N | undefined {
    return this.items.shift();
  }
}
