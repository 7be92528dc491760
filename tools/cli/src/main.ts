#!/usr/bin/env node
/**
 * `hypmesh`: the command line for a running hypmesh (started by `npm start` or `hypmesh up`).
 *
 *   hypmesh up [--memory MAP | --memory-config FILE]
 *                                                run every service in this process's child
 *   hypmesh map [--vmid N] [--from ADDR] [--size BYTES]
 *                                                a VM's stage-2, or the host's ownership map, as runs
 *                                                (default range: all of the core's memory map)
 *   hypmesh reset [--memory MAP | --memory-config FILE]
 *                                                every service back to boot: vmm, then rm, then core
 *   hypmesh parcel list|accept|release --as VMID acting as a guest towards the RM
 *   hypmesh vm create|list|start|stop|destroy|watch|dtb, mem bind|unbind, session show|close
 *                                                VMs in a VMM lease session kept in a file (vm.ts)
 *   hypmesh demo                                 one scenario through every seed, checked at the end
 *   hypmesh sim --seed N --steps K ...           deterministic simulation, campaigns, replay, shrink (sim.ts)
 *
 * Addresses come from HYPMESH_CORE_ADDR / HYPMESH_RM_ADDR / HYPMESH_VMM_ADDR (defaults
 * 127.0.0.1:50051 / :50052 / :50053). A
 * refused call prints the domain error (errno, RMI status or RM error, and its rule) and exits 1.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import {
  CoreServiceClient,
  MemoryKind,
  PageState,
  type GetMemoryMapRequest,
  type GetMemoryMapResponse,
  type MemoryMap,
  type ResetRequest as CoreResetRequest,
  type ResetResponse as CoreResetResponse,
  type AddressSpaceMapRequest,
  type AddressSpaceMapResponse,
  type OwnershipMapRequest,
  type OwnershipMapResponse,
} from '@hypmesh/proto';
import {
  MemAcceptRequest,
  MemType,
  ParcelState,
  RmServiceClient,
  TransType,
  type ListParcelsRequest,
  type ListParcelsResponse,
  type MemAcceptResponse,
  type MemReleaseRequest,
  type MemReleaseResponse,
  type ResetRequest as RmResetRequest,
  type ResetResponse as RmResetResponse,
} from '@hypmesh/proto/rm';
import { decodeStatusDetails } from '@hypmesh/rpc';
import { parseMemoryJson, parseMemorySpec, type MemoryConfig, type Result } from '@hypmesh/stage2';
import { bytes, integer } from './args.js';
import { call } from './call.js';
import { demo } from './demo.js';
import { formatBytes, ownershipTable, rights, table, vmidName } from './format.js';
import { VmmServiceClient, type ResetRequest as VmmResetRequest, type ResetResponse as VmmResetResponse } from '@hypmesh/proto/vmm';
import { registerVmCommands } from './vm.js';
import { registerSimCommand } from './sim.js';

const HOST = 3;
const PAGE = 4096n;

const coreAddr = (): string => process.env.HYPMESH_CORE_ADDR ?? '127.0.0.1:50051';
const rmAddr = (): string => process.env.HYPMESH_RM_ADDR ?? '127.0.0.1:50052';
const vmmAddr = (): string => process.env.HYPMESH_VMM_ADDR ?? '127.0.0.1:50053';

/** --memory or --memory-config, parsed by the core's own parser (@hypmesh/stage2 memory-map.ts). */
function memoryFromCli(o: { memory?: string; memoryConfig?: string }): Result<MemoryConfig, string[]> {
  if (o.memory !== undefined && o.memoryConfig !== undefined) return { ok: false, error: ['give --memory or --memory-config, not both'] };
  if (o.memory !== undefined) return parseMemorySpec(o.memory);
  try {
    return parseMemoryJson(JSON.parse(readFileSync(o.memoryConfig!, 'utf8')));
  } catch (e) {
    return { ok: false, error: [`--memory-config ${o.memoryConfig}: ${e instanceof Error ? e.message : String(e)}`] };
  }
}

/** A parsed map in the proto's form (admin.proto MemoryMap). */
const memoryMapOf = (c: MemoryConfig): MemoryMap => ({
  paBits: c.paBits,
  regions: [
    ...c.ram.map((r) => ({ kind: MemoryKind.MEMORY_KIND_RAM, base: BigInt(r.base), sizeBytes: BigInt(r.sizeBytes) })),
    ...c.mmio.map((r) => ({ kind: MemoryKind.MEMORY_KIND_MMIO, base: BigInt(r.base), sizeBytes: BigInt(r.sizeBytes) })),
  ],
});

