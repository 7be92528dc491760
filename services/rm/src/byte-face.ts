/**
 * The byte-exact face (DESIGN.md §3, gunyah-rm.md §1): RmService.Exchange carries the client's pair
 * of message queues as one bidirectional stream of raw msgq messages.
 *
 * TX (client → RM): each fragment goes through rm-wire's Reassembler, the RM's do_recv state
 * machine, one per stream (a client VM has one TX queue). Fragments that break a §1.3 rule are
 * dropped silently, as the RM does, and counted per rule (ByteFaceStats, GetStats, and the
 * `x-hypmesh-rm-drops` trailer). A whole message of type REQUEST goes to the dispatcher; any other
 * type is dropped (`not_a_request`: the RM hands client notifications to a platform hook and
 * ignores replies).
 *
 * RX (RM → client): replies in request order, fragmented as the RM's do_xmit does, with the
 * request's msg_id and seq echoed (§1.3); and the caller's notifications (type NOTIFICATION) with
 * the global notification seq (notifier.ts). The real RM keeps one buffered reply per client; here
 * the stream's own flow control holds them, so a client may pipeline requests and still reads
 * every reply, in order.
 *
 * Nothing a client writes ends the stream with an error: bad bytes are drops or RM error replies.
 * Only a missing or bad caller VMID fails it (INVALID_ARGUMENT), before any byte is read.
 */

import { Metadata, type ServerDuplexStream } from '@grpc/grpc-js';
import type { ExchangeRequest, ExchangeResponse, GetStatsResponse } from '@hypmesh/proto/rm';
import { callerVmid, fromThrown, type BugLog } from '@hypmesh/rpc';
import type { ResourceManager } from '@hypmesh/rm';
import { RM_CODECS, Reassembler, fragmentMessage, type Codec, type RmMessage } from '@hypmesh/rm-wire';
import { dispatchPayload } from './dispatch.js';
import type { Notifier } from './notifier.js';

/** Trailer naming a finished Exchange stream's drops: `rule=count,rule=count` (empty when none). */
export const DROPS_TRAILER_KEY = 'x-hypmesh-rm-drops';

/** A whole message that is not a request (REPLY or NOTIFICATION sent to the RM). */
export const NOT_A_REQUEST = 'not_a_request';

/** Counters of the byte face over every Exchange stream since the service started. */
export class ByteFaceStats {
  fragmentsReceived = 0;
  requestsDispatched = 0;
  fragmentsSent = 0;
  readonly drops = new Map<string, number>();

  drop(rule: string): void {
    this.drops.set(rule, (this.drops.get(rule) ?? 0) + 1);
  }

  snapshot(): Pick<GetStatsResponse, 'fragmentsReceived' | 'requestsDispatched' | 'fragmentsSent' | 'drops'> {
    return {
      fragmentsReceived: BigInt(this.fragmentsReceived),
      requestsDispatched: BigInt(this.requestsDispatched),
      fragmentsSent: BigInt(this.fragmentsSent),
      drops: [...this.drops].sort(([a], [b]) => a.localeCompare(b)).map(([rule, count]) => ({ rule, count: BigInt(count) })),
    };
  }
}

export interface ByteFace {
  readonly rm: ResourceManager;
  readonly notifier: Notifier;
  readonly stats: ByteFaceStats;
  readonly log: BugLog;
  /** Streams still open, so shutdown can end them. */
  readonly open: Set<{ end(): void }>;
}

type Exchange = ServerDuplexStream<ExchangeRequest, ExchangeResponse>;

export function exchangeHandler(face: ByteFace): (call: Exchange) => void {
  return (call) => {
    let caller: number;
    try {
      caller = callerVmid(call);
    } catch (e) {
      call.emit('error', fromThrown(e, face.log, 'Exchange'));
      return;
    }
    const reassembler = new Reassembler();
    const streamDrops = new Map<string, number>();
    const drop = (rule: string): void => {
      face.stats.drop(rule);
      streamDrops.set(rule, (streamDrops.get(rule) ?? 0) + 1);
    };
    let closed = false;
    let replies: Promise<void> = Promise.resolve();

    const send = (message: RmMessage): void => {
      if (closed) return;
      const fragments = fragmentMessage(message);
      if (!fragments.ok) {
        face.log.error({ msgId: message.msgId, reason: fragments.error.reason }, 'bug: RM message too large to send');
        return;
      }
      for (const f of fragments.value) {
        call.write({ fragment: Buffer.from(f.buffer, f.byteOffset, f.byteLength) });
        face.stats.fragmentsSent++;
      }
    };

    const stopNotify = face.notifier.attach(caller, (n, msgId, seq) => {
      try {
        const payload = (RM_CODECS[n.name].notification as Codec<unknown>).encode(n.payload);
        send({ type: 'NOTIFICATION', msgId, seq, payload });
      } catch (e) {
        face.log.error({ err: e, name: n.name }, 'bug: notification payload did not encode');
      }
    });

    const handle = { end: () => finish() };
    face.open.add(handle);

    function finish(): void {
      if (closed) return;
      closed = true;
      stopNotify();
      face.open.delete(handle);
      const trailers = new Metadata();
      trailers.set(DROPS_TRAILER_KEY, [...streamDrops].map(([rule, n]) => `${rule}=${n}`).join(','));
      call.end(trailers);
    }

    const stop = (): void => {
      closed = true;
      stopNotify();
      face.open.delete(handle);
    };

    call.on('data', (req: ExchangeRequest) => {
      face.stats.fragmentsReceived++;
      const bytes = req.fragment instanceof Uint8Array ? req.fragment : new Uint8Array(0);
      for (const event of reassembler.push(bytes)) {
        if (event.kind === 'drop') {
          drop(event.rule);
        } else if (event.message.type !== 'REQUEST') {
          drop(NOT_A_REQUEST);
        } else {
          const { msgId, seq, payload } = event.message;
          face.stats.requestsDispatched++;
          replies = replies
            .then(() => dispatchPayload(face.rm, caller, msgId, payload, face.log))
            .then((reply) => send({ type: 'REPLY', msgId, seq, payload: reply }))
            .catch((e: unknown) => face.log.error({ err: e }, 'bug: byte-face reply failed'));
        }
      }
    });
    // The client half-closed: answer what is in flight, then end with the drop trailer.
    call.on('end', () => void replies.then(finish));
    call.on('cancelled', stop);
    call.on('error', stop);
  };
}
