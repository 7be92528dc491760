#!/usr/bin/env node
/**
 * `hypmesh`: the command line for a running hypmesh (started by `npm start` or `hypmesh up`).
 *
 *   hypmesh up [--memory MAP | --memory-config FILE] [--faults plan.json] [--fault-seed N] [--data-dir DIR]
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
 *   hypmesh chaos --seed N --ops K [--faults plan.json] [--fault-seed S] [--history FILE]
 *                                                a seeded workload under faults, recorded and checked (chaos.ts)
 *   hypmesh check HISTORY [--html FILE]          the checker's verdict per check on a recorded history (--html: html-report.ts)
 *   hypmesh check --live                         do the running VMM, RM and core agree? (check-live.ts)
 *   hypmesh scenario linux-append-orphan|linux-unchecked-reply-size
 *                                                what hypmesh finds in the seed-002 Linux driver (in process)
 *   hypmesh sim --seed N --steps K ...           deterministic simulation, campaigns, replay, shrink (sim.ts); --html FILE
 *   hypmesh console [--address 127.0.0.1:8080]   the web console of the running services (@hypmesh/console)
 *
 * Addresses come from HYPMESH_CORE_ADDR / HYPMESH_RM_ADDR / HYPMESH_VMM_ADDR (defaults
 * 127.0.0.1:50051 / :50052 / :50053). A
 * refused call prints the domain error (errno, RMI status or RM error, and its rule) and exits 1.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { checkHistory, formatReport, parseHistory } from '@hypmesh/history';
import { SCENARIOS, SCENARIO_NAMES, type ScenarioName } from '@hypmesh/linux-driver';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  AddressSpaceMapResponse as AddressSpaceMapJson,
  CoreServiceClient,
  MemoryKind,
  OwnershipMapResponse as OwnershipMapJson,
  ResetResponse as CoreResetJson,
  type ListAddressSpacesRequest,
  type ListAddressSpacesResponse,
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
  ListParcelsResponse as ListParcelsJson,
  MemAcceptRequest,
  MemAcceptResponse as MemAcceptJson,
  ResetResponse as RmResetJson,
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
import { decodeStatusDetails, timeoutMsParser } from '@hypmesh/rpc';
import { parseMemoryJson, parseMemorySpec, type MemoryConfig, type Result } from '@hypmesh/stage2';
import { bytes, integer } from './args.js';
import { call, cliCredentials, CLI_TIMEOUT_MS_DEFAULT, setCallTimeout, setTls } from './call.js';
import { demo } from './demo.js';
import { formatBytes, ownershipTable, rights, table, vmidName } from './format.js';
import { emit, OUTPUT_FORMATS, progress, setOutputFormat, type OutputFormat } from './output.js';
import { ResetResponse as VmmResetJson, VmmServiceClient, type ResetRequest as VmmResetRequest, type ResetResponse as VmmResetResponse } from '@hypmesh/proto/vmm';
import { registerVmCommands } from './vm.js';
import { FaultServiceMissing, runChaos, writeHistory } from './chaos.js';
import { registerSimCommand } from './sim.js';
import { checkLive, CHECK_DEADLINE_MS_DEFAULT, formatLiveReport, ServiceUnreachable } from './check-live.js';
import { checkReport, writeHtmlReport } from './html-report.js';

const HOST = 3;
const PAGE = 4096n;
/** A VM's IPA space when the core does not list it (the widest the CLI creates, `vm create --ipa-bits`). */
const IPA_BITS_MAX = 48;

const CLI_VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

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