const describeMap = (m: MemoryMap): string =>
  `${m.regions.map((r) => `${MemoryKind[r.kind].replace('MEMORY_KIND_', '').toLowerCase()}@0x${r.base.toString(16)}:${formatBytes(r.sizeBytes)}`).join(', ')}; ${m.paBits}-bit PA`;

const program = new Command('hypmesh').description('The command line for a running hypmesh.');

const memoryOption = (): Option => new Option('--memory <map>', 'memory map, e.g. ram@0x80000000:16G,mmio@0x10000000:256M[,pa=40]');
const memoryConfigOption = (): Option => new Option('--memory-config <file.json>', 'memory map as JSON: {"paBits":40,"regions":[{"kind":"ram","base":"0x80000000","size":"16G"}]}');

program
  .command('up')
  .description('run the core, the resource manager and the VM manager until interrupted')
  .addOption(memoryOption())
  .addOption(memoryConfigOption())
  .action((o: { memory?: string; memoryConfig?: string }) => {
    const main = createRequire(import.meta.url).resolve('@hypmesh/suite/package.json').replace(/package\.json$/, 'dist/main.js');
    const args = [...(o.memory !== undefined ? ['--memory', o.memory] : []), ...(o.memoryConfig !== undefined ? ['--memory-config', o.memoryConfig] : [])];
    const child = spawn(process.execPath, [main, ...args], { stdio: 'inherit' });
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
    child.on('exit', (code) => process.exit(code ?? 0));
  });

program
  .command('map')
  .description("print a VM's stage-2 (--vmid) or the host's ownership map as runs")
  .addOption(new Option('--vmid <n>', 'address space (3 = the host)').argParser(integer).default(HOST))
  .addOption(new Option('--from <addr>', 'first address').argParser(bytes).default(0n))
  .addOption(new Option('--size <bytes>', "how much to show (default: up to the end of the core's PA space, or 2^48 for a VM)").argParser(bytes))
  .action(async (o: { vmid: number; from: bigint; size?: bigint }) => {
    const core = new CoreServiceClient(coreAddr(), grpc.credentials.createInsecure());
    const base = o.from / PAGE;
    if (o.vmid === HOST) {
      // The host's map ends where the core's PA space does (GetMemoryMap), whatever map it runs.
      const map = (await call<GetMemoryMapRequest, GetMemoryMapResponse>(core, core.getMemoryMap, {}, HOST)).memoryMap!;
      const end = 1n << BigInt(map.paBits);
      const size = o.size ?? (end > o.from ? end - o.from : 0n);
      const r = await call<OwnershipMapRequest, OwnershipMapResponse>(core, core.ownershipMap, { base, count: (size + PAGE - 1n) / PAGE, runsMax: 0 }, HOST);
      const runs = r.runs;
      ownershipTable(runs);
    } else {
      const size = o.size ?? 1n << 48n;
      const r = await call<AddressSpaceMapRequest, AddressSpaceMapResponse>(core, core.addressSpaceMap, { vmid: o.vmid, base, count: (size + PAGE - 1n) / PAGE, runsMax: 0 }, HOST);
      table(
        ['IPA range', 'size', 'state', 'maps PA', 'rights', 'level'],
        r.runs.map((x) => [
          `0x${(x.base * PAGE).toString(16)}-0x${((x.base + x.count) * PAGE - 1n).toString(16)}`,
          formatBytes(x.count * PAGE),
          PageState[x.state].replace('PAGE_STATE_', ''),
          `0x${(x.outputFrame * PAGE).toString(16)}`,
          rights(x.perms),
          x.level === 3 ? 'pages' : `L${x.level} blocks`,
        ]),
      );
    }
    core.close();
  });

program
  .command('reset')
  .description('every service back to its boot state, in the order that leaves nothing dangling: the VMM (drops its sessions without teardown), the RM, then the core (optionally on a new memory map)')
  .addOption(memoryOption())
  .addOption(memoryConfigOption())
  .action(async (o: { memory?: string; memoryConfig?: string }) => {
    let memoryMap: MemoryMap | undefined;
    if (o.memory !== undefined || o.memoryConfig !== undefined) {
      const parsed = memoryFromCli(o);
      if (!parsed.ok) {
        process.stderr.write(`hypmesh: ${parsed.error.join('\n  ')}\n`);
        process.exit(2);
      }
      memoryMap = memoryMapOf(parsed.value);
    }
    const vmm = new VmmServiceClient(vmmAddr(), grpc.credentials.createInsecure());
    const rm = new RmServiceClient(rmAddr(), grpc.credentials.createInsecure());
    const core = new CoreServiceClient(coreAddr(), grpc.credentials.createInsecure());
    const v = await call<VmmResetRequest, VmmResetResponse>(vmm, vmm.reset, {}, HOST);
    process.stdout.write(`vmm   reset: ${v.vmsDropped} VM(s), ${v.sessionsDropped} session(s) dropped\n`);
    const r = await call<RmResetRequest, RmResetResponse>(rm, rm.reset, {}, HOST);
    process.stdout.write(`rm    reset: ${r.vmsDropped} VM(s), ${r.parcelsDropped} parcel(s) dropped\n`);
    const c = await call<CoreResetRequest, CoreResetResponse>(core, core.reset, memoryMap === undefined ? {} : { memoryMap }, HOST);
    process.stdout.write(`core  reset: ${describeMap(c.memoryMap!)}\n`);
    // With a new map, the VMM derives its donation region again from it.
    if (memoryMap !== undefined) await call<VmmResetRequest, VmmResetResponse>(vmm, vmm.reset, {}, HOST);
    vmm.close();
    rm.close();
    core.close();
  });

