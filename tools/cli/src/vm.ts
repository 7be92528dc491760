/**
 * The CLI's VM commands over VmmService (DESIGN.md §4): a VM lives as long as its VMM session, and
 * one CLI process lives for one command, so the CLI holds a lease session (OpenLease) whose id it
 * keeps in a file (session-file.ts). `vm create` opens it on first use; every command renews it
 * (RenewLease, then its VM calls, which renew too); `session close` ends it, tearing its VMs down.
 * An expired or closed lease is reported and its file removed; the next `vm create` opens a new one.
 *
 *   hypmesh vm create --type gunyah|realm [--ipa-bits 40]
 *   hypmesh vm list | show <h> | start <h> | stop <h> | destroy <h> | watch <h>
 *   hypmesh vm dtb <h> --guest ADDR --size BYTES
 *   hypmesh mem bind <h> --guest ADDR --host ADDR --size BYTES [--mode lend|share] [--rights rwx]
 *   hypmesh mem unbind <h> --guest ADDR --size BYTES [--host ADDR --mode … --rights …]
 *   hypmesh session show | close
 *
 * start, stop, destroy and session close print the VM's events as they happen (WatchVm: the
 * handle's states, the RM's VM_STATUS and VM_EXITED), then the result (teardown steps for destroy).
 */
import * as grpc from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import {
  BindMode,
  VmState,
  VmType,
  VmmServiceClient,
  type Binding,
  type CloseLeaseRequest,
  type CloseLeaseResponse,
  type CreateVmRequest,
  type CreateVmResponse,
  type DestroyVmRequest,
  type DestroyVmResponse,
  type GetVmRequest,
  type GetVmResponse,
  type ListVmsRequest,
  type ListVmsResponse,
  type MapMemRequest,
  type MapMemResponse,
  type OpenLeaseRequest,
  type OpenLeaseResponse,
  type RenewLeaseRequest,
  type RenewLeaseResponse,
  type SetDtbConfigRequest,
  type SetDtbConfigResponse,
  type StartVmRequest,
  type StartVmResponse,
  type StopVmRequest,
  type StopVmResponse,
  Vm,
  VmEvent,
  type WatchVmResponse,
} from '@hypmesh/proto/vmm';
import { bytes, integer, rightsArg } from './args.js';
import { call, meta, refused, tryCall, cliCredentials } from './call.js';
import { formatBytes, table } from './format.js';
import { emit, jsonError, jsonOutput, progress } from './output.js';
import { readSessionId, removeSessionFile, SESSION_TTL_MS, sessionFilePath, writeSessionId } from './session-file.js';

const HOST = 3;

const HANDLE_HELP = 'VM handle (`hypmesh vm list`)';
const handleArg = (text: string): bigint => BigInt(integer(text));
/** After the call returns, how long to wait for the watch streams to show its final state. */
const SETTLE_MS = 1_000;

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const typeName = (t: VmType): string => (VmType[t] ?? String(t)).replace('VM_TYPE_', '');
const stateName = (s: VmState): string => (VmState[s] ?? String(s)).replace('VM_STATE_', '');
const rightsText = (b: Binding): string => `${b.allowRead ? 'R' : '-'}${b.allowWrite ? 'W' : '-'}${b.allowExec ? 'X' : '-'}`;
const modeName = (m: BindMode): string => (BindMode[m] ?? String(m)).replace('BIND_MODE_', '');

export function vmTable(vms: readonly Vm[]): void {
  table(
    ['handle', 'type', 'VMID', 'IPA bits', 'state', 'RM status', 'memory', 'DTB', 'host pages'],
    vms.map((v) => {
      const total = v.bindings.reduce((n, b) => n + b.size, 0n);
      return [
        String(v.handle),
        typeName(v.type),
        v.vmid === 0 ? '-' : hex(v.vmid),
        String(v.ipaBits),
        stateName(v.state),
        v.rmStatus,
        v.bindings.length === 0 ? '-' : `${formatBytes(total)} in ${v.bindings.length}`,
        v.dtbSize === 0n ? '-' : `${hex(v.dtbAddr)} +${formatBytes(v.dtbSize)}`,
        String(v.hostPages),
      ];
    }),
  );
}

