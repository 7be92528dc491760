/**
 * Little-endian, packed reading and writing of RM payloads, and the RM list form of gunyah-rm.md §3.1
 * (RM `rm_rpc_read_list`), in one place for every payload.
 *
 * Reader keeps the first failure and turns every later read into a no-op returning 0, so a decoder is
 * straight-line code ending in `finish(value)`; nothing throws and nothing is allocated from an
 * untrusted count before the bytes for it are known to be there. Writer throws RangeError only when
 * given a value its field cannot hold: that is a caller bug, not input.
 */
import { err, ok, type Result } from './result.js';
import type { RmErrorName } from './rm-error.js';

/** Entries per list per message (§3.1, RM `MAX_LIST_ENTRIES`, Linux `GUNYAH_RM_MAX_MEM_ENTRIES`). */
export const LIST_ENTRIES_MAX = 512;
/** Size of a list header: u16 count + u16 second half-word (§3.1). */
export const LIST_HEADER_SIZE = 4;
/** Lists start on 4-byte boundaries (§3.1 "the next list starts at the next 4-byte boundary"). */
export const LIST_ALIGN_BYTES = 4;

/** Every way bytes fail to decode, with the RM error the RM answers and the rule's source. */
export const DECODE_RULES = {
  length_invalid: { rmError: 'MSG_INVALID', spec: '§4.2 fixed-size requests ("vmid req" = 4 bytes, exact length required)' },
  truncated: { rmError: 'MSG_INVALID', spec: '§3.1 a list or field runs past the end of the message' },
  trailing_bytes: { rmError: 'MSG_INVALID', spec: '§3.1 bytes left over after the last expected list' },
  list_header_missing: {
    rmError: 'MSG_INVALID',
    spec: '§3.1 every list header of the fixed part must be present (MEM_SHARE/LEND/DONATE ≥ 20 B, MEM_APPEND ≥ 12 B, MEM_ACCEPT ≥ 24 B)',
  },
  list_entries_over_max: { rmError: 'NORESOURCE', spec: '§3.1 count > 512 (RM list reader)' },
} as const satisfies Record<string, { rmError: RmErrorName; spec: string }>;

export type DecodeRule = keyof typeof DECODE_RULES;

export interface WireError {
  readonly rmError: (typeof DECODE_RULES)[DecodeRule]['rmError'];
  readonly rule: DecodeRule;
  readonly reason: string;
}

export type Decoded<T> = Result<T, WireError>;

export const wireError = (rule: DecodeRule, reason: string): WireError => ({ rmError: DECODE_RULES[rule].rmError, rule, reason });

/** An RM list as read: its entries and its second half-word (reserved, or map_vmid / reply flags). */
export interface RmList<T> {
  readonly entries: T[];
  readonly second: number;
}

export class Reader {
  private at = 0;
  private failure: WireError | undefined;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    /** What is being decoded, for messages ("MEM_ACCEPT request"). */
    readonly label: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  fail(rule: DecodeRule, reason: string): void {
    this.failure ??= wireError(rule, `${this.label}: ${reason}`);
  }

  /** True when `n` more bytes are there; otherwise records `truncated` for `what`. */
  private need(n: number, what: string): boolean {
    if (this.failure) return false;
    if (n <= this.remaining) return true;
    this.fail('truncated', `${what} needs ${n} bytes at offset ${this.at}, ${this.remaining} left`);
    return false;
  }

  u8(what = 'u8'): number {
    if (!this.need(1, what)) return 0;
    return this.view.getUint8(this.at++);
  }

  u16(what = 'u16'): number {
    if (!this.need(2, what)) return 0;
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }

