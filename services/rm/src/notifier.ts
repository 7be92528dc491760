/**
 * Delivery of a client VM's queued notifications to whichever stream serves it (Subscribe or the
 * byte face's RX side), stamping each with the §1.3 notification sequence number: one global
 * 16-bit counter for every client, taken when the notification leaves the queue (as the RM's
 * get_next_seq_num is taken at transmit).
 *
 * One RX queue per VM (§1.1): two streams attached for the same VM share it, and each notification
 * goes to the first that drains it.
 */

import { codecMessageId } from '@hypmesh/rm-wire';
import type { ResourceManager, RmNotification } from '@hypmesh/rm';

export type Deliver = (n: RmNotification, messageId: number, seq: number, dropped: number) => void;

export class Notifier {
  private seq = 0;

  constructor(readonly rm: ResourceManager) {}

  /** Delivers `vmid`'s pending notifications now and each new one as it is queued, until the returned stop(). */
  attach(vmid: number, deliver: Deliver): () => void {
    let stopped = false;
    const drain = (): void => {
      const q = this.rm.queue(vmid);
      for (let n = q.shift(); n !== undefined && !stopped; n = stopped ? undefined : q.shift()) {
        deliver(n, codecMessageId(n.name), this.nextSeq(), q.dropped);
      }
    };
    const off = this.rm.onNotify((v) => {
      if (v === vmid && !stopped) drain();
    });
    drain();
    return () => {
      stopped = true;
      off();
    };
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) & 0xffff;
    return s;
  }
}
