import { describe, expect, test } from 'vitest';
import type { FaultAction, FaultMatch, FaultPlan, FaultRule } from './plan.js';
import { formatIssues, validatePlan } from './validate.js';

const base: FaultRule = { id: 'r', boundary: 'CLIENT_TO_RM', match: {}, action: { kind: 'drop' } };
const rule = (over: Partial<FaultRule>): FaultRule => ({ ...base, action: { kind: 'duplicate' }, ...over });
const withMatch = (match: FaultMatch): FaultPlan => ({ rules: [rule({ match })] });
const withAction = (action: FaultAction, boundary: FaultRule['boundary'] = 'CLIENT_TO_RM'): FaultPlan => ({ rules: [rule({ action, boundary })] });

/** Each row breaks one thing of an otherwise valid plan; the first issue must name it. */
const refusals: readonly { name: string; plan: FaultPlan; issue: string }[] = [
  { name: 'id malformed', plan: { rules: [rule({ id: 'has space' })] }, issue: 'rules[0].id: must be 1–64 characters of [A-Za-z0-9_.-]' },
  { name: 'id duplicate', plan: { rules: [rule({}), rule({})] }, issue: 'rules[1].id: duplicate rule id "r"' },
  { name: 'unknown boundary', plan: { rules: [rule({ boundary: 'CLIENT_TO_GPU' as never })] }, issue: 'rules[0].boundary: unknown boundary "CLIENT_TO_GPU"' },
  { name: 'method malformed', plan: withMatch({ method: 'rm/MemAppend' }), issue: 'rules[0].match.method: must be a gRPC method name' },
  { name: 'unknown RM message', plan: withMatch({ rmMessage: 'MEM_APPENDX' }), issue: 'rules[0].match.rmMessage: unknown RM message "MEM_APPENDX"' },
  { name: 'unknown RM message ID', plan: withMatch({ rmMessageId: 0x51000099 }), issue: 'rules[0].match.rmMessageId: unknown RM message ID 0x51000099' },
  {
    name: 'RM message name and ID disagree',
    plan: withMatch({ rmMessage: 'MEM_APPEND', rmMessageId: 0x51000015 }),
    issue: 'rules[0].match.rmMessageId: 0x51000015 is MEM_RECLAIM, not MEM_APPEND',
  },
  { name: 'caller VMID negative', plan: withMatch({ callerVmid: -1 }), issue: 'rules[0].match.callerVmid: must be a u32 VMID' },
  { name: 'nth < 1', plan: withMatch({ nth: 0 }), issue: 'rules[0].match.nth: must be an integer ≥ 1' },
  { name: 'nth fractional', plan: withMatch({ nth: 1.5 }), issue: 'rules[0].match.nth: must be an integer ≥ 1' },
  { name: 'every < 1', plan: withMatch({ every: 0 }), issue: 'rules[0].match.every: must be an integer ≥ 1' },
  { name: 'nth with every', plan: withMatch({ nth: 2, every: 2 }), issue: 'rules[0].match.every: not with nth' },
  { name: 'p above 1', plan: withMatch({ probability: 1.5 }), issue: 'rules[0].match.probability: must be within [0, 1]' },
  { name: 'p below 0', plan: withMatch({ probability: -0.1 }), issue: 'rules[0].match.probability: must be within [0, 1]' },
  { name: 'p NaN', plan: withMatch({ probability: Number.NaN }), issue: 'rules[0].match.probability: must be within [0, 1]' },
  { name: 'empty op window', plan: withMatch({ afterOp: 5, beforeOp: 6 }), issue: 'rules[0].match.beforeOp: window (5, 6) holds no op' },
  { name: 'times_max negative', plan: withMatch({ timesMax: -1 }), issue: 'rules[0].match.timesMax: must be an integer ≥ 0' },
  { name: 'corrupt at a call boundary', plan: withAction({ kind: 'corrupt', byteCount: 1 }), issue: 'rules[0].corrupt: not allowed at CLIENT_TO_RM' },
  { name: 'reorder at a call boundary', plan: withAction({ kind: 'reorder' }, 'VMM_TO_RM'), issue: 'rules[0].reorder: not allowed at VMM_TO_RM' },
  { name: 'drop at a client boundary', plan: withAction({ kind: 'drop' }, 'CLIENT_TO_CORE'), issue: 'rules[0].drop: not allowed at CLIENT_TO_CORE' },
  {
    name: 'fail_before on a notification',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } }, 'RM_NOTIFICATION'),
    issue: 'rules[0].failBefore: not allowed at RM_NOTIFICATION',
  },
  { name: 'unknown action', plan: withAction({ kind: 'explode' } as never), issue: 'rules[0].action: unknown action "explode"' },
  { name: 'delay of nothing', plan: withAction({ kind: 'delay', fixedMs: 0, jitterMs: 0 }), issue: 'rules[0].delay: a delay needs fixedMs or jitterMs' },
  { name: 'delay too long', plan: withAction({ kind: 'delay', fixedMs: 600_001, jitterMs: 0 }), issue: 'rules[0].delay.fixedMs: must be an integer within [0, 600000] ms' },
  {
    name: 'gRPC failure OK',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'grpc', code: 'OK' as never } }),
    issue: 'rules[0].failBefore.grpc.code: must be a gRPC status code name other than OK',
  },
  {
    name: 'unknown errno',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'errno', errno: 'ENOPE' as never } } }),
    issue: 'rules[0].failBefore.domainError.errno: unknown errno "ENOPE"',
  },
  {
    name: 'RM error OK',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'OK' as never } } }),
    issue: 'rules[0].failBefore.domainError.rmError: unknown RM error "OK"',
  },
  {
    name: 'RMI success',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rmi', status: 'RMI_SUCCESS' as never, index: 0 } } }),
    issue: 'rules[0].failBefore.domainError.rmi.status: unknown RMI status "RMI_SUCCESS"',
  },
  {
    name: 'RMI index over 255',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rmi', status: 'RMI_ERROR_RTT', index: 256 } } }),
    issue: 'rules[0].failBefore.domainError.rmi.index: must be an integer within [0, 255]',
  },
  {
    name: 'unknown VMM errno',
    plan: withAction({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'vmm', errno: 'ENOPE' as never } } }),
    issue: 'rules[0].failBefore.domainError.vmmErrno: unknown VM-manager errno "ENOPE"',
  },
  { name: 'fail_after with a refusal code', plan: withAction({ kind: 'fail_after', code: 'NOT_FOUND' as never }), issue: 'rules[0].failAfter.code: must be UNAVAILABLE or DEADLINE_EXCEEDED' },
  { name: 'corrupt nothing', plan: withAction({ kind: 'corrupt', byteCount: 0 }, 'VMM_TO_RM_FRAGMENT'), issue: 'rules[0].corrupt.byteCount: must be an integer within [1, 240]' },
  { name: 'corrupt beyond a fragment', plan: withAction({ kind: 'corrupt', byteCount: 241 }, 'VMM_TO_RM_FRAGMENT'), issue: 'rules[0].corrupt.byteCount' },
  { name: 'crash point unknown', plan: withAction({ kind: 'crash', point: 'SOMETIME' as never }), issue: 'rules[0].crash.point: must be BEFORE_COMMIT or AFTER_COMMIT' },
  { name: 'pause of nothing', plan: withAction({ kind: 'pause', durationMs: 0 }), issue: 'rules[0].pause.durationMs: must be an integer within [1, 600000] ms' },
];

