/**
 * Delivery of a client VM's queued notifications to whichever stream serves it (Subscribe or the
 * byte face's RX side). Each carries the §1.3 notification sequence number the RM stamped on it
 * (one global 16-bit counter for every client).
 *
 * One RX queue per VM (§1.1), drained by the oldest stream attached for that VM whose buffer has
 * room (the drainer). Every other stream for the same VM gets its own copy of each notification
 * the drainer is sent, and takes none off the queue (issue 11 item 5): a second HLOS subscriber
 * used to share the queue with the VMM and so steal half its VM_STATUS and VM_EXITED notifications
 * (StartVm then failed, teardowns leaked). When the drainer ends or its buffer fills (a stalled or
 * partitioned client), the next stream drains what waits, so a stuck stream never holds the
 * queue. A copy for a stream whose buffer is full is dropped.
 *
 * Backpressure (issue 10): a notification leaves the VM's queue only while its stream takes more.
 * When the stream's buffer is full (`deliver` answers false: grpc-js `write` did), the rest stay in
 * the queue, which is bounded (§1.3: 256, the oldest dropped and counted), until the stream drains
 * and `resume` is called. Before, a client that stopped reading (SIGSTOP) made the RM buffer every
 * notification in its HTTP/2 stream: 50,000 for HLOS grew it by 100 MiB with 0 pending, 0 dropped.
 *
 * Faults (DESIGN.md §7, boundary RM_NOTIFICATION): with an engine, every notification taken off the
 * queue is a point (RM message name, the notified VMID) and its decision applies here, where the
 * RM hands it to the stream:
 *   drop    it is never delivered (taken off the queue, so the VM's queue does not count it dropped)
 *   delay   it is delivered delayMs later; later ones are not held (a late notification is overtaken)
 *   pause   delivery to this stream stops for durationMs; this one and every later one wait, in order
 *   crash   the process exits before delivering it (BEFORE_COMMIT) or right after (AFTER_COMMIT)
 */

import { codecMessageId } from '@hypmesh/rm-wire';
import type { ResourceManager, RmNotification } from '@hypmesh/rm';
import type { FaultEngine, FaultEvent } from '@hypmesh/fault';

/** Hands one notification to the stream; false when the stream's buffer is full (take no more until resume). */
export type Deliver = (n: RmNotification, messageId: number, seq: number, dropped: number) => boolean;

export interface Attachment {
  /** The stream drained: deliver what waits in the queue, and each new notification again. */
  resume(): void;
  stop(): void;
}

export interface NotifierFaults {
  readonly engine: FaultEngine;
  /** Exit the process (default `process.exit(137)`, as kill -9 reports). */
  readonly crash?: (event: FaultEvent) => void;
  /** Milliseconds, for pause bookkeeping (default Date.now). */
  readonly nowMs?: () => number;
}

/** One attached stream, as the other streams of its VM see it. */
interface Stream {
  /** Drain the queue, if this stream is the drainer. */
  drain(): void;
  /** Stopped, or its buffer is full: it cannot drain. */
  blocked(): boolean;
  /** A copy of what the primary was sent. */
  copy(n: RmNotification): void;
}

/** Hands one watched notification to an observer; false when its stream's buffer is full. */
export type Observe = (vmid: number, n: RmNotification, messageId: number, dropped: number, missed: number) => boolean;

export interface Watch {
  /** The stream drained: deliver again. */
  resume(): void;
  stop(): void;
}

export class Notifier {
  /** Attached streams by VMID, in attach order: the first not blocked drains the queue, the rest get copies. */
  private readonly streams = new Map<number, Stream[]>();

  constructor(
    readonly rm: ResourceManager,
    private readonly faults?: NotifierFaults,
  ) {}

