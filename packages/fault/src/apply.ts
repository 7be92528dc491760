/**
 * Applying a decision at an async call boundary (a gRPC handler or client call, a simulated port):
 * the one place that says what each action means for a call with a reply. Generic over the call's
 * outcome type T; the caller supplies how a refused or lost call looks as a T (a gRPC status, a
 * Result, a history entry), and the ports for time and crashing, so the simulation can pass its
 * simulated clock and its modelled crash.
 *
 *   delay        sleep(delayMs), then call
 *   pause        pause(durationMs) (the adapter stops serving), then call
 *   fail_before  do not call; refused(failure)
 *   fail_after   call, then lose the reply: lost(code)            (the effect happened)
 *   duplicate    call, call again, return the first outcome       (the second is applied too)
 *   drop         do not call; lost(DEADLINE_EXCEEDED)             (the request vanished)
 *   crash        BEFORE_COMMIT: crash, do not call; AFTER_COMMIT: call, then crash; either way
 *                lost(UNAVAILABLE) if the crash port returns (in a service it never does)
 *   corrupt, reorder, truncate: fragment actions (fragment.ts); the validator never arms them at a call
 *                boundary, so meeting one here is a bug.
 */

import type { Decision, FaultEvent } from './engine.js';
import type { Failure, LostReplyCode } from './plan.js';

/** How the caller's outcome type represents a refused or lost call. */
export interface OutcomeAdapter<T> {
  /** The call was refused without being applied (fail_before). */
  refused(failure: Failure, event: FaultEvent): T;
  /** The reply was lost (fail_after, drop, crash): the caller cannot tell whether it applied. */
  lost(code: LostReplyCode, message: string, event: FaultEvent): T;
}

export interface ApplyPorts {
  /** Resolve after `ms` milliseconds of the adapter's clock (real or simulated). */
  readonly sleep: (ms: number) => Promise<void>;
  /** Stop serving for `ms` (default: sleep, i.e. only this call waits). */
  readonly pause?: (ms: number) => Promise<void>;
  /** Exit the process (services) or model the crash (simulation). */
  readonly crash: (event: FaultEvent) => void;
}

/** The status message of an injected failure that has none of its own. */
export const faultMessage = (event: FaultEvent, what: string): string => `fault injected by rule ${event.ruleId}: ${what}`;

/** Run `call` under `decision` (module header). */
export async function applyAt<T>(decision: Decision, call: () => Promise<T>, outcome: OutcomeAdapter<T>, ports: ApplyPorts): Promise<T> {
  if (!decision.fault) return call();
  const event = decision.event;
  const a = event.action;
  switch (a.kind) {
    case 'delay':
      await ports.sleep(a.delayMs);
      return call();
    case 'pause':
      await (ports.pause ?? ports.sleep)(a.durationMs);
      return call();
    case 'fail_before':
      return outcome.refused(a.failure, event);
    case 'fail_after':
      await call();
      return outcome.lost(a.code, a.message ?? faultMessage(event, 'reply lost'), event);
    case 'duplicate': {
      const first = await call();
      await call();
      return first;
    }
    case 'drop':
      return outcome.lost('DEADLINE_EXCEEDED', faultMessage(event, 'request dropped'), event);
    case 'crash':
      if (a.point === 'AFTER_COMMIT') await call();
      ports.crash(event);
      return outcome.lost('UNAVAILABLE', faultMessage(event, `crashed ${a.point === 'AFTER_COMMIT' ? 'after' : 'before'} commit`), event);
    case 'corrupt':
    case 'reorder':
    case 'truncate':
      throw new Error(`applyAt: ${a.kind} is a fragment action (rule ${event.ruleId}); the validator should have refused it at ${event.boundary}`);
  }
}