describe('validatePlan refuses, naming the path', () => {
  test.each(refusals)('$name', ({ plan, issue }) => {
    const r = validatePlan(plan);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatIssues(r.error).split('\n')[0]).toContain(issue);
  });

  test('reports every problem, not only the first', () => {
    const r = validatePlan({ rules: [rule({ id: '', match: { probability: 2, nth: 0 } })] });
    expect(r.ok || r.error.map((i) => i.path)).toEqual(['rules[0].id', 'rules[0].match.nth', 'rules[0].match.probability']);
  });
});

describe('validatePlan accepts', () => {
  const accepted: readonly { name: string; plan: FaultPlan }[] = [
    { name: 'the empty plan', plan: { rules: [] } },
    { name: 'a rule with an empty match', plan: { rules: [rule({})] } },
    { name: 'corrupt on fragments', plan: withAction({ kind: 'corrupt', byteCount: 240 }, 'VMM_TO_RM_FRAGMENT') },
    { name: 'drop on notifications', plan: withAction({ kind: 'drop' }, 'RM_NOTIFICATION') },
    { name: 'drop of a whole msgq message', plan: withAction({ kind: 'drop' }, 'VMM_TO_RM') },
    { name: 'p = 0 and p = 1', plan: { rules: [rule({ id: 'a', match: { probability: 0 } }), rule({ id: 'b', match: { probability: 1 } })] } },
    { name: 'RM message by name and matching ID', plan: withMatch({ rmMessage: 'MEM_APPEND', rmMessageId: 0x51000018 }) },
    {
      name: 'every domain family',
      plan: {
        rules: [
          rule({ id: 'e', action: { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'errno', errno: 'ENOMEM' } } } }),
          rule({ id: 'r', action: { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } } }),
          rule({ id: 'i', action: { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rmi', status: 'RMI_ERROR_RTT', index: 2 } } } }),
          rule({ id: 'v', action: { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'vmm', errno: 'EIO' } } } }),
        ],
      },
    },
  ];
  test.each(accepted)('$name', ({ plan }) => {
    expect(validatePlan(plan)).toEqual({ ok: true, value: plan });
  });
});
