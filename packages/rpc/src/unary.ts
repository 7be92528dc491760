/**
 * A unary handler in the shape hypmesh writes them, adapted to grpc-js's callback API (which has
 * no async handlers, grpc-node #54, and sends UNKNOWN for an escaped throw).
 *
 * The handler returns the domain's `Result`: `ok` → the response; a domain error → status.ts's
 * mapping. A thrown StatusError (a shape check) is sent as it is; anything else thrown is a bug
 * → INTERNAL, logged (fromThrown). The callback is called exactly once, whatever happens.
 */

import type { handleUnaryCall, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { inDependencyScope, type DependencyFailure } from './dependency.js';
import { dependencyStatus, domainStatus, fromThrown, type AnyDomainError, type BugLog } from './status.js';

/** Structurally the domain's Result (packages/stage2/src/result.ts). */
export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export type UnaryHandler<Req, Res> = (
  request: Req,
  call: ServerUnaryCall<Req, Res>,
) => Result<Res, AnyDomainError> | Promise<Result<Res, AnyDomainError>>;

/** Builds the wrapper; bugs are reported to `log`. */
export function unaryWith(log: BugLog) {
  return function unary<Req, Res>(handler: UnaryHandler<Req, Res>): handleUnaryCall<Req, Res> {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const where = safePath(call);
      let sent = false;
      const send: sendUnaryData<Res> = (error, value) => {
        if (sent) return;
        sent = true;
        callback(error, value);
      };
      const finish = (r: Result<Res, AnyDomainError>, unreached: () => DependencyFailure | undefined): void => {
        if (r === null || typeof r !== 'object' || typeof r.ok !== 'boolean') {
          send(fromThrown(new TypeError(`handler returned ${String(r)}, not a Result`), log, where));
        } else if (r.ok) {
          send(null, r.value);
        } else {
          // A refusal after a dependency could not be reached is the outage's (dependency.ts).
          const f = unreached();
          send(f === undefined ? domainStatus(r.error) : dependencyStatus(f, r.error));
        }
      };
      const fail = (e: unknown): void => send(fromThrown(e, log, where));
      try {
        const { result: r, failure } = inDependencyScope(() => handler(call.request, call));
        if (r instanceof Promise) r.then((v) => finish(v, failure), fail).catch(fail);
        else finish(r, failure);
      } catch (e) {
        fail(e);
      }
    };
  };
}

function safePath(call: ServerUnaryCall<unknown, unknown>): string {
  try {
    return call.getPath();
  } catch {
    return 'handler';
  }
}
