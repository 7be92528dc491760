/**
 * One mutating service-to-service call made idempotent (issue 9 item 2): the request id of its
 * logical operation in metadata `x-hypmesh-request-id` (request-keys.ts), sent again with the same
 * id while its outcome is unknown (keyed-retry.ts), all within one budget. The callers' ports (the
 * RM's and the VMM's core clients) turn the final reply into their domain's result.
 */

import * as grpc from '@grpc/grpc-js';
import { CLIENT_KEY } from './admission.js';
import { CALLER_VMID_KEY } from './caller.js';
import type { ClientUnaryFn } from './client-call.js';
import { retryAmbiguous, type OperationKeys } from './keyed-retry.js';
import { REQUEST_ID_KEY, requestDigest } from './request-keys.js';
import { decodeStatusDetails } from './status-details.js';

export interface KeyedCall<Req, Res> {
  readonly client: grpc.Client;
  readonly fn: ClientUnaryFn<Req, Res>;
  /** The method's definition (the generated ServiceDefinition's entry): its path and request codec. */
  readonly definition: { readonly path: string; requestSerialize(req: Req): Buffer };
  readonly req: Req;
  readonly caller: number;
  /** The calling service's name in `x-hypmesh-client` (admission.ts: `rm`, `vmm`), so its quotas are its own. */
  readonly clientName?: string;
  readonly keys: OperationKeys;
  /** The whole call, retries included, ends within this. */
  readonly budgetMs: number;
}

/** The rule a caller's port gives a call whose outcome stayed unknown (the RM maps it to BUSY). */
export const OUTCOME_UNKNOWN_RULE = 'outcome_unknown';

/** What a port says of a call whose outcome stayed unknown; `last` is the last attempt's failure. */
export const outcomeUnknownMessage = (rpc: string, r: KeyedReply<unknown>, budgetMs: number, last: string): string =>
  `${rpc}: no definite answer in ${r.attempts} attempt(s) within ${budgetMs} ms (last: ${last}); request id ${r.key} stays open for the same request`;

export interface KeyedReply<Res> {
  /** The last attempt's reply. */
  readonly error: grpc.ServiceError | null;
  readonly response?: Res;
  readonly key: string;
  readonly attempts: number;
  /** No attempt got a definite answer: the callee may or may not have applied the call. */
  readonly unknown: boolean;
}

/**
 * Whether a reply leaves the outcome unknown: no response, or a transport failure that is not the
 * callee's verdict (no ErrorDetail) and may have happened after the callee applied the call.
 */
export function outcomeUnknown(e: grpc.ServiceError | null, response: unknown): boolean {
  if (e === null) return response === undefined;
  if (e.code !== grpc.status.UNAVAILABLE && e.code !== grpc.status.DEADLINE_EXCEEDED) return false;
  return decodeStatusDetails({ code: e.code, details: e.details ?? e.message, metadata: e.metadata }).errorDetail === undefined;
}

export async function keyedCall<Req, Res>(c: KeyedCall<Req, Res>): Promise<KeyedReply<Res>> {
  // The operation is the call itself: the same RPC by the same caller with the same arguments.
  const operation = `${c.definition.path} ${c.caller} ${requestDigest(c.definition.requestSerialize(c.req))}`;
  const key = c.keys.keyFor(operation);
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(c.caller));
  if (c.clientName !== undefined) md.set(CLIENT_KEY, c.clientName);
  md.set(REQUEST_ID_KEY, key);
  const once = (deadline: number) =>
    new Promise<{ result: { error: grpc.ServiceError | null; response?: Res }; ambiguous: boolean }>((resolve) => {
      const settle = (error: grpc.ServiceError | null, response?: Res) => resolve({ result: response === undefined ? { error } : { error, response }, ambiguous: outcomeUnknown(error, response) });
      try {
        c.fn.call(c.client, c.req, md.clone(), { deadline }, (e, r) => settle(e, r));
      } catch (e) {
        // Thrown before sending (a closed client): nothing reached the callee, a definite failure.
        resolve({ result: { error: Object.assign(new Error(e instanceof Error ? e.message : String(e)), { code: grpc.status.INTERNAL, details: String(e), metadata: new grpc.Metadata() }) }, ambiguous: false });
      }
    });
  const r = await retryAmbiguous(once, c.budgetMs);
  if (!r.ambiguous) c.keys.settled(operation);
  return { ...r.result, key, attempts: r.attempts, unknown: r.ambiguous };
}
