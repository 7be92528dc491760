/**
 * Issue 10 (session memory), over real gRPC: OpenSession streams cancelled by their clients and
 * leases opened and closed leave nothing per session behind in the service (the stream's event
 * listener, its session) or the VM manager (packages/vmm session-memory.test.ts does 6,000 in
 * process; the heap figure, flat after the tombstone cap, is in the README).
 */
import * as grpc from '@grpc/grpc-js';
import { VmmServiceClient, type Lease } from '@hypmesh/proto/vmm';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { DEFAULT_STAGE2_CONFIG, Stage2 } from '@hypmesh/stage2';
import { ManualClock, inProcessCorePort, inProcessRm } from '@hypmesh/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startVmmServer, type VmmServer } from './server.js';

const SESSIONS = 300;
/** A fresh connection this often: one connection's many cancelled streams are not what is measured. */
const PER_CONNECTION = 100;

let server: VmmServer;
let client: VmmServiceClient;
const connect = () => new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
const md = (): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set('x-hypmesh-caller-vmid', '3');
  return m;
};
type Unary = (req: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
const call = <Res>(method: unknown, req: object): Promise<Res> =>
  new Promise((resolve, reject) => (method as Unary).call(client, req, md(), (e, r) => (e ? reject(e) : resolve(r as Res))));

beforeAll(async () => {
  const s = new Stage2(DEFAULT_STAGE2_CONFIG);
  server = await startVmmServer({ address: '127.0.0.1:0', rm: inProcessRm(new ResourceManager(inProcessCore(s))), core: inProcessCorePort(s), clock: new ManualClock(), vmmConfig: { waitMs: 1_000 } });
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(2_000);
});

test(`${SESSIONS} sessions over gRPC (streams cancelled, leases closed) leave no session, lease or listener behind`, async () => {
  const baseline = server.vmm.footprint();
  for (let i = 0; i < SESSIONS; i++) {
    if (i % PER_CONNECTION === 0) {
      client?.close();
      client = connect();
    }
    if (i % 2 === 0) {
      await new Promise<void>((resolve) => {
        const stream = client.openSession({}, md());
        stream.on('data', () => stream.cancel());
        stream.on('error', () => resolve());
        stream.on('end', () => resolve());
      });
    } else {
      const { lease } = await call<{ lease: Lease }>(client.openLease, { ttlMs: 60_000 });
      await call(client.closeLease, { sessionId: lease.sessionId });
    }
  }
  // The server sees a cancelled stream's end a moment after the client: wait for the last one.
  for (let i = 0; i < 100 && server.vmm.footprint()['sessions']! > 0; i++) await new Promise((r) => setTimeout(r, 20));
  expect({ ...server.vmm.footprint(), endedLeases: 0 }).toEqual(baseline);
  expect(server.vmm.footprint()['endedLeases']).toBe(SESSIONS / 2);
}, 120_000);
