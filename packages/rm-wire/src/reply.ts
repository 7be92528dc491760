/**
 * Reply framing, gunyah-rm.md §1.4 (RM `rm_reply_error`): every reply payload is `[err u32 LE][data]`.
 * Linux treats header + err as a 12-byte reply header, passes only `data` on, and on err ≠ 0 discards
 * the data and returns the errno of §1.5. The RM can put data after a non-zero err (SET_TIME_BASE's
 * hypervisor error), so the frame keeps it.
 */
import { Reader, Writer, type Decoded } from './cursor.js';
import { rmErrorCode, rmErrorName, type RmErrorName } from './rm-error.js';

/** Size of the error word at the head of every reply (§1.4). */
export const REPLY_ERROR_SIZE = 4;

export interface ReplyFrame {
  /** The u32 error code as sent. */
  readonly errorCode: number;
  /** Its §1.5 name; undefined for a code the table does not define. */
  readonly rmError: RmErrorName | undefined;
  /** Everything after the error word. */
  readonly data: Uint8Array;
}

/** `[err][data]`; `error` is a §1.5 name or a raw u32 code. */
export function encodeReply(error: RmErrorName | number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const w = new Writer('reply');
  w.u32(typeof error === 'number' ? error : rmErrorCode(error), 'error code');
  w.bytes(data);
  return w.finish();
}

/** Splits a reply payload; fewer than 4 bytes is MSG_INVALID (truncated). */
export function decodeReply(payload: Uint8Array): Decoded<ReplyFrame> {
  const r = new Reader(payload, 'reply');
  const errorCode = r.u32('error code');
  return r.finish({ errorCode, rmError: rmErrorName(errorCode), data: r.take(r.remaining, 'data') });
}