  u32(what = 'u32'): number {
    if (!this.need(4, what)) return 0;
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  u64(what = 'u64'): bigint {
    if (!this.need(8, what)) return 0n;
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    return v;
  }

  skip(n: number, what = 'reserved'): void {
    if (this.need(n, what)) this.at += n;
  }

  /** A copy of the next `n` bytes. */
  take(n: number, what = 'bytes'): Uint8Array {
    if (!this.need(n, what)) return new Uint8Array(0);
    const out = this.bytes.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** `count` fixed-size entries whose count was read already; checks the bytes are there before allocating. */
  array<T>(count: number, entrySizeBytes: number, readEntry: (r: Reader) => T, what: string): T[] {
    if (!this.need(count * entrySizeBytes, `${what} (${count} × ${entrySizeBytes} bytes)`)) return [];
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(readEntry(this));
    return out;
  }

  /**
   * An RM list (§3.1): u16 count, u16 second half-word, `count` entries, then padding to 4 bytes.
   * A list that is absent because the message ends here reads as 0 entries, unless `required` (a
   * list of the message's fixed part: `list_header_missing`); count > 512 is NORESOURCE.
   */
  list<T>(entrySizeBytes: number, readEntry: (r: Reader) => T, what: string, required = false): RmList<T> {
    if (!this.failure && this.remaining === 0 && required) this.fail('list_header_missing', `${what}: the list header is missing at offset ${this.at}`);
    if (this.failure || this.remaining === 0) return { entries: [], second: 0 };
    const count = this.u16(`${what} count`);
    const second = this.u16(`${what} second half-word`);
    if (this.failure) return { entries: [], second: 0 };
    if (count > LIST_ENTRIES_MAX) {
      this.fail('list_entries_over_max', `${what} has ${count} entries, max ${LIST_ENTRIES_MAX}`);
      return { entries: [], second: 0 };
    }
    const entries = this.array(count, entrySizeBytes, readEntry, what);
    this.skip(padTo4(count * entrySizeBytes), `${what} padding`);
    return { entries, second };
  }

  /** The decoded value, or the first failure; bytes left over are `trailing_bytes`. */
  finish<T>(value: T): Decoded<T> {
    if (!this.failure && this.remaining > 0) this.fail('trailing_bytes', `${this.remaining} bytes left over after offset ${this.at}`);
    return this.failure ? err(this.failure) : ok(value);
  }
}

const padTo4 = (n: number): number => (LIST_ALIGN_BYTES - (n % LIST_ALIGN_BYTES)) % LIST_ALIGN_BYTES;

const U64_MAX = (1n << 64n) - 1n;

export class Writer {
  private buf = new Uint8Array(64);
  private view = new DataView(this.buf.buffer);
  private at = 0;

  constructor(readonly label: string) {}

  private room(n: number): number {
    if (this.at + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
      grown.set(this.buf.subarray(0, this.at));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.at;
    this.at += n;
    return at;
  }

  private check(value: number, max: number, what: string): void {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new RangeError(`${this.label}: ${what} must be an integer in 0..${max}, got ${value}`);
    }
  }

  u8(value: number, what = 'u8'): void {
    this.check(value, 0xff, what);
    const at = this.room(1); // grow first: room() may replace this.view
    this.view.setUint8(at, value);
  }

  u16(value: number, what = 'u16'): void {
    this.check(value, 0xffff, what);
    const at = this.room(2);
    this.view.setUint16(at, value, true);
  }

  u32(value: number, what = 'u32'): void {
    this.check(value, 0xffff_ffff, what);
    const at = this.room(4);
    this.view.setUint32(at, value, true);
  }

  u64(value: bigint, what = 'u64'): void {
    if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) {
      throw new RangeError(`${this.label}: ${what} must be a bigint in 0..2^64-1, got ${String(value)}`);
    }
    const at = this.room(8);
    this.view.setBigUint64(at, value, true);
  }

  /** Reserved bytes: always written as zero. */
  zeros(n: number): void {
    this.room(n);
  }

  bytes(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }

  /** An RM list (§3.1). Writes whatever count it is given (up to the u16 field), so tests can send > 512. */
  list<T>(entries: readonly T[], entrySizeBytes: number, writeEntry: (w: Writer, e: T) => void, what: string, second = 0): void {
    this.u16(entries.length, `${what} count`);
    this.u16(second, `${what} second half-word`);
    for (const e of entries) writeEntry(this, e);
    this.zeros(padTo4(entries.length * entrySizeBytes));
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.at);
  }
}
