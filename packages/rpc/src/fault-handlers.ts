/**
 * The fault engine at a service's front door, decided where the call is handled: every unary
 * handler of a service is wrapped so that, before it runs, it asks the FaultEngine about the call
 * at one CLIENT_TO_<svc> boundary and applies the decision with apply.ts's meaning (DESIGN.md §7,
 * issue 8 §1):
 *
 *   delay        start the handler late, then answer normally
 *   pause        stop serving: this call and every call arriving within durationMs wait it out
 *   fail_before  answer failureStatus() without running the handler (a domain error encoded as the
 *                service would, rule "fault_injected")
 *   fail_after   run the handler (the effect happens), then answer UNAVAILABLE or DEADLINE_EXCEEDED
 *                in place of whatever it answered: the lost reply
 *   crash        the crash port before the handler, or after it and before the reply; if the port
 *                returns (tests), the caller sees UNAVAILABLE
 *   duplicate    run the handler twice, back to back (the second after the first answered, as a
 *                retransmitted request arrives after the original); the caller sees the first answer
 *
 * Why a handler wrapper and not a grpc-js server interceptor: an interceptor costs every call an
 * intercepting call, a listener, a responder and their closures, even when nothing is armed, and
 * cannot run a handler twice; the wrapper costs one closure call and the engine's `decide`
 * (bench: fault_interceptor_overhead).
 *
 * Every unary call that reaches a handler is numbered, one op each, decided when its request has
 * arrived. Streaming handlers (the msgq Exchange, notification Subscribe, FaultService Events) pass
 * through unwrapped and unnumbered: the byte face's per-message faults belong to the msgq adapter,
 * where messages are visible. Paths under EXEMPT_PATHS (FaultService, health, reflection) are never
 * wrapped. A call whose request does not decode never reaches a handler and is not numbered.
 */

import type * as grpc from '@grpc/grpc-js';
import type { Boundary, FaultEngine, FaultEvent, FaultPoint } from '@hypmesh/fault';
import { faultMessage } from '@hypmesh/fault';
import { CALLER_VMID_KEY } from './caller.js';
import { EXEMPT_PATHS, failureStatus, lostStatus } from './fault-status.js';

export interface FaultHandlerPorts {
  /** Milliseconds since the epoch (pause bookkeeping); default Date.now. */
  readonly nowMs?: () => number;
  /** Exit the process (default: `process.exit(137)`, as kill -9 reports). */
  readonly crash?: (event: FaultEvent) => void;
  /** Told when a decision has no meaning at this hook (drop, corrupt, reorder, truncate on a unary call). */
  readonly onUnsupported?: (event: FaultEvent) => void;
}

/** One front door: wraps every service a server registers; the pause is shared by all of them. */
export interface FaultFrontDoor {
  wrap<S extends grpc.UntypedServiceImplementation>(definition: grpc.ServiceDefinition, implementation: S): S;
}

type UnaryHandler = grpc.handleUnaryCall<unknown, unknown>;

/** The caller's VMID from x-hypmesh-caller-vmid when it parses (a malformed one is the handler's to refuse). */
function callerOf(metadata: grpc.Metadata): number | undefined {
  const v = metadata.get(CALLER_VMID_KEY);
  if (v.length !== 1 || typeof v[0] !== 'string') return undefined;
  const n = Number(v[0]);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function faultFrontDoor(engine: FaultEngine, boundary: Boundary, ports: FaultHandlerPorts = {}): FaultFrontDoor {
  const nowMs = ports.nowMs ?? Date.now;
  const crash = ports.crash ?? (() => process.exit(137));
  let pausedUntilMs = 0;

  /** Apply a fault the engine decided for this call (the no-fault path never gets here). */
  const apply = (event: FaultEvent, handler: UnaryHandler, call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>, heldMs: number): void => {
    const a = event.action;
    const later = (ms: number, run: () => void): void => void (ms > 0 ? setTimeout(run, ms) : run());
    switch (a.kind) {
      case 'delay':
        return later(Math.max(heldMs, a.delayMs), () => handler(call, callback));
      case 'pause':
        pausedUntilMs = Math.max(pausedUntilMs, nowMs() + a.durationMs);
        return later(Math.max(heldMs, a.durationMs), () => handler(call, callback));
      case 'fail_before':
        return callback(failureStatus(a.failure, event));
      case 'fail_after': {
        const lost = lostStatus(a.code, a.message ?? faultMessage(event, 'reply lost'));
        return later(heldMs, () => handler(call, () => callback(lost)));
      }
      case 'crash':
        if (a.point === 'BEFORE_COMMIT') {
          crash(event);
          return callback(lostStatus('UNAVAILABLE', faultMessage(event, 'crashed before commit')));
        }
        return later(heldMs, () =>
          handler(call, () => {
            crash(event);
            callback(lostStatus('UNAVAILABLE', faultMessage(event, 'crashed after commit')));
          }),
        );
      case 'duplicate':
        return later(heldMs, () => handler(call, (error, value, trailer, flags) => handler(call, () => callback(error, value, trailer, flags))));
      case 'drop':
      case 'corrupt':
      case 'reorder':
      case 'truncate':
        ports.onUnsupported?.(event);
        return later(heldMs, () => handler(call, callback));
    }
  };

  const wrapOne = (method: string, handler: UnaryHandler): UnaryHandler => {
    // One point per method, refilled by each call: decide reads it synchronously and copies what an
    // event needs, so a call that nothing fires on allocates nothing here.
    const point: { -readonly [K in keyof FaultPoint]: FaultPoint[K] } = { boundary, method, callerVmid: undefined };
    return (call, callback) => {
      point.callerVmid = callerOf(call.metadata);
      const heldMs = pausedUntilMs === 0 ? 0 : Math.max(0, pausedUntilMs - nowMs());
      // Decide even when nothing is armed here: every call gets its op index, as in the simulation.
      const decision = engine.decide(point);
      if (decision.fault) return apply(decision.event, handler, call, callback, heldMs);
      if (heldMs > 0) setTimeout(() => handler(call, callback), heldMs);
      else handler(call, callback);
    };
  };

  return {
    wrap(definition, implementation) {
      const wrapped: Record<string, unknown> = { ...implementation };
      for (const [name, method] of Object.entries(definition)) {
        const handler = implementation[name] as UnaryHandler | undefined;
        if (handler === undefined || method.requestStream || method.responseStream || EXEMPT_PATHS.test(method.path)) continue;
        wrapped[name] = wrapOne(method.path.slice(method.path.lastIndexOf('/') + 1), handler);
      }
      return wrapped as typeof implementation;
    },
  };
}
