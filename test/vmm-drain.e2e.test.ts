/**
 * Issue 10 item 4, graceful drain, with the VMM as its own process: SIGTERM arrives while a StartVm
 * is in flight (its VM_START held 800 ms by a fault delay). Before, CreateVm and StartVm were still
 * accepted during the drain and the StartVm in flight ended CANCELLED, leaving RM VMs, address
 * spaces and grants behind. Now the StartVm completes, a CreateVm after the signal is UNAVAILABLE
 * `draining`, the VMM tears its sessions down and exits, and the RM and the core hold nothing.
 *
 * Then the same under load ("the drain test under load with nothing left behind"): a fresh VMM
 * process with several clients each running create → map → configure → start → destroy cycles
 * back to back, SIGTERM mid-stream. Every call ends OK (it was in flight and completed) or
 * UNAVAILABLE (refused: draining, or the process gone), never CANCELLED or INTERNAL; the VMM exits
 * 0; and right after, with no waiting, the RM holds no VM or parcel, the core no grant and no
 * address space beyond those it had before the VMM started, and its invariants hold.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { CLIENT_KEY } from '@hypmesh/rpc';
import { ask, HOST, openSession } from './support/calls.js';
import { Processes, serving, stop, type Addresses } from './support/processes.js';

const MiB = 2 ** 20;
const GUEST_RAM = BigInt(3 * 2 ** 30);
const processes = new Processes();
let addrs: Addresses;

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants']);
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

test('SIGTERM mid-StartVm: the start completes, new work is UNAVAILABLE draining, nothing is left in the RM or the core', async () => {
  const vmm = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  const { stream, sessionId } = await openSession(vmm);
  const vm = (await ask<{ vm: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm;
  const where = { sessionId, handle: vm.handle };
  const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM, size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
  await ask(vmm, vmm.mapMem, { ...where, binding, unmap: false });
  await ask(vmm, vmm.setDtbConfig, { ...where, guestAddr: 0x8010_0000n, size: 0x2000n });
  await ask(vmm, vmm.setBootContext, { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n });
  const faults = new FaultServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  await ask(faults, faults.arm, { plan: FaultPlan.fromJSON({ rules: [{ id: 'slow-start', boundary: 'BOUNDARY_VMM_TO_RM', match: { rmMessage: 'VM_START', nth: 1 }, delay: { fixedMs: 800 } }] }), seed: 1 });
  faults.close();

  const starting = ask<{ vm: Vm }>(vmm, vmm.startVm, where);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const proc = processes.all.find((p) => p.name === 'vmm')!;
  const exited = new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  proc.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const late = await ask(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }).catch((e: grpc.ServiceError) => e);
  expect(late).toMatchObject({ code: grpc.status.UNAVAILABLE });
  expect((late as grpc.ServiceError).details).toMatch(/shutting down \(draining\)/);
  expect((await starting).vm.state).toBe(VmState.VM_STATE_RUNNING);
  expect(await exited).toBe(0);
  stream.cancel();
  vmm.close();

  const rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
  const core = new CoreServiceClient(addrs.core, grpc.credentials.createInsecure());
  expect((await ask<{ vms: unknown[] }>(rm, rm.listVms, {})).vms).toEqual([]);
  expect((await ask<{ grants: unknown[] }>(core, core.listGrants, {})).grants).toEqual([]);
  expect((await ask<{ violations: string[] }>(core, core.checkInvariants, {})).violations).toEqual([]);
  rm.close();
  core.close();
}, 60_000);

/** Clients running cycles at once, and the VMs they must have started before the signal. */
const CLIENTS = 4;
const STARTED_BEFORE_SIGNAL = 6;
/** Client c starts c × this late, so at the signal the clients are at different steps of a cycle. */
const STAGGER_MS = 70;

interface Outcome {
  readonly client: number;
  readonly rpc: string;
  /** Sent before the signal and answered after it: in flight during the drain. */
  readonly inFlight: boolean;
  readonly code: string;
  readonly details: string;
}

