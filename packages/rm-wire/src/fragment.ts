/**
 * Splitting one RM RPC message into msgq fragments, gunyah-rm.md §1.1 and §1.3 (RM `do_xmit`,
 * `start_xmit`; L24 `send_request`).
 *
 * Every fragment is an 8-byte header plus ≤ 232 payload bytes. The first carries the real type; every
 * later one has type CONTINUATION and repeats msg_id, seq and the fragment-count field, which is
 * ceil(len/232) − 1 (0 for an empty payload). An empty payload is still one header-only fragment.
 */
import { RM_RPC_FRAGMENT_FIELD_MAX, RM_RPC_HEADER_SIZE, writeHeader, type MessageType } from './header.js';
import { err, ok, type Result } from './result.js';

/** Largest msgq message the RM RPC layer uses (§1.1, RM `RM_RPC_MESSAGE_SIZE`). */
export const RM_RPC_MESSAGE_SIZE = 240;
/** Payload bytes per fragment: 240 − 8 (§1.3, RM `RM_RPC_MAX_CONTENT`). */
export const RM_RPC_FRAGMENT_PAYLOAD_MAX = RM_RPC_MESSAGE_SIZE - RM_RPC_HEADER_SIZE;
/** Continuation fragments after the first that a receiver accepts (§1.3, RM `RM_RPC_MAX_FRAGMENTS`). */
export const RM_RPC_CONTINUATIONS_MAX = 62;
/** RM's largest message payload: 232 × 63 = 14 616 bytes (§1.3, RM `RM_RPC_MAX_MSG_SIZE`). */
export const RM_RPC_MAX_MSG_SIZE = RM_RPC_FRAGMENT_PAYLOAD_MAX * (RM_RPC_CONTINUATIONS_MAX + 1);
/** Linux's stricter sender limit: 62 × 232 = 14 384 bytes, else -E2BIG (§1.3, §8.1; L23/L24). */
export const LINUX_RM_SEND_PAYLOAD_MAX = RM_RPC_FRAGMENT_PAYLOAD_MAX * RM_RPC_CONTINUATIONS_MAX;

/** A whole RM RPC message: what the fragmenter splits and the reassembler yields. */
export interface RmMessage {
  readonly type: Exclude<MessageType, 'CONTINUATION'>;
  readonly msgId: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

export interface FragmentError {
  readonly rule: 'message_too_large';
  readonly reason: string;
  readonly payloadBytes: number;
  readonly payloadBytesMax: number;
}

/** Continuation fragments a payload of this size needs (§1.3: ceil(len/232) − 1, 0 when empty). */
export const continuationsFor = (payloadBytes: number): number =>
  payloadBytes === 0 ? 0 : Math.ceil(payloadBytes / RM_RPC_FRAGMENT_PAYLOAD_MAX) - 1;

/**
 * The fragments of `msg`, in send order. `payloadBytesMax` is the sender's limit: the RM's
 * RM_RPC_MAX_MSG_SIZE by default, LINUX_RM_SEND_PAYLOAD_MAX for a Linux-faithful host.
 */
export function fragmentMessage(msg: RmMessage, payloadBytesMax: number = RM_RPC_MAX_MSG_SIZE): Result<Uint8Array[], FragmentError> {
  const len = msg.payload.length;
  // Never more than the 6-bit fragment-count field can describe, whatever limit the caller asks for.
  payloadBytesMax = Math.min(payloadBytesMax, RM_RPC_FRAGMENT_PAYLOAD_MAX * (RM_RPC_FRAGMENT_FIELD_MAX + 1));
  if (len > payloadBytesMax) {
    return err({
      rule: 'message_too_large',
      reason: `payload is ${len} bytes, the sender's limit is ${payloadBytesMax}`,
      payloadBytes: len,
      payloadBytesMax,
    });
  }
  const fragmentCount = continuationsFor(len);
  const fragments: Uint8Array[] = [];
  for (let i = 0; i <= fragmentCount; i++) {
    const start = i * RM_RPC_FRAGMENT_PAYLOAD_MAX;
    const chunk = msg.payload.subarray(start, Math.min(len, start + RM_RPC_FRAGMENT_PAYLOAD_MAX));
    const out = new Uint8Array(RM_RPC_HEADER_SIZE + chunk.length);
    writeHeader(out, 0, { type: i === 0 ? msg.type : 'CONTINUATION', fragmentCount, seq: msg.seq, msgId: msg.msgId });
    out.set(chunk, RM_RPC_HEADER_SIZE);
    fragments.push(out);
  }
  return ok(fragments);
}
