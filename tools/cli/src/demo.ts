/**
 * `hypmesh demo`: one scripted scenario through every seed, against a running hypmesh.
 *
 *   seed 001  a session-bound GUNYAH VM: create, lent and shared memory, DTB, boot register, start,
 *             stop, destroy (VMM → RM → core); its guest map shows each binding at its guest
 *             address (the DTB range by the RM's parcel, the rest as L24 demand paging maps it:
 *             core grants from the host, bypassing the RM)
 *   seed 000/002  the host lends a parcel through the RM; the guest accepts and releases it; the
 *             host reclaims it
 *   seed 003  host pages donated to HYP for every VM's stage-2 tables, back on teardown
 *   seed 004  a REALM VM created, populated and activated through RMI, torn down by the RTT walk
 *
 * It prints the host's ownership map before and after and checks that every granule is back with
 * the host and the core's invariants hold.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, MemoryKind, PageState, type AddressSpaceRun, type GetMemoryMapResponse, type OwnershipRun } from '@hypmesh/proto';
import { MemAcceptRequest, MemLendRequest, MemType, RmServiceClient, TransType } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmState, VmType, VmmServiceClient, type OpenSessionResponse, type Vm } from '@hypmesh/proto/vmm';
import { callTimeoutMs, deadline, meta } from './call.js';
import { formatBytes, ownershipTable, vmidName } from './format.js';

const HOST = 3;
const GiB = 1n << 30n;
const MiB = 1n << 20n;

type Unary = (req: never, md: grpc.Metadata, options: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: never) => void) => unknown;

export interface DemoClients {
  readonly core: CoreServiceClient;
  readonly rm: RmServiceClient;
  readonly vmm: VmmServiceClient;
  /** Prints a refused call and ends the process. */
  readonly fail: (e: grpc.ServiceError) => never;
}

