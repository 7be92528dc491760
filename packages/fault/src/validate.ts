/**
 * The plan validator: every problem of a plan, each as a path in the plan's JSON form and a rule,
 * e.g. `rules[2].match.probability: must be within [0, 1]`. A plan either passes whole or is not
 * armed at all (nothing half-armed), like a check phase before a commit.
 *
 * Check order per rule (the first problem of a field is reported, every field is checked):
 *   1. id: well formed, unique
 *   2. boundary: a known boundary
 *   3. match: method, rm message (known name/ID, consistent), caller VMID, occurrence selectors
 *      (nth ≥ 1, every ≥ 1, not both), probability within [0, 1], op window non-empty, times_max
 *   4. action: a known kind, allowed at the boundary (ACTIONS_AT_BOUNDARY), then its parameters
 * The validator works on the typed plan too because TypeScript callers can build plans by hand
 * (and casts lie); load.ts first checks the JSON's shape, then calls this.
 */

import { ERRNO, RMI_STATUS } from '@hypmesh/stage2';
import { MESSAGE_IDS, RM_ERRORS, messageName, type MessageName } from '@hypmesh/rm-wire';
import {
  ACTIONS_AT_BOUNDARY,
  ACTION_KINDS,
  BOUNDARIES,
  CORRUPT_BYTES_MAX,
  DELAY_MS_MAX,
  GRPC_CODES,
  LOST_REPLY_CODES,
  PAUSE_MS_MAX,
  TRUNCATE_KEEP_BYTES_MAX,
  RMI_INDEX_MAX,
  RULES_MAX,
  RULE_ID_PATTERN,
  U32_MAX,
  VMM_ERRNO_NAMES,
  type ActionKind,
  type Failure,
  type FaultAction,
  type FaultMatch,
  type FaultPlan,
  type FaultRule,
} from './plan.js';
import { err, ok, type Result } from './result.js';

/** One problem in a plan: where (JSON path) and what rule it breaks. */
export interface PlanIssue {
  readonly path: string;
  readonly message: string;
}

/** `path: message`, one per line: what a CLI prints and FaultService.Arm returns. */
export const formatIssues = (issues: readonly PlanIssue[]): string => issues.map((i) => `${i.path}: ${i.message}`).join('\n');

/** The JSON key of each action kind (FaultRule.action oneof, lowerCamelCase). */
export const ACTION_JSON_KEYS = {
  delay: 'delay',
  fail_before: 'failBefore',
  fail_after: 'failAfter',
  duplicate: 'duplicate',
  drop: 'drop',
  corrupt: 'corrupt',
  reorder: 'reorder',
  crash: 'crash',
  pause: 'pause',
  truncate: 'truncate',
} as const satisfies Record<ActionKind, string>;

const isInt = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** The RM message a match names (by name, by ID or both), or why it names none. */
export function matchedRmMessage(m: FaultMatch): Result<MessageName | undefined, string> {
  const byName = m.rmMessage === undefined || m.rmMessage === '' ? undefined : m.rmMessage;
  const byId = m.rmMessageId === undefined || m.rmMessageId === 0 ? undefined : m.rmMessageId;
  if (byName !== undefined && !(byName in MESSAGE_IDS)) return err(`rmMessage: unknown RM message "${byName}" (gunyah-rm.md §2)`);
  if (byId !== undefined) {
    const name = messageName(byId);
    if (name === undefined) return err(`rmMessageId: unknown RM message ID 0x${byId.toString(16)} (gunyah-rm.md §2)`);
    if (byName !== undefined && name !== byName) return err(`rmMessageId: 0x${byId.toString(16)} is ${name}, not ${byName}`);
    return ok(name);
  }
  return ok(byName as MessageName | undefined);
}

export function validatePlan(plan: FaultPlan): Result<FaultPlan, readonly PlanIssue[]> {
  const issues: PlanIssue[] = [];
  if (plan.rules.length > RULES_MAX) issues.push({ path: 'rules', message: `at most ${RULES_MAX} rules` });
  const seen = new Set<string>();
  plan.rules.forEach((rule, i) => checkRule(rule, `rules[${i}]`, seen, issues));
  return issues.length === 0 ? ok(plan) : err(issues);
}

