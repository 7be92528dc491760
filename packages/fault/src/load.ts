/**
 * The plan loader: the proto3-JSON text of a hypmesh.fault.v1.FaultPlan (a `--faults plan.json`
 * file, or FaultService.Arm's plan after ts-proto's `FaultPlan.toJSON`) → a validated FaultPlan.
 *
 * proto3 JSON as the spec reads it (protobuf.dev "JSON Mapping"): field names lowerCamelCase or as
 * declared in the .proto; enums by name (here with or without their prefix: "BOUNDARY_CLIENT_TO_RM"
 * or "CLIENT_TO_RM") or number; 64-bit integers as numbers or decimal strings; `null` = unset;
 * unknown fields are refused (a misspelt "probabilty" must not silently mean "always").
 *
 * Two passes, each reporting every problem with its JSON path: the shape here (types, unknown
 * fields, exactly one action), then validatePlan (ranges, names, actions allowed at the boundary).
 */

import {
  ACTION_KINDS,
  BOUNDARIES,
  type ActionKind,
  type Boundary,
  type CrashPoint,
  type DomainFailure,
  type Failure,
  type FaultAction,
  type FaultMatch,
  type FaultPlan,
  type FaultRule,
  type LostReplyCode,
} from './plan.js';
import { err, type Result } from './result.js';
import { ACTION_JSON_KEYS, validatePlan, type PlanIssue } from './validate.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Parse and validate a plan file's text. */
export function loadPlanJson(text: string): Result<FaultPlan, readonly PlanIssue[]> {
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch (e) {
    return err([{ path: '$', message: `not JSON: ${(e as Error).message}` }]);
  }
  return planFromJson(json);
}

/** Validate an already parsed proto3-JSON value. */
export function planFromJson(json: unknown): Result<FaultPlan, readonly PlanIssue[]> {
  const r = new Reader();
  const plan = r.plan(json as Json);
  if (r.issues.length > 0 || plan === undefined) return err(r.issues);
  return validatePlan(plan);
}

const snake = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

class Reader {
  readonly issues: PlanIssue[] = [];

  private add(path: string, message: string): undefined {
    this.issues.push({ path, message });
    return undefined;
  }

