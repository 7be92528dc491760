/**
 * One msgq fragment through a decision at VMM_TO_RM_FRAGMENT (DESIGN.md §7): what the sender writes
 * now, how long its queue holds first, and whether the process crashes. Pure, like fragment.ts;
 * the gRPC msgq client (services/vmm rm-client.ts) and the simulation's port both step with it, so
 * a fragment fault means the same in every mode.
 *
 *   none      send it (after anything the reorder buffer held back)
 *   delay     hold the queue delayMs, then send it: later fragments wait behind it (a msgq is FIFO)
 *   pause     the same, for durationMs (the sender stops serving its queue)
 *   duplicate send it twice in a row
 *   drop      send nothing
 *   corrupt   send a copy with the drawn bytes flipped (corruptFragment)
 *   reorder   hold it until the next fragment has gone (FragmentReorder)
 *   truncate  send only its first keepBytes bytes (truncateFragment): a short read at the receiver
 *   crash     BEFORE_COMMIT: send nothing, crash; AFTER_COMMIT: send it, then crash
 */

import type { Decision, FaultEvent } from './engine.js';
import { corruptFragment, truncateFragment, type FragmentReorder } from './fragment.js';

export interface FragmentStep {
  /** Fragments to write now, in order (after `holdMs`). */
  readonly send: readonly Uint8Array[];
  /** Milliseconds the queue waits before writing `send` (0: at once). */
  readonly holdMs: number;
  /** Crash after writing `send` (the event that asked for it). */
  readonly crash?: FaultEvent;
}

export function fragmentStep(decision: Decision, fragment: Uint8Array, reorder: FragmentReorder<Uint8Array>): FragmentStep {
  if (!decision.fault) return { send: reorder.push(fragment, false), holdMs: 0 };
  const event = decision.event;
  const a = event.action;
  switch (a.kind) {
    case 'delay':
      return { send: reorder.push(fragment, false), holdMs: a.delayMs };
    case 'pause':
      return { send: reorder.push(fragment, false), holdMs: a.durationMs };
    case 'duplicate':
      return { send: [...reorder.push(fragment, false), fragment], holdMs: 0 };
    case 'drop':
      return { send: [], holdMs: 0 };
    case 'corrupt':
      return { send: reorder.push(corruptFragment(fragment, a.draws), false), holdMs: 0 };
    case 'reorder':
      return { send: reorder.push(fragment, true), holdMs: 0 };
    case 'truncate':
      return { send: reorder.push(truncateFragment(fragment, a.keepBytes), false), holdMs: 0 };
    case 'crash':
      return { send: a.point === 'AFTER_COMMIT' ? reorder.push(fragment, false) : [], holdMs: 0, crash: event };
    case 'fail_before':
    case 'fail_after':
      // Call actions; the validator never arms them at VMM_TO_RM_FRAGMENT (plan.ts ACTIONS_AT_BOUNDARY).
      throw new Error(`fragmentStep: ${a.kind} is not a fragment action (rule ${event.ruleId})`);
  }
}
