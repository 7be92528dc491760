/**
 * The client end of the RM message queue as Linux drives it (gunyah-rm.md §1; Linux rsc_mgr.c
 * `gh_rm_call`): a request is split into ≤ 240-byte fragments (§1.3), tagged with a sequence number
 * of its own, and the caller waits for the REPLY that echoes it. What goes under it is a
 * `MsgqTransport`: fragments out, fragments in. Two exist: `inProcessTransport` (msgq-in-process.ts,
 * against @hypmesh/rm's MsgqEndpoint, with the fault engine at the byte-face boundaries) and
 * `grpcTransport` (msgq-grpc.ts, RmService.Exchange).
 *
 * Not modelled: the RM's notifications (they are dropped here, the mem calls do not wait for any).
 * Like Linux's `wait_for_completion`, a call whose reply never comes waits; `callTimeoutMs` exists
 * only so that a test is not left hanging, and yields -ETIMEDOUT.
 */
import { Reassembler, fragmentMessage, LINUX_RM_SEND_PAYLOAD_MAX, REPLY_ERROR_SIZE } from '@hypmesh/rm-wire';

export interface MsgqTransport {
  /** Puts one fragment on the TX queue. */
  send(fragment: Uint8Array): void;
  /** Every fragment from the RX queue, in arrival order. */
  onFragment(listener: (fragment: Uint8Array) => void): void;
  close(): void;
}

/** A reply as it arrived: the RM error word (§1.4) and the data after it, whatever its length. */
export interface RawReply {
  readonly rmError: number;
  readonly data: Uint8Array;
}

export type CallOutcome = { readonly kind: 'reply'; readonly reply: RawReply } | { readonly kind: 'timeout' } | { readonly kind: 'short_reply'; readonly bytes: number };

/** Linux allocates a seq per call with idr_alloc_cyclic(…, 0, U16_MAX): 16 bits on the wire. */
const SEQ_MAX = 0xffff;

export class MsgqClient {
  private readonly reassembler = new Reassembler();
  private nextSeq = 0;
  private readonly waiting = new Map<number, (o: CallOutcome) => void>();

  constructor(
    private readonly transport: MsgqTransport,
    private readonly callTimeoutMs = 10_000,
  ) {
    transport.onFragment((f) => this.receive(f));
  }

  /** One request; resolves with its reply (or a timeout). */
  call(messageId: number, payload: Uint8Array): Promise<CallOutcome> {
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) % SEQ_MAX;
    const frags = fragmentMessage({ type: 'REQUEST', msgId: messageId, seq, payload }, LINUX_RM_SEND_PAYLOAD_MAX);
    if (!frags.ok) throw new Error(`MsgqClient.call: request 0x${messageId.toString(16)} does not fit: ${frags.error.reason}`);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        resolve({ kind: 'timeout' });
      }, this.callTimeoutMs);
      this.waiting.set(seq, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
      for (const f of frags.value) this.transport.send(f);
    });
  }

  close(): void {
    this.transport.close();
  }

  private receive(fragment: Uint8Array): void {
    for (const ev of this.reassembler.push(fragment)) {
      if (ev.kind !== 'message' || ev.message.type !== 'REPLY') continue;
      const done = this.waiting.get(ev.message.seq);
      if (done === undefined) continue;
      this.waiting.delete(ev.message.seq);
      const p = ev.message.payload;
      // A reply too short to hold the error word: Linux drops it and the caller keeps waiting; the
      // model ends the call with -EIO instead, so that nothing hangs (gh-rm-call.ts).
      if (p.length < REPLY_ERROR_SIZE) {
        done({ kind: 'short_reply', bytes: p.length });
        continue;
      }
      const rmError = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(0, true);
      done({ kind: 'reply', reply: { rmError, data: p.slice(REPLY_ERROR_SIZE) } });
    }
  }
}
