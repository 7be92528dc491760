/**
 * `hypmesh console`: an HTTP server on loopback that serves one page (page.ts) and pushes what the
 * running services hold to it as server-sent events (issue 12 item 1). The page never polls.
 *
 * Where each thing comes from:
 * - injected faults: FaultService.Events, a server stream on each service (fault.proto), re-opened
 *   when it ends (a restarted service);
 * - a VM's stage-2 (core AddressSpaceMap, IPA→PA runs with level and rights): GET /stage2.json?vmid=N,
 *   which the page asks when a VM is picked and again on each pushed snapshot (not on a timer);
 * - the memory map, VMs, parcels and grants: the services' list calls (core OwnershipMap,
 *   GetMemoryMap, ListGrants; RM ListVms, ListParcels all_vms; VMM ListAllVms), which have no
 *   stream, asked by this process every `pollMs`; only a changed look is pushed, and the
 *   difference becomes timeline events (model.ts diffSnapshots).
 *
 * - RM notifications: RmService.WatchNotifications as HLOS, a tap on every notification the RM
 *   queues for any VM that takes none off a queue (rm_service.proto), re-opened when it ends;
 *   each a timeline line of kind `notification` with its name, the VMID it went to and its fields.
 *
 * Two streams are deliberately not opened: RmService.Subscribe would take notifications off a
 * VM's one RX queue (the VMM's or a guest's own; rm_service.proto Subscribe). And
 * VmmService.WatchVm names the session, which renews a lease session (vmm_service.proto), so the
 * console would keep a CLI's VMs alive. ListAllVms renews no lease; VM status changes are read
 * from it instead.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, GranuleState, GrantType, MemoryKind, PageState, type AddressSpaceMapResponse } from '@hypmesh/proto';
import { Boundary, FaultServiceClient, type FaultEvent } from '@hypmesh/proto/fault';
import { ExitType, MemType, OsStatus, ParcelState, RmServiceClient, StopReason, TransType, VmStatus, type SubscribeResponse, type WatchNotificationsResponse } from '@hypmesh/proto/rm';
import { VmmServiceClient, VmState, VmType } from '@hypmesh/proto/vmm';
import { diffSnapshots, EMPTY_SNAPSHOT, enumName, idText, rightsText, Timeline, VMID_HOST, type EventDraft, type Stage2RunView, type Stage2View, type GrantView, type ParcelView, type RegionView, type RunView, type Snapshot, type VmView } from './model.js';
import { PAGE_HTML } from './page.js';

export interface ConsoleOptions {
  /** host:port to serve on; port 0 picks one. */
  readonly address: string;
  readonly core: string;
  readonly rm: string;
  readonly vmm: string;
  /** How often the list calls are asked, ms. */
  readonly pollMs?: number;
  /** Deadline of each call, ms (DESIGN.md §8: every client call has one). */
  readonly callTimeoutMs?: number;
}

export interface RunningConsole {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export const POLL_MS_DEFAULT = 250;
const CALL_TIMEOUT_MS_DEFAULT = 5_000;
/** The core returns at most this many runs per OwnershipMap call (query.proto runs_max). */
const RUNS_PER_CALL = 65_536;
/** A map with more runs than this is cut (and says so in `errors`) rather than hold the console. */
const RUNS_MAX = 1_000_000;
const FAULT_RETRY_MS = 1_000;
/** Fault keys remembered for de-duplication (oldest forgotten first). */
const SEEN_FAULTS_MAX = 10_000;

type Callback<Res> = (e: grpc.ServiceError | null, r: Res) => void;
type UnaryFn<Req, Res> = (req: Req, md: grpc.Metadata, options: grpc.CallOptions, cb: Callback<Res>) => unknown;

/** The console asks as HOST/HLOS (3): ListAllVms and ListParcels all_vms are HOST/HLOS-only. */
const hostMeta = (): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('x-hypmesh-caller-vmid', String(VMID_HOST));
  return md;
};

function ask<Req, Res>(client: grpc.Client, fn: UnaryFn<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, hostMeta(), { deadline: Date.now() + timeoutMs }, (e, r) => (e === null ? resolve(r) : reject(e))));
}

