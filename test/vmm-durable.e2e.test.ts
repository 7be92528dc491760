/**
 * Issue 9 §3, a lease survives a VMM restart: the VMM with `--data-dir` saves its leases and VM
 * records before each reply (services/vmm durable.ts). Kill -9 it with a RUNNING VM under a lease
 * and a VM under a stream session, start another with the same data dir: the lease id keeps
 * working, its VM is re-adopted RUNNING, the stream session's VM is torn down by the restart sweep,
 * `hypmesh check --live` finds the services agreeing, a create works at once; and the re-adopted
 * lease still expires (and its VMs go) when nobody renews it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, checkLive, code, openSession } from './support/calls.js';
import { Processes, serving, type Addresses, type LogLine } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
/**
 * Longer than a kill -9 and a restart can take (the VMM must serve within START_TIMEOUT_MS, 20 s, or
 * the test fails anyway), so the lease is still live when the new VMM adopts it; waited out at the end.
 */
const LEASE_TTL_MS = 25_000;

const processes = new Processes();
const dataDir = mkdtempSync(join(tmpdir(), 'hypmesh-vmm-durable-'));
let addrs: Addresses;
let rm: RmServiceClient;
const streams: grpc.ClientReadableStream<unknown>[] = [];

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants'], { vmm: { HYPMESH_DATA_DIR: dataDir } });
  rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  for (const s of streams) s.cancel();
  rm?.close();
  await processes.stopAll();
  rmSync(dataDir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
}, 30_000);

/** A started GUNYAH VM in `sessionId` (a lease or a stream session). */
async function runningVm(vmm: VmmServiceClient, sessionId: string, hostOffsetMiB: number): Promise<Vm> {
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const at = (req: object) => ({ sessionId, handle: vm.handle, ...req });
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM + BigInt(hostOffsetMiB * MiB), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, at({ binding, unmap: false }));
  await ask(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
  await ask(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
  return (await ask<{ vm: Vm }>(vmm, vmm.startVm, at({}))).vm;
}

const rmVmids = async (): Promise<number[]> => (await ask<{ vms: { vmid: number }[] }>(rm, rm.listVms, {})).vms.map((v) => v.vmid).sort((a, b) => a - b);
const sweptLine = (l: LogLine): boolean => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('restart sweep');

async function until(what: string, done: () => Promise<boolean> | boolean, tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never: ${what}`);
}

describe('kill -9 a VMM with --data-dir and start another on the same dir (separate processes)', () => {
  test('the lease and its RUNNING VM are re-adopted, the stream session VM is torn down, creates work, and the lease still expires', async () => {
    const first = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
    const lease = (await ask<{ lease: { sessionId: string } }>(first, first.openLease, { ttlMs: LEASE_TTL_MS })).lease.sessionId;
    const leased = await runningVm(first, lease, 0);
    expect(leased.state).toBe(VmState.VM_STATE_RUNNING);
    const { stream, sessionId: streamSession } = await openSession(first);
    streams.push(stream);
    const streamed = await runningVm(first, streamSession, 16);
    first.close();

    const old = processes.all.find((p) => p.name === 'vmm')!;
    old.child.kill('SIGKILL');
    await new Promise((resolve) => old.child.once('exit', resolve));

    const t0 = performance.now();
    const v = await processes.spawnNode('vmm-2', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', addrs.rm, '--core', addrs.core, '--data-dir', dataDir], serving('hypmesh vmm serving'));
    const vmmAt = `127.0.0.1:${v.line['port'] as number}`;
    const vmm = new VmmServiceClient(vmmAt, grpc.credentials.createInsecure());

    // The same lease id names the same VM, RUNNING in the VMM and in the RM.
    const again = (await ask<{ vm: Vm }>(vmm, vmm.getVm, { sessionId: lease, handle: leased.handle })).vm;
    expect({ vmid: again.vmid, state: again.state, rmStatus: again.rmStatus }).toEqual({ vmid: leased.vmid, state: VmState.VM_STATE_RUNNING, rmStatus: leased.rmStatus });
    console.log(`VMM restart with --data-dir after kill -9: the lease's VM answered RUNNING ${(performance.now() - t0).toFixed(0)} ms after the restart`);
    expect(v.proc.logs.find((l) => l['msg'] === 'VMs of live leases re-adopted from the data dir')?.['vmids']).toEqual([leased.vmid]);
    // The stream session died with the process: its VM is an orphan, torn down.
    expect(v.proc.logs.find((l) => l['msg'] === 'VMs of an earlier VMM process found: tearing them down')?.['vmids']).toEqual([streamed.vmid]);
    expect(await code(ask(vmm, vmm.getVm, { sessionId: streamSession, handle: streamed.handle }))).not.toBe('OK');
    await until('the restart sweep ended', () => v.proc.logs.some(sweptLine));
    expect(v.proc.logs.find(sweptLine)!['msg']).toBe('restart sweep done: everything an earlier VMM held is back');
    expect(await rmVmids()).toEqual([leased.vmid]);

    // A create works at once, in the re-adopted lease, with a handle the old process never gave.
    const fresh = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId: lease, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
    expect(fresh.handle > leased.handle && fresh.handle > streamed.handle).toBe(true);
    expect((await ask<{ vms: Vm[] }>(vmm, vmm.listVms, { sessionId: lease })).vms.map((x) => x.handle)).toEqual([leased.handle, fresh.handle]);
    const live = await checkLive({ ...addrs, vmm: vmmAt });
    expect({ code: live.code, out: live.out, err: live.err }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n", err: '' });

    // Nobody renews the lease now: it expires on the new VMM's clock, and both VMs are torn down.
    await until('the re-adopted lease expired and its VMs were torn down', async () => (await rmVmids()).length === 0, (LEASE_TTL_MS + 20_000) / 100);
    expect(await code(ask(vmm, vmm.renewLease, { sessionId: lease }))).toBe('NOT_FOUND');
    const after = await checkLive({ ...addrs, vmm: vmmAt });
    expect({ code: after.code, out: after.out }).toEqual({ code: 0, out: "consistent: the VMM, the RM and the core agree, and the core's invariants hold\n" });
    vmm.close();
  }, 120_000);
});
