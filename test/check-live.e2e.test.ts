/**
 * `hypmesh check --live` (issue 9 item 5) against the three services as separate processes: a clean
 * system with a running VM and a shared parcel agrees (exit 0, nothing listed); a grant destroyed
 * behind the RM's back (the core's DestroyGrant, called by its owner HOST) is listed as exactly that
 * disagreement (exit 1); a service that does not answer is exit 2 naming it. The admin
 * introspection the check uses is refused to other callers.
 */

import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { MemShareRequest, MemType, RmServiceClient, type ListParcelsResponse, type MemShareResponse } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type OpenSessionResponse, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, checkLive, code, HOST, openSession } from './support/calls.js';
import { Processes, type Addresses } from './support/processes.js';

const MiB = 2 ** 20;
/** Host RAM bound as the guest's memory (the default core RAM is 2..18 GiB; the VMM keeps the top 64 MiB). */
const GUEST_RAM = BigInt(3 * 2 ** 30);
/** Host RAM HLOS shares with the guest, away from the binding. */
const SHARED_RAM = GUEST_RAM + BigInt(64 * MiB);
const RWX = 7;

const processes = new Processes();
let addrs: Addresses;
let core: CoreServiceClient;
let rm: RmServiceClient;
let vmm: VmmServiceClient;
let session: grpc.ClientReadableStream<OpenSessionResponse>;

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants']);
  const creds = grpc.credentials.createInsecure();
  core = new CoreServiceClient(addrs.core, creds);
  rm = new RmServiceClient(addrs.rm, creds);
  vmm = new VmmServiceClient(addrs.vmm, creds);
}, 60_000);

afterAll(async () => {
  session?.cancel();
  core?.close();
  rm?.close();
  vmm?.close();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

describe('hypmesh check --live, three processes', () => {
  let vm: Vm;
  let parcel: number;

  test('a running VM and a shared parcel: the three views agree, exit 0', async () => {
    const opened = await openSession(vmm);
    session = opened.stream;
    const sessionId = opened.sessionId;
    vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
    const at = (req: object) => ({ sessionId, handle: vm.handle, ...req });
    const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
    await ask(vmm, vmm.mapMem, at({ binding, unmap: false }));
    await ask(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
    await ask(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
    vm = (await ask<{ vm: Vm }>(vmm, vmm.startVm, at({}))).vm;
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);

    // HLOS shares 16 KiB with the guest (MEM_SHARE): a parcel in SHARING, one core grant nobody maps.
    parcel = (await ask<MemShareResponse>(rm, rm.memShare, MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 7, acl: [{ vmid: vm.vmid, rights: 6 }, { vmid: HOST, rights: RWX }], sgl: [{ base: SHARED_RAM, size: 0x4000n }] }))).handle;

    const r = await checkLive(addrs);
    expect({ code: r.code, out: r.out, err: r.err }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n", err: '' });
  }, 60_000);

  test('the admin introspection is HOST/HLOS only', async () => {
    expect(await code(ask(vmm, vmm.listAllVms, {}, vm.vmid))).toBe('PERMISSION_DENIED');
    expect(await code(ask(rm, rm.listVms, {}, vm.vmid))).toBe('PERMISSION_DENIED');
    expect(await code(ask(rm, rm.listParcels, { allVms: true }, vm.vmid))).toBe('PERMISSION_DENIED');
    // What the check reads: the VMM's donated runs, the RM's VM and the parcel's grant, the core's space and grant.
    const all = await ask<{ vms: { vm: Vm; sessionId: string; donatedRuns: { count: bigint }[] }[] }>(vmm, vmm.listAllVms, {});
    expect(all.vms.map((r) => [r.vm.handle, r.donatedRuns.reduce((n, d) => n + d.count, 0n)])).toEqual([[vm.handle, vm.hostPages]]);
    expect((await ask<{ vms: { vmid: number; status: string }[] }>(rm, rm.listVms, {})).vms).toContainEqual({ vmid: vm.vmid, ownerVmid: HOST, status: 'RUNNING' });
    expect((await ask<{ spaces: { vmid: number }[] }>(core, core.listAddressSpaces, {})).spaces.map((s) => s.vmid)).toContain(vm.vmid);
  });

  test("a grant destroyed behind the RM's back: exactly parcel_without_grant, exit 1", async () => {
    const mine = (await ask<ListParcelsResponse>(rm, rm.listParcels, { allVms: true })).parcels.find((p) => p.handle === parcel)!;
    expect(mine.grantId).toBeGreaterThan(0n);
    // The core lets the owner reclaim its grant directly; the RM still holds the parcel.
    await ask(core, core.destroyGrant, { grantId: mine.grantId });

    const r = await checkLive(addrs);
    expect(r.code).toBe(1);
    const lines = r.out.trim().split('\n');
    expect(lines).toEqual([`parcel_without_grant: parcel ${parcel} (SHARE of VMID 3): core grant ${mine.grantId} does not exist`, '1 disagreement']);
  }, 60_000);

  test('a service that does not answer: exit 2 naming it', async () => {
    const r = await checkLive({ ...addrs, vmm: '127.0.0.1:1' }, '--deadline-ms', '1500');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^hypmesh check --live: the vmm at 127\.0\.0\.1:1 did not answer ListAllVms: (UNAVAILABLE|DEADLINE_EXCEEDED)/);
  }, 30_000);
});
