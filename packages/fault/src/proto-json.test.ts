/**
 * The loader and the .proto agree: each example plan, read by ts-proto's generated FaultPlan.fromJSON
 * and written back with toJSON (what FaultService.Arm will hand the engine), loads to the same plan
 * as the file itself. Catches a field renamed on one side only.
 */

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { FaultEvent as FaultEventProto, FaultPlan as FaultPlanProto } from '@hypmesh/proto/fault';
import { FaultEngine, type FaultEvent } from './engine.js';
import { loadPlanJson, planFromJson } from './load.js';
import { eventToJson, planToJson } from './to-json.js';

const EXAMPLES = new URL('../../../examples/faults/', import.meta.url);

const everything = {
  rules: [
    { id: 'a', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { rmMessage: 'MEM_APPEND', rmMessageId: 0x51000018, callerVmid: 3, nth: 2, timesMax: 1 }, failBefore: { domainError: { rmi: { status: 'RMI_ERROR_RTT', index: 2 } } } },
    { id: 'b', boundary: 'BOUNDARY_VMM_TO_CORE', match: { every: 3, probability: 0.5, afterOp: '10', beforeOp: '99' }, failAfter: { code: 'DEADLINE_EXCEEDED', message: 'x' } },
    { id: 'c', boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', corrupt: { byteCount: 3 } },
    { id: 'd', boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', reorder: {} },
    { id: 'e', boundary: 'BOUNDARY_RM_NOTIFICATION', delay: { fixedMs: 5, jitterMs: 1 } },
    { id: 'f', boundary: 'BOUNDARY_CLIENT_TO_VMM', crash: { point: 'CRASH_POINT_BEFORE_COMMIT' } },
    { id: 'g', boundary: 'BOUNDARY_CLIENT_TO_VMM', pause: { durationMs: 7 } },
    { id: 'h', boundary: 'BOUNDARY_CLIENT_TO_CORE', failBefore: { grpc: { code: 'ABORTED', message: 'm' } } },
    { id: 'i', boundary: 'BOUNDARY_CLIENT_TO_CORE', failBefore: { domainError: { vmmErrno: 'EIO' } } },
    { id: 'j', boundary: 'BOUNDARY_CLIENT_TO_CORE', duplicate: {} },
    { id: 'k', boundary: 'BOUNDARY_VMM_TO_RM', drop: {} },
  ],
};

describe('proto3 JSON round trip through the generated FaultPlan', () => {
  test.each([
    ['linux-append-orphan.json', JSON.parse(readFileSync(new URL('linux-append-orphan.json', EXAMPLES), 'utf8')) as unknown],
    ['random.json', JSON.parse(readFileSync(new URL('random.json', EXAMPLES), 'utf8')) as unknown],
    ['every field and action', everything],
  ])('%s', (_name, json) => {
    const direct = loadPlanJson(JSON.stringify(json));
    const viaProto = planFromJson(FaultPlanProto.toJSON(FaultPlanProto.fromJSON(json)));
    expect(direct.ok).toBe(true);
    expect(viaProto).toEqual(direct);
  });
});

describe('planToJson and eventToJson write what the proto reads', () => {
  test('plan → JSON → generated FaultPlan → JSON → plan is the identity', () => {
    const plan = loadPlanJson(JSON.stringify(everything));
    if (!plan.ok) throw new Error('everything must load');
    const written = planToJson(plan.value);
    expect(planFromJson(written)).toEqual(plan);
    expect(planFromJson(FaultPlanProto.toJSON(FaultPlanProto.fromJSON(written)))).toEqual(plan);
  });

  test('every applied action survives FaultEvent.fromJSON', () => {
    const plan = loadPlanJson(JSON.stringify(everything));
    if (!plan.ok) throw new Error('everything must load');
    const events: FaultEvent[] = [];
    for (const rule of plan.value.rules) {
      // One rule at a time with an empty match, so every action fires once.
      const engine = new FaultEngine({ nowMs: () => 1_700_000_000_000 });
      engine.arm({ rules: [{ ...rule, match: {} }] }, 5);
      engine.subscribe((e) => events.push(e));
      engine.decide({ boundary: rule.boundary, method: 'MemAppend', rmMessage: 'MEM_APPEND', callerVmid: 3 });
    }
    expect(new Set(events.map((e) => e.action.kind)).size).toBe(9);
    for (const e of events) {
      const json = eventToJson(e);
      expect(FaultEventProto.toJSON(FaultEventProto.fromJSON(json))).toEqual(json);
    }
  });
});
