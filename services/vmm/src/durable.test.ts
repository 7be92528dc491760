/**
 * The VMM's data dir (durable.ts) over real gRPC, the RM and the core in process: every reply comes
 * after the state it left is committed (a second reader of vmm.sqlite sees the VM as soon as
 * CreateVm answers), and a graceful shutdown with a data dir keeps the lease and its RUNNING VM for
 * the next server on the same dir, which re-adopts them (the kill -9 case is
 * test/vmm-durable.e2e.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BindMode, VmState, VmType, VmmServiceClient, type Lease, type Vm } from '@hypmesh/proto/vmm';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { DEFAULT_STAGE2_CONFIG, Stage2, checkInvariants } from '@hypmesh/stage2';
import { decodeState, openDataDir } from '@hypmesh/journal';
import { VMM_DURABLE_FORMAT, inProcessCorePort, inProcessHoldings, inProcessRm, type VmmDurableState } from '@hypmesh/vmm';
import { afterAll, expect, test } from 'vitest';
import { openVmmStore } from './durable.js';
import { startVmmServer, type VmmServer } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'hypmesh-vmm-store-'));
const log = { fatal: (obj: object, msg: string) => void console.error(msg, obj) };
const s = new Stage2(DEFAULT_STAGE2_CONFIG);
const rm = new ResourceManager(inProcessCore(s));
const servers: VmmServer[] = [];
const clients: VmmServiceClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  for (const v of servers) await v.shutdown(2_000);
  rmSync(dir, { recursive: true, force: true });
});

async function serve(): Promise<{ server: VmmServer; client: VmmServiceClient }> {
  const store = openVmmStore(dir, 'normal', log);
  if (!store.ok || store.value === undefined) throw new Error(store.ok ? 'no store' : store.error);
  const server = await startVmmServer({ address: '127.0.0.1:0', rm: inProcessRm(rm), core: inProcessCorePort(s), holdings: inProcessHoldings(rm, s), store: store.value, vmmConfig: { waitMs: 1_000 } });
  const client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  servers.push(server);
  clients.push(client);
  return { server, client };
}

type Unary = (req: object, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
const call = <Res>(client: VmmServiceClient, method: unknown, req: object): Promise<Res> =>
  new Promise((resolve, reject) => (method as Unary).call(client, req, (e, r) => (e ? reject(e) : resolve(r as Res))));

/** What a second reader of the data dir sees now. */
function onDisk(): { leases: string[]; handles: number[] } {
  const other = openDataDir({ dir, file: 'vmm.sqlite', service: 'hypmesh-vmm', format: VMM_DURABLE_FORMAT, configured: '{}' });
  if (!other.ok) throw new Error(other.error);
  const text = other.value.journal.state('vmm');
  other.value.journal.close();
  const state = text === undefined ? undefined : (decodeState(text) as VmmDurableState);
  return { leases: state?.leases.map((l) => l.sessionId) ?? [], handles: state?.vms.map((v) => v.handle) ?? [] };
}

test('replies follow the commit; a SIGTERM-style shutdown keeps the lease and its VM, and the next server on the dir re-adopts them', async () => {
  const first = await serve();
  const lease = (await call<{ lease: Lease }>(first.client, first.client.openLease, { ttlMs: 60_000 })).lease.sessionId;
  expect(onDisk()).toEqual({ leases: [lease], handles: [] });
  const vm = (await call<{ vm: Vm }>(first.client, first.client.createVm, { sessionId: lease, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  expect(onDisk()).toEqual({ leases: [lease], handles: [Number(vm.handle)] });
  const at = (req: object) => ({ sessionId: lease, handle: vm.handle, ...req });
  const binding = { guestAddr: 0x8000_0000n, hostAddr: 3n * 2n ** 30n, size: 4n * 2n ** 20n, mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await call(first.client, first.client.mapMem, at({ binding, unmap: false }));
  await call(first.client, first.client.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
  expect((await call<{ vm: Vm }>(first.client, first.client.startVm, at({}))).vm.state).toBe(VmState.VM_STATE_RUNNING);

  await first.server.shutdown(2_000);
  // Kept, not torn down: the RM still runs the VM.
  expect([...rm.vms.values()].filter((v) => v.vmid === vm.vmid).map((v) => v.status)).toEqual(['RUNNING']);

  const second = await serve();
  expect(second.server.sweep).toMatchObject({ adopted: [vm.vmid], orphans: [] });
  const again = (await call<{ vm: Vm }>(second.client, second.client.getVm, at({}))).vm;
  expect({ vmid: again.vmid, state: again.state }).toEqual({ vmid: vm.vmid, state: VmState.VM_STATE_RUNNING });
  const closed = (await call<{ vms: Vm[] }>(second.client, second.client.closeLease, { sessionId: lease })).vms;
  expect(closed.map((v) => [v.handle, v.state, v.leaked])).toEqual([[vm.handle, VmState.VM_STATE_DESTROYED, []]]);
  expect(onDisk()).toEqual({ leases: [], handles: [] });
  expect(rm.vms.size + rm.parcels.size).toBe(0);
  expect(second.server.vmm.pages.inUse()).toBe(0);
  expect(checkInvariants(s)).toEqual([]);
}, 60_000);
