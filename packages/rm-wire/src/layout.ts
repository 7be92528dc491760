/**
 * Payload layouts as data. Each payload is one `layout(label, [fields])` table transcribed from the
 * spec's field table (offsets follow from the order; reserved bytes are `pad(n)`), and the table is
 * both the encoder and the decoder, so the two cannot disagree. Value types are inferred from the
 * table: u8/u16/u32 → number, u64 → bigint (addresses and sizes), lists → arrays of entries.
 *
 * Field kinds:
 *   u8/u16/u32/u64(name)      one little-endian scalar
 *   pad(n)                    n reserved bytes: written as 0, ignored when read
 *   list(name, entry)         RM list, §3.1 (u16 count, u16 reserved, entries, 4-byte aligned; absent ⇒ [],
 *                             or `list_header_missing` with { required: true }, a fixed-part list)
 *   listWithSecond(...)       the same, with the second half-word as a named field (ACCEPT map_vmid)
 *   counted(name, u16|u32, e) a plain count then entries (VM_AUTH_IMAGE, SET_DEMAND_PAGING, hyp resources)
 *   sized(name)               a u32 byte count then that many bytes (VM_EXITED reason)
 * A layout of scalars and pads only is fixed-size: it must be exactly that long (`length_invalid`).
 */
import { Reader, Writer, wireError, type Decoded } from './cursor.js';
import { err } from './result.js';

export interface Codec<T> {
  /** What the bytes are ("VM_STOP request"), used in error reasons. */
  readonly label: string;
  encode(value: T): Uint8Array;
  /** Never throws: a value, or MSG_INVALID / NORESOURCE with the rule that fired. */
  decode(bytes: Uint8Array): Decoded<T>;
}

type ScalarKind = 'u8' | 'u16' | 'u32' | 'u64';

export type FieldSpec =
  | { readonly kind: ScalarKind; readonly name: string }
  | { readonly kind: 'pad'; readonly bytes: number }
  | {
      readonly kind: 'list';
      readonly name: string;
      readonly entry: Layout<unknown>;
      readonly second?: string;
      readonly omitWhenEmpty?: boolean;
      readonly required?: boolean;
    }
  | { readonly kind: 'counted'; readonly name: string; readonly count: 'u16' | 'u32'; readonly entry: Layout<unknown> }
  | { readonly kind: 'sized'; readonly name: string };

type FieldValue<F> = F extends { kind: 'u64' }
  ? bigint
  : F extends { kind: 'u8' | 'u16' | 'u32' }
    ? number
    : F extends { kind: 'list' | 'counted'; entry: Layout<infer E> }
      ? readonly E[]
      : F extends { kind: 'sized' }
        ? Uint8Array
        : never;

type SecondName<F> = F extends { kind: 'list'; second: infer S extends string } ? S : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The value type a field table describes. */
export type ValueOf<Fs extends readonly FieldSpec[]> = Simplify<
  { readonly [F in Extract<Fs[number], { name: string }> as F['name']]: FieldValue<F> } & {
    readonly [S in SecondName<Fs[number]>]: number;
  }
>;

/** The value type of a codec. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

export interface Layout<T> extends Codec<T> {
  readonly fields: readonly FieldSpec[];
  /** Exact size for a layout of scalars and pads; undefined when it has lists or byte strings. */
  readonly sizeBytes: number | undefined;
  read(r: Reader): T;
  write(w: Writer, value: T): void;
}

export const u8 = <const N extends string>(name: N) => ({ kind: 'u8', name }) as const;
export const u16 = <const N extends string>(name: N) => ({ kind: 'u16', name }) as const;
export const u32 = <const N extends string>(name: N) => ({ kind: 'u32', name }) as const;
export const u64 = <const N extends string>(name: N) => ({ kind: 'u64', name }) as const;
export const pad = (bytes: number) => ({ kind: 'pad', bytes }) as const;
export const list = <const N extends string, E>(name: N, entry: Layout<E>, opts: { omitWhenEmpty?: boolean; required?: boolean } = {}) =>
  ({ kind: 'list', name, entry, ...opts }) as const;