const num = (v: bigint | number): number => Number(v);
const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Takes one look at the three services; a service that cannot answer is named in `errors`, its rows empty. */
export async function takeSnapshot(core: CoreServiceClient, rm: RmServiceClient, vmm: VmmServiceClient, timeoutMs: number): Promise<Snapshot> {
  const errors: string[] = [];
  let regions: RegionView[] = [];
  let runs: RunView[] = [];
  let grants: GrantView[] = [];
  try {
    const mm = await ask(core, core.getMemoryMap, {}, timeoutMs);
    regions = (mm.memoryMap?.regions ?? []).map((r) => ({ kind: enumName(MemoryKind[r.kind], 'MEMORY_KIND_'), base: num(r.base / 4096n), count: num(r.sizeBytes / 4096n) }));
    for (const region of regions) {
      let base = BigInt(region.base);
      const end = BigInt(region.base + region.count);
      while (base < end && runs.length < RUNS_MAX) {
        const page = await ask(core, core.ownershipMap, { base, count: end - base, runsMax: RUNS_PER_CALL }, timeoutMs);
        for (const r of page.runs)
          runs.push({
            base: num(r.base),
            count: num(r.count),
            owner: r.ownerVmid,
            kind: enumName(MemoryKind[r.kind], 'MEMORY_KIND_'),
            host: enumName(PageState[r.hostState], 'PAGE_STATE_'),
            hyp: enumName(PageState[r.hypState], 'PAGE_STATE_'),
            granule: enumName(GranuleState[r.granuleState], 'GRANULE_STATE_'),
            grant: idText(r.grantId),
            pins: r.pins,
            guestShares: r.guestShares,
          });
        if (page.nextBase === undefined) break;
        base = page.nextBase;
      }
    }
    if (runs.length >= RUNS_MAX) errors.push(`core: the map has more than ${RUNS_MAX} runs; the rest is not drawn`);
    grants = (await ask(core, core.listGrants, {}, timeoutMs)).grants.map((g) => ({
      id: idText(g.grantId),
      type: enumName(GrantType[g.type], 'GRANT_TYPE_'),
      owner: g.ownerVmid,
      acl: g.aclVmids,
      borrowers: g.borrowerVmids,
      frames: num(g.frames),
    }));
  } catch (e) {
    errors.push(`core: ${why(e)}`);
    regions = [];
    runs = [];
    grants = [];
  }

  let rmStatus = new Map<number, string>();
  let parcels: ParcelView[] = [];
  try {
    rmStatus = new Map((await ask(rm, rm.listVms, {}, timeoutMs)).vms.map((v) => [v.vmid, v.status]));
    parcels = (await ask(rm, rm.listParcels, { allVms: true }, timeoutMs)).parcels.map((p) => ({
      handle: p.handle,
      owner: p.ownerVmid,
      transType: enumName(TransType[p.transType], 'TRANS_TYPE_'),
      memType: enumName(MemType[p.memType], 'MEM_TYPE_'),
      state: enumName(ParcelState[p.state], 'PARCEL_STATE_'),
      acl: p.acl.map((a) => a.vmid),
      acceptedBy: p.acceptedBy,
      grant: idText(p.grantId),
      bytes: p.regions.reduce((s, r) => s + num(r.size), 0),
    }));
  } catch (e) {
    errors.push(`rm: ${why(e)}`);
  }

  let vms: VmView[] = [];
  try {
    vms = (await ask(vmm, vmm.listAllVms, {}, timeoutMs)).vms.flatMap((rec) =>
      rec.vm === undefined
        ? []
        : [
            {
              handle: num(rec.vm.handle),
              type: enumName(VmType[rec.vm.type], 'VM_TYPE_'),
              vmid: rec.vm.vmid,
              ipaBits: rec.vm.ipaBits,
              state: enumName(VmState[rec.vm.state], 'VM_STATE_'),
              rmStatus: rec.vm.rmStatus,
              rmListed: rmStatus.get(rec.vm.vmid) ?? '',
              hostPages: num(rec.vm.hostPages),
              session: rec.sessionId,
            },
          ],
    );
  } catch (e) {
    errors.push(`vmm: ${why(e)}`);
  }
  return { regions, runs, vms, parcels, grants, errors };
}

/** IPA frames asked for: every IPA width (52 bits at most, stage2-models.md §B4; the core takes frame fields below 2^40) is cut at the space's own. */
const IPA_FRAMES_ALL = 2 ** 40 - 1;
/** Stage-2 runs kept for one VM (the page lists them; a map this fragmented is cut and says so). */
const STAGE2_RUNS_MAX = 100_000;

/** One VM's stage-2 (CoreService.AddressSpaceMap, paged); a VMID the core has no space for gives `error`. */
export async function takeStage2(core: CoreServiceClient, vmid: number, timeoutMs: number): Promise<Stage2View> {
  const runs: Stage2RunView[] = [];
  try {
    let base: bigint | undefined = 0n;
    while (base !== undefined && runs.length < STAGE2_RUNS_MAX) {
      const page: AddressSpaceMapResponse = await ask(core, core.addressSpaceMap, { vmid, base, count: BigInt(IPA_FRAMES_ALL) - base, runsMax: RUNS_PER_CALL }, timeoutMs);
      for (const r of page.runs)
        runs.push({ ipa: num(r.base), count: num(r.count), pa: num(r.outputFrame), level: r.level, rights: rightsText(r.perms), state: enumName(PageState[r.state], 'PAGE_STATE_'), device: r.device });
      base = page.nextBase;
    }
  } catch (e) {
    return { vmid, runs: [], error: `core: ${why(e)}` };
  }
  return { vmid, runs, ...(runs.length >= STAGE2_RUNS_MAX && { cut: true }) };
}

