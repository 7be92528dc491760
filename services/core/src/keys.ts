/**
 * The core's idempotency keys (issue 9 item 2; the table is @hypmesh/rpc RequestKeys): every
 * mutating CoreService call may carry `x-hypmesh-request-id`, and the core answers a repeat of a
 * (caller, key) with the first outcome without applying it again (server.ts, beforeReply).
 *
 * Durable mode (durable.ts): a journal record carries its call's key, so replay remembers every
 * success again; a core image carries the successes remembered when it was cut (`keysImage`), so a
 * snapshot forgets no key. Refusals are remembered in memory only: a refusal changed nothing, so a
 * repeat of one after a restart is evaluated afresh, which is safe (at worst it now succeeds, as a
 * first call would). Reset, a reboot, forgets every key.
 */

import type * as grpc from '@grpc/grpc-js';
import { CoreServiceService } from '@hypmesh/proto';
import { requestDigest, RequestKeys } from '@hypmesh/rpc';

type Methods = Record<
  string,
  {
    readonly path: string;
    requestSerialize(v: unknown): Buffer;
    requestDeserialize(b: Buffer): unknown;
    responseSerialize(v: unknown): Buffer;
    responseDeserialize(b: Buffer): unknown;
  }
>;
/** CoreService's methods by handler name (createGrant, …), with their codecs. */
export const METHODS = CoreServiceService as unknown as Methods;

export type CoreKeys = RequestKeys<unknown, grpc.ServiceError>;

/** The digest a repeat's request must match. */
export const digestOf = (rpc: string, request: unknown): string => requestDigest(METHODS[rpc]!.requestSerialize(request));

interface StoredKey {
  readonly caller: string;
  readonly key: string;
  readonly rpc: string;
  readonly digest: string;
  /** The response, protobuf bytes in base64. */
  readonly response: string;
}

/** The remembered successes, oldest first, as an image state row. */
export function keysImage(keys: CoreKeys): string {
  const stored: StoredKey[] = [];
  for (const e of keys.list()) {
    if (e.outcome.ok) stored.push({ caller: e.caller, key: e.key, rpc: e.rpc, digest: e.digest, response: METHODS[e.rpc]!.responseSerialize(e.outcome.value).toString('base64') });
  }
  return JSON.stringify(stored);
}

/** Remembers the successes of an image state row again. */
export function restoreKeys(image: string, keys: CoreKeys): void {
  for (const s of JSON.parse(image) as StoredKey[]) {
    keys.remember({ caller: s.caller, key: s.key, rpc: s.rpc, digest: s.digest, outcome: { ok: true, value: METHODS[s.rpc]!.responseDeserialize(Buffer.from(s.response, 'base64')) } });
  }
}
