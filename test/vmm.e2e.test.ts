/**
 * The three services as separate processes over real gRPC (DESIGN.md §1, §4): the core (with
 * --check-invariants), the RM reaching the core, and the VMM reaching both (the RM as HLOS over its
 * Exchange stream). Each main binds 127.0.0.1:0 and logs its port as a JSON line (pino), which
 * test/support/processes.ts reads: no fixed ports.
 *
 * Scenarios (seed 001 sessions, seed 003 donations, seed 004 realm teardown): a GUNYAH VM's whole
 * life; a REALM's, whose teardown leaves no granule delegated; a client that goes away (its session
 * stream cancelled, or its process killed) without destroying its VM gets it torn down. After
 * every scenario all memory is owned as at boot (the core's OwnershipCounts) and CheckInvariants
 * is empty; at the end the core must not have logged a violation.
 */

import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, PageState, type AddressSpaceRun, type OwnershipCountsResponse, type TranslateResponse } from '@hypmesh/proto';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type OpenSessionResponse, type Vm, type VmEvent } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Processes } from './support/processes.js';

const CALL_TIMEOUT_MS = 20_000;
const SETTLE_TIMEOUT_MS = 15_000;
const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** Host RAM the clients bind as guest memory (the default core RAM is 2..18 GiB; the VMM keeps the last 64 MiB). */
const HOST_GUEST_RAM = BigInt(3 * GiB);

const processes = new Processes();

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, res?: Res) => void) => unknown;

function caller(client: grpc.Client) {
  return <Req, Res>(method: Unary<Req, Res>, req: Req): Promise<Res> =>
    new Promise((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set(CALLER_VMID_KEY, '3');
      method.call(client, req, md, { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, res) => (e ? reject(e) : resolve(res!)));
    });
}

let vmmAddr = '';
let core: CoreServiceClient;
let vmm: VmmServiceClient;
let coreCall: ReturnType<typeof caller>;
let vmmCall: ReturnType<typeof caller>;
let boot: OwnershipCountsResponse;

/** A stable text of a response (bigints as decimal) to compare whole snapshots. */
const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
const counts = (): Promise<OwnershipCountsResponse> => coreCall(core.ownershipCounts as Unary<object, OwnershipCountsResponse>, {});

/** Polls until every frame is owned as at boot (teardowns may still run in the background), then checks the invariants. */
async function expectAllBack(): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let now = await counts();
  while (text(now) !== text(boot) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await counts();
  }
  expect(now.byOwner).toEqual(boot.byOwner);
  expect(now.byState).toEqual(boot.byState);
  const inv = await coreCall(core.checkInvariants as Unary<object, { violations: unknown[] }>, {});
  expect(inv.violations).toEqual([]);
}

interface Session {
  readonly id: string;
  readonly stream: grpc.ClientReadableStream<OpenSessionResponse>;
  readonly events: VmEvent[];
}

async function openSession(): Promise<Session> {
  const stream = vmm.openSession({});
  const events: VmEvent[] = [];
  stream.on('error', () => {}); // cancelled by the test
  const id = await new Promise<string>((resolve, reject) => {
    stream.once('data', (m: OpenSessionResponse) => (m.sessionId ? resolve(m.sessionId) : reject(new Error('first message is not the session id'))));
    stream.once('error', reject);
  });
  stream.on('data', (m: OpenSessionResponse) => m.event && events.push(m.event));
  return { id, stream, events };
}

const vmOf = async (p: Promise<{ vm?: Vm }>): Promise<Vm> => (await p).vm!;
const rwx = { allowRead: true, allowWrite: true, allowExec: true };

beforeAll(async () => {
  const addresses = await processes.startServices(['--check-invariants']);
  vmmAddr = addresses.vmm;
  core = new CoreServiceClient(addresses.core, grpc.credentials.createInsecure());
  vmm = new VmmServiceClient(vmmAddr, grpc.credentials.createInsecure());
  coreCall = caller(core);
  vmmCall = caller(vmm);
  boot = await counts();
}, 60_000);

afterAll(async () => {
  core?.close();
  vmm?.close();
  // The VMM first: its shutdown tears down what is left while the RM and the core still answer.
  await processes.stopAll();
  expect(processes.logsOf('core').filter((l) => l['msg'] === 'invariant violated after a mutation')).toEqual([]);
  expect(processes.bugs()).toEqual([]);
}, 30_000);

