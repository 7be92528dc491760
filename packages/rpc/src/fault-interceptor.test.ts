/**
 * The fault interceptor over a real grpc-js server on 127.0.0.1:0. The service under test is
 * FaultService.List (any unary RPC would do); its handler counts how often it ran, which is the
 * "effect" a fault must or must not let happen.
 */

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { FaultEngine, type FaultAction, type FaultEvent, type FaultMatch } from '@hypmesh/fault';
import { FaultServiceClient, FaultServiceService, type FaultServiceServer, type ListResponse } from '@hypmesh/proto/fault';
import { CALLER_VMID_KEY } from './caller.js';
import { FAULT_RULE, faultInterceptor } from './fault-interceptor.js';
import { decodeStatusDetails } from './status-details.js';

let applied = 0;
let handlerFails = false;
const crashes: FaultEvent[] = [];
const unsupported: FaultEvent[] = [];
const engine = new FaultEngine({ nowMs: Date.now });

const impl: FaultServiceServer = {
  arm: (_c, cb) => cb(null, { rulesArmed: 0 }),
  disarm: (_c, cb) => cb(null, { rulesDisarmed: 0 }),
  list: (_call, cb) => {
    applied++;
    if (handlerFails) cb({ code: grpc.status.FAILED_PRECONDITION, details: 'handler says no' });
    else cb(null, { rules: [], seed: applied });
  },
  events: (call) => call.end(),
};

let server: grpc.Server;
let client: InstanceType<typeof FaultServiceClient>;

beforeAll(async () => {
  server = new grpc.Server({
    interceptors: [faultInterceptor(engine, 'CLIENT_TO_CORE', { crash: (e) => void crashes.push(e), onUnsupported: (e) => void unsupported.push(e) })],
  });
  server.addService(FaultServiceService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  client = new FaultServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  server?.forceShutdown();
});

beforeEach(() => {
  applied = 0;
  handlerFails = false;
  crashes.length = 0;
  unsupported.length = 0;
  engine.disarm('all');
});

const arm = (action: FaultAction, match: FaultMatch = {}): void => {
  const r = engine.arm({ rules: [{ id: 'r1', boundary: 'CLIENT_TO_CORE', match: { method: 'List', ...match }, action }] }, 7);
  if (!r.ok) throw new Error(JSON.stringify(r.error));
};

type Outcome = { ok: true; value: ListResponse; elapsedMs: number } | { ok: false; error: grpc.ServiceError; elapsedMs: number };

const list = (vmid = 3): Promise<Outcome> =>
  new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, String(vmid));
    const t0 = Date.now();
    client.list({}, md, { deadline: Date.now() + 5_000 }, (error, value) =>
      resolve(error ? { ok: false, error, elapsedMs: Date.now() - t0 } : { ok: true, value, elapsedMs: Date.now() - t0 }),
    );
  });

const code = (o: Outcome): grpc.status => (o.ok ? grpc.status.OK : o.error.code);

