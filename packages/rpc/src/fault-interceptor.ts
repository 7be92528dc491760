/**
 * The fault engine at a service's front door: a grpc-js server interceptor (gRFC L112, grpc-js ≥
 * 1.10) that asks a FaultEngine about every unary call arriving at one CLIENT_TO_<svc> boundary and
 * applies the decision with apply.ts's meaning (DESIGN.md §7, issue 8 §1):
 *
 *   delay        hold the call's metadata (so the handler starts late), then proceed
 *   pause        stop serving: this call and every call arriving within durationMs wait it out
 *   fail_before  answer the status without running the handler; a domain error is encoded by
 *                domainStatus (status.ts), so the caller sees exactly what the service would send,
 *                with rule "fault_injected"
 *   fail_after   run the handler (the effect happens), then replace whatever it answered with
 *                UNAVAILABLE or DEADLINE_EXCEEDED: the lost reply
 *   crash        the crash port (process exit in a service) before the handler, or after it and
 *                before the reply; if the port returns (tests), the caller sees UNAVAILABLE
 *   duplicate    an interceptor cannot run the handler twice, so it marks the call (metadata
 *                DUPLICATE_MARK_KEY = the rule id) and `withFaultDuplicates` around the service's
 *                handlers runs a marked call twice. A client cannot forge the mark: the
 *                interceptor removes any it sent. Without the wrapper set `duplicates:
 *                'unsupported'`: the call runs once and `onUnsupported` is told.
 * FaultService, health and reflection are never faulted (EXEMPT_PATHS).
 * Streaming calls pass through untouched: the byte face's per-message faults belong to the msgq
 * adapter, where messages are visible.
 *
 * The point: method = the path's last segment, caller VMID from x-hypmesh-caller-vmid when it
 * parses (a malformed one is the handler's INVALID_ARGUMENT to give, not ours).
 */

import * as grpc from '@grpc/grpc-js';
import type { FaultEngine, FaultEvent, Failure } from '@hypmesh/fault';
import { faultMessage, type Boundary } from '@hypmesh/fault';
import { domainStatus, type AnyDomainError } from './status.js';
import { CALLER_VMID_KEY } from './caller.js';

export interface FaultInterceptorPorts {
  /** Milliseconds since the epoch (pause bookkeeping); default Date.now. */
  readonly nowMs?: () => number;
  /** Exit the process (default: `process.exit(137)`, as kill -9 reports). */
  readonly crash?: (event: FaultEvent) => void;
  /** Told when a decision cannot be applied at this hook (duplicate without the wrapper). */
  readonly onUnsupported?: (event: FaultEvent) => void;
  /** 'wrapper' (default): the handlers are wrapped by withFaultDuplicates; 'unsupported': they are not. */
  readonly duplicates?: 'wrapper' | 'unsupported';
}

/** Metadata key by which the interceptor asks withFaultDuplicates to deliver a call twice. */
export const DUPLICATE_MARK_KEY = 'x-hypmesh-fault-duplicate';

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

