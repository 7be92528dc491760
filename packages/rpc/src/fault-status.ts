/**
 * What a fault injected at a gRPC boundary answers (DESIGN.md §7): the status of a refused call (a
 * plain gRPC status, or the domain error encoded by status.ts exactly as the service would send it,
 * with rule "fault_injected"), the status of a lost reply, and the paths never faulted. Shared by
 * the front door (fault-handlers.ts) and the outbound client interceptor.
 */

import * as grpc from '@grpc/grpc-js';
import { faultMessage, type FaultEvent, type Failure } from '@hypmesh/fault';
import { domainStatus, type AnyDomainError } from './status.js';

/**
 * Never faulted: the fault control plane itself (a plan must not be able to lock its operator out),
 * health and reflection (probes and tools), all under their package prefixes.
 */
export const EXEMPT_PATHS = /^\/(?:hypmesh\.fault\.v1\.|grpc\.)/;

/** The rule name a fault-injected domain error carries in its detail. */
export const FAULT_RULE = 'fault_injected';

/** The status a refused call answers: a plain gRPC status, or the domain error as the service encodes it. */
export function failureStatus(failure: Failure, event: FaultEvent): grpc.StatusObject {
  if (failure.kind === 'grpc') {
    return { code: grpc.status[failure.code], details: failure.message ?? faultMessage(event, failure.code), metadata: new grpc.Metadata() };
  }
  const message = faultMessage(event, 'refused');
  const f = failure.error;
  const domain: AnyDomainError =
    f.family === 'errno'
      ? { family: 'errno', errno: f.errno, rule: FAULT_RULE, message }
      : f.family === 'rm'
        ? { family: 'rm', rmError: f.rmError, rule: FAULT_RULE, message }
        : f.family === 'rmi'
          ? { family: 'rmi', status: f.status, index: f.index, rule: FAULT_RULE, message, outputs: {} }
          : { family: 'vmm', errno: f.errno, rule: FAULT_RULE, message };
  const e = domainStatus(domain);
  return { code: e.code, details: e.details, metadata: e.metadata };
}

/** The reply a lost-reply fault answers in place of the handler's. */
export const lostStatus = (code: 'UNAVAILABLE' | 'DEADLINE_EXCEEDED', message: string): grpc.StatusObject => ({
  code: grpc.status[code],
  details: message,
  metadata: new grpc.Metadata(),
});
