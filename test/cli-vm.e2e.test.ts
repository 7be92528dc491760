/**
 * The hypmesh CLI's VM commands against a running hypmesh (the suite: core with
 * --check-invariants, RM and VMM in one process on ephemeral ports), each command its own process
 * with a temporary session file: the VM outlives every command (the CLI's lease session), is gone
 * after `vm destroy`, and `session close` tears the session's VMs down. After each, every frame is
 * owned as at boot and CheckInvariants is empty.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, type OwnershipCountsResponse } from '@hypmesh/proto';
import { VmState, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY, decodeStatusDetails } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'tools/cli/dist/main.js');
const START_TIMEOUT_MS = 20_000;
const SETTLE_TIMEOUT_MS = 15_000;

let suite: ChildProcess;
let env: NodeJS.ProcessEnv;
let dir: string;
let sessionFile: string;
let core: CoreServiceClient;
let vmm: VmmServiceClient;
let boot: OwnershipCountsResponse;

/** Runs `hypmesh ...args` as its own process; its exit code, stdout and stderr. */
function hypmesh(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env, timeout: 30_000 }, (e, out, err) => resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 1, out, err })),
  );
}
async function ok(...args: string[]): Promise<string> {
  const r = await hypmesh(...args);
  expect({ args, code: r.code, err: r.err.replace(/^hypmesh: opened session .*\n/, '') }).toEqual({ args, code: 0, err: '' });
  return r.out;
}

type Unary = (req: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;
function call<Res>(client: grpc.Client, method: unknown, req: object): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, '3');
  return new Promise((resolve, reject) => (method as Unary).call(client, req, md, (e, r) => (e ? reject(e) : resolve(r as Res))));
}
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    const err = e as grpc.ServiceError;
    const d = decodeStatusDetails({ code: err.code, details: err.details, metadata: err.metadata });
    return `${grpc.status[err.code]} ${d.errorDetail?.rule ?? '-'}`;
  }
}

const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
const counts = (): Promise<OwnershipCountsResponse> => call(core, core.ownershipCounts, {});
async function expectAllBack(): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let now = await counts();
  while (text(now) !== text(boot) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await counts();
  }
  expect(text(now)).toBe(text(boot));
  expect((await call<{ violations: unknown[] }>(core, core.checkInvariants, {})).violations).toEqual([]);
}

const sessionId = (): string => readFileSync(sessionFile, 'utf8').trim();
/** The handle in the first row of a VM table. */
const firstHandle = (out: string): bigint => BigInt(/^(\d+)\s+(GUNYAH|REALM)\s/m.exec(out)![1]!);