  /** An object whose keys are all among `fields` (camelCase; snake_case accepted), or undefined. */
  private object(v: Json | undefined, path: string, fields: readonly string[]): JsonObject | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return this.add(path, 'must be an object');
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(v)) {
      const name = fields.find((f) => f === key || snake(f) === key);
      if (name === undefined) {
        this.add(`${path}.${key}`, `unknown field (expected one of ${fields.join(', ')})`);
        continue;
      }
      if (name in out) this.add(`${path}.${key}`, `given twice (as ${name} and ${snake(name)})`);
      if (value !== null) out[name] = value;
    }
    return out;
  }

  private string(v: Json | undefined, path: string): string | undefined {
    if (v === undefined) return undefined;
    return typeof v === 'string' ? v : this.add(path, 'must be a string');
  }

  /** An integer field (uint32/uint64): a JSON number or a decimal string. */
  private integer(v: Json | undefined, path: string): number | undefined {
    if (v === undefined) return undefined;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) return this.add(path, 'must be an integer');
    return n;
  }

  private double(v: Json | undefined, path: string): number | undefined {
    if (v === undefined) return undefined;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || Number.isNaN(n)) return this.add(path, 'must be a number');
    return n;
  }

  /** An enum by full name, by name without `prefix`, or by number (index into `values` + 1). */
  private enumValue<E extends string>(v: Json | undefined, path: string, prefix: string, values: readonly E[]): E | undefined {
    if (v === undefined) return this.add(path, `required (one of ${values.join(', ')})`);
    if (typeof v === 'number') {
      const byNumber = values[v - 1];
      return byNumber ?? this.add(path, `unknown value ${v} (one of ${values.join(', ')})`);
    }
    if (typeof v !== 'string') return this.add(path, 'must be an enum name');
    const short = v.startsWith(prefix) ? v.slice(prefix.length) : v;
    return (values as readonly string[]).includes(short) ? (short as E) : this.add(path, `unknown value "${v}" (one of ${values.join(', ')})`);
  }

  plan(v: Json): FaultPlan | undefined {
    const o = this.object(v, '$', ['rules']);
    if (o === undefined) return undefined;
    const rules = o['rules'] ?? [];
    if (!Array.isArray(rules)) return this.add('rules', 'must be an array');
    const out: FaultRule[] = [];
    rules.forEach((rule, i) => {
      const r = this.rule(rule, `rules[${i}]`);
      if (r !== undefined) out.push(r);
    });
    return { rules: out };
  }

  private rule(v: Json, at: string): FaultRule | undefined {
    const actionKeys = ACTION_KINDS.map((k) => ACTION_JSON_KEYS[k]);
    const o = this.object(v, at, ['id', 'description', 'boundary', 'match', ...actionKeys]);
    if (o === undefined) return undefined;
    const id = this.string(o['id'], `${at}.id`) ?? '';
    const description = this.string(o['description'], `${at}.description`);
    const boundary = this.enumValue<Boundary>(o['boundary'], `${at}.boundary`, 'BOUNDARY_', BOUNDARIES);
    const match = o['match'] === undefined ? {} : this.match(o['match'], `${at}.match`);
    const present = ACTION_KINDS.filter((k) => o[ACTION_JSON_KEYS[k]] !== undefined);
    let action: FaultAction | undefined;
    if (present.length !== 1) {
      this.add(at, present.length === 0 ? `needs one action (${actionKeys.join(', ')})` : `has ${present.length} actions (${present.map((k) => ACTION_JSON_KEYS[k]).join(', ')}); a rule takes exactly one`);
    } else {
      const kind = present[0]!;
      action = this.action(kind, o[ACTION_JSON_KEYS[kind]]!, `${at}.${ACTION_JSON_KEYS[kind]}`);
    }
    if (boundary === undefined || match === undefined || action === undefined) return undefined;
    return description === undefined || description === '' ? { id, boundary, match, action } : { id, description, boundary, match, action };
  }

  private match(v: Json, at: string): FaultMatch | undefined {
    const fields = ['method', 'rmMessage', 'rmMessageId', 'callerVmid', 'nth', 'every', 'probability', 'afterOp', 'beforeOp', 'timesMax'] as const;
    const o = this.object(v, at, fields);
    if (o === undefined) return undefined;
    const m: Record<string, string | number> = {};
    const put = (key: string, value: string | number | undefined): void => {
      if (value !== undefined) m[key] = value;
    };
    put('method', this.string(o['method'], `${at}.method`) || undefined);
    put('rmMessage', this.string(o['rmMessage'], `${at}.rmMessage`) || undefined);
    // proto3 scalars without presence: 0 means unset, so leave them out (nth and every are
    // validated when given as 0 explicitly, because `"nth": 0` is a mistake worth naming).
    put('rmMessageId', this.integer(o['rmMessageId'], `${at}.rmMessageId`) || undefined);
    put('callerVmid', this.integer(o['callerVmid'], `${at}.callerVmid`));
    put('nth', this.integer(o['nth'], `${at}.nth`));
    put('every', this.integer(o['every'], `${at}.every`));
    put('probability', this.double(o['probability'], `${at}.probability`));
    put('afterOp', this.integer(o['afterOp'], `${at}.afterOp`));
    put('beforeOp', this.integer(o['beforeOp'], `${at}.beforeOp`));
    put('timesMax', this.integer(o['timesMax'], `${at}.timesMax`) || undefined);
    // ts-proto's toJSON writes unset nth/every as absent, so an explicit 0 only comes from a person.
    return m as FaultMatch;
  }

  private action(kind: ActionKind, v: Json, at: string): FaultAction | undefined {
    switch (kind) {
      case 'delay': {
        const o = this.object(v, at, ['fixedMs', 'jitterMs']);
        if (o === undefined) return undefined;
        const fixedMs = this.integer(o['fixedMs'], `${at}.fixedMs`) ?? 0;
        const jitterMs = this.integer(o['jitterMs'], `${at}.jitterMs`) ?? 0;
        return { kind, fixedMs, jitterMs };
      }
      case 'fail_before': {
        const o = this.object(v, at, ['grpc', 'domainError']);
        if (o === undefined) return undefined;
        if ((o['grpc'] === undefined) === (o['domainError'] === undefined)) return this.add(at, 'needs exactly one of grpc, domainError');
        const failure = o['grpc'] !== undefined ? this.grpcFailure(o['grpc'], `${at}.grpc`) : this.domainFailure(o['domainError']!, `${at}.domainError`);
        return failure === undefined ? undefined : { kind, failure };
      }
      case 'fail_after': {
        const o = this.object(v, at, ['code', 'message']);
        if (o === undefined) return undefined;
        const code = (this.string(o['code'], `${at}.code`) || 'UNAVAILABLE') as LostReplyCode;
        const message = this.string(o['message'], `${at}.message`) || undefined;
        return message === undefined ? { kind, code } : { kind, code, message };
      }
      case 'corrupt': {
        const o = this.object(v, at, ['byteCount']);
        if (o === undefined) return undefined;
        return { kind, byteCount: this.integer(o['byteCount'], `${at}.byteCount`) ?? 0 };
      }
      case 'crash': {
        const o = this.object(v, at, ['point']);
        if (o === undefined) return undefined;
        const point = this.enumValue<CrashPoint>(o['point'], `${at}.point`, 'CRASH_POINT_', ['BEFORE_COMMIT', 'AFTER_COMMIT']);
        return point === undefined ? undefined : { kind, point };
      }
      case 'pause': {
        const o = this.object(v, at, ['durationMs']);
        if (o === undefined) return undefined;
        return { kind, durationMs: this.integer(o['durationMs'], `${at}.durationMs`) ?? 0 };
      }
      case 'truncate': {
        const o = this.object(v, at, ['keepBytes']);
        if (o === undefined) return undefined;
        return { kind, keepBytes: this.integer(o['keepBytes'], `${at}.keepBytes`) ?? 0 };
      }
      case 'duplicate':
      case 'drop':
      case 'reorder':
        return this.object(v, at, []) === undefined ? undefined : { kind };
    }
  }

  private grpcFailure(v: Json, at: string): Failure | undefined {
    const o = this.object(v, at, ['code', 'message']);
    if (o === undefined) return undefined;
    const code = this.string(o['code'], `${at}.code`);
    if (code === undefined) return this.add(`${at}.code`, 'required (a gRPC status code name)');
    const message = this.string(o['message'], `${at}.message`) || undefined;
    const c = code as Extract<Failure, { kind: 'grpc' }>['code'];
    return message === undefined ? { kind: 'grpc', code: c } : { kind: 'grpc', code: c, message };
  }

  private domainFailure(v: Json, at: string): Failure | undefined {
    const o = this.object(v, at, ['errno', 'rmError', 'rmi', 'vmmErrno']);
    if (o === undefined) return undefined;
    const given = ['errno', 'rmError', 'rmi', 'vmmErrno'].filter((k) => o[k] !== undefined);
    if (given.length !== 1) return this.add(at, 'needs exactly one of errno, rmError, rmi, vmmErrno');
    let error: DomainFailure | undefined;
    switch (given[0]) {
      case 'errno': {
        const name = this.string(o['errno'], `${at}.errno`);
        error = name === undefined ? undefined : ({ family: 'errno', errno: name } as DomainFailure);
        break;
      }
      case 'rmError': {
        const name = this.string(o['rmError'], `${at}.rmError`);
        error = name === undefined ? undefined : ({ family: 'rm', rmError: name } as DomainFailure);
        break;
      }
      case 'vmmErrno': {
        const name = this.string(o['vmmErrno'], `${at}.vmmErrno`);
        error = name === undefined ? undefined : ({ family: 'vmm', errno: name } as DomainFailure);
        break;
      }
      default: {
        const r = this.object(o['rmi']!, `${at}.rmi`, ['status', 'index']);
        if (r === undefined) return undefined;
        const status = this.string(r['status'], `${at}.rmi.status`);
        const index = this.integer(r['index'], `${at}.rmi.index`) ?? 0;
        error = status === undefined ? this.add(`${at}.rmi.status`, 'required (an RMI status name)') : ({ family: 'rmi', status, index } as DomainFailure);
      }
    }
    return error === undefined ? undefined : { kind: 'domain', error };
  }
}