  /**
   * An observer's tap (RmService.WatchNotifications): each notification queued from now on for
   * `vmid` (every VM when undefined), taken off no queue, so attached streams are unaffected. No
   * fault decision applies: faults act on delivery to a client, which a tap is not. While the
   * observer's buffer is full, notifications are skipped and counted in `missed` (never held).
   */
  watch(vmid: number | undefined, observe: Observe): Watch {
    let full = false;
    let missed = 0;
    const off = this.rm.onNotify((v, n) => {
      if (vmid !== undefined && v !== vmid) return;
      if (full) return void missed++;
      if (!observe(v, n, codecMessageId(n.name), this.rm.queue(v).dropped, missed)) full = true;
    });
    return { resume: () => void (full = false), stop: () => void off() };
  }

  /** Delivers `vmid`'s pending notifications now and each new one as it is queued, while the stream takes them, until stop(). */
  attach(vmid: number, deliver: Deliver): Attachment {
    let stopped = false;
    let full = false;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, f: () => void): void => {
      const t = setTimeout(() => {
        timers.delete(t);
        f();
      }, ms);
      timers.add(t);
    };
    const q = (): ReturnType<ResourceManager['queue']> => this.rm.queue(vmid);
    const streams = this.streams.get(vmid) ?? [];
    this.streams.set(vmid, streams);
    const drainer = (): Stream | undefined => streams.find((s) => !s.blocked());
    const send = (n: RmNotification): void => {
      if (!stopped && !deliver(n, codecMessageId(n.name), n.seq, q().dropped)) full = true;
      for (const s of streams) if (s !== me) s.copy(n);
    };

    // Pause: notifications held in order until `pausedUntilMs`, released by one timer.
    let pausedUntilMs = 0;
    const held: RmNotification[] = [];
    const release = (): void => {
      if (nowMs() < pausedUntilMs) return later(pausedUntilMs - nowMs(), release);
      for (let n = held.shift(); n !== undefined; n = held.shift()) send(n);
    };
    const faults = this.faults;
    const nowMs = faults?.nowMs ?? Date.now;
    const crash = faults?.crash ?? (() => process.exit(137));

    const offer = (n: RmNotification): void => {
      if (faults === undefined) return send(n);
      const d = faults.engine.decide({ boundary: 'RM_NOTIFICATION', rmMessage: n.name, callerVmid: vmid });
      const event = d.fault ? d.event : undefined;
      const a = event?.action;
      if (a?.kind === 'pause') {
        const until = nowMs() + a.durationMs;
        if (until > pausedUntilMs) {
          pausedUntilMs = until;
          later(a.durationMs, release);
        }
      }
      if (held.length > 0 || nowMs() < pausedUntilMs) {
        if (a?.kind !== 'drop') held.push(n);
        return;
      }
      if (a === undefined) return send(n);
      switch (a.kind) {
        case 'drop':
          return;
        case 'delay':
          return later(a.delayMs, () => send(n));
        case 'crash':
          if (a.point === 'AFTER_COMMIT') send(n);
          crash(event!);
          return;
        default:
          // The validator arms nothing else at RM_NOTIFICATION (plan.ts ACTIONS_AT_BOUNDARY).
          return send(n);
      }
    };

    const drain = (): void => {
      if (drainer() !== me) return;
      const queue = q();
      while (!stopped && !full) {
        const n = queue.shift();
        if (n === undefined) return;
        offer(n);
      }
      // Full now: the next stream with room takes over what waits.
      drainer()?.drain();
    };
    const me: Stream = {
      drain,
      blocked: () => stopped || full,
      copy: (n) => {
        if (!stopped && !full && !deliver(n, codecMessageId(n.name), n.seq, q().dropped)) full = true;
      },
    };
    streams.push(me);
    const off = this.rm.onNotify((v) => {
      if (v === vmid) drain();
    });
    drain();
    return {
      resume: () => {
        full = false;
        drain();
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        off();
        streams.splice(streams.indexOf(me), 1);
        if (streams.length === 0) this.streams.delete(vmid);
        else drainer()?.drain();
      },
    };
  }
}
