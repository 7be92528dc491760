import { Metadata, status, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { ERRNO, RMI_STATUS, errnoError, rmiError, type ErrnoName, type RmiErrorStatusName } from '@hypmesh/stage2';
import { LINUX_ERRNO, RM_ERRORS, RM_ERROR_NAMES, type RmErrorName } from '@hypmesh/rm-wire';
import { describe, expect, test, vi } from 'vitest';
import {
  CALLER_VMID_KEY,
  StatusError,
  addressField,
  callerVmid,
  decodeStatusDetails,
  dependencyNoter,
  dependencyToGrpc,
  domainStatus,
  errnoToGrpc,
  frameField,
  fromThrown,
  invalidArgument,
  requireCaller,
  resourceExhausted,
  ADMISSION_DOMAIN,
  rmiStatusToGrpc,
  rmErrorToGrpc,
  unaryWith,
  type RmDomainError,
  type Result,
} from './index.js';

/** Codes a domain error must never get: success, or what grpc-js itself produces for crashes. */
const NEVER_FOR_A_DOMAIN_ERROR = [status.OK, status.UNKNOWN, status.INTERNAL, status.UNAVAILABLE, status.CANCELLED];

describe('errno → gRPC (status.ts table)', () => {
  test('covers every errno of pkvm/errno.ts', () => {
    expect(Object.keys(errnoToGrpc).sort()).toEqual(Object.keys(ERRNO).sort());
  });

  test.each(Object.keys(ERRNO) as ErrnoName[])('%s gets an application code', (name) => {
    expect(NEVER_FOR_A_DOMAIN_ERROR).not.toContain(errnoToGrpc[name]);
  });

  test.each([
    ['EPERM', status.FAILED_PRECONDITION],
    ['ENOENT', status.NOT_FOUND],
    ['EINVAL', status.INVALID_ARGUMENT],
    ['ENOMEM', status.RESOURCE_EXHAUSTED],
    ['EBUSY', status.FAILED_PRECONDITION],
    ['EEXIST', status.ALREADY_EXISTS],
  ] as const)('%s → %i', (name, code) => {
    expect(errnoToGrpc[name]).toBe(code);
  });
});

describe('RMI status → gRPC (status.ts table)', () => {
  test('covers every status of rmi/status.ts', () => {
    expect(Object.keys(rmiStatusToGrpc).sort()).toEqual(Object.keys(RMI_STATUS).sort());
  });

  test.each(Object.keys(RMI_STATUS).filter((n) => n !== 'RMI_SUCCESS') as RmiErrorStatusName[])(
    '%s gets an application code',
    (name) => {
      expect(NEVER_FOR_A_DOMAIN_ERROR).not.toContain(rmiStatusToGrpc[name]);
    },
  );
});

describe('RM error → gRPC (status.ts table, gunyah-rm.md §1.5)', () => {
  const errors = RM_ERROR_NAMES.filter((n): n is Exclude<RmErrorName, 'OK'> => n !== 'OK');
  const rm = (rmError: Exclude<RmErrorName, 'OK'>, rule = 'some_rule'): RmDomainError => ({ family: 'rm', rmError, rule, message: 'why' });

  test('covers every RM error of rm-wire/rm-error.ts', () => {
    expect(Object.keys(rmErrorToGrpc).sort()).toEqual([...RM_ERROR_NAMES].sort());
  });

  test.each(errors.filter((n) => n !== 'UNIMPLEMENTED'))('%s gets an application code', (name) => {
    expect(NEVER_FOR_A_DOMAIN_ERROR).not.toContain(rmErrorToGrpc[name]);
  });

  test.each([
    ['UNIMPLEMENTED', status.UNIMPLEMENTED],
    ['NOMEM', status.RESOURCE_EXHAUSTED],
    ['NORESOURCE', status.RESOURCE_EXHAUSTED],
    ['DENIED', status.PERMISSION_DENIED],
    ['MSG_INVALID', status.INVALID_ARGUMENT],
    ['ARGUMENT_INVALID', status.INVALID_ARGUMENT],
    ['HANDLE_INVALID', status.NOT_FOUND],
    ['MEM_INUSE', status.FAILED_PRECONDITION],
    ['VM_STATE', status.FAILED_PRECONDITION],
  ] as const)('%s → %i', (name, code) => {
    expect(rmErrorToGrpc[name]).toBe(code);
  });

  test.each(errors)('%s: ErrorDetail carries RM name and code, Linux errno and rule', (name) => {
    const d = decodeStatusDetails(domainStatus(rm(name, 'the_rule')));
    const row = RM_ERRORS[name];
    expect(d.code).toBe(rmErrorToGrpc[name]);
    expect(d.errorDetail).toMatchObject({
      domain: 'rm',
      codeName: name,
      code: row.code | 0,
      rule: 'the_rule',
      linuxErrnoName: row.linuxErrno,
      linuxErrno: LINUX_ERRNO[row.linuxErrno],
    });
    expect(d.errorInfo).toMatchObject({ reason: name, domain: 'rm.hypmesh', metadata: { rule: 'the_rule' } });
  });

  test('UNIMPLEMENTED 0xFFFFFFFF travels as int32 -1, Linux -EOPNOTSUPP (95)', () => {
    expect(decodeStatusDetails(domainStatus(rm('UNIMPLEMENTED'))).errorDetail).toMatchObject({ code: -1, linuxErrnoName: 'EOPNOTSUPP', linuxErrno: 95 });
  });

  test('VM_STATE (0x14) is RM-only: Linux -EBADMSG', () => {
    expect(decodeStatusDetails(domainStatus(rm('VM_STATE'))).errorDetail).toMatchObject({ code: 0x14, linuxErrnoName: 'EBADMSG', linuxErrno: 74 });
  });
});

describe('google.rpc.Status details round trip', () => {
  test('errno: ErrorDetail names errno, number and rule; ErrorInfo repeats them', () => {
    const e = domainStatus(errnoError('EPERM', 'host_not_owned', 'pfn 0x80000 is SHARED_OWNED'));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.details).toContain('EPERM');
    const d = decodeStatusDetails(e);
    expect(d.code).toBe(status.FAILED_PRECONDITION);
    expect(d.errorDetail).toMatchObject({ domain: 'errno', codeName: 'EPERM', code: 1, rule: 'host_not_owned' });
    expect(d.errorInfo).toMatchObject({ reason: 'EPERM', domain: 'errno.hypmesh', metadata: { rule: 'host_not_owned' } });
  });

  test('RMI: status, number, index, packed x0 and output registers', () => {
    const e = domainStatus(rmiError('RMI_ERROR_RTT', 2, 'rtt_live', 'RTT has live entries', { top: 0x4020_0000 }));
    const d = decodeStatusDetails(e);
    expect(d.code).toBe(status.FAILED_PRECONDITION);
    expect(d.errorDetail).toMatchObject({
      domain: 'rmi',
      codeName: 'RMI_ERROR_RTT',
      code: 4,
      rmiIndex: 2,
      rmiX0: 0x204n,
      rule: 'rtt_live',
      outputs: [{ name: 'top', value: 0x4020_0000n }],
    });
    expect(d.errorInfo?.metadata).toMatchObject({ index: '2', x0: '0x204', top: String(0x4020_0000) });
  });

  test('RMI: an LPA2 level -1 index travels as its byte', () => {
    const d = decodeStatusDetails(domainStatus(rmiError('RMI_ERROR_RTT', -1, 'walk_short', 'x')));
    expect(d.errorDetail).toMatchObject({ rmiIndex: 0xff, rmiX0: 0xff04n });
  });

  test('invalidArgument: BadRequest names the field', () => {
    const d = decodeStatusDetails(invalidArgument('ranges[1].count', 'must be at least 1'));
    expect(d.code).toBe(status.INVALID_ARGUMENT);
    expect(d.message).toBe('ranges[1].count: must be at least 1');
    expect(d.badRequest?.fieldViolations).toEqual([{ field: 'ranges[1].count', description: 'must be at least 1' }]);
  });

  test('resourceExhausted: the admission rule is ErrorInfo.reason, with what was asked and the limit', () => {
    const d = decodeStatusDetails(resourceExhausted('quota_address_spaces', 'client 3/tool holds 64 of 64', { held: '64', limit: '64' }));
    expect(d.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(d.message).toBe('quota_address_spaces: client 3/tool holds 64 of 64');
    expect(d.errorInfo).toEqual({ reason: 'quota_address_spaces', domain: ADMISSION_DOMAIN, metadata: { held: '64', limit: '64' } });
  });

  test('an error without the trailer still decodes its code and message', () => {
    expect(decodeStatusDetails({ code: status.UNAVAILABLE, details: 'down' })).toEqual({
      code: status.UNAVAILABLE,
      message: 'down',
      others: [],
    });
  });
});

describe('fromThrown', () => {
  test('a bug becomes INTERNAL, logged, with the original as cause', () => {
    const log = { error: vi.fn() };
    const bug = new TypeError('x is undefined');
    const e = fromThrown(bug, log, '/hypmesh.core.v1.CoreService/HostShareHyp');
    expect(e.code).toBe(status.INTERNAL);
    expect(e.cause).toBe(bug);
    expect(log.error).toHaveBeenCalledOnce();
  });

  test('a non-Error throw becomes INTERNAL too', () => {
    expect(fromThrown('oops').code).toBe(status.INTERNAL);
  });

  test('a StatusError passes through unlogged', () => {
    const log = { error: vi.fn() };
    const e = invalidArgument('pfn', 'too wide');
    expect(fromThrown(e, log)).toBe(e);
    expect(log.error).not.toHaveBeenCalled();
  });
});

describe('callerVmid', () => {
  const withCaller = (...values: string[]) => {
    const metadata = new Metadata();
    for (const v of values) metadata.add(CALLER_VMID_KEY, v);
    return { metadata };
  };

  test.each([
    ['3', 3],
    ['128', 0x80],
    ['0', 0],
    ['65535', 0xffff],
  ])('%s → %i (the one canonical form: decimal, no leading zeros)', (text, vmid) => {
    expect(callerVmid(withCaller(text))).toBe(vmid);
  });

  // Issue 10: `00003` and `0X3` were read as HOST. Every other spelling is refused, naming the canonical form.
  test.each([[['00003']], [['0X3']], [['0x3']], [['0x80']], [['03']], [['+3']], [[' 3']], [['3 ']], [['1e2']], [['abc']], [['-1']], [['65536']], [['3', '3']], [['']], [['1.5']]])(
    '%j → INVALID_ARGUMENT naming the key and the canonical form',
    (values) => {
      const e = catchStatus(() => callerVmid(withCaller(...values)));
      expect(e.code).toBe(status.INVALID_ARGUMENT);
      expect(decodeStatusDetails(e).badRequest?.fieldViolations[0]?.field).toBe(CALLER_VMID_KEY);
      if (values.length === 1) expect(e.details).toContain('decimal without leading zeros');
    },
  );

  test('no caller header → INVALID_ARGUMENT naming the canonical form', () => {
    expect(catchStatus(() => callerVmid(withCaller())).details).toContain('decimal without leading zeros');
  });

  test('requireCaller: a VMID outside the allowed list is PERMISSION_DENIED', () => {
    expect(requireCaller(withCaller('3'), [3], 'HostShareHyp')).toBe(3);
    expect(catchStatus(() => requireCaller(withCaller('128'), [3], 'HostShareHyp')).code).toBe(status.PERMISSION_DENIED);
  });
});

describe('uint64 → number', () => {
  test.each([
    [0n, 0],
    [0x1000n, 0x1000],
    [(1n << 52n) - 1n, 2 ** 52 - 1],
  ])('address %s fits', (v, n) => {
    expect(addressField(v, 'addr')).toBe(n);
  });

  test.each([1n << 52n, (1n << 64n) - 1n])('address %s is refused naming the field', (v) => {
    const e = catchStatus(() => addressField(v, 'rd'));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(decodeStatusDetails(e).badRequest?.fieldViolations[0]?.field).toBe('rd');
  });

  test('frame numbers stop at 2^40', () => {
    expect(frameField((1n << 40n) - 1n, 'pfn')).toBe(2 ** 40 - 1);
    expect(catchStatus(() => frameField(1n << 40n, 'pfn')).code).toBe(status.INVALID_ARGUMENT);
  });
});

describe('unary()', () => {
  type Res = { n: number };
  const call = { request: {}, metadata: new Metadata(), getPath: () => '/t.S/M' } as unknown as ServerUnaryCall<object, Res>;

  function run(handler: () => Result<Res, never> | Promise<Result<Res, never>> | never) {
    const log = { error: vi.fn() };
    return new Promise<{ error: ServiceError | null; value?: Res; log: typeof log }>((resolve) => {
      unaryWith(log)(handler as never)(call, (error, value) =>
        resolve({ error: error as ServiceError | null, ...(value !== undefined && value !== null && { value: value as Res }), log }),
      );
    });
  }

  test('ok → the response', async () => {
    const r = await run(() => ({ ok: true, value: { n: 1 } }));
    expect(r.error).toBeNull();
    expect(r.value).toEqual({ n: 1 });
  });

  test('a returned domain error → its mapped code', async () => {
    const r = await run(() => ({ ok: false, error: errnoError('ENOMEM', 'pool_empty', 'top up') }) as never);
    expect(r.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(decodeStatusDetails(r.error!).errorDetail?.codeName).toBe('ENOMEM');
  });

  test('a thrown StatusError is sent as is', async () => {
    const r = await run(() => {
      throw invalidArgument('gfn', 'too wide');
    });
    expect(r.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(r.log.error).not.toHaveBeenCalled();
  });

  // Issue 10: a refusal that follows a dependency the handler's ports could not reach is the
  // outage's status, named in ErrorInfo; one per row of dependencyToGrpc.
  test.each([
    ['UNAVAILABLE', 'core', status.UNAVAILABLE, 'DEPENDENCY_UNAVAILABLE'],
    ['DEADLINE_EXCEEDED', 'rm', status.DEADLINE_EXCEEDED, 'DEPENDENCY_DEADLINE_EXCEEDED'],
  ] as const)('%s from %s, then a domain error → %i, reason %s, the domain detail kept', async (unreached, dependency, code, reason) => {
    const r = await run(async () => {
      const note = dependencyNoter(dependency);
      await Promise.resolve();
      note(unreached, 'connection refused');
      return { ok: false, error: errnoError('EINVAL', 'granule_delegate', 'core call failed') } as never;
    });
    const d = decodeStatusDetails(r.error!);
    expect([d.code, d.errorInfo?.reason, d.errorInfo?.metadata['dependency']]).toEqual([code, reason, dependency]);
    expect(d.errorDetail?.codeName).toBe('EINVAL');
    expect(d.message).toContain('connection refused');
  });

  test('a dependency failure the handler then got past (ok) changes nothing', async () => {
    const r = await run(() => (dependencyNoter('core')('UNAVAILABLE', 'x'), { ok: true, value: { n: 2 } }));
    expect(r.value).toEqual({ n: 2 });
  });

  test('a domain error with no dependency failure keeps its code (domain refusals are not outages)', async () => {
    const r = await run(() => ({ ok: false, error: errnoError('EINVAL', 'bad', 'x') }) as never);
    expect(r.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(decodeStatusDetails(r.error!).errorInfo?.reason).toBe('EINVAL');
  });

  test('dependencyToGrpc has one row per way of not reaching a dependency', () => {
    expect(Object.keys(dependencyToGrpc).sort()).toEqual(['DEADLINE_EXCEEDED', 'UNAVAILABLE']);
  });

  test.each([
    ['throws', () => { throw new Error('boom'); }],
    ['rejects', () => Promise.reject(new Error('boom'))],
    ['returns a non-Result', () => undefined],
  ])('a handler that %s → INTERNAL, logged', async (_what, handler) => {
    const r = await run(handler as never);
    expect(r.error?.code).toBe(status.INTERNAL);
    expect(r.log.error).toHaveBeenCalledOnce();
  });
});

function catchStatus(f: () => unknown): StatusError {
  try {
    f();
  } catch (e) {
    if (e instanceof StatusError) return e;
    throw e;
  }
  throw new Error('expected a StatusError');
}
