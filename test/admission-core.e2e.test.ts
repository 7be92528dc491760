/**
 * Admission control at the core (issue 10 item 5, services/core admission.ts) with the three services
 * as processes: a rogue HOST client (`x-hypmesh-client: rogue`) repeats each finding of the issue —
 * one HostDonateHyp of all RAM (the VMM's donation region included), one CreateGrant of 131,072
 * ranges, one TopUpTablePool of 200k frames, address spaces without end — and each is refused
 * RESOURCE_EXHAUSTED naming its rule, with the core's ownership and spaces unchanged; the VMM then
 * creates and starts a VM as before. The core runs on a data dir: after kill -9 and a restart on the
 * same dir and port, the rogue still holds its address spaces (refused again) and the VMM still works.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, GrantType, type OwnershipCountsResponse } from '@hypmesh/proto';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { ADMISSION_DOMAIN, CALLER_VMID_KEY, CLIENT_KEY, decodeStatusDetails } from '@hypmesh/rpc';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ask, openSession } from './support/calls.js';
import { Processes, serving, type Proc } from './support/processes.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const RAM_PFN = (2 * GiB) / 4096;
/** The default core RAM is 2..18 GiB. */
const RAM_PAGES = (16 * GiB) / 4096;
const HOST_GUEST_RAM = BigInt(3 * GiB);
/** The core's default address_spaces quota (services/core admission.ts). */
const SPACES_QUOTA = 16;
const ROGUE_SPACE = 0x400;

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-admission-e2e-'));
let coreAddr = '';
let coreProc: Proc;
let core: CoreServiceClient;
let vmm: VmmServiceClient;

const startCore = async (address: string): Promise<Proc> => {
  const { proc, line } = await processes.spawnNode('core', 'services/core/dist/main.js', ['--address', address, '--data-dir', dir, '--check-invariants'], serving('hypmesh core serving'));
  coreAddr = `127.0.0.1:${line['port'] as number}`;
  return proc;
};

beforeAll(async () => {
  coreProc = await startCore('127.0.0.1:0');
  const r = await processes.spawnNode('rm', 'services/rm/dist/main.js', ['--address', '127.0.0.1:0', '--core', coreAddr], serving('hypmesh rm serving'));
  const v = await processes.spawnNode('vmm', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', `127.0.0.1:${r.line['port'] as number}`, '--core', coreAddr], serving('hypmesh vmm serving'));
  core = new CoreServiceClient(coreAddr, grpc.credentials.createInsecure());
  vmm = new VmmServiceClient(`127.0.0.1:${v.line['port'] as number}`, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  core?.close();
  vmm?.close();
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
  expect(processes.logsOf('core').filter((l) => l['msg'] === 'invariant violated after a mutation')).toEqual([]);
  expect(processes.bugs()).toEqual([]);
}, 30_000);

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
/** One call as the rogue: HOST, `x-hypmesh-client: rogue`; resolves with the value or the decoded refusal. */
function rogue(method: unknown, req: object): Promise<{ ok: true; value: unknown } | { ok: false; code: string; reason?: string; domain?: string; message: string }> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, '3');
  md.set(CLIENT_KEY, 'rogue');
  return new Promise((resolve) =>
    (method as Unary).call(core, req, md, { deadline: Date.now() + 20_000 }, (e, r) => {
      if (e === null) return resolve({ ok: true, value: r });
      const d = decodeStatusDetails(e);
      resolve({ ok: false, code: grpc.status[e.code]!, message: d.message, ...(d.errorInfo && { reason: d.errorInfo.reason, domain: d.errorInfo.domain }) });
    }),
  );
}

