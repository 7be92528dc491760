/**
 * Graceful drain (drain-door.ts) through serveGrpc: a call running when shutdown starts finishes
 * and its reply arrives; a call made after is refused UNAVAILABLE `draining` and never runs; the
 * service's own drain runs only once the running call has finished.
 */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { CORE_SERVICE_NAME, CoreServiceClient, CoreServiceService, OwnershipCountsResponse } from '@hypmesh/proto';
import { CALLER_VMID_KEY } from './caller.js';
import { serveGrpc } from './server.js';

describe('shutdown drains: running calls finish, new ones are refused', () => {
  test('a slow call admitted before shutdown completes; one after is UNAVAILABLE draining; drain() runs after the slow call', async () => {
    const events: string[] = [];
    const core = {
      ownershipCounts: (_call: unknown, cb: grpc.sendUnaryData<OwnershipCountsResponse>) => {
        events.push('call started');
        setTimeout(() => {
          events.push('call finished');
          cb(null, OwnershipCountsResponse.fromPartial({}));
        }, 300);
      },
    };
    const served = await serveGrpc({
      address: '127.0.0.1:0',
      serviceName: CORE_SERVICE_NAME,
      register: (s) => s.addService(CoreServiceService, core as unknown as grpc.UntypedServiceImplementation),
      drain: () => void events.push('service drained'),
    });
    const client = new CoreServiceClient(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, '3');
    const call = (): Promise<string> => new Promise((resolve) => client.ownershipCounts({}, md, (e) => resolve(e === null ? 'OK' : `${grpc.status[e.code]}: ${e.details}`)));

    const running = call();
    // Shut down once the call is running (not after a fixed sleep, which a loaded machine outlasts).
    while (!events.includes('call started')) await new Promise((r) => setTimeout(r, 5));
    const stopped = served.shutdown(5_000);
    const late = await call();
    expect(late).toMatch(/^UNAVAILABLE: hypmesh\.core\.v1\.CoreService is shutting down \(draining\)/);
    expect(await running).toBe('OK');
    await stopped;
    expect(events).toEqual(['call started', 'call finished', 'service drained']);
    client.close();
  });
});
