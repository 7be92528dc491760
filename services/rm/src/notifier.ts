/**
 * Delivery of a client VM's queued notifications to whichever stream serves it (Subscribe or the
 * byte face's RX side). Each carries the §1.3 notification sequence number the RM stamped on it
 * (one global 16-bit counter for every client).
 *
 * One RX queue per VM (§1.1): two streams attached for the same VM share it, and each notification
 * goes to the first that drains it.
 */

import { codecMessageId } from '@hypmesh/rm-wire';
import type { ResourceManager, RmNotification } from '@hypmesh/rm';

export type Deliver = (n: RmNotification, messageId: number, seq: number, dropped: number) => void;

export class Notifier {
  constructor(readonly rm: ResourceManager) {}

  /** Delivers `vmid`'s pending notifications now and each new one as it is queued, until the returned stop(). */
  attach(vmid: number, deliver: Deliver): () => void {
    let stopped = false;
    const drain = (): void => {
      const q = this.rm.queue(vmid);
      for (let n = q.shift(); n !== undefined && !stopped; n = stopped ? undefined : q.shift()) {
        deliver(n, codecMessageId(n.name), n.seq, q.dropped);
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
}
