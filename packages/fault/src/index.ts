/**
 * @hypmesh/fault: the fault engine (DESIGN.md §7, issue 8). Pure: no I/O, no timers, no Math.random;
 * time, sleep and crash are ports, every random choice comes from the plan's seed.
 *
 *   plan.ts      the plan as data (mirror of hypmesh.fault.v1), actions allowed per boundary
 *   validate.ts  every problem of a plan, as `path: rule`
 *   load.ts      proto3-JSON text → validated plan
 *   prng.ts      splitmix32 and one stream per rule
 *   engine.ts    FaultEngine: arm, disarm, list, subscribe, decide
 *   apply.ts     applyAt: a decision applied to an async call
 *   fragment.ts  corrupt, truncate and reorder for msgq fragments
 *   fragment-step.ts  one fragment through a decision (what to send, hold, crash)
 */
export * from './result.js';
export * from './plan.js';
export { ACTION_JSON_KEYS, formatIssues, matchedRmMessage, validatePlan, type PlanIssue } from './validate.js';
export { loadPlanJson, planFromJson } from './load.js';
export { Prng, fnv1a32, ruleStream } from './prng.js';
export {
  FaultEngine,
  NO_FAULT,
  rmMessageMethod,
  type AppliedAction,
  type ArmedRule,
  type Decision,
  type FaultEnginePorts,
  type FaultEvent,
  type FaultListener,
  type FaultPoint,
} from './engine.js';
export { applyAt, faultMessage, type ApplyPorts, type OutcomeAdapter } from './apply.js';
export { FragmentReorder, corruptFragment, truncateFragment } from './fragment.js';
export { fragmentStep, type FragmentStep } from './fragment-step.js';
export { eventToJson, planToJson, ruleToJson } from './to-json.js';