describe('fault interceptor at CLIENT_TO_CORE', () => {
  test('nothing armed: the call goes through', async () => {
    expect(code(await list())).toBe(grpc.status.OK);
    expect(applied).toBe(1);
  });

  test('delay: the handler runs late, the reply is normal', async () => {
    arm({ kind: 'delay', fixedMs: 150, jitterMs: 0 });
    const o = await list();
    expect(code(o)).toBe(grpc.status.OK);
    expect(o.elapsedMs).toBeGreaterThanOrEqual(140);
    expect(applied).toBe(1);
  });

  test('fail_before with a gRPC status: refused, the handler never runs', async () => {
    arm({ kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE', message: 'core is down' } });
    const o = await list();
    expect(o.ok || [o.error.code, o.error.details]).toEqual([grpc.status.UNAVAILABLE, 'core is down']);
    expect(applied).toBe(0);
  });

  test('fail_before with an RM error: encoded as the RM would (RESOURCE_EXHAUSTED + ErrorDetail rm/NOMEM)', async () => {
    arm({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } });
    const o = await list();
    if (o.ok) throw new Error('expected a failure');
    const d = decodeStatusDetails(o.error);
    expect(d.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(d.errorDetail).toMatchObject({ domain: 'rm', codeName: 'NOMEM', code: 1, rule: FAULT_RULE });
    expect(applied).toBe(0);
  });

  test('fail_before with an RMI status: index carried in the detail', async () => {
    arm({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rmi', status: 'RMI_ERROR_RTT', index: 2 } } });
    const o = await list();
    if (o.ok) throw new Error('expected a failure');
    expect(decodeStatusDetails(o.error).errorDetail).toMatchObject({ domain: 'rmi', codeName: 'RMI_ERROR_RTT', rmiIndex: 2 });
    expect(applied).toBe(0);
  });

  test('fail_after: the handler runs, the reply is lost (UNAVAILABLE)', async () => {
    arm({ kind: 'fail_after', code: 'UNAVAILABLE' });
    const o = await list();
    expect(code(o)).toBe(grpc.status.UNAVAILABLE);
    expect(o.ok || o.error.details).toBe('fault injected by rule r1: reply lost');
    expect(applied).toBe(1);
  });

  test('fail_after also loses an error reply (DEADLINE_EXCEEDED)', async () => {
    handlerFails = true;
    arm({ kind: 'fail_after', code: 'DEADLINE_EXCEEDED' });
    expect(code(await list())).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(applied).toBe(1);
  });

  test('only the matching occurrence and caller are faulted', async () => {
    arm({ kind: 'fail_before', failure: { kind: 'grpc', code: 'ABORTED' } }, { nth: 2, callerVmid: 3 });
    expect((await Promise.all([list(4), list(3)])).map(code)).toEqual([grpc.status.OK, grpc.status.OK]);
    expect(code(await list(3))).toBe(grpc.status.ABORTED);
    expect(code(await list(3))).toBe(grpc.status.OK);
    expect(applied).toBe(3);
  });

  test('crash before commit: the crash port runs, the handler does not', async () => {
    arm({ kind: 'crash', point: 'BEFORE_COMMIT' });
    expect(code(await list())).toBe(grpc.status.UNAVAILABLE);
    expect([crashes.length, applied]).toEqual([1, 0]);
  });

  test('crash after commit: the handler runs, then the crash port, no reply', async () => {
    arm({ kind: 'crash', point: 'AFTER_COMMIT' });
    expect(code(await list())).toBe(grpc.status.UNAVAILABLE);
    expect([crashes.length, applied]).toEqual([1, 1]);
  });

  test('pause: this call and the calls arriving during the pause wait', async () => {
    arm({ kind: 'pause', durationMs: 200 }, { nth: 1 });
    const [a, b] = await Promise.all([list(), new Promise<Outcome>((r) => setTimeout(() => void list().then(r), 50))]);
    expect([code(a), code(b)]).toEqual([grpc.status.OK, grpc.status.OK]);
    expect(a.elapsedMs).toBeGreaterThanOrEqual(190);
    expect(b.elapsedMs).toBeGreaterThanOrEqual(120);
  });

  test('duplicate cannot be applied by an interceptor: the call runs once and the adapter is told', async () => {
    arm({ kind: 'duplicate' });
    expect(code(await list())).toBe(grpc.status.OK);
    expect([applied, unsupported.length]).toEqual([1, 1]);
  });

  test('every injected fault reaches the engine’s subscribers', async () => {
    const events: FaultEvent[] = [];
    const off = engine.subscribe((e) => events.push(e));
    arm({ kind: 'fail_after', code: 'UNAVAILABLE' });
    await list(5);
    off();
    expect(events).toEqual([expect.objectContaining({ ruleId: 'r1', boundary: 'CLIENT_TO_CORE', method: 'List', callerVmid: 5, opIndex: 1, seed: 7 })]);
  });
});