function callerOf(metadata: grpc.Metadata): number | undefined {
  const v = metadata.get(CALLER_VMID_KEY);
  if (v.length !== 1 || typeof v[0] !== 'string') return undefined;
  const n = Number(v[0].trim());
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** A server interceptor applying `engine`'s decisions at `boundary` (one of CLIENT_TO_CORE/RM/VMM). */
export function faultInterceptor(engine: FaultEngine, boundary: Boundary, ports: FaultInterceptorPorts = {}): grpc.ServerInterceptor {
  const nowMs = ports.nowMs ?? Date.now;
  const crash = ports.crash ?? (() => process.exit(137));
  let pausedUntilMs = 0;

  return (method, call) => {
    if (method.requestStream || method.responseStream || EXEMPT_PATHS.test(method.path)) return new grpc.ServerInterceptingCall(call);
    const name = method.path.slice(method.path.lastIndexOf('/') + 1);
    let event: FaultEvent | undefined;
    /** The call was answered here: swallow what the client still sends. */
    let answered = false;
    /** The reply to substitute for whatever the handler answers (fail_after, crash after commit). */
    let replaceReply: grpc.StatusObject | undefined;

    const answer = (s: grpc.StatusObject): void => {
      answered = true;
      call.sendStatus(s);
    };

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        metadata.remove(DUPLICATE_MARK_KEY);
        const heldMs = Math.max(0, pausedUntilMs - nowMs());
        // Decide even when nothing is armed here: every call gets its op index, as in the simulation.
        const decision = engine.decide({ boundary, method: name, ...optionalCaller(callerOf(metadata)) });
        let delayMs = heldMs;
        if (decision.fault) {
          event = decision.event;
          const a = event.action;
          switch (a.kind) {
            case 'delay':
              delayMs = Math.max(delayMs, a.delayMs);
              break;
            case 'pause':
              pausedUntilMs = Math.max(pausedUntilMs, nowMs() + a.durationMs);
              delayMs = Math.max(delayMs, a.durationMs);
              break;
            case 'fail_before':
              answer(failureStatus(a.failure, event));
              return;
            case 'fail_after':
              replaceReply = lostStatus(a.code, a.message ?? faultMessage(event, 'reply lost'));
              break;
            case 'crash':
              if (a.point === 'BEFORE_COMMIT') {
                crash(event);
                answer(lostStatus('UNAVAILABLE', faultMessage(event, 'crashed before commit')));
                return;
              }
              replaceReply = lostStatus('UNAVAILABLE', faultMessage(event, 'crashed after commit'));
              break;
            case 'duplicate':
              if ((ports.duplicates ?? 'wrapper') === 'wrapper') metadata.set(DUPLICATE_MARK_KEY, event.ruleId);
              else ports.onUnsupported?.(event);
              break;
            case 'drop':
            case 'corrupt':
            case 'reorder':
              ports.onUnsupported?.(event);
              break;
          }
        }
        if (delayMs > 0) setTimeout(() => next(metadata), delayMs);
        else next(metadata);
      })
      .withOnReceiveMessage((message, next) => {
        if (!answered) next(message);
      })
      .withOnReceiveHalfClose((next) => {
        if (!answered) next();
      })
      .build();

    /** The handler finished (a reply or an error status): the effect happened; lose the reply. */
    const loseReply = (): boolean => {
      if (replaceReply === undefined || event === undefined) return false;
      if (event.action.kind === 'crash') crash(event);
      answer(replaceReply);
      return true;
    };

    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendMessage((message, next) => {
        // Not forwarding also keeps grpc-js from sending the handler's status after this message.
        if (!loseReply()) next(message);
      })
      .withSendStatus((status, next) => {
        if (answered) return;
        if (!loseReply()) next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}

const optionalCaller = (vmid: number | undefined): { callerVmid?: number } => (vmid === undefined ? {} : { callerVmid: vmid });

/**
 * The service's handlers, with every unary handler delivering a call the interceptor marked for
 * duplication twice, back to back (the second after the first answered, as a retransmitted request
 * arrives after the original); the caller sees the first answer. Streaming handlers are unchanged.
 */
export function withFaultDuplicates<S extends grpc.UntypedServiceImplementation>(definition: grpc.ServiceDefinition, implementation: S): S {
  const wrapped: Record<string, unknown> = { ...implementation };
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name] as grpc.handleUnaryCall<unknown, unknown> | undefined;
    if (handler === undefined || method.requestStream || method.responseStream) continue;
    wrapped[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (call.metadata.get(DUPLICATE_MARK_KEY).length === 0) return handler(call, callback);
      handler(call, (error, value, trailer, flags) => {
        handler(call, () => callback(error, value, trailer, flags));
      });
    };
  }
  return wrapped as S;
}
