import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, test } from 'vitest';
import { SERVER_OPTIONS } from './server.js';

/**
 * Issue 10: the streams that model queues (Exchange, OpenSession, Subscribe) were cut when their
 * connection reached max_connection_age plus a 10 s grace. Without a grace, grpc-js sends GOAWAY
 * at the age (new calls take a new connection) and lets open calls run to their end.
 */
describe('connection ageing does not cut a stream', () => {
  let server: grpc.Server | undefined;
  afterEach(() => server?.forceShutdown());

  test('SERVER_OPTIONS sets no grace after the age', () => {
    expect(SERVER_OPTIONS).not.toHaveProperty('grpc.max_connection_age_grace_ms');
  });

  test('a Health.Watch stream outlives a 200 ms connection age many times over; unary calls still work', async () => {
    server = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_connection_age_ms': 200 });
    const health = new HealthImplementation({ '': 'SERVING' });
    health.addToServer(server);
    const port = await new Promise<number>((resolve, reject) => server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
      watch(req: object): grpc.ClientReadableStream<{ status: string }>;
      check(req: object, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void): void;
      close(): void;
    };
    const updates: string[] = [];
    let ended: string | undefined;
    const stream = client.watch({ service: '' });
    stream.on('data', (m: { status: string }) => updates.push(m.status));
    stream.on('error', (e: grpc.ServiceError) => (ended = grpc.status[e.code]));
    stream.on('end', () => (ended ??= 'end'));
    await new Promise((r) => setTimeout(r, 1_500));
    health.setStatus('', 'NOT_SERVING');
    await new Promise((r) => setTimeout(r, 100));
    expect({ ended, updates }).toEqual({ ended: undefined, updates: ['SERVING', 'NOT_SERVING'] });
    const checked = await new Promise<string>((resolve, reject) => client.check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r!.status))));
    expect(checked).toBe('NOT_SERVING');
    stream.cancel();
    client.close();
  });
});