const program = new Command('hypmesh')
  .description('The command line for a running hypmesh.')
  .version(CLI_VERSION, '-V, --version', "print hypmesh's version")
  .addOption(
    new Option('--output <format>', 'text for people, or json: one JSON document on stdout per command (refusals as JSON on stderr)')
      .env('HYPMESH_OUTPUT')
      .choices(OUTPUT_FORMATS)
      .default('text'),
  )
  .addOption(
    new Option('--timeout <ms>', 'deadline of each call to a service; one that misses it is named and the command exits 2')
      .env('HYPMESH_TIMEOUT_MS')
      .argParser(timeoutMsParser(InvalidArgumentError))
      .default(CLI_TIMEOUT_MS_DEFAULT),
  )
  // mTLS (README "Security"): HYPMESH_CLI_TLS_*, not the services' HYPMESH_TLS_*, so `up` and a
  // shell that serves with one identity can call with another.
  .addOption(new Option('--tls-cert <file>', 'mTLS: PEM client certificate; its spiffe://hypmesh/vmid/<n> URI is the caller (with --tls-key, --tls-ca)').env('HYPMESH_CLI_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'mTLS: PEM private key of --tls-cert').env('HYPMESH_CLI_TLS_KEY'))
  .addOption(new Option('--tls-ca <file>', "mTLS: PEM CA certificate the services' certificates must chain to").env('HYPMESH_CLI_TLS_CA'))
  .hook('preAction', () => {
    const o = program.opts<{ timeout: number; output: OutputFormat; tlsCert?: string; tlsKey?: string; tlsCa?: string }>();
    setCallTimeout(o.timeout);
    setOutputFormat(o.output);
    try {
      setTls(o);
    } catch (e) {
      process.stderr.write(`hypmesh: ${(e as Error).message}\n`);
      process.exit(2);
    }
  });

const memoryOption = (): Option => new Option('--memory <map>', 'memory map, e.g. ram@0x80000000:16G,mmio@0x10000000:256M[,pa=40]');
const memoryConfigOption = (): Option => new Option('--memory-config <file.json>', 'memory map as JSON: {"paBits":40,"regions":[{"kind":"ram","base":"0x80000000","size":"16G"}]}');

program
  .command('up')
  .description('run the core, the resource manager and the VM manager until interrupted')
  .addOption(memoryOption())
  .addOption(memoryConfigOption())
  .addOption(new Option('--faults <plan.json>', 'fault plan to arm at startup, at every boundary (README "Fault injection")'))
  .addOption(new Option('--fault-seed <n>', "the fault plan's PRNG seed (u32): the same plan and seed inject the same faults"))
  .addOption(new Option('--data-dir <dir>', 'durable state of the core and the RM (README "Durable state"); default: in memory'))
  .action((o: { memory?: string; memoryConfig?: string; faults?: string; faultSeed?: string; dataDir?: string }) => {
    const main = createRequire(import.meta.url).resolve('@hypmesh/suite/package.json').replace(/package\.json$/, 'dist/main.js');
    // Passed through as flags; the suite validates them (a bad plan refuses to start, naming every problem).
    const pass = (flag: string, v: string | undefined): string[] => (v === undefined ? [] : [flag, v]);
    const args = [...pass('--memory', o.memory), ...pass('--memory-config', o.memoryConfig), ...pass('--faults', o.faults), ...pass('--fault-seed', o.faultSeed), ...pass('--data-dir', o.dataDir)];
    const child = spawn(process.execPath, [main, ...args], { stdio: 'inherit' });
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
    child.on('exit', (code) => process.exit(code ?? 0));
  });

program
  .command('map')
  .description("print a VM's stage-2 (--vmid) or the host's ownership map as runs")
  .addOption(new Option('--vmid <n>', 'address space (3 = the host)').argParser(integer).default(HOST))
  .addOption(new Option('--from <addr>', 'first address').argParser(bytes).default(0n, '0'))
  .addOption(new Option('--size <bytes>', "how much to show (default: up to the end of the core's PA space, or of the VM's IPA space)").argParser(bytes))
  .action(async (o: { vmid: number; from: bigint; size?: bigint }) => {
    const core = new CoreServiceClient(coreAddr(), cliCredentials());
    const base = o.from / PAGE;
    if (o.vmid === HOST) {
      // The host's map ends where the core's PA space does (GetMemoryMap), whatever map it runs.
      const map = (await call<GetMemoryMapRequest, GetMemoryMapResponse>(core, core.getMemoryMap, {}, HOST)).memoryMap!;
      const end = 1n << BigInt(map.paBits);
      const size = o.size ?? (end > o.from ? end - o.from : 0n);
      const r = await call<OwnershipMapRequest, OwnershipMapResponse>(core, core.ownershipMap, { base, count: (size + PAGE - 1n) / PAGE, runsMax: 0 }, HOST);
      emit(OwnershipMapJson.toJSON(r), () => ownershipTable(r.runs));
    } else {
      // The VM's map ends where its IPA space does (ListAddressSpaces); an unknown VMID is the
      // core's to refuse by name, so it is asked over the widest space.
      const spaces = (await call<ListAddressSpacesRequest, ListAddressSpacesResponse>(core, core.listAddressSpaces, {}, HOST)).spaces;
      const ipaBits = spaces.find((x) => x.vmid === o.vmid)?.ipaBits ?? IPA_BITS_MAX;
      const end = 1n << BigInt(ipaBits);
      const size = o.size ?? (end > o.from ? end - o.from : 0n);
      const r = await call<AddressSpaceMapRequest, AddressSpaceMapResponse>(core, core.addressSpaceMap, { vmid: o.vmid, base, count: (size + PAGE - 1n) / PAGE, runsMax: 0 }, HOST);
      emit(AddressSpaceMapJson.toJSON(r), () => table(
        ['IPA range', 'size', 'state', 'maps PA', 'rights', 'level'],
        r.runs.map((x) => [
          `0x${(x.base * PAGE).toString(16)}-0x${((x.base + x.count) * PAGE - 1n).toString(16)}`,
          formatBytes(x.count * PAGE),
          PageState[x.state].replace('PAGE_STATE_', ''),
          `0x${(x.outputFrame * PAGE).toString(16)}`,
          rights(x.perms),
          x.level === 3 ? 'pages' : `L${x.level} blocks`,
        ]),
      ));
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
    const vmm = new VmmServiceClient(vmmAddr(), cliCredentials());
    const rm = new RmServiceClient(rmAddr(), cliCredentials());
    const core = new CoreServiceClient(coreAddr(), cliCredentials());
    const v = await call<VmmResetRequest, VmmResetResponse>(vmm, vmm.reset, {}, HOST);
    progress(`vmm   reset: ${v.vmsDropped} VM(s), ${v.sessionsDropped} session(s) dropped`);
    const r = await call<RmResetRequest, RmResetResponse>(rm, rm.reset, {}, HOST);
    progress(`rm    reset: ${r.vmsDropped} VM(s), ${r.parcelsDropped} parcel(s) dropped`);
    const c = await call<CoreResetRequest, CoreResetResponse>(core, core.reset, memoryMap === undefined ? {} : { memoryMap }, HOST);
    progress(`core  reset: ${describeMap(c.memoryMap!)}`);
    // With a new map, the VMM derives its donation region again from it.
    if (memoryMap !== undefined) await call<VmmResetRequest, VmmResetResponse>(vmm, vmm.reset, {}, HOST);
    emit({ vmm: VmmResetJson.toJSON(v), rm: RmResetJson.toJSON(r), core: CoreResetJson.toJSON(c) }, () => undefined);
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
    const rm = new RmServiceClient(rmAddr(), cliCredentials());
    const r = await call<ListParcelsRequest, ListParcelsResponse>(rm, rm.listParcels, { allVms: false }, o.as);
    emit(ListParcelsJson.toJSON(r), () => table(
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
    ));
    rm.close();
  });

parcel
  .command('accept')
  .argument('<handle>', 'parcel handle (`hypmesh parcel list`)', integer)
  .description('accept (map) a parcel at IPAs the RM chooses; prints them')
  .addOption(asVm)
  .action(async (h: number, o: { as: number }) => {
    const rm = new RmServiceClient(rmAddr(), cliCredentials());
    const p = (await call<ListParcelsRequest, ListParcelsResponse>(rm, rm.listParcels, { allVms: false }, o.as)).parcels.find((x) => x.handle === h);
    const memType = p?.memType ?? MemType.MEM_TYPE_NORMAL;
    const req = MemAcceptRequest.fromPartial({ handle: h, memType, transType: p?.transType ?? TransType.TRANS_TYPE_LEND, done: true, mapContiguous: memType === MemType.MEM_TYPE_NORMAL });
    const r = await call<MemAcceptRequest, MemAcceptResponse>(rm, rm.memAccept, req, o.as);
    emit(MemAcceptJson.toJSON(r), () => {
      for (const e of r.sgl) process.stdout.write(`accepted parcel ${h} at IPA 0x${e.base.toString(16)} (${formatBytes(e.size)})\n`);
    });
    rm.close();
  });

parcel
  .command('release')
  .argument('<handle>', 'parcel handle (`hypmesh parcel list`)', integer)
  .description('release (unmap) an accepted parcel')
  .addOption(asVm)
  .action(async (h: number, o: { as: number }) => {
    const rm = new RmServiceClient(rmAddr(), cliCredentials());
    await call<MemReleaseRequest, MemReleaseResponse>(rm, rm.memRelease, { handle: h, sanitize: false }, o.as);
    emit({ released: h }, () => process.stdout.write(`released parcel ${h}\n`));
    rm.close();
  });

registerVmCommands(program, () => process.env.HYPMESH_VMM_ADDR ?? '127.0.0.1:50053');

program
  .command('demo')
  .description('a scripted scenario through every seed: GUNYAH VM, parcels, table-page donations, a REALM torn down by the RTT walk')
  .action(async () => {
    const core = new CoreServiceClient(coreAddr(), cliCredentials());
    const rm = new RmServiceClient(rmAddr(), cliCredentials());
    const vmm = new VmmServiceClient(process.env.HYPMESH_VMM_ADDR ?? '127.0.0.1:50053', cliCredentials());
    const fail = (e: grpc.ServiceError): never => {
      const d = decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata });
      process.stderr.write(`hypmesh demo: ${grpc.status[e.code]}: ${d.message}\n`);
      process.exit(1);
    };
    await demo({ core, rm, vmm, fail }, progress);
    emit({ ok: true }, () => undefined);
    for (const c of [core, rm, vmm]) c.close();
  });

program
  .command('chaos')
  .description('a seeded workload against the running services (faults armed through FaultService with --faults), recorded as a history and checked; exit 1 on a violation')
  .addOption(new Option('--seed <n>', 'workload seed').argParser(integer).makeOptionMandatory())
  .addOption(new Option('--ops <k>', 'operations').argParser(integer).default(50))
  .addOption(new Option('--faults <plan.json>', 'fault plan (proto3 JSON of hypmesh.fault.v1.FaultPlan)'))
  .addOption(new Option('--fault-seed <s>', 'seed of the plan (default: --seed)').argParser(integer))
  .addOption(new Option('--history <file>', 'write the history here as JSON lines'))
  .action(async (o: { seed: number; ops: number; faults?: string; faultSeed?: number; history?: string }) => {
    try {
      const r = await runChaos({
        core: coreAddr(),
        rm: rmAddr(),
        vmm: vmmAddr(),
        seed: o.seed,
        ops: o.ops,
        ...(o.faults === undefined ? {} : { faultsJson: readFileSync(o.faults, 'utf8') }),
        ...(o.faultSeed === undefined ? {} : { faultSeed: o.faultSeed }),
        log: progress,
      });
      if (o.history !== undefined) writeHistory(o.history, r.history);
      const ops = r.history.filter((e) => e.type === 'ok' || e.type === 'fail' || e.type === 'info');
      const again = ['--seed', o.seed, '--ops', o.ops, ...(o.faults === undefined ? [] : ['--faults', o.faults, '--fault-seed', o.faultSeed ?? o.seed])].join(' ');
      const counts = Object.fromEntries(['ok', 'fail', 'info'].map((t) => [t, ops.filter((e) => e.type === t).length]));
      emit({ completions: counts, report: r.report, ...(o.history !== undefined && { history: o.history }), again: `hypmesh chaos ${again}` }, () => {
        process.stdout.write(`chaos: ${ops.length} completions (${Object.entries(counts).map(([t, n]) => `${n} ${t}`).join(', ')})${o.history === undefined ? '' : `, history in ${o.history}`}\n`);
        process.stdout.write(formatReport(r.report));
        if (!r.report.valid) process.stdout.write(`same run again (without faults the workload is deterministic): hypmesh chaos ${again}\n`);
      });
      process.exit(r.report.valid ? 0 : 1);
    } catch (e) {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(e instanceof FaultServiceMissing ? 2 : 3);
    }
  });

program
  .command('check [history]')
  .description(
    'verdict per check on a recorded history (JSON lines), or with --live whether the running VMM, RM and core agree (check-live.ts); exit 1 on any violation, 2 when the input or a service is unavailable',
  )
  .addOption(new Option('--live', 'compare what the running VMM, RM and core each believe, plus the core\'s CheckInvariants'))
  .addOption(new Option('--deadline-ms <ms>', 'per-call deadline of --live; a service that misses it is unreachable').argParser(integer).default(CHECK_DEADLINE_MS_DEFAULT))
  .addOption(new Option('--html <report.html>', 'also write a self-contained HTML report of the history (timeline, ownership maps, verdicts)'))
  .action(async (path: string | undefined, o: { live?: boolean; deadlineMs: number; html?: string }) => {
    if (o.live === true) {
      if (path !== undefined) {
        process.stderr.write('hypmesh check: give a history file or --live, not both\n');
        process.exit(2);
      }
      if (o.html !== undefined) {
        process.stderr.write('hypmesh check: --html reports a history file, not --live\n');
        process.exit(2);
      }
      try {
        const report = await checkLive({ core: coreAddr(), rm: rmAddr(), vmm: vmmAddr() }, o.deadlineMs);
        emit(report, () => process.stdout.write(formatLiveReport(report)));
        process.exit(report.disagreements.length + report.coreViolations.length === 0 ? 0 : 1);
      } catch (e) {
        if (!(e instanceof ServiceUnreachable)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exit(2);
      }
    }
    if (path === undefined) {
      process.stderr.write('hypmesh check: give a history file, or --live\n');
      process.exit(2);
    }
    const parsed = parseHistory(readFileSync(path, 'utf8'));
    if (!parsed.ok) {
      process.stderr.write(`hypmesh check: ${path}:\n  ${parsed.error.join('\n  ')}\n`);
      process.exit(2);
    }
    const report = checkHistory(parsed.value);
    if (o.html !== undefined) {
      const bytes = await writeHtmlReport(o.html, (cause) => checkReport(parsed.value, report, `hypmesh check ${path}`, cause));
      progress(`report: ${o.html} (${bytes} bytes)`);
    }
    emit(report, () => process.stdout.write(formatReport(report)));
    process.exit(report.valid ? 0 : 1);
  });

program
  .command('scenario <name>')
  .description(`run a scenario in this process and print what hypmesh finds: ${SCENARIO_NAMES.join(', ')}; exit 1 when the checker reports the finding`)
  .addOption(new Option('--seed <n>', 'fault seed').argParser(integer).default(1))
  .addOption(new Option('--history <file>', 'write the history here as JSON lines'))
  .action(async (name: string, o: { seed: number; history?: string }) => {
    if (!(SCENARIO_NAMES as readonly string[]).includes(name)) {
      process.stderr.write(`hypmesh scenario: unknown scenario "${name}" (known: ${SCENARIO_NAMES.join(', ')})\n`);
      process.exit(2);
    }
    const r = await SCENARIOS[name as ScenarioName](o.seed);
    if (o.history !== undefined) writeHistory(o.history, r.history);
    emit({ scenario: name, faults: r.events, findings: r.findings, report: r.report }, () => {
      process.stdout.write(`scenario ${name} (seed 002's gh_rm_mem_share; faults: ${r.events.map((e) => `${e.ruleId}@${e.rmMessage ?? e.boundary}`).join(', ') || 'none'})\n`);
      for (const f of r.findings) process.stdout.write(`  ${f}\n`);
      process.stdout.write(formatReport(r.report));
    });
    process.exit(r.report.valid ? 0 : 1);
  });

registerSimCommand(program);

program
  .command('console')
  .description('serve the web console (memory map, VMs, parcels, events) of the running services (README "Console")')
  .addOption(new Option('--address <host:port>', 'where to serve the page; port 0 picks one').default('127.0.0.1:8080'))
  .action(async (o: { address: string }) => {
    // Loaded here, not at the top: the sim image (Dockerfile) ships the CLI without the console.
    const { startConsole } = await import('@hypmesh/console');
    const c = await startConsole({ address: o.address, core: coreAddr(), rm: rmAddr(), vmm: vmmAddr() }).catch((e: Error) => {
      process.stderr.write(`hypmesh console: ${e.message}\n`); // a bad --address, a port taken
      process.exit(1);
    });
    process.stdout.write(`${JSON.stringify({ msg: 'hypmesh console serving', port: c.port, url: c.url })}\n`);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void c.close().then(() => process.exit(0)));
  });

/**
 * No input gives a stack trace (issue 11 item 7): a bad argument found inside an action (a handle
 * that is not a number) is reported like commander's own usage errors (exit 2); anything else is a
 * bug, printed as one line, with the stack only under HYPMESH_DEBUG=1.
 */
function crashed(e: unknown): never {
  if (e instanceof InvalidArgumentError) {
    process.stderr.write(`hypmesh: ${e.message}\n`);
    process.exit(2);
  }
  const text = e instanceof Error ? (process.env.HYPMESH_DEBUG === '1' ? (e.stack ?? e.message) : e.message) : String(e);
  process.stderr.write(`hypmesh: internal error: ${text}\n${process.env.HYPMESH_DEBUG === '1' ? '' : '  (HYPMESH_DEBUG=1 shows where)\n'}`);
  process.exit(3);
}
process.on('uncaughtException', crashed);
process.on('unhandledRejection', crashed);

await program.parseAsync().catch(crashed);
