/**
 * mTLS and authorisation end to end (issue 11 item 5, README "Security"): the core, the RM and the
 * VMM as separate processes from dist, each with a server certificate from scripts/make-test-ca.sh
 * (in a temp dir), the RM and the VMM calling out with their own client certificates
 * (rm-client: VMID 0xff + client rm; host-vmm: VMID 3 + client vmm). Clients connect with the test
 * certificates: HOST tools (host-cli), a guest (guest-128), one from another CA, none.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { FaultServiceClient } from '@hypmesh/proto/fault';
import { RmServiceClient, type SubscribeResponse } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CLI } from './support/calls.js';
import { Processes, ROOT } from './support/processes.js';

const CALL_TIMEOUT_MS = 20_000;
const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** Host RAM bound as guest memory (default RAM 2..18 GiB; the VMM keeps the top 64 MiB). */
const HOST_GUEST_RAM = BigInt(3 * GiB);

const processes = new Processes();
let dir = '';
let at: { core: string; rm: string; vmm: string };
const opened: grpc.Client[] = [];

const file = (name: string): Buffer => readFileSync(join(dir, name));
/** Channel credentials presenting certificate `name` (none: no client certificate), trusting `ca`. */
const creds = (name: string | undefined, ca = 'ca'): grpc.ChannelCredentials =>
  name === undefined ? grpc.credentials.createSsl(file(`${ca}.crt`)) : grpc.credentials.createSsl(file(`${ca}.crt`), file(`${name}.key`), file(`${name}.crt`));
