/**
 * Issue 10 item 4, graceful drain, with the VMM as its own process: SIGTERM arrives while a StartVm
 * is in flight (its VM_START held 800 ms by a fault delay). Before, CreateVm and StartVm were still
 * accepted during the drain and the StartVm in flight ended CANCELLED, leaving RM VMs, address
 * spaces and grants behind. Now the StartVm completes, a CreateVm after the signal is UNAVAILABLE
 * `draining`, the VMM tears its sessions down and exits, and the RM and the core hold nothing.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ask, openSession } from './support/calls.js';
import { Processes, type Addresses } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
const processes = new Processes();
let addrs: Addresses;

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants']);
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

test('SIGTERM mid-StartVm: the start completes, new work is UNAVAILABLE draining, nothing is left in the RM or the core', async () => {
  const vmm = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  const { stream, sessionId } = await openSession(vmm);
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const where = { sessionId, handle: vm.handle };
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false });
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
  const faults = new FaultServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  await ask(faults, faults.arm, { plan: FaultPlan.fromJSON({ rules: [{ id: 'slow-start', boundary: 'BOUNDARY_VMM_TO_RM', match: { rmMessage: 'VM_START', nth: 1 }, delay: { fixedMs: 800 } }] }), seed: 1 });
  faults.close();

  const starting = ask<{ vm: Vm }>(vmm, vmm.startVm, where);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const proc = processes.all.find((p) => p.name === 'vmm')!;
  const exited = new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  proc.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const late = await ask(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }).catch((e: grpc.ServiceError) => e);
  expect(late).toMatchObject({ code: grpc.status.UNAVAILABLE });
  expect((late as grpc.ServiceError).details).toMatch(/shutting down \(draining\)/);
  expect((await starting).vm.state).toBe(VmState.VM_STATE_RUNNING);
  expect(await exited).toBe(0);
  stream.cancel();
  vmm.close();

  const rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
  const core = new CoreServiceClient(addrs.core, grpc.credentials.createInsecure());
  expect((await ask<{ vms: unknown[] }>(rm, rm.listVms, {})).vms).toEqual([]);
  expect((await ask<{ grants: unknown[] }>(core, core.listGrants, {})).grants).toEqual([]);
  expect((await ask<{ violations: string[] }>(core, core.checkInvariants, {})).violations).toEqual([]);
  rm.close();
  core.close();
}, 60_000);
