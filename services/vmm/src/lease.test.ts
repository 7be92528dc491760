/**
 * VmmService's lease RPCs over real gRPC on 127.0.0.1 (port 0), the RM and the core in process and
 * the VM manager on a ManualClock: OpenLease's TTL bounds (INVALID_ARGUMENT), renewal by VM calls
 * and RenewLease, expiry tearing the VMs down with EBADF (NOT_FOUND, rule lease_expired) after,
 * CloseLease returning the final views, ListVms, and shutdown ending the leases still live.
 */

import * as grpc from '@grpc/grpc-js';
import { BindMode, VmState, VmType, VmmServiceClient, type Lease, type Vm } from '@hypmesh/proto/vmm';
import { decodeStatusDetails } from '@hypmesh/rpc';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { DEFAULT_STAGE2_CONFIG, Stage2, checkInvariants, ownershipCounts } from '@hypmesh/stage2';
import { ManualClock, inProcessCorePort, inProcessRm } from '@hypmesh/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVmmServer, type VmmServer } from './server.js';

const TTL_MS = 60_000;
const MiB = 2n ** 20n;
const HOST_GUEST_RAM = 3n * 2n ** 30n;
const rwx = { allowRead: true, allowWrite: true, allowExec: true };

let s: Stage2;
let clock: ManualClock;
let server: VmmServer;
let client: VmmServiceClient;
const bootCounts = ownershipCounts(new Stage2(DEFAULT_STAGE2_CONFIG));

type Unary = (req: object, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
function call<Res>(method: unknown, req: object): Promise<Res> {
  return new Promise((resolve, reject) => (method as Unary).call(client, req, (e, r) => (e ? reject(e) : resolve(r as Res))));
}
/** The refusal as "CODE errno rule". */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    const err = e as grpc.ServiceError;
    const d = decodeStatusDetails({ code: err.code, details: err.details, metadata: err.metadata });
    return `${grpc.status[err.code]} ${d.errorDetail?.codeName ?? '-'} ${d.errorDetail?.rule ?? d.badRequest?.fieldViolations[0]?.field ?? '-'}`;
  }
}

const openLease = async (ttlMs = TTL_MS): Promise<Lease> => (await call<{ lease: Lease }>(client.openLease, { ttlMs })).lease;
const createVm = async (sessionId: string, type = VmType.VM_TYPE_GUNYAH): Promise<Vm> => (await call<{ vm: Vm }>(client.createVm, { sessionId, type, ipaBits: 40 })).vm;
const listVms = async (sessionId: string): Promise<Vm[]> => (await call<{ vms: Vm[] }>(client.listVms, { sessionId })).vms;

function expectAllBack(): void {
  expect(checkInvariants(s)).toEqual([]);
  expect(ownershipCounts(s)).toEqual(bootCounts);
  expect(server.vmm.pages.inUse()).toBe(0);
}

beforeAll(async () => {
  s = new Stage2(DEFAULT_STAGE2_CONFIG);
  clock = new ManualClock();
  const rm = new ResourceManager(inProcessCore(s));
  server = await startVmmServer({ address: '127.0.0.1:0', rm: inProcessRm(rm), core: inProcessCorePort(s), clock, vmmConfig: { waitMs: 1_000 } });
  client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(2_000);
});

describe('VmmService leases over gRPC', () => {
  test.each([
    { ttlMs: 999, expected: 'INVALID_ARGUMENT EINVAL lease_ttl_invalid' },
    { ttlMs: 3_600_001, expected: 'INVALID_ARGUMENT EINVAL lease_ttl_invalid' },
    { ttlMs: 0, expected: 'INVALID_ARGUMENT EINVAL lease_ttl_invalid' },
  ])('OpenLease ttl_ms $ttlMs → $expected', async ({ ttlMs, expected }) => {
    expect(await refusal(openLease(ttlMs))).toBe(expected);
  });

  test('VM calls and RenewLease renew; an idle lease expires and its VMs are torn down; then EBADF (NOT_FOUND) lease_expired', async () => {
    const lease = await openLease();
    expect(lease).toEqual({ sessionId: lease.sessionId, ttlMs: TTL_MS, expiresInMs: TTL_MS });
    const id = lease.sessionId;
    const vm = await createVm(id);
    clock.advance(TTL_MS - 1);
    expect((await listVms(id)).map((v) => v.handle)).toEqual([vm.handle]); // renews
    clock.advance(TTL_MS - 1);
    const renewed = (await call<{ lease: Lease }>(client.renewLease, { sessionId: id })).lease;
    expect(renewed.expiresInMs).toBe(TTL_MS);
    clock.advance(TTL_MS - 1);
    expect((await call<{ vm: Vm }>(client.getVm, { sessionId: id, handle: vm.handle })).vm.state).toBe(VmState.VM_STATE_CREATED);
    clock.advance(TTL_MS);
    await server.vmm.idle();
    expect(server.vmm.view(Number(vm.handle))).toBeUndefined();
    expect(await refusal(call(client.getVm, { sessionId: id, handle: vm.handle }))).toBe('NOT_FOUND EBADF lease_expired');
    expect(await refusal(listVms(id))).toBe('NOT_FOUND EBADF lease_expired');
    expect(await refusal(createVm(id))).toBe('NOT_FOUND EBADF lease_expired');
    expect(await refusal(call(client.renewLease, { sessionId: id }))).toBe('NOT_FOUND EBADF lease_expired');
    expectAllBack();
  });

  test('CloseLease tears a RUNNING VM down and returns its final state; then EBADF lease_closed', async () => {
    const id = (await openLease()).sessionId;
    const vm = await createVm(id);
    const at = { sessionId: id, handle: vm.handle };
    await call(client.mapMem, { ...at, binding: { guestAddr: 0x8000_0000n, hostAddr: HOST_GUEST_RAM, size: 4n * MiB, mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false });
    await call(client.setDtbConfig, { ...at, guestAddr: 0x8010_0000n, size: 0x2000n });
    expect((await call<{ vm: Vm }>(client.startVm, at)).vm.state).toBe(VmState.VM_STATE_RUNNING);
    const realm = await createVm(id, VmType.VM_TYPE_REALM);
    const closed = (await call<{ vms: Vm[] }>(client.closeLease, { sessionId: id })).vms;
    expect(closed.map((v) => [v.handle, v.state, v.leaked])).toEqual([
      [vm.handle, VmState.VM_STATE_DESTROYED, []],
      [realm.handle, VmState.VM_STATE_DESTROYED, []],
    ]);
    expect(closed[0]!.teardown.filter((t) => !t.ok)).toEqual([]);
    expect(await refusal(call(client.closeLease, { sessionId: id }))).toBe('NOT_FOUND EBADF lease_closed');
    expect(await refusal(call(client.startVm, at))).toBe('NOT_FOUND EBADF lease_closed');
    expectAllBack();
  });

  test('RenewLease of an unknown id or none', async () => {
    expect(await refusal(call(client.renewLease, { sessionId: 'lease-999' }))).toBe('NOT_FOUND ENOENT session_unknown');
    expect(await refusal(call(client.renewLease, { sessionId: '' }))).toBe('INVALID_ARGUMENT - session_id');
    expect(await refusal(call(client.listVms, { sessionId: '' }))).toBe('INVALID_ARGUMENT - session_id');
  });

  test('shutdown ends the leases still live and tears their VMs down', async () => {
    const id = (await openLease()).sessionId;
    await createVm(id);
    client.close();
    await server.shutdown(2_000);
    expect(clock.pending()).toBe(0);
    expectAllBack();
  });
});