export const listWithSecond = <const N extends string, const S extends string, E>(name: N, second: S, entry: Layout<E>, opts: { required?: boolean } = {}) =>
  ({ kind: 'list', name, second, entry, ...opts }) as const;
export const counted = <const N extends string, E>(name: N, count: 'u16' | 'u32', entry: Layout<E>) =>
  ({ kind: 'counted', name, count, entry }) as const;
export const sized = <const N extends string>(name: N) => ({ kind: 'sized', name }) as const;

const SCALAR_SIZE: Record<ScalarKind, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

function fixedSize(fields: readonly FieldSpec[]): number | undefined {
  let n = 0;
  for (const f of fields) {
    if (f.kind === 'pad') n += f.bytes;
    else if (f.kind in SCALAR_SIZE) n += SCALAR_SIZE[f.kind as ScalarKind];
    else return undefined;
  }
  return n;
}

type Rec = Record<string, unknown>;

function readField(r: Reader, f: FieldSpec, out: Rec): void {
  switch (f.kind) {
    case 'u8':
    case 'u16':
    case 'u32':
    case 'u64':
      out[f.name] = r[f.kind](f.name);
      return;
    case 'pad':
      r.skip(f.bytes);
      return;
    case 'list': {
      const l = r.list(entrySize(f.entry), (er) => f.entry.read(er), f.name, f.required === true);
      out[f.name] = l.entries;
      if (f.second !== undefined) out[f.second] = l.second;
      return;
    }
    case 'counted': {
      const n = f.count === 'u16' ? r.u16(`${f.name} count`) : r.u32(`${f.name} count`);
      out[f.name] = r.array(n, entrySize(f.entry), (er) => f.entry.read(er), f.name);
      return;
    }
    case 'sized':
      out[f.name] = r.take(r.u32(`${f.name} size`), f.name);
      return;
  }
}

function writeField(w: Writer, f: FieldSpec, v: Rec): void {
  switch (f.kind) {
    case 'u8':
    case 'u16':
    case 'u32':
      w[f.kind](v[f.name] as number, f.name);
      return;
    case 'u64':
      w.u64(v[f.name] as bigint, f.name);
      return;
    case 'pad':
      w.zeros(f.bytes);
      return;
    case 'list': {
      const entries = v[f.name] as readonly unknown[];
      if (f.omitWhenEmpty && entries.length === 0) return;
      const second = f.second === undefined ? 0 : (v[f.second] as number);
      w.list(entries, entrySize(f.entry), (ew, e) => f.entry.write(ew, e), f.name, second);
      return;
    }
    case 'counted': {
      const entries = v[f.name] as readonly unknown[];
      w[f.count](entries.length, `${f.name} count`);
      for (const e of entries) f.entry.write(w, e);
      return;
    }
    case 'sized': {
      const b = v[f.name] as Uint8Array;
      w.u32(b.length, `${f.name} size`);
      w.bytes(b);
      return;
    }
  }
}

function entrySize(entry: Layout<unknown>): number {
  if (entry.sizeBytes === undefined) throw new TypeError(`${entry.label}: list entries must be fixed-size`);
  return entry.sizeBytes;
}

/** A codec from a field table (see the module comment). */
export function layout<const Fs extends readonly FieldSpec[]>(label: string, fields: Fs): Layout<ValueOf<Fs>> {
  const sizeBytes = fixedSize(fields);
  const read = (r: Reader): ValueOf<Fs> => {
    const out: Rec = {};
    for (const f of fields) readField(r, f, out);
    return out as ValueOf<Fs>;
  };
  const write = (w: Writer, value: ValueOf<Fs>): void => {
    for (const f of fields) writeField(w, f, value as Rec);
  };
  return {
    label,
    fields,
    sizeBytes,
    read,
    write,
    encode(value) {
      const w = new Writer(label);
      write(w, value);
      return w.finish();
    },
    decode(bytes) {
      if (sizeBytes !== undefined && bytes.length !== sizeBytes) {
        return err(wireError('length_invalid', `${label}: must be exactly ${sizeBytes} bytes, got ${bytes.length}`));
      }
      const r = new Reader(bytes, label);
      return r.finish(read(r));
    },
  };
}
