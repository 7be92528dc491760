/**
 * Issue 9 §3: kill -9 the VMM with a RUNNING VM (a DTB parcel, demand-paged grants, a donated table
 * pool), a created one and a running realm, and start a new VMM process against the same RM and core. Before, every
 * VM was orphaned in the RM and the core, and every later create failed with EPERM host_not_owned
 * (the new VMM's donation region had been donated). Now the new VMM takes all three back, a create
 * works as soon as it serves, and `hypmesh check --live` finds the three services agreeing.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, checkLive, openSession } from './support/calls.js';
import { Processes, serving, type Addresses, type LogLine } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);

const processes = new Processes();
let addrs: Addresses;
let core: CoreServiceClient;
let rm: RmServiceClient;
const streams: grpc.ClientReadableStream<unknown>[] = [];

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants']);
  const creds = grpc.credentials.createInsecure();
  core = new CoreServiceClient(addrs.core, creds);
  rm = new RmServiceClient(addrs.rm, creds);
}, 60_000);

afterAll(async () => {
  for (const s of streams) s.cancel();
  core?.close();
  rm?.close();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

/** A GUNYAH VM in a new session of `vmm`, started when `start`. */
async function gunyahVm(vmm: VmmServiceClient, start: boolean): Promise<Vm> {
  const { stream, sessionId } = await openSession(vmm);
  streams.push(stream);
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  if (!start) return vm;
  const at = (req: object) => ({ sessionId, handle: vm.handle, ...req });
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, at({ binding, unmap: false }));
  await ask(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
  await ask(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
  return (await ask<{ vm: Vm }>(vmm, vmm.startVm, at({}))).vm;
}

const sweptLine = (l: LogLine): boolean => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('restart sweep');

describe('kill -9 the VMM and start another (separate processes)', () => {
  test('the new VMM tears the old VMs down, creates work at once, and the services agree', async () => {
    const first = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
    const running = await gunyahVm(first, true);
    expect(running.state).toBe(VmState.VM_STATE_RUNNING);
    const created = await gunyahVm(first, false);
    const { stream, sessionId } = await openSession(first);
    streams.push(stream);
    const realm = (await ask<{ vm: Vm }>(first, first.createVm, { sessionId, type: VmType.VM_TYPE_REALM, ipaBits: 40 })).vm;
    const realmBinding = { guestAddr: 0x1000_0000n, hostAddr: GUEST_RAM + BigInt(16 * MiB), size: 0x10000n, mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
    await ask(first, first.mapMem, { sessionId, handle: realm.handle, binding: realmBinding, unmap: false });
    expect((await ask<{ vm: Vm }>(first, first.startVm, { sessionId, handle: realm.handle })).vm.state).toBe(VmState.VM_STATE_RUNNING);
    const rds = (await ask<{ realms: { rd: bigint }[] }>(core, core.listRealms, {})).realms.map((r) => Number(r.rd));
    expect(rds).toHaveLength(1);
    first.close();

    const old = processes.all.find((p) => p.name === 'vmm')!;
    old.child.kill('SIGKILL');
    await new Promise((resolve) => old.child.once('exit', resolve));

    const t0 = performance.now();
    const v = await processes.spawnNode('vmm-2', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', addrs.rm, '--core', addrs.core], serving('hypmesh vmm serving'));
    const servingMs = performance.now() - t0;
    const vmm = new VmmServiceClient(`127.0.0.1:${v.line['port'] as number}`, grpc.credentials.createInsecure());
    const fresh = await gunyahVm(vmm, false);
    const firstCreateMs = performance.now() - t0;
    console.log(`VMM restart after kill -9: serving in ${servingMs.toFixed(0)} ms, first create done ${firstCreateMs.toFixed(0)} ms after the restart`);

    const found = v.proc.logs.find((l) => l['msg'] === 'VMs of an earlier VMM process found: tearing them down');
    expect({ vmids: found?.['vmids'], realms: found?.['realms'] }).toEqual({ vmids: [running.vmid, created.vmid], realms: rds });
    for (let i = 0; i < 100 && !v.proc.logs.some(sweptLine); i++) await new Promise((r) => setTimeout(r, 100));
    const report = v.proc.logs.find(sweptLine)!;
    expect(report['msg']).toBe('restart sweep done: everything an earlier VMM held is back');
    expect(report['report']).toMatchObject({ tornDown: [running.vmid, created.vmid], realmsTornDown: rds, leaked: [], framesStillHeld: 0 });
    expect((await ask<{ realms: unknown[] }>(core, core.listRealms, {})).realms).toEqual([]);

    const rmVms = await ask<{ vms: { vmid: number }[] }>(rm, rm.listVms, {});
    expect(rmVms.vms.map((x) => x.vmid)).toEqual([fresh.vmid]);
    expect((await ask<{ grants: unknown[] }>(core, core.listGrants, {})).grants).toEqual([]);
    const r = await checkLive({ ...addrs, vmm: `127.0.0.1:${v.line['port'] as number}` });
    expect({ code: r.code, out: r.out, err: r.err }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n", err: '' });
    vmm.close();
  }, 60_000);
});