/** What a refused call must leave as it was: every frame's owner and state, and the address spaces. */
const state = async (): Promise<string> => {
  const counts = await ask<OwnershipCountsResponse>(core, core.ownershipCounts, {});
  const spaces = await ask<unknown>(core, core.listAddressSpaces, {});
  return JSON.stringify([counts, spaces], (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
};

async function expectRefused(p: Promise<Awaited<ReturnType<typeof rogue>>>, reason: string): Promise<void> {
  const r = await p;
  expect(r).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED', reason, domain: ADMISSION_DOMAIN });
}

const vmOf = (r: unknown): Vm => (r as { vm: Vm }).vm;

/** The VMM's workload: a GUNYAH VM created, bound, started (RUNNING), then destroyed with nothing leaked. */
async function vmLife(hostAddr: bigint, bytes = 4 * MiB): Promise<void> {
  const s = await openSession(vmm);
  const created = vmOf(await ask(vmm, vmm.createVm, { sessionId: s.sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
  const at = (req: object) => ({ sessionId: s.sessionId, handle: created.handle, ...req });
  await ask(vmm, vmm.mapMem, at({ binding: { guestAddr: 0x8000_0000n, hostAddr, size: BigInt(bytes), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true }, unmap: false }));
  await ask(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x1000n }));
  await ask(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
  const started = vmOf(await ask(vmm, vmm.startVm, at({})));
  expect([started.state, started.rmStatus]).toEqual([VmState.VM_STATE_RUNNING, 'RUNNING']);
  const destroyed = vmOf(await ask(vmm, vmm.destroyVm, at({})));
  expect(destroyed.state).toBe(VmState.VM_STATE_DESTROYED);
  expect(destroyed.leaked).toEqual([]);
  s.stream.cancel();
}

test('each finding of issue 10 is refused before the core changes, and the VMM still creates and starts a VM', async () => {
  const before = await state();
  // One HostDonateHyp of all RAM (the VMM's donation region at its top included).
  await expectRefused(rogue(core.hostDonateHyp, { pfn: BigInt(RAM_PFN), nrPages: BigInt(RAM_PAGES) }), 'cap_pages_per_call');
  // One CreateGrant of 131,072 one-page ranges.
  const ranges = Array.from({ length: 131_072 }, (_, i) => ({ base: BigInt(RAM_PFN + 2 * i), count: 1n }));
  await expectRefused(rogue(core.createGrant, { type: GrantType.GRANT_TYPE_SHARE, memoryType: 0, ranges, acl: [{ vmid: 0x80, rights: 4 }] }), 'cap_ranges_per_call');
  // One TopUpTablePool of 200k frames.
  await expectRefused(rogue(core.topUpTablePool, { vmid: 0x80, frames: [{ base: BigInt(RAM_PFN), count: 200_000n }] }), 'cap_frames_per_call');
  expect(await state()).toBe(before);

  // Address spaces without end: the quota stops the 17th.
  for (let i = 0; i < SPACES_QUOTA; i++) {
    const r = await rogue(core.createAddressSpace, { vmid: ROGUE_SPACE + i, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 8 * i), count: 8n }] });
    expect(r.ok ? 'OK' : r.message).toBe('OK');
  }
  const full = await state();
  await expectRefused(rogue(core.createAddressSpace, { vmid: ROGUE_SPACE + SPACES_QUOTA, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 0x1000), count: 8n }] }), 'quota_address_spaces');
  expect(await state()).toBe(full);

  await vmLife(HOST_GUEST_RAM);
  // The caps bound what a rogue may ask, not how large a VM the VMM may start: its one-range grant
  // of a 512 MiB binding (131,072 pages) goes through.
  await vmLife(HOST_GUEST_RAM, 512 * MiB);
}, 60_000);

test('kill -9 and a restart on the same data dir: the rogue still holds its spaces; releasing one admits one; the VMM still works', async () => {
  const port = coreAddr.split(':')[1]!;
  const exited = once(coreProc.child, 'exit');
  coreProc.child.kill('SIGKILL');
  await exited;
  coreProc = await startCore(`127.0.0.1:${port}`);

  await expectRefused(rogue(core.createAddressSpace, { vmid: ROGUE_SPACE + SPACES_QUOTA, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 0x1000), count: 8n }] }), 'quota_address_spaces');
  expect((await rogue(core.destroyAddressSpace, { vmid: ROGUE_SPACE })).ok).toBe(true);
  expect((await rogue(core.createAddressSpace, { vmid: ROGUE_SPACE + SPACES_QUOTA, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 0x1000), count: 8n }] })).ok).toBe(true);

  // The RM and the VMM reconnect to the restarted core (same address) and a VM's life works again.
  await vmLife(HOST_GUEST_RAM + BigInt(16 * MiB));
}, 60_000);

test('the core process takes --quota (comma-separated, repeatable) and HYPMESH_CORE_QUOTA, lists the rules in --help, and refuses a bad spec at start', async () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; out: string }>((resolve) =>
      execFile(process.execPath, ['services/core/dist/main.js', ...args], { env: { ...process.env, ...env } }, (e, out, err) => resolve({ code: e === null ? 0 : ((e as { code?: number }).code ?? 1), out: out + err })),
    );
  const help = await run(['--help']);
  expect(help.out).toContain('--quota <specs>');
  expect(help.out).toMatch(/address_spaces \(quota, address spaces\): 16/);
  const bad = await run(['--address', '127.0.0.1:0', '--quota', 'pages=1']);
  expect([bad.code, bad.out]).toEqual([2, expect.stringContaining('no rule pages')]);

  // The env gives every client one space, the flag gives the rogue two (flags win); anonymous keeps the env's.
  const { line } = await processes.spawnNode('core-quota', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--quota', 'grants=9,rogue:address_spaces=2'], serving('hypmesh core serving'), {
    HYPMESH_CORE_QUOTA: 'address_spaces=1,rogue:address_spaces=5',
  });
  expect(line['quotas']).toEqual(['address_spaces=1', 'rogue:address_spaces=5', 'grants=9', 'rogue:address_spaces=2']);
  const other = new CoreServiceClient(`127.0.0.1:${line['port'] as number}`, grpc.credentials.createInsecure());
  const create = (vmid: number, client?: string) =>
    new Promise<string>((resolve) => {
      const md = new grpc.Metadata();
      md.set(CALLER_VMID_KEY, '3');
      if (client !== undefined) md.set(CLIENT_KEY, client);
      other.createAddressSpace({ vmid, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 8 * vmid), count: 8n }] }, md, (e) => resolve(e === null ? 'OK' : (decodeStatusDetails(e).errorInfo?.reason ?? grpc.status[e.code]!)));
    });
  try {
    expect([await create(0x81, 'rogue'), await create(0x82, 'rogue'), await create(0x83, 'rogue')]).toEqual(['OK', 'OK', 'quota_address_spaces']);
    expect([await create(0x84), await create(0x85)]).toEqual(['OK', 'quota_address_spaces']);
  } finally {
    other.close();
  }
}, 60_000);
