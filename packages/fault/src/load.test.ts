import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { loadPlanJson, planFromJson } from './load.js';
import { formatIssues } from './validate.js';

const EXAMPLES = new URL('../../../examples/faults/', import.meta.url);

const firstIssue = (json: unknown): string => {
  const r = planFromJson(json);
  return r.ok ? 'accepted' : formatIssues(r.error).split('\n')[0]!;
};

const rules = (...r: unknown[]): unknown => ({ rules: r });
const ok = { id: 'a', boundary: 'CLIENT_TO_CORE', duplicate: {} };

describe('loadPlanJson reads proto3 JSON', () => {
  test('camelCase, full enum names, every action form', () => {
    const r = loadPlanJson(
      JSON.stringify(
        rules(
          { id: 'd', boundary: 'BOUNDARY_RM_TO_CORE', match: { method: 'CreateGrant', probability: 0.25 }, delay: { fixedMs: 10, jitterMs: 2 } },
          { id: 'f', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { rmMessage: 'MEM_APPEND', nth: 1 }, failBefore: { domainError: { rmError: 'NOMEM' } } },
          { id: 'g', boundary: 'CLIENT_TO_CORE', failBefore: { grpc: { code: 'UNAVAILABLE', message: 'down' } } },
          { id: 'i', boundary: 'VMM_TO_CORE', failBefore: { domainError: { rmi: { status: 'RMI_ERROR_RTT', index: 3 } } } },
          { id: 'l', boundary: 'CLIENT_TO_VMM', failAfter: {} },
          { id: 'c', boundary: 'VMM_TO_RM_FRAGMENT', corrupt: { byteCount: 2 } },
          { id: 'k', boundary: 'CLIENT_TO_VMM', crash: { point: 'CRASH_POINT_AFTER_COMMIT' } },
          { id: 'p', boundary: 'CLIENT_TO_VMM', pause: { durationMs: 50 } },
        ),
      ),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.rules.map((x) => [x.boundary, x.action])).toEqual([
      ['RM_TO_CORE', { kind: 'delay', fixedMs: 10, jitterMs: 2 }],
      ['CLIENT_TO_RM', { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } }],
      ['CLIENT_TO_CORE', { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE', message: 'down' } }],
      ['VMM_TO_CORE', { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rmi', status: 'RMI_ERROR_RTT', index: 3 } } }],
      ['CLIENT_TO_VMM', { kind: 'fail_after', code: 'UNAVAILABLE' }],
      ['VMM_TO_RM_FRAGMENT', { kind: 'corrupt', byteCount: 2 }],
      ['CLIENT_TO_VMM', { kind: 'crash', point: 'AFTER_COMMIT' }],
      ['CLIENT_TO_VMM', { kind: 'pause', durationMs: 50 }],
    ]);
    expect(r.value.rules[1]!.match).toEqual({ rmMessage: 'MEM_APPEND', nth: 1 });
  });

  test('snake_case names, numeric enums, 64-bit integers as strings, null as unset', () => {
    const r = planFromJson(rules({ id: 'a', boundary: 4, match: { after_op: '10', before_op: 20, times_max: '3', caller_vmid: null }, fail_after: { code: 'DEADLINE_EXCEEDED' } }));
    expect(r).toEqual({
      ok: true,
      value: { rules: [{ id: 'a', boundary: 'RM_TO_CORE', match: { afterOp: 10, beforeOp: 20, timesMax: 3 }, action: { kind: 'fail_after', code: 'DEADLINE_EXCEEDED' } }] },
    });
  });

  test('proto3 zero defaults mean unset (rmMessageId 0, timesMax 0)', () => {
    const r = planFromJson(rules({ ...ok, match: { rmMessageId: 0, timesMax: 0 } }));
    expect(r.ok && r.value.rules[0]!.match).toEqual({});
  });
});

describe('loadPlanJson refuses, naming the path', () => {
  const cases: readonly { name: string; json: unknown; issue: string }[] = [
    { name: 'p outside [0, 1]', json: rules(ok, ok, { ...ok, id: 'c', match: { probability: 1.5 } }), issue: 'rules[1].id: duplicate rule id "a"' },
    { name: 'p outside [0, 1] (the brief’s example)', json: rules(ok, { ...ok, id: 'b' }, { ...ok, id: 'c', match: { probability: 1.5 } }), issue: 'rules[2].match.probability: must be within [0, 1]' },
    { name: 'not an object', json: [], issue: '$: must be an object' },
    { name: 'rules not an array', json: { rules: {} }, issue: 'rules: must be an array' },
    { name: 'unknown top-level field', json: { rules: [], seed: 1 }, issue: '$.seed: unknown field' },
    { name: 'misspelt match field', json: rules({ ...ok, match: { probabilty: 0.5 } }), issue: 'rules[0].match.probabilty: unknown field' },
    { name: 'no action', json: rules({ id: 'a', boundary: 'CLIENT_TO_CORE' }), issue: 'rules[0]: needs one action' },
    { name: 'two actions', json: rules({ ...ok, drop: {} }), issue: 'rules[0]: has 2 actions (duplicate, drop)' },
    { name: 'boundary missing', json: rules({ id: 'a', duplicate: {} }), issue: 'rules[0].boundary: required' },
    { name: 'boundary unknown', json: rules({ ...ok, boundary: 'BOUNDARY_GPU' }), issue: 'rules[0].boundary: unknown value "BOUNDARY_GPU"' },
    { name: 'boundary number unknown', json: rules({ ...ok, boundary: 10 }), issue: 'rules[0].boundary: unknown value 10' },
    { name: 'nth a string of letters', json: rules({ ...ok, match: { nth: 'first' } }), issue: 'rules[0].match.nth: must be an integer' },
    { name: 'nth 0 given explicitly', json: rules({ ...ok, match: { nth: 0 } }), issue: 'rules[0].match.nth: must be an integer ≥ 1' },
    { name: 'corrupt at CLIENT_TO_RM', json: rules({ id: 'a', boundary: 'CLIENT_TO_RM', corrupt: { byteCount: 1 } }), issue: 'rules[0].corrupt: not allowed at CLIENT_TO_RM' },
    { name: 'fail_before with both forms', json: rules({ ...ok, duplicate: undefined, failBefore: { grpc: { code: 'ABORTED' }, domainError: { errno: 'EPERM' } } }), issue: 'rules[0].failBefore: needs exactly one of grpc, domainError' },
    { name: 'domain error with two families', json: rules({ ...ok, duplicate: undefined, failBefore: { domainError: { errno: 'EPERM', rmError: 'DENIED' } } }), issue: 'rules[0].failBefore.domainError: needs exactly one of' },
    { name: 'unknown RM error', json: rules({ ...ok, duplicate: undefined, failBefore: { domainError: { rmError: 'OOPS' } } }), issue: 'rules[0].failBefore.domainError.rmError: unknown RM error "OOPS"' },
    { name: 'duplicate with a parameter', json: rules({ ...ok, duplicate: { times: 2 } }), issue: 'rules[0].duplicate.times: unknown field' },
  ];
  test.each(cases)('$name', ({ json, issue }) => {
    expect(firstIssue(JSON.parse(JSON.stringify(json)))).toContain(issue);
  });

  test('text that is not JSON', () => {
    const r = loadPlanJson('{ rules: [');
    expect(r.ok || r.error[0]!.path).toBe('$');
  });
});

describe('examples/faults', () => {
  test.each(['linux-append-orphan.json', 'random.json'])('%s loads and validates', (file) => {
    const r = loadPlanJson(readFileSync(new URL(file, EXAMPLES), 'utf8'));
    expect(r.ok ? 'ok' : formatIssues(r.error)).toBe('ok');
  });

  test('linux-append-orphan fails the first MEM_APPEND with an RM error, then the MEM_RECLAIM after it', () => {
    const r = loadPlanJson(readFileSync(new URL('linux-append-orphan.json', EXAMPLES), 'utf8'));
    if (!r.ok) throw new Error(formatIssues(r.error));
    const [append, reclaim] = r.value.rules;
    expect(append).toMatchObject({ boundary: 'CLIENT_TO_RM', match: { rmMessage: 'MEM_APPEND', nth: 1 }, action: { kind: 'fail_before', failure: { kind: 'domain' } } });
    expect(reclaim).toMatchObject({ boundary: 'CLIENT_TO_RM', match: { rmMessage: 'MEM_RECLAIM', nth: 1 }, action: { kind: 'fail_before' } });
  });
});