export function bindingTable(v: Vm): void {
  table(
    ['guest range', 'host', 'size', 'mode', 'rights'],
    v.bindings.map((b) => [`${hex(b.guestAddr)}-${hex(b.guestAddr + b.size - 1n)}`, hex(b.hostAddr), formatBytes(b.size), modeName(b.mode), rightsText(b)]),
  );
}

export function teardownTable(v: Vm): void {
  table(
    ['teardown step', 'attempts', 'result'],
    v.teardown.map((t) => [t.step, String(t.attempts), t.ok ? 'ok' : `FAILED: ${t.error}`]),
  );
  for (const l of v.leaked) process.stdout.write(`leaked: ${l}\n`);
}

const eventText = (e: VmEvent): string =>
  e.state !== undefined ? `state ${stateName(e.state)}` : e.rmStatus !== undefined ? `RM status ${e.rmStatus}` : `exited (exit type ${e.exitType ?? 0})`;

/**
 * Runs `run` while watching `handles` (WatchVm), printing each event as it arrives; then waits
 * (at most SETTLE_MS) until each watch has shown its VM's final state in the result, and stops.
 */
async function withProgress<T>(vmm: VmmServiceClient, sessionId: string, handles: readonly bigint[], run: () => Promise<T>, finalState: (r: T, h: bigint) => VmState | undefined): Promise<T> {
  const seen = new Map<bigint, VmState[]>();
  const ended = new Set<bigint>();
  const wake = new Set<() => void>();
  const streams = handles.map((handle) => {
    const s = vmm.watchVm({ sessionId, handle }, meta(HOST));
    let first = true;
    s.on('data', (m: WatchVmResponse) => {
      const e = m.event;
      if (e === undefined) return;
      if (e.state !== undefined) seen.set(handle, [...(seen.get(handle) ?? []), e.state]);
      if (!first) progress(`  VM ${handle}: ${eventText(e)}`);
      first = false; // the first message is the state the VM is in already
      for (const w of wake) w();
    });
    const done = (): void => {
      ended.add(handle);
      for (const w of wake) w();
    };
    s.on('end', done);
    s.on('error', done); // cancelled below, or refused (the call itself reports why)
    return s;
  });
  try {
    const r = await run();
    const settled = (): boolean => handles.every((h) => ended.has(h) || (seen.get(h) ?? []).includes(finalState(r, h) ?? VmState.VM_STATE_UNSPECIFIED));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, SETTLE_MS);
      function finish(): void {
        clearTimeout(timer);
        wake.delete(check);
        resolve();
      }
      function check(): void {
        if (settled()) finish();
      }
      wake.add(check);
      check();
    });
    return r;
  } finally {
    for (const s of streams) s.cancel();
  }
}