function client<C extends grpc.Client>(Ctor: new (address: string, c: grpc.ChannelCredentials) => C, address: string, c: grpc.ChannelCredentials): C {
  const made = new Ctor(address, c);
  opened.push(made);
  return made;
}

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
/** One unary call; `vmid` puts the caller header in (with mTLS it may be left out). */
function call<Res>(c: grpc.Client, method: unknown, req: object, vmid?: number): Promise<Res> {
  const md = new grpc.Metadata();
  if (vmid !== undefined) md.set(CALLER_VMID_KEY, String(vmid));
  return new Promise((resolve, reject) => (method as Unary).call(c, req, md, { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, r) => (e ? reject(e) : resolve(r as Res))));
}
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`,
  );
const codeOf = async (p: Promise<unknown>): Promise<string> => (await outcome(p)).split(':')[0] as string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hypmesh-mtls-e2e-'));
  execFileSync(join(ROOT, 'scripts/make-test-ca.sh'), [dir], { stdio: 'ignore' });
  const tls = (server: string, client?: string): Record<string, string> => ({
    HYPMESH_TLS_CERT: join(dir, `${server}.crt`),
    HYPMESH_TLS_KEY: join(dir, `${server}.key`),
    HYPMESH_TLS_CA: join(dir, 'ca.crt'),
    ...(client !== undefined && { HYPMESH_TLS_CLIENT_CERT: join(dir, `${client}.crt`), HYPMESH_TLS_CLIENT_KEY: join(dir, `${client}.key`) }),
  });
  at = await processes.startServices(['--check-invariants'], { core: tls('core'), rm: tls('rm', 'rm-client'), vmm: tls('vmm', 'host-vmm') });
}, 120_000);

afterAll(async () => {
  for (const c of opened) c.close();
  await processes.stopAll();
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
});

describe('who may connect', () => {
  test('no client certificate: refused at the handshake (UNAVAILABLE), on every service', async () => {
    expect(await codeOf(call(client(CoreServiceClient, at.core, creds(undefined)), CoreServiceClient.prototype.ownershipCounts, {}, 3))).toBe('UNAVAILABLE');
    const rm = client(RmServiceClient, at.rm, creds(undefined));
    expect(await codeOf(call(rm, rm.listVms, {}, 3))).toBe('UNAVAILABLE');
    const vmm = client(VmmServiceClient, at.vmm, creds(undefined));
    expect(await codeOf(call(vmm, vmm.openLease, { ttlMs: 60_000 }, 3))).toBe('UNAVAILABLE');
    // Plaintext (the insecure local mode) does not reach an mTLS server either.
    const plain = client(CoreServiceClient, at.core, grpc.credentials.createInsecure());
    expect(await codeOf(call(plain, plain.ownershipCounts, {}, 3))).toBe('UNAVAILABLE');
  });

  test('a certificate from another CA: refused at the handshake', async () => {
    // Trusts the test CA (so the server is accepted) but presents other-ca's HOST certificate.
    const other = grpc.credentials.createSsl(file('ca.crt'), file('other-host.key'), file('other-host.crt'));
    const core = client(CoreServiceClient, at.core, other);
    expect(await codeOf(call(core, core.hostShareHyp, { pfn: 524304n }))).toBe('UNAVAILABLE');
  });
});

describe('identity is the certificate', () => {
  test('a guest certificate calling a HOST RPC: PERMISSION_DENIED, with or without claiming HOST in the header', async () => {
    const guest = client(CoreServiceClient, at.core, creds('guest-128'));
    const bare = await outcome(call(guest, guest.hostShareHyp, { pfn: 524304n }));
    expect(bare).toMatch(/^PERMISSION_DENIED: HostShareHyp may be called by VMID 0x3 only; caller is VMID 0x80/);
    expect(await outcome(call(guest, guest.hostShareHyp, { pfn: 524304n }, 3))).toMatch(/^PERMISSION_DENIED: x-hypmesh-caller-vmid says VMID 3 but the client certificate says VMID 128/);
    const rm = client(RmServiceClient, at.rm, creds('guest-128'));
    expect(await codeOf(call(rm, rm.listVms, {}))).toBe('PERMISSION_DENIED');
    // Queries open to anyone answer the guest, as itself.
    expect(await codeOf(call(guest, guest.ownershipCounts, {}))).toBe('OK');
  });

  test('with mTLS the table also guards what no handler checks: FaultService and VMM Reset are HOST only', async () => {
    const guestFaults = client(FaultServiceClient, at.core, creds('guest-128'));
    expect(await outcome(call(guestFaults, guestFaults.list, {}))).toMatch(/^PERMISSION_DENIED: List may be called by VMID 0x3 only/);
    const guestVmm = client(VmmServiceClient, at.vmm, creds('guest-128'));
    expect(await codeOf(call(guestVmm, guestVmm.reset, {}))).toBe('PERMISSION_DENIED');
    const hostFaults = client(FaultServiceClient, at.rm, creds('host-cli'));
    expect(await codeOf(call(hostFaults, hostFaults.list, {}))).toBe('OK');
  });

  test('a HOST certificate is HOST without any header; a header naming another VMID is refused', async () => {
    const host = client(CoreServiceClient, at.core, creds('host-cli'));
    expect(await codeOf(call(host, host.ownershipCounts, {}))).toBe('OK');
    expect(await outcome(call(host, host.ownershipCounts, {}, 128))).toMatch(/^PERMISSION_DENIED: x-hypmesh-caller-vmid says VMID 128 but the client certificate says VMID 3/);
  });
});

describe('sessions, HLOS notifications and a VM over mTLS', () => {
  let vmm: VmmServiceClient;
  let sessionId = '';
  let handle = 0n;
  const at_ = (extra: object): object => ({ sessionId, handle, ...extra });
  const rwx = { allowRead: true, allowWrite: true, allowExec: true };
  let subscriber: grpc.ClientReadableStream<SubscribeResponse> | undefined;
  const copies: SubscribeResponse[] = [];

  beforeAll(() => {
    vmm = client(VmmServiceClient, at.vmm, creds('host-cli'));
  });
  afterAll(() => subscriber?.cancel());

  test('session ids carry 128 random bits; a guessed id is NOT_FOUND', async () => {
    const lease = await call<{ lease?: { sessionId: string } }>(vmm, vmm.openLease, { ttlMs: 600_000 });
    sessionId = lease.lease!.sessionId;
    expect(sessionId).toMatch(/^lease-[0-9a-f]{32}$/);
    const created = await call<{ vm?: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 });
    handle = BigInt(created.vm!.handle);
    const guessed = `lease-${randomBytes(16).toString('hex')}`;
    expect(await codeOf(call(vmm, vmm.getVm, { sessionId: guessed, handle }))).toBe('NOT_FOUND');
    expect(await codeOf(call(vmm, vmm.destroyVm, { sessionId: guessed, handle }))).toBe('NOT_FOUND');
  });

  test("another identity naming the session: NOT_FOUND for ListVms, GetVm and DestroyVm; the owner's VM is untouched", async () => {
    for (const cert of ['guest-128', 'host-vmm']) {
      const other = client(VmmServiceClient, at.vmm, creds(cert));
      expect(await outcome(call(other, other.listVms, { sessionId }))).toMatch(/^NOT_FOUND: ENOENT \(session_unknown\): no open session lease-[0-9a-f]+ for this caller/);
      expect(await codeOf(call(other, other.getVm, { sessionId, handle }))).toBe('NOT_FOUND');
      expect(await codeOf(call(other, other.destroyVm, { sessionId, handle }))).toBe('NOT_FOUND');
    }
    const mine = await call<{ vm?: Vm }>(vmm, vmm.getVm, { sessionId, handle });
    expect(mine.vm!.state).not.toBe(VmState.VM_STATE_DESTROYED);
  });

  test('a second HLOS subscriber on the RM gets its own copy; the VMM still starts, stops and destroys a VM', async () => {
    const rm = client(RmServiceClient, at.rm, creds('host-cli'));
    subscriber = rm.subscribe({}, new grpc.Metadata());
    subscriber.on('error', () => {});
    subscriber.on('data', (n: SubscribeResponse) => copies.push(n));
    // Let the subscription reach the RM before the VM's notifications start.
    await call(rm, rm.getStats, {});

    await call(vmm, vmm.mapMem, at_({ binding: { guestAddr: 0x8000_0000n, hostAddr: HOST_GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false }));
    await call(vmm, vmm.setDtbConfig, at_({ guestAddr: 0x8010_0010n, size: 0x2000n }));
    await call(vmm, vmm.setBootContext, at_({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
    const started = (await call<{ vm?: Vm }>(vmm, vmm.startVm, at_({}))).vm!;
    expect([started.state, started.rmStatus]).toEqual([VmState.VM_STATE_RUNNING, 'RUNNING']);
    const stopped = (await call<{ vm?: Vm }>(vmm, vmm.stopVm, at_({}))).vm!;
    expect([stopped.state, stopped.rmStatus]).toEqual([VmState.VM_STATE_STOPPED, 'EXITED']);
    const destroyed = (await call<{ vm?: Vm }>(vmm, vmm.destroyVm, at_({}))).vm!;
    expect(destroyed.state).toBe(VmState.VM_STATE_DESTROYED);
    expect(destroyed.leaked).toEqual([]);
    expect(destroyed.teardown.filter((t) => !t.ok)).toEqual([]);
    // The subscriber saw copies of HLOS's notifications for that VM (VM_STATUS at least).
    const VM_STATUS = 0x56100008;
    expect(copies.filter((n) => n.messageId === VM_STATUS).length).toBeGreaterThan(0);
    expect(await codeOf(call(vmm, vmm.closeLease, { sessionId }))).toBe('OK');
  });
});

describe('the CLI over mTLS (global --tls-cert/--tls-key/--tls-ca)', () => {
  const cli = (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
    const env = { ...clean, HYPMESH_CORE_ADDR: at.core, HYPMESH_RM_ADDR: at.rm, HYPMESH_VMM_ADDR: at.vmm };
    return new Promise((resolve) =>
      execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env, timeout: 60_000 }, (e, out, err) => resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out, err })),
    );
  };

  test('check --live with a HOST certificate agrees; without one every service is unreachable (exit 2); a partial set is a clear error', async () => {
    const tls = ['--tls-cert', join(dir, 'host-cli.crt'), '--tls-key', join(dir, 'host-cli.key'), '--tls-ca', join(dir, 'ca.crt')];
    const ok = await cli(...tls, 'check', '--live');
    // Node warns once (DEP0123) that grpc-js names an IP address as the TLS server name; nothing else.
    expect(ok.err.split('\n').filter((l) => l !== '' && !l.includes('DEP0123') && !l.includes('--trace-deprecation'))).toEqual([]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/agree/i);
    expect((await cli('check', '--live')).code).toBe(2);
    const partial = await cli('--tls-cert', join(dir, 'host-cli.crt'), 'check', '--live');
    expect(partial.code).toBe(2);
    expect(partial.err).toBe('hypmesh: mTLS needs --tls-cert, --tls-key, --tls-ca together; missing --tls-key, --tls-ca\n');
  });
});

describe('health over mTLS', () => {
  test("the RM's and the VMM's dependency probes reach their dependencies with their client certificates: SERVING", async () => {
    // Past the dependency grace (3 s) since start: a probe refused at the handshake would have made it NOT_SERVING.
    const check = (address: string): Promise<Buffer> => {
      const c = client(grpc.Client, address, creds('host-cli'));
      const id = (b: Buffer): Buffer => b;
      return new Promise((resolve, reject) =>
        c.makeUnaryRequest('/grpc.health.v1.Health/Check', id, id, Buffer.alloc(0), { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, r) => (e ? reject(e) : resolve(r!))),
      );
    };
    await new Promise((r) => setTimeout(r, 3_500));
    // HealthCheckResponse { status: SERVING (1) }: field 1, varint 1.
    for (const address of [at.rm, at.vmm]) expect([...(await check(address))]).toEqual([0x08, 0x01]);
  });
});