test('SIGTERM under load (4 clients cycling VMs): in-flight calls complete, new ones are UNAVAILABLE, the VMM exits 0, and the RM and the core hold nothing of it', async () => {
  // The VMM must be HLOS's only RM subscriber (README "The VM manager"): the first one goes first
  // (the test above has stopped it already, unless it ran alone).
  await stop(processes.all.find((p) => p.name === 'vmm')!);
  const core = new CoreServiceClient(addrs.core, grpc.credentials.createInsecure());
  const rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
  const spacesBefore = (await ask<{ spaces: { vmid: number }[] }>(core, core.listAddressSpaces, {})).spaces.map((s) => s.vmid);
  const { proc, line } = await processes.spawnNode('vmm-load', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', addrs.rm, '--core', addrs.core], serving('hypmesh vmm serving'));
  const vmm = new VmmServiceClient(`127.0.0.1:${line['port'] as number}`, grpc.credentials.createInsecure());
  const exited = new Promise<number | null>((resolve) => proc.child.once('exit', resolve));

  let signalled = false;
  let started = 0;
  let enough: () => void = () => {};
  const loaded = new Promise<void>((resolve) => (enough = resolve));
  const outcomes: Outcome[] = [];

  type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
  /** One call as client `c`; resolves with its response, or undefined once it failed (the client stops). */
  const call = <Res>(c: number, rpc: string, req: object): Promise<Res | undefined> => {
    const md = new grpc.Metadata();
    md.set(CLIENT_KEY, `load-${c}`);
    const before = signalled;
    const method = (vmm as unknown as Record<string, Unary>)[rpc]!;
    return new Promise((resolve) =>
      method.call(vmm, req, md, { deadline: Date.now() + 20_000 }, (e, r) => {
        outcomes.push({ client: c, rpc, inFlight: !before && signalled, code: e ? grpc.status[e.code] : 'OK', details: e?.details ?? '' });
        resolve(e ? undefined : (r as Res));
      }),
    );
  };

  const client = async (c: number): Promise<void> => {
    await new Promise((r) => setTimeout(r, c * STAGGER_MS));
    const session = vmm.openSession({}, (() => {
      const md = new grpc.Metadata();
      md.set(CLIENT_KEY, `load-${c}`);
      return md;
    })());
    session.on('error', () => {});
    const sessionId = await new Promise<string>((resolve) => session.once('data', (m: { sessionId?: string }) => resolve(m.sessionId ?? '')));
    for (let i = 0; ; i++) {
      const made = await call<{ vm: Vm }>(c, 'createVm', { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 });
      if (made === undefined) break;
      const where = { sessionId, handle: made.vm.handle };
      // Each client's guest RAM in its own 1 GiB of the host's, a fresh 4 MiB per cycle.
      const binding = { guestAddr: 0x8000_0000n, hostAddr: GUEST_RAM + BigInt(c * 2 ** 30 + (i % 200) * 4 * MiB), size: BigInt(4 * MiB), mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true };
      if ((await call(c, 'mapMem', { ...where, binding, unmap: false })) === undefined) break;
      if ((await call(c, 'setDtbConfig', { ...where, guestAddr: 0x8010_0000n, size: 0x2000n })) === undefined) break;
      if ((await call(c, 'setBootContext', { ...where, regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n })) === undefined) break;
      if ((await call(c, 'startVm', where)) === undefined) break;
      if (++started >= STARTED_BEFORE_SIGNAL) enough();
      if ((await call(c, 'destroyVm', where)) === undefined) break;
    }
    session.cancel();
  };

  const running = Array.from({ length: CLIENTS }, (_, c) => client(c));
  await loaded;
  signalled = true;
  proc.child.kill('SIGTERM');
  await Promise.all(running);
  expect(await exited).toBe(0);
  vmm.close();

  // Nothing left behind, read right after the exit: the drain finished before the process did.
  expect((await ask<{ vms: unknown[] }>(rm, rm.listVms, {}, HOST)).vms).toEqual([]);
  expect((await ask<{ parcels: unknown[] }>(rm, rm.listParcels, { allVms: true }, HOST)).parcels).toEqual([]);
  expect((await ask<{ grants: unknown[] }>(core, core.listGrants, {})).grants).toEqual([]);
  expect((await ask<{ spaces: { vmid: number }[] }>(core, core.listAddressSpaces, {})).spaces.map((s) => s.vmid)).toEqual(spacesBefore);
  expect((await ask<{ violations: string[] }>(core, core.checkInvariants, {})).violations).toEqual([]);
  rm.close();
  core.close();

  // Every call OK or UNAVAILABLE; the ones in flight at the signal completed; each client was refused in the end.
  const codes = new Set(outcomes.map((o) => o.code));
  expect([...codes].filter((c) => c !== 'OK' && c !== 'UNAVAILABLE'), JSON.stringify(outcomes.filter((o) => o.code !== 'OK' && o.code !== 'UNAVAILABLE'))).toEqual([]);
  const inFlight = outcomes.filter((o) => o.inFlight);
  expect(inFlight.length).toBeGreaterThan(0);
  expect(inFlight.filter((o) => o.code !== 'OK' && !/draining/.test(o.details))).toEqual([]);
  expect(outcomes.filter((o) => o.code === 'UNAVAILABLE').map((o) => o.client).sort()).toEqual(Array.from({ length: CLIENTS }, (_, c) => c));
  expect(outcomes.some((o) => o.code === 'UNAVAILABLE' && /shutting down \(draining\)/.test(o.details))).toBe(true);
}, 120_000);