export function registerVmCommands(program: Command, vmmAddr: () => string): void {
  const client = (): VmmServiceClient => new VmmServiceClient(vmmAddr(), cliCredentials());

  /** The file's lease, renewed; undefined when there is none (or it ended, which is reported and the file removed). */
  async function current(vmm: VmmServiceClient): Promise<{ id: string; ttlMs: number } | undefined> {
    const id = readSessionId();
    if (id === undefined) return undefined;
    const r = await tryCall<RenewLeaseRequest, RenewLeaseResponse>(vmm, vmm.renewLease, { sessionId: id }, HOST);
    if (r.ok) return { id, ttlMs: r.value.lease?.ttlMs ?? SESSION_TTL_MS };
    const rule = r.error.errorDetail?.rule ?? '';
    if (!['lease_expired', 'lease_closed', 'session_unknown', 'not_a_lease'].includes(rule)) refused(r.error);
    removeSessionFile();
    process.stderr.write(`hypmesh: session ${id} is gone: ${r.error.message}${rule === 'session_unknown' ? ' (the VMM restarted?)' : ''}\n`);
    return undefined;
  }

  /** The session for a command on existing VMs: none is an error naming how to get one. */
  async function session(vmm: VmmServiceClient): Promise<string> {
    const s = await current(vmm);
    if (s !== undefined) return s.id;
    const none = `no VM session (${sessionFilePath()}); \`hypmesh vm create\` opens one`;
    if (jsonOutput()) jsonError({ error: { message: none } }); // --output json: a refusal is one JSON object
    else process.stderr.write(`hypmesh: ${none}\n`);
    process.exit(1);
  }


  const vm = program.command('vm').description(`VMs in the CLI's VMM lease session (kept in $HYPMESH_SESSION_FILE, default ~/.hypmesh/session)`);

  vm.command('create')
    .description('create a VM (opens the session on first use)')
    .addOption(new Option('--type <type>', 'VM type').choices(['gunyah', 'realm']).makeOptionMandatory())
    .addOption(new Option('--ipa-bits <n>', 'IPA width in bits (32..48)').argParser(integer).default(40))
    .action(async (o: { type: 'gunyah' | 'realm'; ipaBits: number }) => {
      const vmm = client();
      let id = (await current(vmm))?.id;
      if (id === undefined) {
        const opened = await call<OpenLeaseRequest, OpenLeaseResponse>(vmm, vmm.openLease, { ttlMs: SESSION_TTL_MS }, HOST);
        id = opened.lease!.sessionId;
        writeSessionId(id);
        process.stderr.write(`hypmesh: opened session ${id} (${sessionFilePath()}); its VMs live until \`hypmesh session close\` or ${SESSION_TTL_MS / 60_000} min after the last command\n`);
      }
      const type = o.type === 'gunyah' ? VmType.VM_TYPE_GUNYAH : VmType.VM_TYPE_REALM;
      const r = await call<CreateVmRequest, CreateVmResponse>(vmm, vmm.createVm, { sessionId: id, type, ipaBits: o.ipaBits }, HOST);
      emit(Vm.toJSON(r.vm!), () => vmTable([r.vm!]));
      vmm.close();
    });

  vm.command('list')
    .description("the session's VMs")
    .action(async () => {
      const vmm = client();
      const s = await current(vmm);
      const vms = s === undefined ? [] : (await call<ListVmsRequest, ListVmsResponse>(vmm, vmm.listVms, { sessionId: s.id }, HOST)).vms;
      emit({ session: s?.id ?? null, vms: vms.map((v) => Vm.toJSON(v)) }, () =>
        s === undefined ? process.stdout.write('no session (`hypmesh vm create` opens one)\n') : vmTable(vms),
      );
      vmm.close();
    });

  vm.command('show')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('one VM with its bindings')
    .action(async (h: bigint) => {
      const vmm = client();
      const v = (await call<GetVmRequest, GetVmResponse>(vmm, vmm.getVm, { sessionId: await session(vmm), handle: h }, HOST)).vm!;
      emit(Vm.toJSON(v), () => {
        vmTable([v]);
        process.stdout.write('\n');
        bindingTable(v);
      });
      vmm.close();
    });

  vm.command('start')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('run the start sequence (GUNYAH: the L24 RM calls; REALM: RTTs, DATA, ACTIVATE), showing the VM as it changes')
    .action(async (h: bigint) => {
      const vmm = client();
      const sessionId = await session(vmm);
      progress(`starting VM ${h}`);
      const r = await withProgress(vmm, sessionId, [h], () => call<StartVmRequest, StartVmResponse>(vmm, vmm.startVm, { sessionId, handle: h }, HOST), (x) => x.vm?.state);
      emit(Vm.toJSON(r.vm!), () => vmTable([r.vm!]));
      vmm.close();
    });

  vm.command('stop')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('forced VM_STOP, waiting for EXITED')
    .action(async (h: bigint) => {
      const vmm = client();
      const sessionId = await session(vmm);
      progress(`stopping VM ${h}`);
      const r = await withProgress(vmm, sessionId, [h], () => call<StopVmRequest, StopVmResponse>(vmm, vmm.stopVm, { sessionId, handle: h }, HOST), (x) => x.vm?.state);
      emit(Vm.toJSON(r.vm!), () => vmTable([r.vm!]));
      vmm.close();
    });

  vm.command('destroy')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('tear the VM down now (Linux order), showing each step')
    .action(async (h: bigint) => {
      const vmm = client();
      const sessionId = await session(vmm);
      progress(`destroying VM ${h}`);
      const r = await withProgress(vmm, sessionId, [h], () => call<DestroyVmRequest, DestroyVmResponse>(vmm, vmm.destroyVm, { sessionId, handle: h }, HOST), (x) => x.vm?.state);
      emit(Vm.toJSON(r.vm!), () => {
        teardownTable(r.vm!);
        process.stdout.write(`VM ${h} ${stateName(r.vm!.state)}, ${r.vm!.hostPages} host pages still out\n`);
      });
      vmm.close();
    });

  vm.command('watch')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('print the VM’s events until it is destroyed (Ctrl-C stops watching; the session is renewed meanwhile)')
    .action(async (h: bigint) => {
      const vmm = client();
      const s = await current(vmm);
      if (s === undefined) {
        await session(vmm); // reports that there is none, exits 1
        return;
      }
      const renew = setInterval(() => void tryCall(vmm, vmm.renewLease, { sessionId: s.id }, HOST), Math.max(1_000, s.ttlMs / 3));
      renew.unref();
      const stream = vmm.watchVm({ sessionId: s.id, handle: h }, meta(HOST));
      process.on('SIGINT', () => {
        stream.cancel();
        process.exit(0);
      });
      // Under --output json, one JSON object per event (JSON lines), as the stream delivers them.
      stream.on('data', (m: WatchVmResponse) => m.event && emit(VmEvent.toJSON(m.event), () => process.stdout.write(`VM ${h}: ${eventText(m.event!)}\n`)));
      await new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('error', (e: grpc.ServiceError) => {
          if (e.code === grpc.status.CANCELLED) return resolve();
          const d = { code: e.code, message: e.details, others: [] };
          void tryCall<GetVmRequest, GetVmResponse>(vmm, vmm.getVm, { sessionId: s.id, handle: h }, HOST).then((r) => refused(r.ok ? d : r.error));
        });
      });
      clearInterval(renew);
      vmm.close();
    });

  vm.command('dtb')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('where the DTB lies in guest memory (GUNYAH_VM_SET_DTB_CONFIG)')
    .addOption(new Option('--guest <addr>', 'guest physical address').argParser(bytes).makeOptionMandatory())
    .addOption(new Option('--size <bytes>', 'size').argParser(bytes).makeOptionMandatory())
    .action(async (h: bigint, o: { guest: bigint; size: bigint }) => {
      const vmm = client();
      const sessionId = await session(vmm);
      const v = (await call<SetDtbConfigRequest, SetDtbConfigResponse>(vmm, vmm.setDtbConfig, { sessionId, handle: h, guestAddr: o.guest, size: o.size }, HOST)).vm!;
      emit(Vm.toJSON(v), () => vmTable([v]));
      vmm.close();
    });

  const mem = program.command('mem').description("guest memory of a VM in the CLI's session (GUNYAH_VM_MAP_MEM)");

  mem
    .command('bind')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description('bind host memory at a guest address, lent or shared, before start')
    .addOption(new Option('--guest <addr>', 'guest physical address (4 KiB aligned)').argParser(bytes).makeOptionMandatory())
    .addOption(new Option('--host <addr>', 'host physical address (4 KiB aligned)').argParser(bytes).makeOptionMandatory())
    .addOption(new Option('--size <bytes>', 'size (4 KiB aligned)').argParser(bytes).makeOptionMandatory())
    .addOption(new Option('--mode <mode>', 'lend: the host loses access; share: it keeps it').choices(['lend', 'share']).default('lend'))
    .addOption(new Option('--rights <rwx>', "the guest's rights").argParser(rightsArg).default(rightsArg('rwx'), 'rwx'))
    .action(async (h: bigint, o: { guest: bigint; host: bigint; size: bigint; mode: 'lend' | 'share'; rights: ReturnType<typeof rightsArg> }) => {
      const vmm = client();
      const sessionId = await session(vmm);
      const binding: Binding = { guestAddr: o.guest, hostAddr: o.host, size: o.size, mode: o.mode === 'lend' ? BindMode.BIND_MODE_LEND : BindMode.BIND_MODE_SHARE, ...o.rights };
      const v = (await call<MapMemRequest, MapMemResponse>(vmm, vmm.mapMem, { sessionId, handle: h, binding, unmap: false }, HOST)).vm!;
      emit(Vm.toJSON(v), () => bindingTable(v));
      vmm.close();
    });

  mem
    .command('unbind')
    .argument('<handle>', HANDLE_HELP, handleArg)
    .description("trim a binding's head or tail (host, mode and rights default to the binding's that holds the range)")
    .addOption(new Option('--guest <addr>', 'guest physical address').argParser(bytes).makeOptionMandatory())
    .addOption(new Option('--size <bytes>', 'size').argParser(bytes).makeOptionMandatory())
    .addOption(new Option('--host <addr>', 'host physical address of --guest').argParser(bytes))
    .addOption(new Option('--mode <mode>', 'the binding’s mode').choices(['lend', 'share']))
    .addOption(new Option('--rights <rwx>', 'the binding’s rights').argParser(rightsArg))
    .action(async (h: bigint, o: { guest: bigint; size: bigint; host?: bigint; mode?: 'lend' | 'share'; rights?: ReturnType<typeof rightsArg> }) => {
      const vmm = client();
      const sessionId = await session(vmm);
      let held: Binding | undefined;
      if (o.host === undefined || o.mode === undefined || o.rights === undefined) {
        const v = (await call<GetVmRequest, GetVmResponse>(vmm, vmm.getVm, { sessionId, handle: h }, HOST)).vm!;
        held = v.bindings.find((b) => b.guestAddr <= o.guest && o.guest + o.size <= b.guestAddr + b.size);
        if (held === undefined) {
          process.stderr.write(`hypmesh: no binding of VM ${h} holds guest ${hex(o.guest)}-${hex(o.guest + o.size - 1n)} (\`hypmesh vm show ${h}\`)\n`);
          process.exit(1);
        }
      }
      const binding: Binding = {
        guestAddr: o.guest,
        hostAddr: o.host ?? held!.hostAddr + (o.guest - held!.guestAddr),
        size: o.size,
        mode: o.mode === undefined ? held!.mode : o.mode === 'lend' ? BindMode.BIND_MODE_LEND : BindMode.BIND_MODE_SHARE,
        ...(o.rights ?? { allowRead: held!.allowRead, allowWrite: held!.allowWrite, allowExec: held!.allowExec }),
      };
      const v = (await call<MapMemRequest, MapMemResponse>(vmm, vmm.mapMem, { sessionId, handle: h, binding, unmap: true }, HOST)).vm!;
      emit(Vm.toJSON(v), () => bindingTable(v));
      vmm.close();
    });

  const sessionCmd = program.command('session').description("the CLI's VMM lease session");

  sessionCmd
    .command('show')
    .description('the session id and when its lease runs out')
    .action(async () => {
      const vmm = client();
      const s = await current(vmm);
      if (s === undefined) emit({ session: null }, () => process.stdout.write('no session (`hypmesh vm create` opens one)\n'));
      else {
        const n = (await call<ListVmsRequest, ListVmsResponse>(vmm, vmm.listVms, { sessionId: s.id }, HOST)).vms.length;
        emit({ session: s.id, file: sessionFilePath(), vms: n, ttlMs: s.ttlMs }, () =>
          process.stdout.write(`session ${s.id} (${sessionFilePath()}): ${n} VM${n === 1 ? '' : 's'}, lease ${s.ttlMs / 60_000} min, just renewed\n`),
        );
      }
      vmm.close();
    });

  sessionCmd
    .command('close')
    .description('end the session: every VM in it is torn down (as when a /dev/gunyah fd is released)')
    .action(async () => {
      const vmm = client();
      const s = await current(vmm);
      if (s === undefined) {
        emit({ session: null, vms: [] }, () => process.stdout.write('no session\n'));
        return vmm.close();
      }
      const vms = (await call<ListVmsRequest, ListVmsResponse>(vmm, vmm.listVms, { sessionId: s.id }, HOST)).vms;
      progress(`closing session ${s.id}${vms.length > 0 ? `: tearing down VM ${vms.map((v) => v.handle).join(', ')}` : ''}`);
      const r = await withProgress(
        vmm,
        s.id,
        vms.map((v) => v.handle),
        () => call<CloseLeaseRequest, CloseLeaseResponse>(vmm, vmm.closeLease, { sessionId: s.id }, HOST),
        () => VmState.VM_STATE_DESTROYED,
      );
      removeSessionFile();
      emit({ session: s.id, closed: true, vms: r.vms.map((v) => Vm.toJSON(v)) }, () => {
        for (const v of r.vms) {
          process.stdout.write(`\nVM ${v.handle} (${typeName(v.type)}) ${stateName(v.state)}\n`);
          teardownTable(v);
        }
        process.stdout.write(`session ${s.id} closed\n`);
      });
      vmm.close();
    });
}
