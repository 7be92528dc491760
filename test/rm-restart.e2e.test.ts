/**
 * Issue 9 §3: kill -9 the RM under a VMM that holds a RUNNING VM, and restart it on its data dir and
 * port. Before, the new RM was empty: it handed out VMID 0x80 again, and destroying the pre-crash VM
 * leaked its VMID, its DTB parcel and its pages. Now the RM continues as if it had only paused: the
 * VMM's msgq stream reconnects (its channel backs off at most 2 s), the pre-crash VM is torn down
 * with nothing left, creates work, and `hypmesh check --live` finds the services agreeing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, expect, test } from 'vitest';
import { ask, checkLive, openSession } from './support/calls.js';
import { Processes, serving, type LogLine } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-rm-restart-'));
const streams: grpc.ClientReadableStream<unknown>[] = [];

afterAll(async () => {
  for (const s of streams) s.cancel();
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
}, 30_000);

const at = (line: LogLine): string => `127.0.0.1:${line['port'] as number}`;

test('kill -9 the RM and restart it on its data dir: the VMM reconnects, tears the pre-crash VM down cleanly, creates work', async () => {
  const c = await processes.spawnNode('core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--check-invariants'], serving('hypmesh core serving'));
  const core = at(c.line);
  const r1 = await processes.spawnNode('rm', 'services/rm/dist/main.js', ['--address', '127.0.0.1:0', '--core', core, '--data-dir', dir], serving('hypmesh rm serving'));
  const rm = at(r1.line);
  const v = await processes.spawnNode('vmm', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', rm, '--core', core], serving('hypmesh vmm serving'));
  const vmm = new VmmServiceClient(at(v.line), grpc.credentials.createInsecure());

  const { stream, sessionId } = await openSession(vmm);
  streams.push(stream);
  const created = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const where = { sessionId, handle: created.handle };
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false });
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
  expect((await ask<{ vm: Vm }>(vmm, vmm.startVm, where)).vm.state).toBe(VmState.VM_STATE_RUNNING);

  r1.proc.child.kill('SIGKILL');
  await new Promise((resolve) => r1.proc.child.once('exit', resolve));
  // Long enough for grpc-js's default back-off (1 s, 1.6 s, 2.6 s, ...) to outgrow 2 s.
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  const r2 = await processes.spawnNode('rm-2', 'services/rm/dist/main.js', ['--address', rm, '--core', core, '--data-dir', dir], serving('hypmesh rm serving'));
  expect(r2.proc.logs.find((l) => l['msg'] === 'restored from the data dir')).toMatchObject({ vms: 1 });

  // The VMM's next RM call goes over a reconnected stream.
  const t0 = performance.now();
  let reconnectMs: number | undefined;
  while (reconnectMs === undefined && performance.now() - t0 < 10_000) {
    const s = await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }).catch(() => undefined);
    if (s !== undefined) {
      reconnectMs = performance.now() - t0;
      expect(s.vm.vmid).not.toBe(created.vmid);
    } else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  console.log(`RM restart: the VMM's first create succeeded ${reconnectMs?.toFixed(0)} ms after the new RM served`);
  expect(reconnectMs).toBeDefined();

  const destroyed = (await ask<{ vm: Vm }>(vmm, vmm.destroyVm, where)).vm;
  expect(destroyed.leaked).toEqual([]);
  expect(destroyed.teardown.every((t) => t.ok)).toBe(true);

  const coreClient = new CoreServiceClient(core, grpc.credentials.createInsecure());
  expect((await ask<{ grants: unknown[] }>(coreClient, coreClient.listGrants, {})).grants).toEqual([]);
  coreClient.close();
  const check = await checkLive({ core, rm, vmm: at(v.line) });
  expect({ code: check.code, out: check.out }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n" });
  vmm.close();
}, 60_000);