function checkRule(rule: FaultRule, at: string, seen: Set<string>, issues: PlanIssue[]): void {
  const add = (path: string, message: string): void => void issues.push({ path: `${at}.${path}`, message });
  if (!RULE_ID_PATTERN.test(rule.id)) add('id', 'must be 1–64 characters of [A-Za-z0-9_.-]');
  else if (seen.has(rule.id)) add('id', `duplicate rule id "${rule.id}"`);
  seen.add(rule.id);

  const boundaryKnown = (BOUNDARIES as readonly string[]).includes(rule.boundary);
  if (!boundaryKnown) add('boundary', `unknown boundary "${String(rule.boundary)}" (one of ${BOUNDARIES.join(', ')})`);

  checkMatch(rule.match, (path, message) => add(`match.${path}`, message));

  const kind = rule.action.kind;
  if (!(ACTION_KINDS as readonly string[]).includes(kind)) {
    add('action', `unknown action "${String(kind)}"`);
    return;
  }
  const key = ACTION_JSON_KEYS[kind];
  if (boundaryKnown && !(ACTIONS_AT_BOUNDARY[rule.boundary] as readonly ActionKind[]).includes(kind)) {
    add(key, `not allowed at ${rule.boundary} (allowed: ${ACTIONS_AT_BOUNDARY[rule.boundary].map((k) => ACTION_JSON_KEYS[k]).join(', ')})`);
  }
  checkAction(rule.action, (path, message) => add(path === '' ? key : `${key}.${path}`, message));
  // A msgq reply carries only an RM error code (gunyah-rm.md §1.4): no other family can be answered there.
  if (rule.boundary === 'VMM_TO_RM' && rule.action.kind === 'fail_before' && rule.action.failure.kind === 'domain' && rule.action.failure.error.family !== 'rm') {
    add(`${key}.domainError`, 'at VMM_TO_RM only an RM error (rmError) can be answered: a msgq reply carries only an RM error code (gunyah-rm.md §1.4)');
  }
}

function checkMatch(m: FaultMatch, add: (path: string, message: string) => void): void {
  if (m.method !== undefined && m.method !== '' && !/^[A-Za-z][A-Za-z0-9_]*$/.test(m.method)) {
    add('method', 'must be a gRPC method name without its service ("MemAppend")');
  }
  if (m.rmMessageId !== undefined && !isInt(m.rmMessageId, 0, U32_MAX)) add('rmMessageId', 'must be a u32');
  else {
    const named = matchedRmMessage(m);
    if (!named.ok) {
      const [path, ...rest] = named.error.split(': ');
      add(path ?? 'rmMessage', rest.join(': '));
    }
  }
  if (m.callerVmid !== undefined && !isInt(m.callerVmid, 0, U32_MAX)) add('callerVmid', 'must be a u32 VMID');
  if (m.nth !== undefined && m.nth !== 0 && !isInt(m.nth, 1, U32_MAX)) add('nth', 'must be an integer ≥ 1 (1 is the first occurrence)');
  if (m.nth === 0) add('nth', 'must be an integer ≥ 1 (1 is the first occurrence); leave it out to match every occurrence');
  if (m.every !== undefined && !isInt(m.every, 1, U32_MAX)) add('every', 'must be an integer ≥ 1 (fire on every kth occurrence)');
  if (m.nth !== undefined && m.every !== undefined) add('every', 'not with nth: choose one occurrence selector');
  if (m.probability !== undefined && !(typeof m.probability === 'number' && m.probability >= 0 && m.probability <= 1)) {
    add('probability', 'must be within [0, 1]');
  }
  if (m.afterOp !== undefined && !isInt(m.afterOp, 0, Number.MAX_SAFE_INTEGER)) add('afterOp', 'must be an integer ≥ 0');
  if (m.beforeOp !== undefined && !isInt(m.beforeOp, 1, Number.MAX_SAFE_INTEGER)) add('beforeOp', 'must be an integer ≥ 1');
  if (m.afterOp !== undefined && m.beforeOp !== undefined && m.beforeOp <= m.afterOp + 1) {
    add('beforeOp', `window (${m.afterOp}, ${m.beforeOp}) holds no op: beforeOp must exceed afterOp + 1`);
  }
  if (m.timesMax !== undefined && !isInt(m.timesMax, 0, U32_MAX)) add('timesMax', 'must be an integer ≥ 0 (0 = unlimited)');
}

