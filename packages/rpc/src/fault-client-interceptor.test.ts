/**
 * The client fault interceptor on an outbound boundary (RM_TO_CORE here), against a real grpc-js
 * server on 127.0.0.1:0 whose handler counts how often the request was applied.
 */

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { FaultEngine, type FaultAction, type FaultEvent } from '@hypmesh/fault';
import { CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { CALLER_VMID_KEY } from './caller.js';
import { faultClientInterceptor } from './fault-client-interceptor.js';
import { decodeStatusDetails } from './status-details.js';

let applied = 0;
const crashes: FaultEvent[] = [];
const engine = new FaultEngine({ nowMs: Date.now });
let server: grpc.Server;
let client: InstanceType<typeof CoreServiceClient>;

beforeAll(async () => {
  server = new grpc.Server();
  const core = {
    ownershipCounts: (_call: unknown, cb: grpc.sendUnaryData<OwnershipCountsResponse>) => {
      applied++;
      setTimeout(() => cb(null, OwnershipCountsResponse.fromPartial({})), 5);
    },
  };
  server.addService(CoreServiceService, core as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  client = new CoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    interceptors: [faultClientInterceptor(engine, 'RM_TO_CORE', { crash: (e) => void crashes.push(e) })],
  });
});

afterAll(() => {
  client?.close();
  server?.forceShutdown();
});

beforeEach(() => {
  applied = 0;
  crashes.length = 0;
  engine.disarm('all');
});

const arm = (action: FaultAction): void => {
  const r = engine.arm({ rules: [{ id: 'out', boundary: 'RM_TO_CORE', match: { method: 'OwnershipCounts', callerVmid: 3 }, action }] }, 1);
  if (!r.ok) throw new Error(JSON.stringify(r.error));
};

const call = (): Promise<{ error: grpc.ServiceError | null; elapsedMs: number; appliedAtAnswer: number }> =>
  new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, '3');
    const t0 = Date.now();
    client.ownershipCounts({}, md, { deadline: Date.now() + 5_000 }, (error) => resolve({ error, elapsedMs: Date.now() - t0, appliedAtAnswer: applied }));
  });

describe('fault client interceptor at RM_TO_CORE', () => {
  test('nothing armed: sent once', async () => {
    expect((await call()).error).toBeNull();
    expect(applied).toBe(1);
  });

  test('delay: sent late', async () => {
    arm({ kind: 'delay', fixedMs: 120, jitterMs: 0 });
    const r = await call();
    expect([r.error, applied]).toEqual([null, 1]);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(110);
  });

  test('fail_before with an errno: never sent, the caller sees the core’s encoding', async () => {
    arm({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'errno', errno: 'EBUSY' } } });
    const r = await call();
    expect(applied).toBe(0);
    expect(decodeStatusDetails(r.error!)).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, errorDetail: { domain: 'errno', codeName: 'EBUSY' } });
  });

  test('fail_after: applied, the answer is lost', async () => {
    arm({ kind: 'fail_after', code: 'DEADLINE_EXCEEDED' });
    const r = await call();
    expect([r.error?.code, applied]).toEqual([grpc.status.DEADLINE_EXCEEDED, 1]);
  });

  test('duplicate: applied twice before the caller sees the first answer', async () => {
    arm({ kind: 'duplicate' });
    const r = await call();
    expect([r.error, r.appliedAtAnswer]).toEqual([null, 2]);
  });

  test('crash before commit: never sent; after commit: applied, then the crash', async () => {
    arm({ kind: 'crash', point: 'BEFORE_COMMIT' });
    expect((await call()).error?.code).toBe(grpc.status.UNAVAILABLE);
    expect([applied, crashes.length]).toEqual([0, 1]);
    arm({ kind: 'crash', point: 'AFTER_COMMIT' });
    expect((await call()).error?.code).toBe(grpc.status.UNAVAILABLE);
    expect([applied, crashes.length]).toEqual([1, 2]);
  });
});

describe('drop at VMM_TO_RM', () => {
  test('never sent; the caller times out', async () => {
    const dropEngine = new FaultEngine({ nowMs: Date.now });
    dropEngine.arm({ rules: [{ id: 'lost', boundary: 'VMM_TO_RM', match: {}, action: { kind: 'drop' } }] }, 1);
    const port = Number(client.getChannel().getTarget().split(':').pop());
    const dropping = new CoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { interceptors: [faultClientInterceptor(dropEngine, 'VMM_TO_RM')] });
    const error = await new Promise<grpc.ServiceError | null>((resolve) => dropping.ownershipCounts({}, (e) => resolve(e)));
    dropping.close();
    expect([error?.code, applied]).toEqual([grpc.status.DEADLINE_EXCEEDED, 0]);
  });
});
