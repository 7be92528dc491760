/**
 * Issue 9 §4 fencing: kill -9 the core (no data dir) between a VM's create and its destroy, and
 * restart it. Before, grant ids started again at 1, and tearing down the pre-crash VM destroyed
 * grants made after the restart for another VM, while the teardown reported success. Now every
 * boot draws a generation that grant ids carry: the stale ids of the pre-crash VM are refused
 * (NOT_FOUND, naming the generations), and no grant of the new boot is touched; the RM counts a
 * grant refused as of another generation as gone, so the teardown completes and check --live is empty.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ask, checkLive, code, openSession } from './support/calls.js';
import { Processes, serving, type Addresses } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
const processes = new Processes();
let addrs: Addresses;
const streams: grpc.ClientReadableStream<unknown>[] = [];

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants']);
}, 60_000);

afterAll(async () => {
  for (const s of streams) s.cancel();
  await processes.stopAll();
}, 30_000);

/** A started GUNYAH VM bound at `hostOffset` of the guest RAM, in its own session. */
async function runningVm(vmm: VmmServiceClient, hostOffset: number): Promise<{ vm: Vm; sessionId: string }> {
  const { stream, sessionId } = await openSession(vmm);
  streams.push(stream);
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const where = { sessionId, handle: vm.handle };
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM + BigInt(hostOffset), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false });
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
  return { vm: (await ask<{ vm: Vm }>(vmm, vmm.startVm, where)).vm, sessionId };
}

test('kill -9 the core between a VM create and its destroy: the stale grant ids are refused, no grant of the new boot is touched', async () => {
  const vmm = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  const before = await runningVm(vmm, 0);
  expect(before.vm.state).toBe(VmState.VM_STATE_RUNNING);
  let core = new CoreServiceClient(addrs.core, grpc.credentials.createInsecure());
  const staleIds = (await ask<{ grants: { grantId: bigint }[] }>(core, core.listGrants, {})).grants.map((g) => g.grantId);
  expect(staleIds.length).toBeGreaterThan(0);
  core.close();

  const old = processes.all.find((p) => p.name === 'core')!;
  old.child.kill('SIGKILL');
  await new Promise((resolve) => old.child.once('exit', resolve));
  await processes.spawnNode('core-2', 'services/core/dist/main.js', ['--address', addrs.core, '--check-invariants'], serving('hypmesh core serving'));
  core = new CoreServiceClient(addrs.core, grpc.credentials.createInsecure());

  // A VM made after the restart: its grants are the new boot's (retried while the RM and the VMM reconnect).
  let after: { vm: Vm; sessionId: string } | undefined;
  for (let i = 0; i < 100 && after === undefined; i++) {
    after = await runningVm(vmm, 16 * MiB).catch(() => undefined);
    if (after === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(after?.vm.state).toBe(VmState.VM_STATE_RUNNING);
  const fresh = (await ask<{ grants: { grantId: bigint }[] }>(core, core.listGrants, {})).grants.map((g) => g.grantId);
  expect(fresh.length).toBeGreaterThan(0);
  for (const id of fresh) expect(staleIds).not.toContain(id);

  // A stale id is refused, saying it belongs to another boot.
  const refused = await ask(core, core.destroyGrant, { grantId: staleIds[0] }).catch((e: grpc.ServiceError) => e);
  expect(refused).toMatchObject({ code: grpc.status.NOT_FOUND });
  expect((refused as grpc.ServiceError).details).toMatch(/is of boot generation \d+, this core booted as generation \d+/);

  // Tearing the pre-crash VM down touches none of them. The RM's reset of it meets its DTB parcel's
  // grant refused as of another boot generation: gone, so the reset completes (@hypmesh/rm parcel.ts
  // grantGone), the reclaim deletes the parcel and the deallocate frees the VMID.
  const destroyed = (await ask<{ vm: Vm }>(vmm, vmm.destroyVm, { sessionId: before.sessionId, handle: before.vm.handle }, 3, 60_000)).vm;
  expect(destroyed.state).toBe(VmState.VM_STATE_DESTROYED);
  const still = (await ask<{ grants: { grantId: bigint }[] }>(core, core.listGrants, {})).grants.map((g) => g.grantId);
  expect(still).toEqual(expect.arrayContaining(fresh));
  expect(await code(ask(vmm, vmm.getVm, { sessionId: after!.sessionId, handle: after!.vm.handle }))).toBe('OK');
  expect((await ask<{ violations: string[] }>(core, core.checkInvariants, {})).violations).toEqual([]);
  // The three services agree afterwards (issue 9 "Done when": check --live is empty after each scenario).
  const live = await checkLive(addrs);
  expect({ code: live.code, out: live.out }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n" });
  core.close();
  vmm.close();
}, 90_000);
