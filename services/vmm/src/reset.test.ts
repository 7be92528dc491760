/**
 * VmmService.Reset over real gRPC (RM and core in process, on a map that is not the default): the
 * VMM takes its donation region from the core's map at start; Reset drops every session, lease and
 * VM handle WITHOUT teardown calls (the RM still has the VM, the core still has its address space:
 * a harness resets the RM and the core next), and the VMM is as at boot.
 */

import * as grpc from '@grpc/grpc-js';
import { VmType, VmmServiceClient, type Lease, type Vm } from '@hypmesh/proto/vmm';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { Stage2, vmid } from '@hypmesh/stage2';
import { ManualClock, donationRegionFrom, inProcessCorePort, inProcessRm } from '@hypmesh/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startVmmServer, type VmmServer } from './server.js';

const GiB = 2 ** 30;
let s: Stage2;
let rm: ResourceManager;
let server: VmmServer;
let client: VmmServiceClient;

type Unary = (req: object, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
const call = <Res>(method: unknown, req: object): Promise<Res> =>
  new Promise((resolve, reject) => (method as Unary).call(client, req, (e, r) => (e ? reject(e) : resolve(r as Res))));

beforeAll(async () => {
  // Two RAM banks, the higher one at 0x8_8000_0000: the donation region must come from its top.
  s = new Stage2({ memory: { paBits: 40, ram: [{ base: 0x8000_0000, sizeBytes: 2 * GiB }, { base: 0x8_8000_0000, sizeBytes: 2 * GiB }], mmio: [{ base: 0x1000_0000, sizeBytes: 256 * 2 ** 20 }] } });
  rm = new ResourceManager(inProcessCore(s));
  server = await startVmmServer({ address: '127.0.0.1:0', rm: inProcessRm(rm), core: inProcessCorePort(s), clock: new ManualClock(), vmmConfig: { waitMs: 1_000 } });
  client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(2_000);
});

test('the donation region is the top of the highest RAM bank, below HYP’s carve-out', () => {
  const ram = s.memory.regions.filter((r) => r.kind === 'RAM').map((r) => ({ base: r.base, count: r.count }));
  const region = server.vmm.config.donationRegion;
  expect(region).toEqual(donationRegionFrom({ ram, hypCarveout: s.hostCarveout }));
  expect(region.base).toBeGreaterThanOrEqual(0x8_8000_0000 / 4096);
  expect(region.base + region.count).toBe(s.hostCarveout.base);
});

test('mutate, Reset: sessions and VMs dropped without teardown calls; the VMM is as at boot', async () => {
  const lease = (await call<{ lease: Lease }>(client.openLease, { ttlMs: 60_000 })).lease;
  const vm = (await call<{ vm: Vm }>(client.createVm, { sessionId: lease.sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  expect(server.vmm.counts()).toEqual({ vms: 1, sessions: 1 });
  const pagesBefore = server.vmm.pages.inUse();
  expect(pagesBefore).toBeGreaterThan(0);

  expect(await call(client.reset, {})).toEqual({ vmsDropped: 1, sessionsDropped: 1 });
  expect(server.vmm.counts()).toEqual({ vms: 0, sessions: 0 });
  expect(server.vmm.pages.inUse()).toBe(0);
  // No teardown reached the RM or the core: the VM and its stage-2 are still there.
  expect(rm.vms.has(vm.vmid)).toBe(true);
  expect(s.spaces.has(vmid(vm.vmid))).toBe(true);
  // The old lease names nothing now.
  await expect(call(client.listVms, { sessionId: lease.sessionId })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  // And the VMM serves new sessions at once.
  const again = (await call<{ lease: Lease }>(client.openLease, { ttlMs: 60_000 })).lease;
  expect((await call<{ vms: Vm[] }>(client.listVms, { sessionId: again.sessionId })).vms).toEqual([]);
});