beforeAll(async () => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
  suite = spawn(process.execPath, ['services/suite/dist/main.js', '--core-address', '127.0.0.1:0', '--rm-address', '127.0.0.1:0', '--vmm-address', '127.0.0.1:0', '--check-invariants'], {
    cwd: ROOT,
    env: { ...clean, HYPMESH_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  suite.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const serving = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the suite was not ready within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`)), START_TIMEOUT_MS);
    suite.once('exit', (code) => reject(new Error(`the suite exited (${code}); stderr: ${stderr}`)));
    createInterface({ input: suite.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const l = JSON.parse(line) as Record<string, string>;
      if (l['msg'] === 'hypmesh serving') {
        clearTimeout(timer);
        resolve(l);
      }
    });
  });
  dir = mkdtempSync(join(tmpdir(), 'hypmesh-cli-'));
  sessionFile = join(dir, 'state', 'session');
  env = { ...clean, HYPMESH_CORE_ADDR: serving['core'], HYPMESH_RM_ADDR: serving['rm'], HYPMESH_VMM_ADDR: serving['vmm'], HYPMESH_SESSION_FILE: sessionFile };
  core = new CoreServiceClient(serving['core']!, grpc.credentials.createInsecure());
  vmm = new VmmServiceClient(serving['vmm']!, grpc.credentials.createInsecure());
  boot = await counts();
}, 60_000);

afterAll(async () => {
  core?.close();
  vmm?.close();
  if (suite && suite.exitCode === null && suite.signalCode === null) {
    const exited = once(suite, 'exit');
    suite.kill('SIGTERM');
    const timer = setTimeout(() => suite.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('hypmesh vm/mem/session commands, one process each', () => {
  test('create, bind, DTB, start, list: the VM survives between commands; destroy: it is gone, memory back', async () => {
    expect(await ok('vm', 'list')).toMatch(/^no session/);
    const created = await ok('vm', 'create', '--type', 'gunyah', '--ipa-bits', '40');
    const handle = firstHandle(created);
    expect(created).toMatch(/GUNYAH\s+0x[0-9a-f]+\s+40\s+CREATED\s+LOAD/);
    const id = sessionId();
    expect(id).toMatch(/^lease-[0-9a-f]{32}$/);

    expect(await ok('mem', 'bind', String(handle), '--guest', '0x80000000', '--host', '3GiB', '--size', '4MiB', '--mode', 'lend', '--rights', 'rwx')).toMatch(/0x80000000-0x803fffff\s+0xc0000000\s+4 MiB\s+LEND\s+RWX/);
    expect(await ok('mem', 'bind', String(handle), '--guest', '0x90000000', '--host', '0xc0800000', '--size', '64KiB', '--mode', 'share', '--rights', 'rw')).toMatch(/0x90000000-0x9000ffff\s+0xc0800000\s+64 KiB\s+SHARE\s+RW-/);
    expect(await ok('mem', 'unbind', String(handle), '--guest', '0x9000f000', '--size', '4KiB')).toMatch(/0x90000000-0x9000efff\s+0xc0800000\s+60 KiB\s+SHARE/);
    expect(await ok('vm', 'dtb', String(handle), '--guest', '0x80100000', '--size', '8KiB')).toMatch(/0x80100000 \+8 KiB/);

    const started = await ok('vm', 'start', String(handle));
    expect(started).toContain(`VM ${handle}: RM status RUNNING`); // progress, as it happened
    expect(started).toMatch(/GUNYAH\s+0x[0-9a-f]+\s+40\s+RUNNING\s+RUNNING/);
    expect(sessionId()).toBe(id);

    // Still there for the next process, and for anyone naming the session.
    expect(await ok('vm', 'list')).toMatch(new RegExp(`^${handle}\\s+GUNYAH\\s.*RUNNING\\s+RUNNING`, 'm'));
    expect((await call<{ vm: Vm }>(vmm, vmm.getVm, { sessionId: id, handle })).vm.state).toBe(VmState.VM_STATE_RUNNING);

    // A refusal: exit 1, the domain error and its rule.
    const late = await hypmesh('mem', 'bind', String(handle), '--guest', '0xa0000000', '--host', '0xc1000000', '--size', '4KiB');
    expect(late.code).toBe(1);
    expect(late.err).toContain('vmm EBUSY (16), rule vm_started');

    const destroyed = await ok('vm', 'destroy', String(handle));
    expect(destroyed).toContain(`VM ${handle}: state DESTROYING`);
    expect(destroyed).toMatch(/vm_deallocate\s+1\s+ok/);
    expect(destroyed).toContain(`VM ${handle} DESTROYED, 0 host pages still out`);
    expect(await ok('vm', 'list')).toBe('(none)\n');
    expect(await refusal(call(vmm, vmm.getVm, { sessionId: id, handle }))).toBe('NOT_FOUND no_such_vm');
    await expectAllBack();
  });

  test('session close tears the session’s VMs down and removes the file; the next create opens a new session', async () => {
    const a = firstHandle(await ok('vm', 'create', '--type', 'realm'));
    await ok('mem', 'bind', String(a), '--guest', '0x80000000', '--host', '0xc2000000', '--size', '64KiB');
    expect(await ok('vm', 'start', String(a))).toMatch(/REALM\s+-\s+40\s+RUNNING/);
    const b = firstHandle(await ok('vm', 'create', '--type', 'gunyah'));
    const id = sessionId();
    expect((await ok('vm', 'list')).match(/^\d+\s+(GUNYAH|REALM)\s/gm)).toHaveLength(2);

    const closed = await ok('session', 'close');
    expect(closed).toContain(`closing session ${id}: tearing down VM ${a}, ${b}`);
    expect(closed).toMatch(/realm_tear_down\s+1\s+ok/);
    expect(closed).toMatch(/vm_deallocate\s+1\s+ok/);
    expect(existsSync(sessionFile)).toBe(false);
    expect(await refusal(call(vmm, vmm.listVms, { sessionId: id }))).toBe('NOT_FOUND lease_closed');
    await expectAllBack();

    const none = await hypmesh('vm', 'start', String(a));
    expect([none.code, none.err]).toEqual([1, expect.stringContaining('no VM session')]);
    await ok('vm', 'create', '--type', 'gunyah');
    expect(sessionId()).not.toBe(id);
    await ok('session', 'close');
    await expectAllBack();
  });
});

describe('--output json: one JSON document per command, refusals as JSON on stderr (issue 11 item 7)', () => {
  // Progress lines (starting, destroying, VM events) go to stderr under --output json; stdout is the JSON.
  const json = async (...args: string[]): Promise<Record<string, unknown>> => {
    const r = await hypmesh('--output', 'json', ...args);
    expect({ args, code: r.code }).toEqual({ args, code: 0 });
    return JSON.parse(r.out) as Record<string, unknown>;
  };

  test('create, list, show, map, destroy as proto3 JSON; a refusal is {error} on stderr with exit 1', async () => {
    const created = (await json('vm', 'create', '--type', 'gunyah')) as { handle: string; type: string; ipaBits: number };
    expect(created).toMatchObject({ type: 'VM_TYPE_GUNYAH', ipaBits: 40 });
    const handle = created.handle;
    expect((await json('vm', 'list')).vms).toEqual([expect.objectContaining({ handle })]);
    expect(await json('vm', 'show', handle)).toMatchObject({ handle, state: 'VM_STATE_CREATED' });
    // The host's ownership map covers the core's whole PA space by default.
    const map = (await json('map')) as { runs: { base: string; count: string }[] };
    expect(map.runs.length).toBeGreaterThan(0);
    const vmid = ((await json('vm', 'show', handle)) as { vmid: number }).vmid;
    // A VM's map defaults to its own IPA space (40 bits here), which the core accepts; nothing is
    // mapped yet, and proto3 JSON omits the empty list.
    expect(await json('map', '--vmid', String(vmid))).toEqual({});

    const missing = await hypmesh('--output', 'json', 'vm', 'show', '999');
    expect(missing.code).toBe(1);
    expect(missing.out).toBe('');
    expect(JSON.parse(missing.err)).toMatchObject({ error: { code: 'NOT_FOUND', errorDetail: { domain: 'vmm', codeName: 'ENOENT' } } });

    expect(await json('vm', 'destroy', handle)).toMatchObject({ handle, state: 'VM_STATE_DESTROYED' });
    expect(await json('session', 'close')).toMatchObject({ closed: true });
    await expectAllBack();
  });
});

describe('bad input gets a clear error, never a stack trace (issue 11 item 7)', () => {
  test.each([
    [['vm', 'show', 'abc'], /invalid for argument 'handle'/],
    [['vm', 'show', '-1'], /invalid for argument 'handle'/],
    [['mem', 'bind', 'abc', '--guest', '0', '--host', '0', '--size', '4096'], /invalid for argument 'handle'/],
    [['parcel', 'accept', 'x', '--as', '128'], /invalid for argument 'handle'/],
    [['map', '--size', 'lots'], /expected bytes/],
    [['--output', 'yaml', 'vm', 'list'], /Allowed choices are text, json/],
  ])('hypmesh %j', async (args, why) => {
    const r = await hypmesh(...args);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(why);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  test('--version and map --help (whose defaults are BigInts) print, exit 0', async () => {
    expect((await ok('--version')).trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(await ok('map', '--help')).toContain('--size <bytes>');
  });
});