/** A VMID from a query string: an integer in [0, 2^32); undefined for anything else. */
export function vmidParam(text: string | null): number | undefined {
  if (text === null || !/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 0xffff_ffff ? n : undefined;
}

/**
 * An injected fault's identity. The suite runs the three services over one fault engine, so each
 * service's Events stream carries the same event: the console shows it once.
 */
export const faultKey = (e: FaultEvent): string => [e.ruleId, e.boundary, e.method, e.rmMessage, e.globalOpIndex, e.timeMs].join('|');

/** One injected fault as a timeline line: the rule, the action, at which boundary and on which call. */
export function faultDraft(e: FaultEvent): EventDraft {
  const action = Object.entries(e.action ?? {}).find(([, v]) => v !== undefined)?.[0] ?? 'action';
  const call = e.method || e.rmMessage || '?';
  return {
    kind: 'fault',
    vmids: e.callerVmid === undefined ? [] : [e.callerVmid],
    rule: e.ruleId,
    text: `rule ${e.ruleId} ${action} at ${enumName(Boundary[e.boundary], 'BOUNDARY_')} on ${call} (op ${e.opIndex})`,
  };
}

/** Each payload of SubscribeResponse's oneof, by its RM notification name (gunyah-rm.md §2.2). */
const NOTIFICATION_NAMES = {
  memShared: 'MEM_SHARED',
  memReleased: 'MEM_RELEASED',
  memAccepted: 'MEM_ACCEPTED',
  memRecall: 'MEM_RECALL',
  vmExited: 'VM_EXITED',
  vmShutdown: 'VM_SHUTDOWN',
  vmStatus: 'VM_STATUS',
} as const satisfies { [K in keyof SubscribeResponse]?: string };

/** Enum fields of the payloads, shown by name: [values, prefix stripped]. */
const PAYLOAD_ENUMS: Record<string, [Record<number, string>, string]> = {
  vmStatus: [VmStatus, 'VM_STATUS_'],
  osStatus: [OsStatus, 'OS_STATUS_'],
  exitType: [ExitType, 'EXIT_TYPE_'],
  stopReason: [StopReason, 'STOP_REASON_'],
  memType: [MemType, 'MEM_TYPE_'],
  transType: [TransType, 'TRANS_TYPE_'],
};

/** A payload's scalar fields as `name=value` (enums by name; lists and bytes left out). */
function payloadFields(payload: object): string {
  return Object.entries(payload)
    .filter(([, v]) => ['number', 'bigint', 'boolean', 'string'].includes(typeof v))
    .map(([k, v]) => {
      const e = PAYLOAD_ENUMS[k];
      return `${k}=${e === undefined ? String(v) : enumName(e[0][v as number], e[1])}`;
    })
    .join(' ');
}

/** One watched RM notification as a timeline line: its name, the VMID it was queued for, its fields. */
export function notificationDraft(w: WatchNotificationsResponse): EventDraft | undefined {
  const n = w.notification;
  if (n === undefined) return undefined;
  const key = (Object.keys(NOTIFICATION_NAMES) as (keyof typeof NOTIFICATION_NAMES)[]).find((k) => n[k] !== undefined);
  const name = key === undefined ? `0x${n.messageId.toString(16)}` : NOTIFICATION_NAMES[key];
  const payload: object = key === undefined ? {} : n[key]!;
  const about = (payload as { vmid?: number }).vmid;
  const missed = w.missed > 0n ? ` (${w.missed} missed before)` : '';
  return {
    kind: 'notification',
    vmids: about === undefined || about === w.vmid ? [w.vmid] : [w.vmid, about],
    text: `RM ${name} to VMID ${w.vmid} (seq ${n.seq}): ${payloadFields(payload)}${missed}`.trimEnd(),
  };
}

/** Starts the console; resolves once it listens. */
export async function startConsole(o: ConsoleOptions): Promise<RunningConsole> {
  const hostPort = splitAddress(o.address);
  if (hostPort === undefined) throw new Error(`console address ${o.address}: expected host:port, e.g. 127.0.0.1:8080`);
  const [host, wanted] = hostPort;
  const pollMs = o.pollMs ?? POLL_MS_DEFAULT;
  const timeoutMs = o.callTimeoutMs ?? CALL_TIMEOUT_MS_DEFAULT;
  const creds = grpc.credentials.createInsecure();
  const core = new CoreServiceClient(o.core, creds);
  const rm = new RmServiceClient(o.rm, creds);
  const vmm = new VmmServiceClient(o.vmm, creds);
  const faults = { core: new FaultServiceClient(o.core, creds), rm: new FaultServiceClient(o.rm, creds), vmm: new FaultServiceClient(o.vmm, creds) };

  const timeline = new Timeline();
  const clients = new Set<ServerResponse>();
  let snapshot: Snapshot = EMPTY_SNAPSHOT;
  let snapshotJson = JSON.stringify(snapshot);
  let closed = false;

  const send = (res: ServerResponse, event: string, data: string): void => {
    res.write(`event: ${event}\ndata: ${data}\n\n`);
  };
  const broadcast = (event: string, data: string): void => {
    for (const res of clients) send(res, event, data);
  };
  const record = (d: EventDraft): void => broadcast('event', JSON.stringify(timeline.add(d, Date.now())));

  // The list calls, one look at a time (never two in flight), a changed look pushed.
  let timer: NodeJS.Timeout | undefined;
  const poll = async (): Promise<void> => {
    const next = await takeSnapshot(core, rm, vmm, timeoutMs).catch((e: unknown): Snapshot => ({ ...EMPTY_SNAPSHOT, errors: [`console: ${why(e)}`] }));
    if (closed) return;
    const json = JSON.stringify(next);
    if (json !== snapshotJson) {
      for (const d of diffSnapshots(snapshot, next)) record(d);
      snapshot = next;
      snapshotJson = json;
      broadcast('snapshot', json);
    }
    timer = setTimeout(() => void poll(), pollMs);
  };

  // FaultService.Events on each service, re-opened after it ends (the service restarted or was down).
  const streams: grpc.ClientReadableStream<unknown>[] = [];
  const seenFaults = new Set<string>();
  const watchFaults = (service: keyof typeof faults): void => {
    if (closed) return;
    const f = faults[service];
    const stream = f.events({}, hostMeta());
    streams.push(stream);
    stream.on('data', (r: { event?: FaultEvent }) => {
      if (r.event === undefined) return;
      const key = faultKey(r.event);
      if (seenFaults.has(key)) return;
      seenFaults.add(key);
      if (seenFaults.size > SEEN_FAULTS_MAX) seenFaults.delete(seenFaults.values().next().value!);
      record(faultDraft(r.event));
    });
    stream.on('error', () => undefined); // the 'close' below re-opens it
    stream.on('close', () => {
      streams.splice(streams.indexOf(stream), 1);
      if (!closed) setTimeout(() => watchFaults(service), FAULT_RETRY_MS).unref();
    });
  };

  // RmService.WatchNotifications as HLOS, re-opened after it ends (the RM restarted, was down or reset).
  const watchNotifications = (): void => {
    if (closed) return;
    const stream = rm.watchNotifications({}, hostMeta());
    streams.push(stream);
    stream.on('data', (w: WatchNotificationsResponse) => {
      const d = notificationDraft(w);
      if (d !== undefined) record(d);
    });
    stream.on('error', () => undefined); // the 'close' below re-opens it
    stream.on('close', () => {
      streams.splice(streams.indexOf(stream), 1);
      if (!closed) setTimeout(watchNotifications, FAULT_RETRY_MS).unref();
    });
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://console').pathname;
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end('GET only\n');
    } else if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE_HTML);
    } else if (path === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      send(res, 'snapshot', snapshotJson);
      send(res, 'timeline', JSON.stringify(timeline.all()));
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else if (path === '/stage2.json') {
      // A VM's stage-2, asked when the page picks a VM and again on each pushed snapshot.
      const vmid = vmidParam(new URL(req.url ?? '/', 'http://console').searchParams.get('vmid'));
      if (vmid === undefined) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('vmid: expected a VMID, an integer in [0, 2^32)\n');
        return;
      }
      void takeStage2(core, vmid, timeoutMs).then((v) => res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(v)));
    } else if (path === '/snapshot.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(snapshotJson);
    } else {
      res.writeHead(404).end('not found\n');
    }
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(wanted, host, () => resolve());
  }).catch((e: unknown) => {
    for (const c of [core, rm, vmm, ...Object.values(faults)]) c.close();
    throw e;
  });
  const port = (server.address() as AddressInfo).port;
  for (const s of ['core', 'rm', 'vmm'] as const) watchFaults(s);
  watchNotifications();
  await poll();

  return {
    url: `http://${host}:${port}/`,
    port,
    close: async () => {
      closed = true;
      clearTimeout(timer);
      for (const s of [...streams]) s.cancel();
      for (const res of clients) res.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of [core, rm, vmm, ...Object.values(faults)]) c.close();
    },
  };
}

/** host and port of `host:port`; undefined for anything else. */
export function splitAddress(address: string): [string, number] | undefined {
  const m = /^(.+):(\d{1,5})$/.exec(address);
  return m === null || Number(m[2]) > 65_535 ? undefined : [m[1]!, Number(m[2])];
}
