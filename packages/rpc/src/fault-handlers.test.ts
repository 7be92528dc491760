/**
 * The front door serveGrpc installs (fault-handlers.ts), without a server: what it wraps and what it
 * numbers. Each action's effect over a real server is in front-door.test.ts.
 */

import * as grpc from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { FaultEngine, type FaultEvent } from '@hypmesh/fault';
import { faultFrontDoor } from './fault-handlers.js';

const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: (x: unknown) => x as Buffer,
  requestDeserialize: (x: Buffer) => x,
  responseSerialize: (x: unknown) => x as Buffer,
  responseDeserialize: (x: Buffer) => x,
  originalName: path.slice(path.lastIndexOf('/') + 1),
});

const definition = {
  query: method('/hypmesh.core.v1.CoreService/Query', false, false),
  watch: method('/hypmesh.core.v1.CoreService/Watch', false, true),
  exchange: method('/hypmesh.core.v1.CoreService/Exchange', true, true),
} as unknown as grpc.ServiceDefinition;
const health = { check: method('/grpc.health.v1.Health/Check', false, false) } as unknown as grpc.ServiceDefinition;

const handlers = () => ({
  query: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
  watch: () => undefined,
  exchange: () => undefined,
});

const unaryCall = (vmid?: string) => {
  const metadata = new grpc.Metadata();
  if (vmid !== undefined) metadata.set('x-hypmesh-caller-vmid', vmid);
  return { metadata } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
};

const run = (h: unknown, call = unaryCall('3')): Promise<grpc.ServiceError | null> =>
  new Promise((resolve) => (h as grpc.handleUnaryCall<unknown, unknown>)(call, (e) => resolve(e as grpc.ServiceError | null)));

describe('faultFrontDoor: what it wraps', () => {
  test('streaming handlers (server and bidi) and exempt paths are the originals: never decided, never numbered', () => {
    const door = faultFrontDoor(new FaultEngine({ nowMs: () => 0 }), 'CLIENT_TO_CORE');
    const impl = handlers();
    const wrapped = door.wrap(definition, impl);
    expect(wrapped.watch).toBe(impl.watch);
    expect(wrapped.exchange).toBe(impl.exchange);
    expect(wrapped.query).not.toBe(impl.query);
    const check = () => undefined;
    expect(door.wrap(health, { check }).check).toBe(check);
  });

  test('every unary call is numbered once at its boundary, armed there or not, so op indices match the simulation', async () => {
    const engine = new FaultEngine({ nowMs: () => 0 });
    engine.arm({ rules: [{ id: 'rm', boundary: 'CLIENT_TO_RM', match: {}, action: { kind: 'duplicate' } }] }, 1);
    const wrapped = faultFrontDoor(engine, 'CLIENT_TO_CORE').wrap(definition, handlers());
    for (let i = 0; i < 3; i++) expect(await run(wrapped.query)).toBeNull();
    const d = engine.decide({ boundary: 'CLIENT_TO_RM', method: 'VmAllocate' });
    expect(d.fault && [d.event.opIndex, d.event.globalOpIndex]).toEqual([1, 4]);
  });

  test('the point carries the method and the caller VMID when it parses', async () => {
    const engine = new FaultEngine({ nowMs: () => 0 });
    engine.arm({ rules: [{ id: 'all', boundary: 'CLIENT_TO_CORE', match: {}, action: { kind: 'fail_before', failure: { kind: 'grpc', code: 'ABORTED' } } }] }, 1);
    const events: FaultEvent[] = [];
    engine.subscribe((e) => events.push(e));
    const wrapped = faultFrontDoor(engine, 'CLIENT_TO_CORE').wrap(definition, handlers());
    expect((await run(wrapped.query, unaryCall(' 7 ')))?.code).toBe(grpc.status.ABORTED);
    expect((await run(wrapped.query, unaryCall('x')))?.code).toBe(grpc.status.ABORTED);
    expect(events.map((e) => [e.method, e.callerVmid, e.opIndex])).toEqual([
      ['Query', 7, 1],
      ['Query', undefined, 2],
    ]);
  });
});