function checkAction(a: FaultAction, add: (path: string, message: string) => void): void {
  switch (a.kind) {
    case 'delay':
      if (!isInt(a.fixedMs, 0, DELAY_MS_MAX)) add('fixedMs', `must be an integer within [0, ${DELAY_MS_MAX}] ms`);
      if (!isInt(a.jitterMs, 0, DELAY_MS_MAX)) add('jitterMs', `must be an integer within [0, ${DELAY_MS_MAX}] ms`);
      if (a.fixedMs === 0 && a.jitterMs === 0) add('', 'a delay needs fixedMs or jitterMs');
      return;
    case 'fail_before':
      checkFailure(a.failure, add);
      return;
    case 'fail_after':
      if (!(LOST_REPLY_CODES as readonly string[]).includes(a.code)) add('code', `must be ${LOST_REPLY_CODES.join(' or ')} (what a lost reply looks like)`);
      return;
    case 'corrupt':
      if (!isInt(a.byteCount, 1, CORRUPT_BYTES_MAX)) add('byteCount', `must be an integer within [1, ${CORRUPT_BYTES_MAX}] (a fragment is ≤ 240 bytes, gunyah-rm.md §1.3)`);
      return;
    case 'crash':
      if (a.point !== 'BEFORE_COMMIT' && a.point !== 'AFTER_COMMIT') add('point', 'must be BEFORE_COMMIT or AFTER_COMMIT');
      return;
    case 'pause':
      if (!isInt(a.durationMs, 1, PAUSE_MS_MAX)) add('durationMs', `must be an integer within [1, ${PAUSE_MS_MAX}] ms`);
      return;
    case 'truncate':
      if (!isInt(a.keepBytes, 0, TRUNCATE_KEEP_BYTES_MAX)) add('keepBytes', `must be an integer within [0, ${TRUNCATE_KEEP_BYTES_MAX}] (a fragment is ≤ 240 bytes, gunyah-rm.md §1.3)`);
      return;
    case 'duplicate':
    case 'drop':
    case 'reorder':
      return;
  }
}

function checkFailure(f: Failure, add: (path: string, message: string) => void): void {
  if (f.kind === 'grpc') {
    if (!(f.code in GRPC_CODES) || f.code === ('OK' as string)) add('grpc.code', 'must be a gRPC status code name other than OK ("UNAVAILABLE")');
    return;
  }
  const e = f.error;
  switch (e.family) {
    case 'errno':
      if (!(e.errno in ERRNO)) add('domainError.errno', `unknown errno "${e.errno}" (one of ${Object.keys(ERRNO).join(', ')})`);
      return;
    case 'rm':
      if (!(e.rmError in RM_ERRORS) || e.rmError === ('OK' as string)) add('domainError.rmError', `unknown RM error "${e.rmError}" (gunyah-rm.md §1.5, not OK)`);
      return;
    case 'rmi':
      if (!(e.status in RMI_STATUS) || e.status === ('RMI_SUCCESS' as string)) add('domainError.rmi.status', `unknown RMI status "${e.status}" (stage2-models.md §B1, not RMI_SUCCESS)`);
      if (!isInt(e.index, 0, RMI_INDEX_MAX)) add('domainError.rmi.index', `must be an integer within [0, ${RMI_INDEX_MAX}]`);
      return;
    case 'vmm':
      if (!(VMM_ERRNO_NAMES as readonly string[]).includes(e.errno)) add('domainError.vmmErrno', `unknown VM-manager errno "${e.errno}" (one of ${VMM_ERRNO_NAMES.join(', ')})`);
      return;
  }
}
