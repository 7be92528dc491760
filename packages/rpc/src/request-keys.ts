/**
 * Idempotency keys of cross-service mutations (issue 9 item 2, DESIGN.md §8): a caller names each
 * mutating call with a request id in metadata `x-hypmesh-request-id`, and a callee that remembers
 * the first outcome of each (caller, key) answers a repeat with it instead of applying it again. A
 * caller whose call timed out or lost its reply can then retry until it hears a definite answer
 * (keyed-retry.ts), which is the only way it learns whether the change happened.
 *
 * The key is opaque to the callee; it is only compared, together with the RPC and the request
 * bytes' digest, so a key reused for another RPC or other arguments is refused (INVALID_ARGUMENT),
 * never answered with an unrelated outcome. The table is bounded (oldest first out): a retry comes
 * within seconds, and REQUEST_KEYS_MAX keys outlast any retry budget at any call rate the model
 * serves.
 */

import { createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { invalidArgument, quoted } from './status.js';

export const REQUEST_ID_KEY = 'x-hypmesh-request-id';
export const REQUEST_ID_MAX_CHARS = 128;
/** Keys a callee remembers by default. */
export const REQUEST_KEYS_MAX = 65_536;

/** Printable ASCII without spaces: safe in logs and in a metadata value, one spelling per key. */
const REQUEST_ID_TEXT = new RegExp(`^[\\x21-\\x7e]{1,${REQUEST_ID_MAX_CHARS}}$`);

/** The request id in metadata, if any. Repeated or malformed: INVALID_ARGUMENT naming the key. */
export function requestIdOf(metadata: Metadata): string | undefined {
  const values = metadata.get(REQUEST_ID_KEY);
  if (values.length === 0) return undefined;
  if (values.length > 1) throw invalidArgument(REQUEST_ID_KEY, `given ${values.length} times; give it once`);
  const text = values[0];
  if (typeof text !== 'string' || !REQUEST_ID_TEXT.test(text)) throw invalidArgument(REQUEST_ID_KEY, `${quoted(String(text))} is not a request id: give 1..${REQUEST_ID_MAX_CHARS} printable ASCII characters, no spaces`);
  return text;
}

/** What a request's bytes are compared by: a repeat must carry the same arguments. */
export const requestDigest = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64');

/** The first outcome of a keyed call: its response, or its refusal. */
export type KeyedOutcome<R, E> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: E };

export interface KeyedEntry<R, E> {
  readonly caller: string;
  readonly key: string;
  readonly rpc: string;
  readonly digest: string;
  readonly outcome: KeyedOutcome<R, E>;
}

export type KeyLookup<R, E> = { readonly kind: 'new' } | { readonly kind: 'repeat'; readonly outcome: KeyedOutcome<R, E> } | { readonly kind: 'reused'; readonly rpc: string };

/** (caller, key) → first outcome, the oldest forgotten first beyond `capacity`. */
export class RequestKeys<R, E> {
  private readonly entries = new Map<string, KeyedEntry<R, E>>();

  constructor(readonly capacity: number = REQUEST_KEYS_MAX) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(caller: string, key: string, rpc: string, digest: string): KeyLookup<R, E> {
    const e = this.entries.get(slot(caller, key));
    if (e === undefined) return { kind: 'new' };
    return e.rpc === rpc && e.digest === digest ? { kind: 'repeat', outcome: e.outcome } : { kind: 'reused', rpc: e.rpc };
  }

  remember(entry: KeyedEntry<R, E>): void {
    const s = slot(entry.caller, entry.key);
    this.entries.delete(s);
    this.entries.set(s, entry);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Every remembered entry, oldest first. */
  list(): KeyedEntry<R, E>[] {
    return [...this.entries.values()];
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The refusal of a key already used for another call. */
export function keyReused(key: string, rpc: string, firstRpc: string): Error {
  const what = firstRpc === rpc ? `${rpc} with other arguments` : firstRpc;
  return invalidArgument(REQUEST_ID_KEY, `${quoted(key)} already named a ${what} call by this caller: give each call its own request id`);
}

const slot = (caller: string, key: string): string => `${caller}\u0000${key}`;
