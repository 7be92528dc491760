/**
 * The fault front door serveGrpc installs (fault-handlers.ts) and the FaultService it serves, over a
 * real grpc-js server on 127.0.0.1:0. The RPC under
 * fault is CoreService.OwnershipCounts (any unary RPC would do; the others are UNIMPLEMENTED here);
 * its handler counts how often it ran, which is the "effect" a fault must or must not let happen.
 */

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { FaultEngine, type FaultAction, type FaultEvent, type FaultMatch } from '@hypmesh/fault';
import { CORE_SERVICE_NAME, CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { serveGrpc, type Served } from './server.js';
import {
  FaultPlan,
  FaultServiceClient,
  type ArmResponse,
  type DisarmResponse,
  type EventsResponse,
  type ListResponse,
} from '@hypmesh/proto/fault';
import { CALLER_VMID_KEY } from './caller.js';
import { FAULT_RULE } from './fault-status.js';
import { decodeStatusDetails } from './status-details.js';

let applied = 0;
let handlerFails = false;
const crashes: FaultEvent[] = [];
const unsupported: FaultEvent[] = [];
const engine = new FaultEngine({ nowMs: Date.now });

const core = {
  ownershipCounts: (_call: unknown, cb: grpc.sendUnaryData<OwnershipCountsResponse>) => {
    applied++;
    if (handlerFails) cb({ code: grpc.status.FAILED_PRECONDITION, details: 'handler says no' });
    else cb(null, OwnershipCountsResponse.fromPartial({}));
  },
};

let frontDoor: Served;
let client: InstanceType<typeof CoreServiceClient>;
let faults: InstanceType<typeof FaultServiceClient>;

beforeAll(async () => {
  frontDoor = await serveGrpc({
    address: '127.0.0.1:0',
    serviceName: CORE_SERVICE_NAME,
    register: (s) => s.addService(CoreServiceService, core as unknown as grpc.UntypedServiceImplementation),
    faults: { engine, boundary: 'CLIENT_TO_CORE', ports: { crash: (e) => void crashes.push(e), onUnsupported: (e) => void unsupported.push(e) } },
  });
  client = new CoreServiceClient(`127.0.0.1:${frontDoor.port}`, grpc.credentials.createInsecure());
  faults = new FaultServiceClient(`127.0.0.1:${frontDoor.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  faults?.close();
  await frontDoor?.shutdown(100);
});

beforeEach(() => {
  applied = 0;
  handlerFails = false;
  crashes.length = 0;
  unsupported.length = 0;
  engine.disarm('all');
});

const arm = (action: FaultAction, match: FaultMatch = {}): void => {
  const r = engine.arm({ rules: [{ id: 'r1', boundary: 'CLIENT_TO_CORE', match: { method: 'OwnershipCounts', ...match }, action }] }, 7);
  if (!r.ok) throw new Error(JSON.stringify(r.error));
};

type Outcome = { ok: true; value: OwnershipCountsResponse; elapsedMs: number } | { ok: false; error: grpc.ServiceError; elapsedMs: number };

const list = (vmid = 3): Promise<Outcome> =>
  new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, String(vmid));
    const t0 = Date.now();
    client.ownershipCounts({}, md, { deadline: Date.now() + 5_000 }, (error, value) =>
      resolve(error ? { ok: false, error, elapsedMs: Date.now() - t0 } : { ok: true, value, elapsedMs: Date.now() - t0 }),
    );
  });

const code = (o: Outcome): grpc.status => (o.ok ? grpc.status.OK : o.error.code);

describe('CLIENT_TO_CORE faults applied by serveGrpc’s front door', () => {
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

  test('duplicate: the handler runs twice, the caller sees the first answer', async () => {
    arm({ kind: 'duplicate' }, { nth: 1 });
    expect(code(await list())).toBe(grpc.status.OK);
    expect([applied, unsupported.length]).toEqual([2, 0]);
    expect(code(await list())).toBe(grpc.status.OK);
    expect(applied).toBe(3);
  });

  test('every injected fault reaches the engine’s subscribers', async () => {
    const events: FaultEvent[] = [];
    const off = engine.subscribe((e) => events.push(e));
    arm({ kind: 'fail_after', code: 'UNAVAILABLE' });
    await list(5);
    off();
    expect(events).toEqual([expect.objectContaining({ ruleId: 'r1', boundary: 'CLIENT_TO_CORE', method: 'OwnershipCounts', callerVmid: 5, opIndex: 1, seed: 7 })]);
  });
});

const unary = <Res>(fn: (cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown): Promise<{ error: grpc.ServiceError | null; value: Res }> =>
  new Promise((resolve) => fn((error, value) => resolve({ error, value })));

describe('FaultService over gRPC drives the same engine', () => {
  test('Arm a JSON plan, watch Events, List counters, Disarm', async () => {
    const plan = FaultPlan.fromJSON({
      rules: [{ id: 'second-fails', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'OwnershipCounts', nth: 2 }, failBefore: { domainError: { errno: 'ENOMEM' } } }],
    });
    const armed = await unary<ArmResponse>((cb) => faults.arm({ plan, seed: 11 }, cb));
    expect([armed.error, armed.value.rulesArmed]).toEqual([null, 1]);

    const received: EventsResponse[] = [];
    const stream = faults.events({});
    stream.on('data', (r: EventsResponse) => received.push(r));
    stream.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 50));

    const codes = [code(await list()), code(await list()), code(await list())];
    // ENOMEM is RESOURCE_EXHAUSTED (status.ts), as the core answers it.
    expect(codes).toEqual([grpc.status.OK, grpc.status.RESOURCE_EXHAUSTED, grpc.status.OK]);
    expect(applied).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(received).toHaveLength(1);
    expect(received[0]!.event).toMatchObject({ ruleId: 'second-fails', boundary: 1, method: 'OwnershipCounts', opIndex: 2n, seed: 11 });
    expect(received[0]!.event?.action?.failBefore?.domainError?.errno).toBe('ENOMEM');

    const listed = await unary<ListResponse>((cb) => faults.list({}, cb));
    expect(listed.value.rules.map((r) => [r.rule?.id, r.matched, r.fired])).toEqual([['second-fails', 3n, 1n]]);
    stream.cancel();

    const unknown = await unary<DisarmResponse>((cb) => faults.disarm({ ruleIds: ['nope'], all: false }, cb));
    expect(unknown.error?.code).toBe(grpc.status.NOT_FOUND);
    const disarmed = await unary<DisarmResponse>((cb) => faults.disarm({ ruleIds: ['second-fails'], all: false }, cb));
    expect(disarmed.value.rulesDisarmed).toBe(1);
  });

  test('Arm refuses a bad plan with a BadRequest naming each path; the armed plan stays', async () => {
    arm({ kind: 'duplicate' });
    const plan = FaultPlan.fromJSON({ rules: [{ id: 'x', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { probability: 1.5 }, corrupt: { byteCount: 1 } }] });
    const r = await unary<ArmResponse>((cb) => faults.arm({ plan, seed: 1 }, cb));
    expect(r.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const bad = decodeStatusDetails(r.error!).badRequest;
    expect(bad?.fieldViolations.map((v) => v.field)).toEqual(['plan.rules[0].match.probability', 'plan.rules[0].corrupt']);
    expect(engine.list().rules.map((x) => x.rule.id)).toEqual(['r1']);
  });

  test('FaultService itself is never faulted', async () => {
    const r = engine.arm({ rules: [{ id: 'all', boundary: 'CLIENT_TO_CORE', match: {}, action: { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } } }] }, 1);
    expect(r.ok).toBe(true);
    expect((await unary<ListResponse>((cb) => faults.list({}, cb))).error).toBeNull();
  });
});

describe('health is exempt', () => {
  test('a fault on every call at the boundary refuses the service, never health', async () => {
    const local = new FaultEngine({ nowMs: Date.now });
    local.arm({ rules: [{ id: 'all', boundary: 'CLIENT_TO_CORE', match: {}, action: { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } } }] }, 1);
    const served = await serveGrpc({
      address: '127.0.0.1:0',
      serviceName: CORE_SERVICE_NAME,
      register: (s) => s.addService(CoreServiceService, core as unknown as grpc.UntypedServiceImplementation),
      faults: { engine: local, boundary: 'CLIENT_TO_CORE' },
    });
    const c = new CoreServiceClient(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError | null>((resolve) => c.ownershipCounts({}, (e) => resolve(e)));
    expect([error?.code, applied]).toEqual([grpc.status.UNAVAILABLE, 0]);
    const health = new grpc.Client(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
    const healthCode = await new Promise<grpc.status>((resolve) =>
      health.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        (e) => resolve(e ? e.code : grpc.status.OK),
      ),
    );
    expect(healthCode).toBe(grpc.status.OK);
    c.close();
    health.close();
    await served.shutdown(100);
  });
});