export async function demo({ core, rm, vmm, fail }: DemoClients, print: (line: string) => void): Promise<void> {
  const call = <Res>(client: grpc.Client, fn: unknown, req: object, vmid = HOST): Promise<Res> =>
    new Promise((resolve) => (fn as Unary).call(client, req as never, meta(vmid), deadline(), (e, r) => (e ? fail(e) : resolve(r as Res))));
  const step = (text: string): void => print(`\n== ${text}`);

  // Host memory the demo binds and lends: 1 GiB (or half) into the lowest RAM region of the core's
  // map (3 GiB on the default map), so the demo runs on any --memory map with 64 MiB of RAM there.
  const map = (await call<GetMemoryMapResponse>(core, core.getMemoryMap, {})).memoryMap!;
  const low = map.regions.find((r) => r.kind === MemoryKind.MEMORY_KIND_RAM)!;
  const hostRam = low.base + (low.sizeBytes >= 2n * GiB ? GiB : low.sizeBytes / 2n - ((low.sizeBytes / 2n) % (2n * MiB)));
  const frames = (1n << BigInt(map.paBits)) / 4096n;
  const hostMap = async (): Promise<OwnershipRun[]> =>
    (await call<{ runs: OwnershipRun[] }>(core, core.ownershipMap, { base: 0n, count: frames, runsMax: 0 })).runs;
  const summary = (runs: OwnershipRun[]): string => {
    const byOwner = new Map<number, bigint>();
    for (const r of runs) byOwner.set(r.ownerVmid, (byOwner.get(r.ownerVmid) ?? 0n) + r.count * 4096n);
    return [...byOwner].map(([v, n]) => `${vmidName(v)} ${formatBytes(n)}`).join(', ');
  };

  const rights = (p: number): string => `${p & 4 ? 'R' : '-'}${p & 2 ? 'W' : '-'}${p & 1 ? 'X' : '-'}`;
  const printGuestMap = async (vmid: number): Promise<void> => {
    const { runs } = await call<{ runs: AddressSpaceRun[] }>(core, core.addressSpaceMap, { vmid, base: 0n, count: 1n << 28n, runsMax: 0 });
    for (const r of runs)
      print(`  guest IPA 0x${(r.base * 4096n).toString(16)} +${formatBytes(r.count * 4096n)} → PA 0x${(r.outputFrame * 4096n).toString(16)} ${rights(r.perms)} ${PageState[r.state]?.replace('PAGE_STATE_', '') ?? r.state} (level ${r.level})`);
  };

  step('before: who owns what (the core\'s ownership map, as runs)');
  const before = await hostMap();
  ownershipTable(before);
  print(`  ${summary(before)}`);

  step('seed 001: a session (the /dev/gunyah fd) and a GUNYAH VM');
  const session = vmm.openSession({}, meta(HOST));
  const sessionId = await new Promise<string>((resolve, reject) => {
    // The stream lives as long as the session; only its first message has the CLI's deadline.
    const late = `hypmesh.vmm.v1.VmmService did not open a session within ${callTimeoutMs()} ms (--timeout)`;
    const timer = setTimeout(() => fail(Object.assign(new Error(late), { code: grpc.status.DEADLINE_EXCEEDED, details: late, metadata: new grpc.Metadata() })), callTimeoutMs());
    session.on('data', (m: OpenSessionResponse) => {
      if (m.sessionId !== undefined) resolve((clearTimeout(timer), m.sessionId));
      else if (m.event?.state !== undefined) print(`  event: VM ${m.event.handle} → ${VmState[m.event.state]}`);
    });
    session.on('error', (e) => (clearTimeout(timer), reject(e)));
  });
  print(`  session ${sessionId}`);
  const vmOf = (r: { vm?: Vm }): Vm => r.vm!;
  const gunyah = vmOf(await call(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
  print(`  VM handle ${gunyah.handle}, VMID 0x${gunyah.vmid.toString(16)}, ${gunyah.hostPages} host pages donated to HYP for its stage-2 pool (seed 003; VM_ALLOCATE made the stage-2)`);
  const at = (extra: object) => ({ sessionId, handle: gunyah.handle, ...extra });
  const rwx = { allowRead: true, allowWrite: true, allowExec: true };
  await call(vmm, vmm.mapMem, at({ binding: { guestAddr: 0x8000_0000n, hostAddr: hostRam, size: 4n * MiB, mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false }));
  await call(vmm, vmm.mapMem, at({ binding: { guestAddr: 0x9000_0000n, hostAddr: hostRam + 8n * MiB, size: 64n * 1024n, mode: BindMode.BIND_MODE_SHARE, allowRead: true, allowWrite: true, allowExec: false }, unmap: false }));
  await call(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8010_0000n, size: 0x2000n }));
  await call(vmm, vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n }));
  print('  4 MiB lent at IPA 0x80000000, 64 KiB shared at 0x90000000, DTB at 0x80100000, PC = 0x80000000');
  const started = vmOf(await call(vmm, vmm.startVm, at({})));
  print(`  started: ${VmState[started.state]} (RM: ${started.rmStatus})`);
  print('  the guest map: the DTB range by the RM parcel (VM_START), the rest of each binding as L24 demand paging maps it (core grants from the host, pre-faulted at start)');
  await printGuestMap(gunyah.vmid);

  step('seeds 000/002: the host lends a parcel; the guest accepts and releases it; the host reclaims it');
  const lend = MemLendRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 7, acl: [{ vmid: gunyah.vmid, rights: 6 }], sgl: [{ base: hostRam + 16n * MiB, size: 2n * MiB }] });
  const { handle } = await call<{ handle: number }>(rm, rm.memLend, lend);
  print(`  MEM_LEND 2 MiB → parcel ${handle}`);
  const accepted = await call<{ sgl: { base: bigint; size: bigint }[] }>(
    rm,
    rm.memAccept,
    MemAcceptRequest.fromPartial({ handle, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_LEND, done: true, mapContiguous: true }),
    gunyah.vmid,
  );
  print(`  the guest accepted it at IPA 0x${accepted.sgl[0]!.base.toString(16)} (RM-chosen)`);
  await printGuestMap(gunyah.vmid);
  await call(rm, rm.memRelease, { handle, sanitize: false }, gunyah.vmid);
  await call(rm, rm.memReclaim, { handle, sanitize: false });
  print('  released by the guest, reclaimed by the host');

  step('stop and destroy the GUNYAH VM (Linux order, §4.4: stop, reclaim demand-paged memory, reset, reclaim the DTB parcel, deallocate)');
  await call(vmm, vmm.stopVm, at({}));
  const destroyed = vmOf(await call(vmm, vmm.destroyVm, at({})));
  for (const t of destroyed.teardown) print(`  ${t.ok ? 'ok ' : 'ERR'} ${t.step}${t.attempts > 1 ? ` (${t.attempts} attempts)` : ''}`);
  if (destroyed.leaked.length > 0) print(`  leaked: ${destroyed.leaked.join(', ')}`);

  step('seed 004: a REALM VM through RMI, torn down by the RTT walk');
  const realm = vmOf(await call(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_REALM, ipaBits: 40 }));
  const rat = (extra: object) => ({ sessionId, handle: realm.handle, ...extra });
  await call(vmm, vmm.mapMem, rat({ binding: { guestAddr: 0x8000_0000n, hostAddr: hostRam + 32n * MiB, size: 64n * 1024n, mode: BindMode.BIND_MODE_LEND, ...rwx }, unmap: false }));
  const active = vmOf(await call(vmm, vmm.startVm, rat({})));
  const during = await hostMap();
  const realmRuns = during.filter((r) => r.granuleState !== 0 && r.granuleState !== 1);
  print(`  ${VmState[active.state]}; ${realmRuns.reduce((n, r) => n + r.count, 0n)} granules in the realm world (RD, RTTs, DATA)`);
  const gone = vmOf(await call(vmm, vmm.destroyVm, rat({})));
  for (const t of gone.teardown) print(`  ${t.ok ? 'ok ' : 'ERR'} ${t.step}${t.attempts > 1 ? ` (${t.attempts} attempts)` : ''}`);

  session.cancel();
  step('after: who owns what');
  const after = await hostMap();
  ownershipTable(after);
  print(`  ${summary(after)}`);
  const same = JSON.stringify(after, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) === JSON.stringify(before, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  const violations = (await call<{ violations: string[] }>(core, core.checkInvariants, {})).violations;
  print(same ? '  every granule is back where it was before' : '  the ownership map differs from before!');
  print(violations.length === 0 ? '  core invariants: all hold' : `  core invariants: ${violations.length} violated\n    ${violations.join('\n    ')}`);
  if (!same || violations.length > 0) process.exitCode = 1;
}