describe('VMM over gRPC, three processes', () => {
  test('seed 001 GUNYAH life cycle: session, create, bind, DTB, start → RUNNING, stop, destroy; all memory back', async () => {
    const s = await openSession();
    const created = await vmOf(vmmCall(vmm.createVm as Unary<object, { vm?: Vm }>, { sessionId: s.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
    expect([created.state, created.rmStatus]).toEqual([VmState.VM_STATE_CREATED, 'LOAD']);
    expect(created.vmid).toBeGreaterThan(0);
    expect(Number(created.hostPages)).toBeGreaterThan(0); // roots and pool donated (seed 003)
    const handle = created.handle;
    const at = (req: object) => ({ sessionId: s.id, handle, ...req });
    await vmmCall(vmm.mapMem as Unary<object, unknown>, at({ binding: { guestAddr: 0x8000_0000n, hostAddr: HOST_GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false }));
    await vmmCall(vmm.mapMem as Unary<object, unknown>, at({ binding: { guestAddr: 0x9000_0000n, hostAddr: HOST_GUEST_RAM + BigInt(8 * MiB), size: 0x1_0000n, mode: BindMode.BIND_MODE_SHARE, allowRead: true, allowWrite: true, allowExec: false }, unmap: false }));
    await vmmCall(vmm.setDtbConfig as Unary<object, unknown>, at({ guestAddr: 0x8010_0010n, size: 0x2000n }));
    await vmmCall(vmm.setBootContext as Unary<object, unknown>, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
    await vmmCall(vmm.setBootContext as Unary<object, unknown>, at({ regSet: RegSet.REG_SET_X, index: 0, value: 0x8010_0010n }));

    const started = await vmOf(vmmCall(vmm.startVm as Unary<object, { vm?: Vm }>, at({})));
    expect([started.state, started.rmStatus]).toEqual([VmState.VM_STATE_RUNNING, 'RUNNING']);
    // The lent binding left the host: frames changed hands at the core (boot parcels, VM_START).
    expect(text((await counts()).byOwner)).not.toBe(text(boot.byOwner));

    // Each binding is mapped at its guest address (§4.4 L24: demand-paged grants, pre-faulted at
    // START; the DTB range by the RM's parcel), with the binding's rights, to the bound host memory.
    const translate = (vmid: number, ipa: bigint) => coreCall(core.translate as Unary<object, TranslateResponse>, { vmid, ipa });
    const R = 4, W = 2, X = 1;
    const expected: [bigint, bigint, number][] = [
      [0x8000_0000n, HOST_GUEST_RAM, R | W | X], // lend binding, first page
      [0x8010_0010n, HOST_GUEST_RAM + 0x10_0010n, R | W | X], // the DTB (the RM parcel)
      [0x8010_3000n, HOST_GUEST_RAM + 0x10_3000n, R | W | X], // just past the DTB range (its pages: 0x80100000..0x80103000)
      [0x8000_0000n + BigInt(4 * MiB) - 8n, HOST_GUEST_RAM + BigInt(4 * MiB) - 8n, R | W | X], // lend binding, last bytes
      [0x9000_0000n, HOST_GUEST_RAM + BigInt(8 * MiB), R | W], // share binding
      [0x9000_fff8n, HOST_GUEST_RAM + BigInt(8 * MiB) + 0xfff8n, R | W],
    ];
    for (const [ipa, pa, perms] of expected) {
      expect(await translate(created.vmid, ipa)).toMatchObject({ pa, perms, state: PageState.PAGE_STATE_SHARED_BORROWED });
    }
    // Nothing anywhere else: the guest map is exactly the two bindings.
    const guestMap = await coreCall(core.addressSpaceMap as Unary<object, { runs: AddressSpaceRun[] }>, { vmid: created.vmid, base: 0n, count: 1n << 28n, runsMax: 0 });
    const spans = guestMap.runs.map((r) => [r.base * 4096n, r.count * 4096n] as const);
    expect(spans[0]![0]).toBe(0x8000_0000n);
    expect(spans.filter(([b]) => b < 0x9000_0000n).reduce((n, [, c]) => n + c, 0n)).toBe(BigInt(4 * MiB));
    expect(spans.filter(([b]) => b >= 0x9000_0000n)).toEqual([[0x9000_0000n, 0x1_0000n]]);
    // The host lost the lent memory and kept the shared memory.
    await expect(translate(3, HOST_GUEST_RAM)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    expect(await translate(3, HOST_GUEST_RAM + BigInt(8 * MiB))).toMatchObject({ perms: R | W | X, state: PageState.PAGE_STATE_SHARED_OWNED });

    const stopped = await vmOf(vmmCall(vmm.stopVm as Unary<object, { vm?: Vm }>, at({})));
    expect(stopped.state).toBe(VmState.VM_STATE_STOPPED);
    expect(stopped.rmStatus).toBe('EXITED');

    const destroyed = await vmOf(vmmCall(vmm.destroyVm as Unary<object, { vm?: Vm }>, at({})));
    expect(destroyed.state).toBe(VmState.VM_STATE_DESTROYED);
    expect(destroyed.leaked).toEqual([]);
    expect(destroyed.teardown.filter((t) => !t.ok)).toEqual([]);
    expect(destroyed.teardown.map((t) => t.step)).toContain('vm_deallocate');
    expect(Number(destroyed.hostPages)).toBe(0);

    // The session stream saw the handle's states and the RM's VM_STATUS notices (HLOS's queue).
    const states = s.events.filter((e) => e.handle === handle && e.state !== undefined).map((e) => e.state);
    expect(states).toEqual([VmState.VM_STATE_CREATED, VmState.VM_STATE_RUNNING, VmState.VM_STATE_STOPPED, VmState.VM_STATE_DESTROYING, VmState.VM_STATE_DESTROYED]);
    expect(s.events.some((e) => e.rmStatus === 'RUNNING')).toBe(true);
    await expect(vmmCall(vmm.getVm as Unary<object, unknown>, at({}))).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    s.stream.cancel();
    await expectAllBack();
  });

  test('seed 004 REALM life cycle: create, bind, start (RTTs, DATA, ACTIVATE), destroy; no granule stays delegated', async () => {
    const s = await openSession();
    const created = await vmOf(vmmCall(vmm.createVm as Unary<object, { vm?: Vm }>, { sessionId: s.id, type: VmType.VM_TYPE_REALM, ipaBits: 40 }));
    expect(created.state).toBe(VmState.VM_STATE_CREATED);
    const at = (req: object) => ({ sessionId: s.id, handle: created.handle, ...req });
    await vmmCall(vmm.mapMem as Unary<object, unknown>, at({ binding: { guestAddr: 0x8000_0000n, hostAddr: HOST_GUEST_RAM + BigInt(16 * MiB), size: 0x1_0000n, mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false }));
    const started = await vmOf(vmmCall(vmm.startVm as Unary<object, { vm?: Vm }>, at({})));
    expect(started.state).toBe(VmState.VM_STATE_RUNNING);
    // RD, roots, RTTs and 16 DATA granules are delegated now.
    expect(Number(started.hostPages)).toBeGreaterThan(16);
    expect(text((await counts()).byState)).not.toBe(text(boot.byState));

    const destroyed = await vmOf(vmmCall(vmm.destroyVm as Unary<object, { vm?: Vm }>, at({})));
    expect(destroyed.state).toBe(VmState.VM_STATE_DESTROYED);
    expect(destroyed.leaked).toEqual([]);
    expect(destroyed.teardown.filter((t) => !t.ok)).toEqual([]);
    expect(Number(destroyed.hostPages)).toBe(0);
    s.stream.cancel();
    await expectAllBack();
  });

  test('seed 001 session end: a client that cancels its session stream without destroying gets its RUNNING VM torn down', async () => {
    const s = await openSession();
    const created = await vmOf(vmmCall(vmm.createVm as Unary<object, { vm?: Vm }>, { sessionId: s.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
    const at = (req: object) => ({ sessionId: s.id, handle: created.handle, ...req });
    await vmmCall(vmm.mapMem as Unary<object, unknown>, at({ binding: { guestAddr: 0x8000_0000n, hostAddr: HOST_GUEST_RAM + BigInt(32 * MiB), size: BigInt(2 * MiB), mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false }));
    await vmmCall(vmm.setDtbConfig as Unary<object, unknown>, at({ guestAddr: 0x8010_0000n, size: 0x1000n }));
    const realm = await vmOf(vmmCall(vmm.createVm as Unary<object, { vm?: Vm }>, { sessionId: s.id, type: VmType.VM_TYPE_REALM, ipaBits: 40 }));
    expect((await vmOf(vmmCall(vmm.startVm as Unary<object, { vm?: Vm }>, at({})))).state).toBe(VmState.VM_STATE_RUNNING);
    expect(text(await counts())).not.toBe(text(boot));

    s.stream.cancel();
    await expectAllBack();
    for (const handle of [created.handle, realm.handle]) {
      await expect(vmmCall(vmm.getVm as Unary<object, unknown>, { sessionId: s.id, handle })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    }
  });

  test('seed 001 session end: a client process killed (SIGKILL) with a RUNNING VM gets it torn down', async () => {
    const c = await processes.spawnNode('client', 'test/fixtures/vmm-client.mjs', [vmmAddr, String(HOST_GUEST_RAM + BigInt(48 * MiB))], (l) => typeof l['handle'] === 'string');
    expect(c.line['state']).toBe(VmState.VM_STATE_RUNNING);
    expect(text(await counts())).not.toBe(text(boot));
    const exited = once(c.proc.child, 'exit');
    c.proc.child.kill('SIGKILL');
    await exited;
    await expectAllBack();
    await expect(vmmCall(vmm.getVm as Unary<object, unknown>, { sessionId: c.line['sessionId'], handle: BigInt(c.line['handle'] as string) })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });
});
