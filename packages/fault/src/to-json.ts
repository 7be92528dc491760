/**
 * Plans, rules and events → their proto3-JSON form (fault.proto), the inverse of load.ts: what
 * FaultService.List and Events send (through ts-proto's fromJSON) and what each service logs as one
 * JSON line per fault. Full enum names, lowerCamelCase fields, unset fields left out.
 */

import type { AppliedAction, FaultEvent } from './engine.js';
import type { Failure, FaultAction, FaultPlan, FaultRule } from './plan.js';
import { ACTION_JSON_KEYS } from './validate.js';

type JsonObject = { [key: string]: unknown };

function failureToJson(f: Failure): JsonObject {
  if (f.kind === 'grpc') return { grpc: f.message === undefined ? { code: f.code } : { code: f.code, message: f.message } };
  const e = f.error;
  switch (e.family) {
    case 'errno':
      return { domainError: { errno: e.errno } };
    case 'rm':
      return { domainError: { rmError: e.rmError } };
    case 'rmi':
      return { domainError: { rmi: { status: e.status, index: e.index } } };
    case 'vmm':
      return { domainError: { vmmErrno: e.errno } };
  }
}

function actionBody(a: FaultAction | AppliedAction): JsonObject {
  switch (a.kind) {
    case 'delay':
      return 'delayMs' in a ? { delayMs: a.delayMs } : { fixedMs: a.fixedMs, jitterMs: a.jitterMs };
    case 'fail_before':
      return failureToJson(a.failure);
    case 'fail_after':
      return a.message === undefined ? { code: a.code } : { code: a.code, message: a.message };
    case 'corrupt':
      return 'draws' in a ? { draws: [...a.draws] } : { byteCount: a.byteCount };
    case 'crash':
      return { point: `CRASH_POINT_${a.point}` };
    case 'pause':
      return { durationMs: a.durationMs };
    case 'truncate':
      return { keepBytes: a.keepBytes };
    case 'duplicate':
    case 'drop':
    case 'reorder':
      return {};
  }
}

export function ruleToJson(rule: FaultRule): JsonObject {
  return {
    id: rule.id,
    ...(rule.description === undefined ? {} : { description: rule.description }),
    boundary: `BOUNDARY_${rule.boundary}`,
    match: { ...rule.match },
    [ACTION_JSON_KEYS[rule.action.kind]]: actionBody(rule.action),
  };
}

export function planToJson(plan: FaultPlan): JsonObject {
  return { rules: plan.rules.map(ruleToJson) };
}

/** A FaultEvent in proto3 JSON: also the one-line JSON log of an injected fault. */
export function eventToJson(e: FaultEvent): JsonObject {
  return {
    ruleId: e.ruleId,
    boundary: `BOUNDARY_${e.boundary}`,
    ...(e.method === undefined ? {} : { method: e.method }),
    ...(e.rmMessage === undefined ? {} : { rmMessage: e.rmMessage }),
    ...(e.callerVmid === undefined ? {} : { callerVmid: e.callerVmid }),
    opIndex: String(e.opIndex),
    globalOpIndex: String(e.globalOpIndex),
    seed: e.seed,
    action: { [ACTION_JSON_KEYS[e.action.kind]]: actionBody(e.action) },
    timeMs: String(e.timeMs),
  };
}
