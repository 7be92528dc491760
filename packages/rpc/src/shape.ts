/**
 * Request shape checks: the decoding half of a handler (STYLE "Thin services"). Each check throws a
 * StatusError (INVALID_ARGUMENT naming the field, status.ts) that unary() sends unchanged, so a
 * handler reads top to bottom: check shape, call one domain function, encode.
 *
 * Shape only: widths and presence. Whether an address is memory, aligned for a level,
 * or in the right state is the domain's rule and stays there. So is every value the modelled call
 * itself validates (RMI hash algorithm, VMID, RIPAS, flags; pKVM prot): such fields are open
 * (openEnumField, u64Register) and the domain returns the exact errno or RMI status and index.
 *
 * Width limits: the domain keeps frame numbers and addresses in doubles (exact below 2^53). The
 * modelled architecture has at most 52-bit physical and intermediate addresses (FEAT_LPA2), so a
 * byte address needs at most 52 bits and a frame number at most 40. hypmesh's own calls (address
 * spaces, grants, queries) refuse wider values as malformed; the registers of modelled calls (pKVM
 * hypercalls, RMI commands) take any uint64 (u64Operand), since the real call answers those.
 */

import { invalidArgument } from './status.js';

export const ADDRESS_BITS_MAX = 52;
export const FRAME_BITS_MAX = ADDRESS_BITS_MAX - 12;
/** Largest integer a double holds exactly plus one: 2^53. */
export const SAFE_BITS_MAX = 53;
/** VMIDs are 16 bits (gunyah-rm.md §4.1). */
export const VMID_MAX = 0xffff;

/** A uint64 field as a number, refused (INVALID_ARGUMENT naming the field) at 2^bits or more. */
export function u64ToNumber(value: bigint, field: string, bits: number = ADDRESS_BITS_MAX): number {
  if (typeof value !== 'bigint') throw invalidArgument(field, `expected a uint64, got ${typeof value}`);
  if (value < 0n) throw invalidArgument(field, `negative value ${value}`);
  if (value >= 1n << BigInt(bits)) throw invalidArgument(field, `0x${value.toString(16)} needs more than ${bits} bits`);
  return Number(value);
}

/** A byte address (below 2^52). */
export const addressField = (value: bigint, field: string): number => u64ToNumber(value, field, ADDRESS_BITS_MAX);

/** A frame number or a frame count (below 2^40). */
export const frameField = (value: bigint, field: string): number => u64ToNumber(value, field, FRAME_BITS_MAX);

/**
 * A grant id (below 2^52): its high bits are the core's boot generation (@hypmesh/stage2
 * GRANT_IDS_PER_GENERATION), so it is wider than a frame number; no core issues one at 2^52 or above.
 */
export const grantIdField = (value: bigint, field: string): number => u64ToNumber(value, field, ADDRESS_BITS_MAX);

/** A number of the domain as a uint64 for a response. A negative or fractional value is a bug (thrown, INTERNAL). */
export function numberToU64(n: number, what: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what}: ${n} is not a uint64 the domain should produce`);
  return BigInt(n);
}

/** A VMID field (uint32 on the wire, 16 bits in the model). */
export function vmidField(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > VMID_MAX) throw invalidArgument(field, `VMID ${value} is not 0..0x${VMID_MAX.toString(16)}`);
  return value;
}

/** A message field that must be present (ts-proto leaves absent messages undefined). */
export function required<T>(value: T | undefined | null, field: string): T {
  if (value === undefined || value === null) throw invalidArgument(field, 'required');
  return value;
}

/**
 * A proto enum value mapped to a domain name. UNSPECIFIED (0) and values this build does not know
 * (an unknown number decodes as itself) are refused.
 */
export function enumField<K extends number, V>(value: K, table: ReadonlyMap<number, V>, field: string): V {
  const v = table.get(value);
  if (v === undefined) throw invalidArgument(field, value === 0 ? 'required (UNSPECIFIED)' : `unknown enum value ${value}`);
  return v;
}

/**
 * An open enum (the domain validates the value, as the real call does): UNSPECIFIED (0) is refused
 * as an absent field; a known value maps to its domain name; any other value passes through as its
 * number, for the domain to refuse with its own code and rule.
 */
export function openEnumField<K extends number, V>(value: K, table: ReadonlyMap<number, V>, field: string): V | number {
  if (!Number.isInteger(value)) throw invalidArgument(field, `${String(value)} is not an enum number`);
  if (value === 0) throw invalidArgument(field, 'required (UNSPECIFIED)');
  return table.get(value) ?? value;
}

/**
 * A uint64 register the domain only compares with small constants (RMI flags, §B6): any uint64 is
 * well-formed and reaches the domain. Values of 2^53 or more become the nearest double, which is
 * still above every constant they are compared with, so the domain's answer is the exact one.
 */
export function u64Register(value: bigint, field: string): number {
  if (typeof value !== 'bigint') throw invalidArgument(field, `expected a uint64, got ${typeof value}`);
  if (value < 0n || value >= 1n << 64n) throw invalidArgument(field, `${value} is not a uint64`);
  return Number(value);
}

/**
 * A uint64 register that the modelled call validates itself (a pKVM pfn, gfn or nr_pages; an RMI
 * address): any uint64 is well-formed and reaches the domain, which refuses what the real call
 * refuses (beyond the PA range, unaligned, outside the PAR). Below 2^53 the value is exact. From
 * 2^53 a double cannot hold it, so it becomes a stand-in of at least 2^52 (above every modelled PA,
 * IPA and frame number, so every bound check fails as it would) with the same power-of-two
 * alignment (so every alignment check answers as it would): 2^52 + 2^tz for tz < 52 trailing zero
 * bits, 3 * 2^52 for tz = 52, 2^tz above. The domain's answer is the real call's; only its message
 * shows the stand-in.
 */
export function u64Operand(value: bigint, field: string): number {
  if (typeof value !== 'bigint') throw invalidArgument(field, `expected a uint64, got ${typeof value}`);
  if (value < 0n || value >= 1n << 64n) throw invalidArgument(field, `${value} is not a uint64`);
  if (value < 1n << BigInt(SAFE_BITS_MAX)) return Number(value);
  let tz = 0;
  while (((value >> BigInt(tz)) & 1n) === 0n) tz++;
  if (tz < ADDRESS_BITS_MAX) return 2 ** ADDRESS_BITS_MAX + 2 ** tz;
  return tz === ADDRESS_BITS_MAX ? 3 * 2 ** ADDRESS_BITS_MAX : 2 ** tz;
}

/** A repeated field with at least `min` entries. */
export function nonEmpty<T>(list: readonly T[], field: string, min = 1): readonly T[] {
  if (list.length < min) throw invalidArgument(field, `needs at least ${min} entr${min === 1 ? 'y' : 'ies'}`);
  return list;
}
