/**
 * The fault engine on a service's outbound calls: a grpc-js client interceptor (gRFC L5) for the
 * RM_TO_CORE, VMM_TO_CORE and VMM_TO_RM boundaries, applying a decision with apply.ts's meaning:
 *
 *   delay, pause  hold the call before it is sent
 *   fail_before   never send it; the caller gets the status (a domain error encoded as the
 *                 callee would, failureStatus)
 *   fail_after    send it (the callee applies it), then replace its answer with UNAVAILABLE or
 *                 DEADLINE_EXCEEDED: the lost reply
 *   duplicate     send it; when its answer arrives, send the same request again on a second call,
 *                 and give the caller the first answer once the second has finished (so the
 *                 caller's next step sees both applied, deterministically)
 *   drop          never send it; the caller gets DEADLINE_EXCEEDED at once (the simulation, with
 *                 its own clock, may wait for the deadline instead)
 *   crash         this process exits (the crash port) before sending, or after the answer arrives
 *                 and before the caller sees it; if the port returns (tests), UNAVAILABLE
 * Unary calls only; streams pass through (the msgq adapter faults messages and fragments).
 * The point's caller VMID is the one this process puts in its own request metadata.
 */

import * as grpc from '@grpc/grpc-js';
import { faultMessage, type Boundary, type FaultEngine, type FaultEvent } from '@hypmesh/fault';
import { CALLER_VMID_KEY } from './caller.js';
import { failureStatus } from './fault-status.js';

export interface FaultClientInterceptorPorts {
  /** Exit the process (default: `process.exit(137)`, as kill -9 reports). */
  readonly crash?: (event: FaultEvent) => void;
}

const lost = (code: 'UNAVAILABLE' | 'DEADLINE_EXCEEDED', details: string): grpc.StatusObject => ({
  code: grpc.status[code],
  details,
  metadata: new grpc.Metadata(),
});

function callerOf(metadata: grpc.Metadata): number | undefined {
  const v = metadata.get(CALLER_VMID_KEY);
  if (v.length !== 1 || typeof v[0] !== 'string') return undefined;
  const n = Number(v[0].trim());
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** A client interceptor applying `engine`'s decisions at `boundary` (RM_TO_CORE, VMM_TO_CORE, VMM_TO_RM). */
export function faultClientInterceptor(engine: FaultEngine, boundary: Boundary, ports: FaultClientInterceptorPorts = {}): grpc.Interceptor {
  const crash = ports.crash ?? (() => process.exit(137));
  return (options, nextCall) => {
    const def = options.method_definition;
    if (def.requestStream || def.responseStream) return new grpc.InterceptingCall(nextCall(options));
    const method = def.path.slice(def.path.lastIndexOf('/') + 1);
    /** Set when the call is answered here and nothing may be sent. */
    let unsent = false;
    let request: unknown;
    let sentMetadata: grpc.Metadata | undefined;

    const requester = new grpc.RequesterBuilder()
      .withStart((metadata, listener, next) => {
        const vmid = callerOf(metadata);
        const decision = engine.decide(vmid === undefined ? { boundary, method } : { boundary, method, callerVmid: vmid });
        if (!decision.fault) return next(metadata, listener);
        const event = decision.event;
        const a = event.action;
        const answerNow = (s: grpc.StatusObject): void => {
          unsent = true;
          setImmediate(() => listener.onReceiveStatus(s));
        };
        /** Let the call through, then replace its answer (and run `before` first). */
        const replaceAnswer = (s: grpc.StatusObject, before: () => void = () => undefined): void =>
          next(metadata, {
            onReceiveMessage: () => undefined,
            onReceiveStatus: () => {
              before();
              listener.onReceiveStatus(s);
            },
          });
        switch (a.kind) {
          case 'delay':
          case 'pause': {
            const ms = a.kind === 'delay' ? a.delayMs : a.durationMs;
            setTimeout(() => next(metadata, listener), ms);
            return;
          }
          case 'fail_before':
            answerNow(failureStatus(a.failure, event));
            return;
          case 'drop':
            answerNow(lost('DEADLINE_EXCEEDED', faultMessage(event, 'request dropped')));
            return;
          case 'fail_after':
            replaceAnswer(lost(a.code, a.message ?? faultMessage(event, 'reply lost')));
            return;
          case 'crash':
            if (a.point === 'BEFORE_COMMIT') {
              crash(event);
              answerNow(lost('UNAVAILABLE', faultMessage(event, 'crashed before commit')));
            } else {
              replaceAnswer(lost('UNAVAILABLE', faultMessage(event, 'crashed after commit')), () => crash(event));
            }
            return;
          case 'duplicate':
            sentMetadata = metadata.clone();
            next(metadata, {
              onReceiveStatus: (first: grpc.StatusObject) => {
                const again = nextCall(options);
                again.start(sentMetadata!, {
                  onReceiveMetadata: () => undefined,
                  onReceiveMessage: () => undefined,
                  onReceiveStatus: () => listener.onReceiveStatus(first),
                });
                again.sendMessage(request);
                again.halfClose();
              },
            });
            return;
          case 'corrupt':
          case 'reorder':
            // Fragment actions; the validator never arms them at a call boundary.
            return next(metadata, listener);
        }
      })
      .withSendMessage((message, next) => {
        request = message;
        if (!unsent) next(message);
      })
      .withHalfClose((next) => {
        if (!unsent) next();
      })
      .build();
    return new grpc.InterceptingCall(nextCall(options), requester);
  };
}
