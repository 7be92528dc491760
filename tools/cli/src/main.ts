#!/usr/bin/env node
/**
 * `hypmesh`: the command line for a running hypmesh (started by `npm start` or `hypmesh up`).
 *
 *   hypmesh up                                   run every service in this process's child
 *   hypmesh map [--vmid N] [--from ADDR] [--size BYTES]
 *                                                a VM's stage-2, or the host's ownership map, as runs
 *   hypmesh parcel list|accept|release --as VMID acting as a guest towards the RM
 *   hypmesh vm create|list|start|stop|destroy|watch|dtb, mem bind|unbind, session show|close
 *                                                VMs in a VMM lease session kept in a file (vm.ts)
 *   hypmesh demo                                 one scenario through every seed, checked at the end
 *
 * Addresses come from HYPMESH_CORE_ADDR / HYPMESH_RM_ADDR / HYPMESH_VMM_ADDR (defaults
 * 127.0.0.1:50051 / :50052 / :50053). A
 * refused call prints the domain error (errno, RMI status or RM error, and its rule) and exits 1.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import {
  CoreServiceClient,
  PageState,
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
} from '@hypmesh/proto/rm';
import { decodeStatusDetails } from '@hypmesh/rpc';
import { bytes, integer } from './args.js';
import { call } from './call.js';
import { demo } from './demo.js';
import { formatBytes, ownershipTable, rights, table, vmidName } from './format.js';
import { VmmServiceClient } from '@hypmesh/proto/vmm';
import { registerVmCommands } from './vm.js';

const HOST = 3;
const PAGE = 4096n;

const coreAddr = (): string => process.env.HYPMESH_CORE_ADDR ?? '127.0.0.1:50051';
const rmAddr = (): string => process.env.HYPMESH_RM_ADDR ?? '127.0.0.1:50052';

const program = new Command('hypmesh').description('The command line for a running hypmesh.');

program
  .command('up')
  .description('run the core, the resource manager (and later the VM manager) until interrupted')
  .action(() => {
    const main = createRequire(import.meta.url).resolve('@hypmesh/suite/package.json').replace(/package\.json$/, 'dist/main.js');
    const child = spawn(process.execPath, [main], { stdio: 'inherit' });
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
    child.on('exit', (code) => process.exit(code ?? 0));
  });

program
  .command('map')
  .description("print a VM's stage-2 (--vmid) or the host's ownership map as runs")
  .addOption(new Option('--vmid <n>', 'address space (3 = the host)').argParser(integer).default(HOST))
  .addOption(new Option('--from <addr>', 'first address').argParser(bytes).default(0n))
  .addOption(new Option('--size <bytes>', 'how much to show').argParser(bytes).default(1n << 48n))
  .action(async (o: { vmid: number; from: bigint; size: bigint }) => {
    const core = new CoreServiceClient(coreAddr(), grpc.credentials.createInsecure());
    const base = o.from / PAGE;
    if (o.vmid === HOST) {
      const r = await call<OwnershipMapRequest, OwnershipMapResponse>(core, core.ownershipMap, { base, count: (o.size + PAGE - 1n) / PAGE, runsMax: 0 }, HOST);
      const runs = r.runs;
      ownershipTable(runs);
    } else {
      const r = await call<AddressSpaceMapRequest, AddressSpaceMapResponse>(core, core.addressSpaceMap, { vmid: o.vmid, base, count: (o.size + PAGE - 1n) / PAGE, runsMax: 0 }, HOST);
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


await program.parseAsync();