const parcel = program.command('parcel').description('memory parcels, acting as a VM towards the RM');
const asVm = new Option('--as <vmid>', 'the VM the RM sees as the caller').argParser(integer).makeOptionMandatory();

parcel
  .command('list')
  .description('parcels the VM owns or is named in')
  .addOption(asVm)
  .action(async (o: { as: number }) => {
    const rm = new RmServiceClient(rmAddr(), grpc.credentials.createInsecure());
    const r = await call<ListParcelsRequest, ListParcelsResponse>(rm, rm.listParcels, {}, o.as);
    table(
      ['handle', 'owner', 'type', 'memory', 'state', 'size', 'ACL', 'accepted by'],
      r.parcels.map((p) => [
        String(p.handle),
        vmidName(p.ownerVmid),
        TransType[p.transType].replace('TRANS_TYPE_', ''),
        MemType[p.memType].replace('MEM_TYPE_', ''),
        ParcelState[p.state].replace('PARCEL_STATE_', ''),
        formatBytes(p.regions.reduce((n, x) => n + x.size, 0n)),
        p.acl.map((e) => `${vmidName(e.vmid)}:${rights(e.rights)}`).join(' '),
        p.acceptedBy.map(vmidName).join(' '),
      ]),
    );
    rm.close();
  });

parcel
  .command('accept <handle>')
  .description('accept (map) a parcel at IPAs the RM chooses; prints them')
  .addOption(asVm)
  .action(async (handle: string, o: { as: number }) => {
    const rm = new RmServiceClient(rmAddr(), grpc.credentials.createInsecure());
    const h = integer(handle);
    const p = (await call<ListParcelsRequest, ListParcelsResponse>(rm, rm.listParcels, {}, o.as)).parcels.find((x) => x.handle === h);
    const memType = p?.memType ?? MemType.MEM_TYPE_NORMAL;
    const req = MemAcceptRequest.fromPartial({ handle: h, memType, transType: p?.transType ?? TransType.TRANS_TYPE_LEND, done: true, mapContiguous: memType === MemType.MEM_TYPE_NORMAL });
    const r = await call<MemAcceptRequest, MemAcceptResponse>(rm, rm.memAccept, req, o.as);
    for (const e of r.sgl) process.stdout.write(`accepted parcel ${h} at IPA 0x${e.base.toString(16)} (${formatBytes(e.size)})\n`);
    rm.close();
  });

parcel
  .command('release <handle>')
  .description('release (unmap) an accepted parcel')
  .addOption(asVm)
  .action(async (handle: string, o: { as: number }) => {
    const rm = new RmServiceClient(rmAddr(), grpc.credentials.createInsecure());
    await call<MemReleaseRequest, MemReleaseResponse>(rm, rm.memRelease, { handle: integer(handle), sanitize: false }, o.as);
    process.stdout.write(`released parcel ${handle}\n`);
    rm.close();
  });

registerVmCommands(program, () => process.env.HYPMESH_VMM_ADDR ?? '127.0.0.1:50053');

program
  .command('demo')
  .description('a scripted scenario through every seed: GUNYAH VM, parcels, table-page donations, a REALM torn down by the RTT walk')
  .action(async () => {
    const core = new CoreServiceClient(coreAddr(), grpc.credentials.createInsecure());
    const rm = new RmServiceClient(rmAddr(), grpc.credentials.createInsecure());
    const vmm = new VmmServiceClient(process.env.HYPMESH_VMM_ADDR ?? '127.0.0.1:50053', grpc.credentials.createInsecure());
    const fail = (e: grpc.ServiceError): never => {
      const d = decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata });
      process.stderr.write(`hypmesh demo: ${grpc.status[e.code]}: ${d.message}\n`);
      process.exit(1);
    };
    await demo({ core, rm, vmm, fail }, (line) => process.stdout.write(`${line}\n`));
    for (const c of [core, rm, vmm]) c.close();
  });


registerSimCommand(program);

await program.parseAsync();
