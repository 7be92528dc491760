/**
 * Issue 9 §2, an RM restart mid-call (separate processes): the RM (with `--data-dir`) applies and
 * commits HLOS's VM_START, then dies before replying (a CLIENT_TO_RM crash AFTER_COMMIT: exit 137),
 * and is started again on the same address and data dir. The msgq carries no request id, so the
 * VMM cannot ask "what did you answer": it asks the RM what it holds (@hypmesh/vmm reconcile.ts),
 * finds the VM RUNNING, and StartVm succeeds; the VMM records exactly what the RM has, `hypmesh
 * check --live` is empty, and the VM's teardown gives everything back.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, checkLive } from './support/calls.js';
import { Processes, serving, type Addresses } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
const CONSISTENT = "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n";

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-vmm-reconcile-'));
const rmData = join(dir, 'rm');
let addrs: Addresses;

/** A port free now, so the RM can be started again at the same address. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

const rmArgs = (at: string, core: string): string[] => ['--address', at, '--core', core, '--data-dir', rmData];

beforeAll(async () => {
  const plan = join(dir, 'crash-on-start.json');
  writeFileSync(plan, JSON.stringify({ rules: [{ id: 'die-after-start', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { rmMessage: 'VM_START', callerVmid: 3, nth: 1 }, crash: { point: 'CRASH_POINT_AFTER_COMMIT' } }] }));
  const c = await processes.spawnNode('core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--check-invariants'], serving('hypmesh core serving'));
  const core = `127.0.0.1:${c.line['port'] as number}`;
  const rm = `127.0.0.1:${await freePort()}`;
  await processes.spawnNode('rm', 'services/rm/dist/main.js', [...rmArgs(rm, core), '--faults', plan], serving('hypmesh rm serving'));
  const v = await processes.spawnNode('vmm', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', rm, '--core', core], serving('hypmesh vmm serving'));
  addrs = { core, rm, vmm: `127.0.0.1:${v.line['port'] as number}` };
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
}, 30_000);

describe('the RM dies after applying VM_START and before replying, and is started again', () => {
  test('the VMM settles StartVm by asking the RM: RUNNING, as the RM has it; the services agree; teardown gives everything back', async () => {
    const vmm = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
    const sessionId = (await ask<{ lease: { sessionId: string } }>(vmm, vmm.openLease, { ttlMs: 120_000 })).lease.sessionId;
    const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
    const at = (req: object) => ({ sessionId, handle: vm.handle, ...req });
    const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
    await ask(vmm, vmm.mapMem, at({ binding, unmap: false }));
    await ask(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
    await ask(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));

    const oldRm = processes.all.find((p) => p.name === 'rm')!;
    const exited = new Promise<number | null>((resolve) => oldRm.child.once('exit', (code) => resolve(code)));
    const starting = ask<{ vm: Vm }>(vmm, vmm.startVm, at({}), undefined, 60_000);
    expect(await exited).toBe(137);
    const t0 = performance.now();
    await processes.spawnNode('rm-2', 'services/rm/dist/main.js', rmArgs(addrs.rm, addrs.core), serving('hypmesh rm serving'));

    const started = (await starting).vm;
    console.log(`RM restart mid-VM_START: StartVm answered ${(performance.now() - t0).toFixed(0)} ms after the RM died`);
    expect(started.state).toBe(VmState.VM_STATE_RUNNING);
    const rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
    const held = await ask<{ vms: { vmid: number; status: string }[] }>(rm, rm.listVms, {});
    expect(held.vms.map((x) => [x.vmid, x.status])).toEqual([[vm.vmid, 'RUNNING']]);
    const live = await checkLive(addrs);
    expect({ code: live.code, out: live.out, err: live.err }).toEqual({ code: 0, out: CONSISTENT, err: '' });

    const closed = await ask<{ vms: Vm[] }>(vmm, vmm.closeLease, { sessionId });
    expect(closed.vms.map((x) => [x.handle, x.state, x.leaked])).toEqual([[vm.handle, VmState.VM_STATE_DESTROYED, []]]);
    expect((await ask<{ vms: unknown[] }>(rm, rm.listVms, {})).vms).toEqual([]);
    const after = await checkLive(addrs);
    expect({ code: after.code, out: after.out }).toEqual({ code: 0, out: CONSISTENT });
    rm.close();
    vmm.close();
  }, 90_000);
});
