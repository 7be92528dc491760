/**
 * BOUNDARY_RM_TO_CLIENT_FRAGMENT and the `truncate { keep_bytes }` action, through every layer of
 * the package: plan table, validator, proto3-JSON loader, to-json, the generated proto, the engine
 * and the fragment helper. (The scenario that needs them is linux-unchecked-reply-size.)
 */
import { describe, expect, test } from 'vitest';
import { FaultEvent as FaultEventProto, FaultPlan as FaultPlanProto } from '@hypmesh/proto/fault';
import { applyAt } from './apply.js';
import { FaultEngine } from './engine.js';
import { truncateFragment } from './fragment.js';
import { loadPlanJson } from './load.js';
import { ACTIONS_AT_BOUNDARY, type FaultPlan } from './plan.js';
import { eventToJson, planToJson } from './to-json.js';
import { validatePlan } from './validate.js';

const TRUNCATE_REPLY = {
  rules: [{ id: 'short-reply', boundary: 'BOUNDARY_RM_TO_CLIENT_FRAGMENT', match: { rmMessage: 'MEM_SHARE', nth: 1 }, truncate: { keepBytes: 14 } }],
};
const plan: FaultPlan = { rules: [{ id: 'short-reply', boundary: 'RM_TO_CLIENT_FRAGMENT', match: { rmMessage: 'MEM_SHARE', nth: 1 }, action: { kind: 'truncate', keepBytes: 14 } }] };

describe('plan: where truncate is allowed', () => {
  test('only at RM_TO_CLIENT_FRAGMENT', () => {
    const at = Object.entries(ACTIONS_AT_BOUNDARY)
      .filter(([, actions]) => (actions as readonly string[]).includes('truncate'))
      .map(([b]) => b);
    expect(at).toEqual(['RM_TO_CLIENT_FRAGMENT']);
  });
  test('a reply fragment cannot be failed (it has no reply of its own)', () => {
    expect(ACTIONS_AT_BOUNDARY.RM_TO_CLIENT_FRAGMENT).not.toContain('fail_before');
    expect(ACTIONS_AT_BOUNDARY.RM_TO_CLIENT_FRAGMENT).not.toContain('fail_after');
  });
});

describe('validate', () => {
  test('a valid truncate rule', () => expect(validatePlan(plan)).toEqual({ ok: true, value: plan }));
  test.each([
    { keepBytes: -1, why: 'negative' },
    { keepBytes: 240, why: 'a whole fragment' },
    { keepBytes: 1.5, why: 'fractional' },
  ])('keepBytes $keepBytes ($why) is refused', ({ keepBytes }) => {
    const r = validatePlan({ rules: [{ ...plan.rules[0]!, action: { kind: 'truncate', keepBytes } }] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error[0]!.path).toBe('rules[0].truncate.keepBytes');
  });
  test('truncate at a call boundary is refused', () => {
    const r = validatePlan({ rules: [{ ...plan.rules[0]!, boundary: 'CLIENT_TO_RM' }] });
    expect(r.ok).toBe(false);
  });
});

describe('JSON and proto', () => {
  test('loads from proto3 JSON and writes back the same', () => {
    const loaded = loadPlanJson(JSON.stringify(TRUNCATE_REPLY));
    expect(loaded).toEqual({ ok: true, value: plan });
    expect(planToJson(plan)).toEqual(TRUNCATE_REPLY);
  });
  test('the generated proto reads and writes the same JSON', () => {
    const viaProto = FaultPlanProto.toJSON(FaultPlanProto.fromJSON(TRUNCATE_REPLY));
    expect(loadPlanJson(JSON.stringify(viaProto))).toEqual({ ok: true, value: plan });
  });
});

describe('engine and fragment', () => {
  test('fires on the first MEM_SHARE reply fragment only, with keepBytes in the event', () => {
    const e = new FaultEngine({ nowMs: () => 7 });
    expect(e.arm(plan, 1).ok).toBe(true);
    expect(e.decide({ boundary: 'RM_TO_CLIENT_FRAGMENT', rmMessage: 'MEM_LEND' }).fault).toBe(false);
    const d = e.decide({ boundary: 'RM_TO_CLIENT_FRAGMENT', rmMessage: 'MEM_SHARE' });
    expect(d.fault && d.event.action).toEqual({ kind: 'truncate', keepBytes: 14 });
    expect(e.decide({ boundary: 'RM_TO_CLIENT_FRAGMENT', rmMessage: 'MEM_SHARE' }).fault).toBe(false);
    if (d.fault) {
      const json = eventToJson(d.event);
      expect(json['action']).toEqual({ truncate: { keepBytes: 14 } });
      expect(FaultEventProto.toJSON(FaultEventProto.fromJSON(json))).toMatchObject({ boundary: 'BOUNDARY_RM_TO_CLIENT_FRAGMENT', action: { truncate: { keepBytes: 14 } } });
    }
  });
  test('truncateFragment keeps the first bytes; a short fragment is unchanged', () => {
    const f = Uint8Array.from({ length: 16 }, (_, i) => i);
    expect([...truncateFragment(f, 14)]).toEqual([...f.slice(0, 14)]);
    expect([...truncateFragment(f, 0)]).toEqual([]);
    expect([...truncateFragment(f, 239)]).toEqual([...f]);
    expect(truncateFragment(f, 239)).not.toBe(f);
  });
  test('applyAt refuses truncate: it is a fragment action', async () => {
    const e = new FaultEngine({ nowMs: () => 0 });
    e.arm(plan, 1);
    const d = e.decide({ boundary: 'RM_TO_CLIENT_FRAGMENT', rmMessage: 'MEM_SHARE' });
    const outcome = { refused: () => 'refused', lost: () => 'lost' };
    await expect(applyAt(d, async () => 'called', outcome, { sleep: async () => {}, crash: () => {} })).rejects.toThrow(/fragment action/);
  });
});
