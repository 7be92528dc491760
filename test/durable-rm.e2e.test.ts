/**
 * Durable state of the RM as its own process (issue 9 item 1, DESIGN.md §8): with VMs and parcels
 * made through the RM, the RM is killed with SIGKILL and restarted on the same data dir (and port).
 * It then holds the same VMs and parcels under the same handles, hands out the VMID a deallocation
 * freed but none still allocated, and `hypmesh check --live` finds the VMM, the RM and the core in
 * agreement.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MemType, RmServiceClient, type ListParcelsResponse, type ListVmsResponse } from '@hypmesh/proto/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, expect, test } from 'vitest';
import { Processes, ROOT, serving, type LogLine, type Proc } from './support/processes.js';

const HLOS = 3;
const RW = 6;
const RWX = 7;
/** HLOS RAM the parcels share and lend (the default core RAM is 2..18 GiB). */
const RAM = BigInt(3 * 2 ** 30);

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-durable-rm-'));
afterAll(async () => {
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
});

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
function ask<Res>(client: RmServiceClient, method: unknown, req: object, vmid = HLOS): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(vmid));
  return new Promise((resolve, reject) => (method as Unary).call(client, req, md, { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r as Res))));
}

const at = (line: LogLine): string => `127.0.0.1:${line['port'] as number}`;

async function startRm(address: string, core: string): Promise<{ proc: Proc; address: string; client: RmServiceClient }> {
  const { proc, line } = await processes.spawnNode('rm', 'services/rm/dist/main.js', ['--address', address, '--core', core, '--data-dir', dir], serving('hypmesh rm serving'));
  return { proc, address: at(line), client: new RmServiceClient(at(line), grpc.credentials.createInsecure()) };
}

function checkLive(core: string, rm: string, vmm: string): Promise<{ code: number; out: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
  const env = { ...clean, HYPMESH_CORE_ADDR: core, HYPMESH_RM_ADDR: rm, HYPMESH_VMM_ADDR: vmm };
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'tools/cli/dist/main.js'), 'check', '--live'], { cwd: ROOT, env, timeout: 30_000 }, (e, out) =>
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out }),
    ),
  );
}

test('kill -9 the RM, restart on its data dir: the same VMs and parcels, VMIDs in use not handed out, check --live agrees', async () => {
  const c = await processes.spawnNode('core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--check-invariants'], serving('hypmesh core serving'));
  const core = at(c.line);
  const first = await startRm('127.0.0.1:0', core);
  const v = await processes.spawnNode('vmm', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', first.address, '--core', core], serving('hypmesh vmm serving'));
  const vmm = at(v.line);

  const rm = first.client;
  const vmids: number[] = [];
  for (let i = 0; i < 3; i++) vmids.push((await ask<{ vmid: number }>(rm, rm.vmAllocate, { vmid: 0 })).vmid);
  expect(vmids).toEqual([0x80, 0x81, 0x82]);
  await ask(rm, rm.vmDeallocate, { vmid: 0x81 });
  const shared = await ask<{ handle: number }>(rm, rm.memShare, { memType: MemType.MEM_TYPE_NORMAL, sanitize: false, append: false, label: 7, acl: [{ vmid: 0x80, rights: RW }, { vmid: HLOS, rights: RWX }], sgl: [{ base: RAM, size: 0x4000n }], attrs: [] });
  const lent = await ask<{ handle: number }>(rm, rm.memLend, { memType: MemType.MEM_TYPE_NORMAL, sanitize: false, append: false, label: 8, acl: [{ vmid: 0x82, rights: RW }], sgl: [{ base: RAM + 0x10000n, size: 0x2000n }], attrs: [] });
  const vmsBefore = await ask<ListVmsResponse>(rm, rm.listVms, {});
  const parcelsBefore = await ask<ListParcelsResponse>(rm, rm.listParcels, { allVms: true });
  expect(parcelsBefore.parcels.map((p) => p.handle)).toEqual([shared.handle, lent.handle]);

  const exited = new Promise((resolve) => first.proc.child.once('exit', resolve));
  first.proc.child.kill('SIGKILL');
  await exited;
  rm.close();

  const second = await startRm(first.address, core);
  expect(second.address).toBe(first.address);
  expect(second.proc.logs.find((l) => l['msg'] === 'restored from the data dir')).toMatchObject({ vms: vmsBefore.vms.length, parcels: 2 });
  const again = second.client;
  expect(await ask<ListVmsResponse>(again, again.listVms, {})).toEqual(vmsBefore);
  expect(await ask<ListParcelsResponse>(again, again.listParcels, { allVms: true })).toEqual(parcelsBefore);

  // The agreement check first, on the state restored, before anything new is made.
  const check = await checkLive(core, second.address, vmm);
  expect(check).toEqual({ code: 0, out: expect.stringMatching(/^consistent: the VMM, the RM and the core agree/) as unknown });

  // 0x81 was freed and is handed out again; 0x80 and 0x82 are still allocated and are not.
  expect((await ask<{ vmid: number }>(again, again.vmAllocate, { vmid: 0 })).vmid).toBe(0x81);
  expect((await ask<{ vmid: number }>(again, again.vmAllocate, { vmid: 0 })).vmid).toBe(0x83);
  // Parcel handles go on from where they were.
  const next = await ask<{ handle: number }>(again, again.memShare, { memType: MemType.MEM_TYPE_NORMAL, sanitize: false, append: false, label: 9, acl: [{ vmid: 0x80, rights: RW }, { vmid: HLOS, rights: RWX }], sgl: [{ base: RAM + 0x20000n, size: 0x1000n }], attrs: [] });
  expect(next.handle).toBeGreaterThan(lent.handle);
  again.close();
});
