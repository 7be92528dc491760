/**
 * VM handles are per session over gRPC (RM and core in process), as fds are per process (issue 11
 * item 1): two sessions each get handle 1; GetVm, WatchVm and the OpenSession event stream look a
 * handle up in its own session only, so one session's VM 1 never shows in the other's; ListAllVms
 * names each VM by session and handle.
 */

import * as grpc from '@grpc/grpc-js';
import { VmState, VmType, VmmServiceClient, type ListAllVmsResponse, type OpenSessionResponse, type Vm, type WatchVmResponse } from '@hypmesh/proto/vmm';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { DEFAULT_STAGE2_CONFIG, Stage2 } from '@hypmesh/stage2';
import { ManualClock, inProcessCorePort, inProcessRm } from '@hypmesh/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startVmmServer, type VmmServer } from './server.js';

let server: VmmServer;
let client: VmmServiceClient;

type Unary = (req: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
const call = <Res>(method: unknown, req: object): Promise<Res> => {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, '3');
  return new Promise((resolve, reject) => (method as Unary).call(client, req, md, (e, r) => (e ? reject(e) : resolve(r as Res))));
};

/** An OpenSession stream: its id and the STATE events it delivered, as `handle:state`. */
async function streamSession(): Promise<{ id: string; states: string[]; stream: grpc.ClientReadableStream<OpenSessionResponse> }> {
  const stream = client.openSession({});
  stream.on('error', () => {}); // cancelled at the end
  const states: string[] = [];
  const id = await new Promise<string>((resolve) =>
    stream.on('data', (m: OpenSessionResponse) => {
      if (m.sessionId) resolve(m.sessionId);
      if (m.event?.state !== undefined) states.push(`${m.event.handle}:${VmState[m.event.state]}`);
    }),
  );
  return { id, states, stream };
}

const until = async (done: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
};

beforeAll(async () => {
  const s = new Stage2(DEFAULT_STAGE2_CONFIG);
  server = await startVmmServer({ address: '127.0.0.1:0', rm: inProcessRm(new ResourceManager(inProcessCore(s))), core: inProcessCorePort(s), clock: new ManualClock(), vmmConfig: { waitMs: 1_000 } });
  client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(2_000);
});

test('two sessions each have a VM 1; every call and stream sees its own', async () => {
  const a = await streamSession();
  const b = await streamSession();
  const vmA = (await call<{ vm: Vm }>(client.createVm, { sessionId: a.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const vmB = (await call<{ vm: Vm }>(client.createVm, { sessionId: b.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  expect([vmA.handle, vmB.handle]).toEqual([1n, 1n]);
  expect(vmA.vmid).not.toBe(vmB.vmid);
  expect((await call<{ vm: Vm }>(client.getVm, { sessionId: a.id, handle: 1n })).vm.vmid).toBe(vmA.vmid);
  expect((await call<{ vm: Vm }>(client.getVm, { sessionId: b.id, handle: 1n })).vm.vmid).toBe(vmB.vmid);

  const all = await call<ListAllVmsResponse>(client.listAllVms, {});
  const byName = [a.id, b.id].sort();
  expect(all.vms.map((r) => `${r.sessionId}/${r.vm!.handle}`)).toEqual(byName.map((id) => `${id}/1`));

  const watched: string[] = [];
  const watch = client.watchVm({ sessionId: a.id, handle: 1n });
  const watchEnded = new Promise<void>((resolve) => watch.on('end', resolve).on('error', () => resolve()));
  watch.on('data', (m: WatchVmResponse) => m.event?.state !== undefined && watched.push(VmState[m.event.state]));
  await until(() => watched.length > 0);

  // B's VM 1 goes first: A's watch and A's session stream must not see it.
  expect((await call<{ vm: Vm }>(client.destroyVm, { sessionId: b.id, handle: 1n })).vm.state).toBe(VmState.VM_STATE_DESTROYED);
  expect((await call<{ vm: Vm }>(client.getVm, { sessionId: a.id, handle: 1n })).vm.state).toBe(VmState.VM_STATE_CREATED);
  expect((await call<{ vm: Vm }>(client.destroyVm, { sessionId: a.id, handle: 1n })).vm.state).toBe(VmState.VM_STATE_DESTROYED);
  await watchEnded;
  await until(() => a.states.length >= 3 && b.states.length >= 3);

  expect(watched).toEqual(['VM_STATE_CREATED', 'VM_STATE_DESTROYING', 'VM_STATE_DESTROYED']);
  const life = ['1:VM_STATE_CREATED', '1:VM_STATE_DESTROYING', '1:VM_STATE_DESTROYED'];
  expect(a.states).toEqual(life);
  expect(b.states).toEqual(life);
  a.stream.cancel();
  b.stream.cancel();
});
