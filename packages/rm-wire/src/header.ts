/**
 * The 8-byte RM RPC header carried by every fragment, gunyah-rm.md §1.2 (RM `rm-rpc.c`
 * write/read_rpc_header; L24 `rsc_mgr.c` masks):
 *
 *   byte 0     bits 3:0 API version (1), bits 7:4 header length in 32-bit words (2) ⇒ 0x21
 *   byte 1     bits 1:0 message type, bits 7:2 continuation fragments that follow the first
 *   bytes 2–3  sequence number, LE16
 *   bytes 4–7  message ID, LE32
 *
 * decodeHeader checks, in the RM's order, only what makes the 8 bytes unreadable as a header: length,
 * version, header words. The fragment-count limit (≤ 62) is a receiver rule (reassembly.ts) because the
 * 6-bit field can hold 63 and a test must be able to write one.
 */
import { err, ok, type Result } from './result.js';

export const RM_RPC_HEADER_SIZE = 8; // §1.2
export const RM_RPC_API_VERSION = 1; // §1.2 "must be 1"
export const RM_RPC_HEADER_WORDS = 2; // §1.2 "must be 2"
/** Byte 0 of every valid header (§1.2 "So byte 0 = 0x21"). */
export const RM_RPC_HEADER_BYTE0 = (RM_RPC_HEADER_WORDS << 4) | RM_RPC_API_VERSION;
/** Width of the fragment-count field (bits 7:2 of byte 1): what a header can carry, not what a receiver accepts. */
export const RM_RPC_FRAGMENT_FIELD_MAX = 0x3f;

/** §1.2 message types (bits 1:0 of byte 1). */
export const MESSAGE_TYPES = {
  CONTINUATION: 0,
  REQUEST: 1,
  REPLY: 2,
  NOTIFICATION: 3,
} as const;

export type MessageType = keyof typeof MESSAGE_TYPES;
const typeByCode = ['CONTINUATION', 'REQUEST', 'REPLY', 'NOTIFICATION'] as const satisfies readonly MessageType[];

export interface RmRpcHeader {
  readonly type: MessageType;
  /** Continuation fragments after the first, repeated in every fragment of a message (§1.3). */
  readonly fragmentCount: number;
  readonly seq: number;
  readonly msgId: number;
}

export type HeaderRule = 'header_too_short' | 'api_version_invalid' | 'header_words_invalid';

export interface HeaderError {
  readonly rule: HeaderRule;
  readonly reason: string;
}

/** Header failure conditions in RM `do_recv`/`read_rpc_header` order; the first that holds is reported. */
const headerFailures: readonly { rule: HeaderRule; holds: (b: Uint8Array) => boolean; reason: (b: Uint8Array) => string }[] = [
  {
    rule: 'header_too_short',
    holds: (b) => b.length < RM_RPC_HEADER_SIZE,
    reason: (b) => `a fragment is at least ${RM_RPC_HEADER_SIZE} bytes, got ${b.length}`,
  },
  {
    rule: 'api_version_invalid',
    holds: (b) => (b[0]! & 0xf) !== RM_RPC_API_VERSION,
    reason: (b) => `API version must be ${RM_RPC_API_VERSION}, got ${b[0]! & 0xf}`,
  },
  {
    rule: 'header_words_invalid',
    holds: (b) => b[0]! >> 4 !== RM_RPC_HEADER_WORDS,
    reason: (b) => `header words must be ${RM_RPC_HEADER_WORDS}, got ${b[0]! >> 4}`,
  },
];

function checkField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`RM RPC header ${name} must be an integer in 0..${max}, got ${value}`);
  }
}

/** Writes the header into `out` at `offset`. Throws RangeError only for a value its field cannot hold (a caller bug). */
export function writeHeader(out: Uint8Array, offset: number, h: RmRpcHeader): void {
  checkField('fragmentCount', h.fragmentCount, RM_RPC_FRAGMENT_FIELD_MAX);
  checkField('seq', h.seq, 0xffff);
  checkField('msgId', h.msgId, 0xffff_ffff);
  const type = MESSAGE_TYPES[h.type];
  if (type === undefined) throw new RangeError(`RM RPC header type ${String(h.type)} is not a §1.2 message type`);
  out[offset] = RM_RPC_HEADER_BYTE0;
  out[offset + 1] = (h.fragmentCount << 2) | type;
  out[offset + 2] = h.seq & 0xff;
  out[offset + 3] = h.seq >>> 8;
  new DataView(out.buffer, out.byteOffset + offset + 4, 4).setUint32(0, h.msgId, true);
}

export function encodeHeader(h: RmRpcHeader): Uint8Array {
  const out = new Uint8Array(RM_RPC_HEADER_SIZE);
  writeHeader(out, 0, h);
  return out;
}

/** Reads the first 8 bytes of a fragment. Never throws; bytes after the header are not looked at. */
export function decodeHeader(fragment: Uint8Array): Result<RmRpcHeader, HeaderError> {
  for (const f of headerFailures) if (f.holds(fragment)) return err({ rule: f.rule, reason: f.reason(fragment) });
  const b1 = fragment[1]!;
  return ok({
    type: typeByCode[b1 & 0x3]!,
    fragmentCount: b1 >> 2,
    seq: fragment[2]! | (fragment[3]! << 8),
    msgId: (fragment[4]! | (fragment[5]! << 8) | (fragment[6]! << 16) | (fragment[7]! << 24)) >>> 0,
  });
}
