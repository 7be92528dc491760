/**
 * A concurrent, seeded client workload against a Cluster (test/support/cluster.ts) whose services
 * may die and come back under it, recorded as a history for @hypmesh/history's checker (DESIGN.md
 * §7; issue 9 items 1 and 6). Jepsen's shape: each worker is one process, one operation at a time,
 * an `invoke` then `ok`, `fail` (the service answered a refusal) or `info` (UNAVAILABLE,
 * DEADLINE_EXCEEDED and the like: the outcome is unknown).
 *
 * Each worker draws from its own PRNG stream (splitmix32 of seed and worker): HLOS's MEM_SHARE and
 * MEM_LEND of 1–4 fresh pages with a fresh label (never reused, so an unknown create never
 * collides with a later one), MEM_RECLAIM, the peer VM's MEM_ACCEPT and MEM_RELEASE of a parcel,
 * and GUNYAH VMs through the VMM (create, bind, DTB, boot context, start; later destroy).
 *
 * The peer VM (a running VM that every parcel names in its ACL, accepting and releasing them) and each worker's
 * lease belong to one VMM process: after a VMM restart its sweep has torn them down, so they are
 * made again (the VMM keeps no sessions across a restart yet, issue 9 item 3).
 *
 * After the workload: `run` observation (quiesced), teardown (every parcel with one of our labels
 * released and reclaimed, found by label, not by a reply that may have been lost; every lease
 * closed), `final` observation. VMs are checked here, beside the checker (whose model is parcels):
 * every VM whose start was acknowledged and which was not destroyed is still listed by the VMM, as
 * long as the VMM that acknowledged it still runs.
 */
import * as grpc from '@grpc/grpc-js';
import { Prng } from '@hypmesh/fault';
import type { HistoryEntry, Observation } from '@hypmesh/history';
import { CoreServiceClient, MemoryKind, PageState, type MemoryMap, type OwnershipRun } from '@hypmesh/proto';
import { MemAcceptRequest, MemLendRequest, MemShareRequest, MemType, ParcelState, RmServiceClient, TransType, type ParcelSummary } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import type { Cluster } from './cluster.js';

const HOST = 3;
const PAGE = 4096n;
const MiB = 1n << 20n;
/**
 * Parcels at 4 GiB + 16 KiB per label; VMs bind 1 MiB at 6 GiB + 2 MiB per VM (the default core RAM
 * is 2..18 GiB, the VMM's donation region its top 64 MiB). Both wrap round within their window, 4..6
 * GiB and 6..17.75 GiB: a long run makes more than the 131,072 parcel slots or the 6,016 VM slots
 * (before, past the end every VM start failed: its memory was the donation region's, then no RAM). A
 * slot comes back round only after every other, long after its last holder was reclaimed or
 * destroyed; one still held (a leak) makes that create fail, which the history records as such.
 */
const PARCEL_BASE = 4n << 30n;
const PARCEL_SLOTS = 131_072n;
const VM_BASE = 6n << 30n;
const VM_SLOTS = 6_016n;
const CALL_DEADLINE_MS = 5_000;
/** Parcels one worker keeps at most (HLOS may hold 64, gunyah-rm.md §3; the VMM's DTB parcels count too). */
const PARCELS_PER_WORKER = 10;
const VMS_PER_WORKER = 2;
/** How long the system gets to settle (RM background settling, VMM sweeps) before an observation. */
const QUIESCE_MS = 1_000;
/** gRPC codes after which the caller cannot know whether the call applied (Jepsen's `info`). */
const UNKNOWN_OUTCOME = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED, grpc.status.UNKNOWN, grpc.status.INTERNAL]);
/** Clients reconnect to a restarted service quickly (grpc-js backs off up to 2 min by default). */
const CHANNEL_OPTIONS = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => unknown;
export type Outcome<T> = { kind: 'ok'; value: T } | { kind: 'fail' | 'info'; error: string; code: number };

export function call<T>(client: grpc.Client, fn: unknown, req: object, vmid = HOST, deadlineMs = CALL_DEADLINE_MS): Promise<Outcome<T>> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(vmid));
  return new Promise((resolve) => {
    try {
      (fn as Unary).call(client, req, md, { deadline: Date.now() + deadlineMs }, (e, r) => {
        if (e === null) resolve({ kind: 'ok', value: r as T });
        else resolve({ kind: UNKNOWN_OUTCOME.has(e.code) ? 'info' : 'fail', error: `${grpc.status[e.code]}: ${e.details}`, code: e.code });
      });
    } catch (e) {
      // A closed client (the test ended under a worker): nothing was sent.
      resolve({ kind: 'fail', error: `not sent: ${e instanceof Error ? e.message : String(e)}`, code: grpc.status.CANCELLED });
    }
  });
}

async function must<T>(what: string, p: Promise<Outcome<T>>): Promise<T> {
  const r = await p;
  if (r.kind !== 'ok') throw new Error(`${what} failed (${r.error})`);
  return r.value;
}

/** Retries `what` until it answers OK, at most `tries` times 200 ms apart (a service reconnecting). */
export async function eventually<T>(what: string, f: () => Promise<Outcome<T>>, tries = 150): Promise<T> {
  let last: Outcome<T> | undefined;
  for (let i = 0; i < tries; i++) {
    last = await f();
    if (last.kind === 'ok') return last.value;
    await sleep(200);
  }
  throw new Error(`${what} never succeeded; last: ${last?.kind === 'ok' ? '' : last?.error}`);
}

/** How long the teardown retries a reclaim answered MEM_INUSE, and waits for the VMM's restart sweep to end. */
const RECLAIM_RETRY_MS = 60_000;
const SWEEP_WAIT_MS = 150_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

interface Label {
  handle: number | undefined;
  /** Whether the peer may have it accepted (then MEM_RECLAIM is refused until it releases). */
  accepted: boolean | undefined;
  lend: boolean;
}
interface RunningVm {
  readonly handle: bigint;
  readonly sessionId: string;
  readonly vmmBoot: number;
}

export class Workload {
  readonly history: HistoryEntry[] = [];
  /** Leaks a DestroyVm or CloseLease reported (`Vm.leaked`), each with the VM. */
  readonly leaked: string[] = [];
  /** Operations completed (any outcome), for a test that waits for progress. */
  completed = 0;
  core: CoreServiceClient;
  rm: RmServiceClient;
  vmm: VmmServiceClient;
  private stopping = false;
  private workers: Promise<void>[] = [];
  private readonly labels = new Map<number, Label>();
  private nextLabel = 1;
  private nextVmSlot = 0;
  private readonly vms: RunningVm[][] = [];
  private readonly leases = new Map<number, { sessionId: string; vmmBoot: number }>();
  private peer: { vmid: number; vmmBoot: number; sessionId: string } | undefined;
  private peerMaking: Promise<number> | undefined;
  private ram: { base: bigint; sizeBytes: bigint }[] = [];

  constructor(
    private readonly c: Cluster,
    private readonly seed: number,
    private readonly workerCount = 3,
  ) {
    const creds = grpc.credentials.createInsecure();
    this.core = new CoreServiceClient(c.addrs.core, creds, CHANNEL_OPTIONS);
    this.rm = new RmServiceClient(c.addrs.rm, creds, CHANNEL_OPTIONS);
    this.vmm = new VmmServiceClient(c.addrs.vmm, creds, CHANNEL_OPTIONS);
  }

  /** The `boot` observation, before anything of ours exists. */
  async begin(): Promise<void> {
    const map = (await must<{ memoryMap?: MemoryMap }>('GetMemoryMap', call(this.core, this.core.getMemoryMap, {}))).memoryMap!;
    this.ram = map.regions.filter((r) => r.kind === MemoryKind.MEMORY_KIND_RAM);
    this.history.push(await this.observe('boot', true));
  }

  /** Starts the workers; they run until stop(). */
  start(): void {
    for (let w = 0; w < this.workerCount; w++) {
      this.vms.push([]);
      this.workers.push(this.worker(w));
    }
  }

  /** Resolves once `n` more operations have completed (any outcome); throws after `tries` × 100 ms. */
  async progress(n: number, tries = 600): Promise<void> {
    const target = this.completed + n;
    for (let i = 0; i < tries && this.completed < target; i++) await sleep(100);
    if (this.completed < target) throw new Error(`the workload made no progress: ${this.completed} of ${target} operations`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
  }

  /**
   * After stop(): the `run` observation; VMs acknowledged and not destroyed that the VMM no longer
   * lists (only those of the VMM process still running); teardown; the `final` observation.
   */
  async finish(): Promise<{ missingVms: string[] }> {
    await eventually('ListParcels after the workload', () => call(this.rm, this.rm.listParcels, {}));
    this.history.push(await this.observe('run', false));
    const listed = await eventually('ListAllVms', () => call<{ vms: { vm: Vm; sessionId: string }[] }>(this.vmm, this.vmm.listAllVms, {}));
    const handles = new Set(listed.vms.map((v) => `${v.sessionId}/${v.vm.handle}`));
    const missingVms = this.vms.flat().filter((v) => v.vmmBoot === this.c.boots.vmm && !handles.has(`${v.sessionId}/${v.handle}`)).map((v) => `VM ${v.handle} of session ${v.sessionId}`);

    // Teardown: every parcel with one of our labels, found by label (an unknown create resolved by reading).
    const ours = (await must<{ parcels: ParcelSummary[] }>('ListParcels', call(this.rm, this.rm.listParcels, {}))).parcels.filter((p) => p.ownerVmid === HOST && this.labels.has(p.label));
    // A parcel a swept VM (an earlier VMM's) still holds accepted answers MEM_INUSE until the restart
    // sweep has reset that VM (gunyah-rm.md §3.9: an accepted parcel cannot be reclaimed), and the
    // sweep in turn waits for HLOS's parcels naming the VM to go: so retry those, as a driver would
    // after the MEM_RELEASED its acceptor's reset sends, for at most RECLAIM_RETRY_MS.
    let pending = ours;
    for (const until = performance.now() + RECLAIM_RETRY_MS; pending.length > 0; await sleep(500)) {
      const busy: ParcelSummary[] = [];
      for (const p of pending) {
        const l = this.labels.get(p.label)!;
        l.handle = p.handle;
        if (this.peer !== undefined) await this.op(-1, 'mem_release', 'other', p.label, () => call(this.rm, this.rm.memRelease, { handle: p.handle }, this.peer!.vmid));
        const r = await this.op(-1, 'mem_reclaim', 'reclaim_parcel', p.label, () => call(this.rm, this.rm.memReclaim, { handle: p.handle, sanitize: false }));
        if (r.kind === 'ok') this.labels.delete(p.label);
        else if (r.error.includes('MEM_INUSE')) busy.push(p);
      }
      pending = busy;
      if (performance.now() > until) break;
    }
    for (const [label, l] of this.labels) if (!ours.some((p) => p.label === label) && l.handle === undefined) this.labels.delete(label);
    const leases: [string, { sessionId: string; vmmBoot: number }][] = [...this.leases.entries()].map(([w, l]) => [`worker ${w}`, l]);
    if (this.peer !== undefined) leases.push(['the peer', this.peer]);
    for (const [w, lease] of leases) {
      if (lease.vmmBoot !== this.c.boots.vmm) continue;
      const closed = await must<{ vms: Vm[] }>(`CloseLease of ${w}`, call(this.vmm, this.vmm.closeLease, { sessionId: lease.sessionId }, HOST, 60_000));
      for (const vm of closed.vms) this.leaked.push(...leaksOf(vm));
    }
    this.leases.clear();
    this.peer = undefined;
    await this.sweepEnded();
    this.history.push(await this.observe('final', true));
    return { missingVms };
  }

  /** What the core and the RM still hold (every grant, parcel and RM VM), one JSON line each: a finding's evidence. */
  async leftovers(): Promise<string[]> {
    const lines = (what: string, xs: readonly unknown[]): string[] => xs.map((x) => `${what} ${JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    const grants = await call<{ grants: unknown[] }>(this.core, this.core.listGrants, {});
    const parcels = await call<{ parcels: unknown[] }>(this.rm, this.rm.listParcels, {});
    const vms = await call<{ vms: unknown[] }>(this.rm, this.rm.listVms, {});
    return [
      ...(grants.kind === 'ok' ? lines('core grant', grants.value.grants) : [`core ListGrants: ${grants.kind}`]),
      ...(parcels.kind === 'ok' ? lines('rm parcel', parcels.value.parcels) : [`rm ListParcels: ${parcels.kind}`]),
      ...(vms.kind === 'ok' ? lines('rm vm', vms.value.vms) : [`rm ListVms: ${vms.kind}`]),
    ];
  }

  /** Waits (at most SWEEP_WAIT_MS) for the running VMM's restart sweep to log its end, if it runs one; a sweep still going is then a finding (sweepsOf). */
  private async sweepEnded(): Promise<void> {
    const vmm = this.c.processes.all.filter((p) => p.name.startsWith('vmm#')).at(-1);
    if (vmm === undefined) return;
    for (const until = performance.now() + SWEEP_WAIT_MS; performance.now() < until; await sleep(250)) {
      if (vmm.logs.some((x) => typeof x['msg'] === 'string' && x['msg'].startsWith('restart sweep'))) return;
    }
  }

  /** Completions by outcome, and each distinct refusal or unknown outcome (first 80 characters) with its count. */
  summary(): { ok: number; fail: number; info: number; why: Record<string, number> } {
    const out = { ok: 0, fail: 0, info: 0, why: {} as Record<string, number> };
    for (const e of this.history) {
      if (e.type !== 'ok' && e.type !== 'fail' && e.type !== 'info') continue;
      out[e.type]++;
      if (e.type !== 'ok') {
        const k = `${e.f} ${e.type} ${(e.error ?? '').slice(0, 80)}`;
        out.why[k] = (out.why[k] ?? 0) + 1;
      }
    }
    return out;
  }

  close(): void {
    for (const c of [this.core, this.rm, this.vmm]) c.close();
  }

  /** One recorded operation of process `p` (-1: the teardown, process 99). */
  private async op<T>(p: number, f: string, kind: 'create_parcel' | 'reclaim_parcel' | 'other', label: number | undefined, run: () => Promise<Outcome<T>>, value?: unknown): Promise<Outcome<T>> {
    const process = p < 0 ? 99 : p;
    this.history.push({ type: 'invoke', process, f, kind, ...(label === undefined ? {} : { label }), ...(value === undefined ? {} : { value }) });
    const r = await run();
    if (r.kind === 'ok') this.history.push({ type: 'ok', process, f });
    else this.history.push({ type: r.kind, process, f, error: r.error });
    this.completed++;
    return r;
  }

  /** The peer VM of the running VMM process, made (once) through its own lease. */
  private async peerVmid(): Promise<number | undefined> {
    if (this.peer !== undefined && this.peer.vmmBoot === this.c.boots.vmm) return this.peer.vmid;
    this.peerMaking ??= (async () => {
      const boot = this.c.boots.vmm;
      const lease = await must<{ lease?: { sessionId: string } }>('OpenLease (peer)', call(this.vmm, this.vmm.openLease, { ttlMs: 3_600_000 }));
      const sessionId = lease.lease!.sessionId;
      // Running: only a running guest can accept and release memory (a VM in LOAD runs no code).
      const booted = await this.bootVm(sessionId);
      if (booted.outcome.kind !== 'ok') {
        if (booted.vm !== undefined) await call(this.vmm, this.vmm.closeLease, { sessionId }, HOST, 60_000);
        throw new Error(`the peer VM did not boot: ${booted.outcome.error}`);
      }
      this.peer = { vmid: booted.vm!.vmid, vmmBoot: boot, sessionId };
      return booted.vm!.vmid;
    })().finally(() => (this.peerMaking = undefined));
    return this.peerMaking.catch(() => undefined);
  }

  private async lease(w: number): Promise<{ sessionId: string; vmmBoot: number } | undefined> {
    const l = this.leases.get(w);
    if (l !== undefined && l.vmmBoot === this.c.boots.vmm) return l;
    const boot = this.c.boots.vmm;
    const r = await call<{ lease?: { sessionId: string } }>(this.vmm, this.vmm.openLease, { ttlMs: 3_600_000 });
    if (r.kind !== 'ok') return undefined;
    const fresh = { sessionId: r.value.lease!.sessionId, vmmBoot: boot };
    this.leases.set(w, fresh);
    // VMs of an earlier VMM process were swept with their lease.
    this.vms[w] = this.vms[w]!.filter((v) => v.vmmBoot === boot);
    return fresh;
  }

  private async worker(w: number): Promise<void> {
    const prng = new Prng((this.seed * 0x9e3779b1 + w * 0x85ebca6b) >>> 0);
    const mine = new Set<number>();
    while (!this.stopping) {
      const roll = prng.nextFraction();
      // A create whose outcome stayed unknown and whose read-back failed too (the RM was down) is
      // read back again, as a driver would, so its parcel is reclaimed in the run and not left
      // naming a peer VM that a restart sweep is waiting to deallocate.
      if (roll < 0.55 && [...mine].some((l) => this.labels.get(l)?.handle === undefined)) await this.resolve(mine);
      const known = [...mine].filter((l) => this.labels.get(l)?.handle !== undefined);
      const pick = (): number => known[prng.nextIntInclusive(0, known.length - 1)]!;
      let r: Outcome<unknown>;
      if (roll < 0.35 && mine.size < PARCELS_PER_WORKER) r = await this.create(w, prng, mine);
      else if (roll < 0.55 && known.length > 0) r = await this.reclaim(w, pick(), mine);
      else if (roll < 0.65 && known.length > 0) r = await this.accept(w, pick());
      else if (roll < 0.72 && known.length > 0) r = await this.release(w, pick());
      else if (roll < 0.88 || this.vms[w]!.length === 0) r = this.vms[w]!.length < VMS_PER_WORKER ? await this.vmStart(w) : await this.vmDestroy(w, prng);
      else r = await this.vmDestroy(w, prng);
      // A service that is down answers at once: do not spin on it.
      if (r.kind === 'info') await sleep(100);
    }
  }

  private async create(w: number, prng: Prng, mine: Set<number>): Promise<Outcome<unknown>> {
    const peer = await this.peerVmid();
    if (peer === undefined) return { kind: 'info', error: 'no peer VM yet', code: grpc.status.UNAVAILABLE };
    const lend = prng.nextFraction() < 0.3;
    const label = this.nextLabel++;
    const pages = BigInt(prng.nextIntInclusive(1, 4));
    const base = PARCEL_BASE + (BigInt(label) % PARCEL_SLOTS) * 4n * PAGE;
    const acl = lend ? [{ vmid: peer, rights: 6 }] : [{ vmid: HOST, rights: 7 }, { vmid: peer, rights: 6 }];
    const req = { memType: MemType.MEM_TYPE_NORMAL, label, acl, sgl: [{ base, size: pages * PAGE }] };
    const f = lend ? 'mem_lend' : 'mem_share';
    const r = await this.op(w, f, 'create_parcel', label, () => call<{ handle: number }>(this.rm, lend ? this.rm.memLend : this.rm.memShare, lend ? MemLendRequest.fromPartial(req) : MemShareRequest.fromPartial(req)), {
      base: hex(base),
      pages: Number(pages),
      peer,
    });
    if (r.kind !== 'fail') {
      this.labels.set(label, { handle: r.kind === 'ok' ? r.value.handle : undefined, accepted: false, lend });
      mine.add(label);
    }
    if (r.kind === 'info') await this.resolve(mine);
    return r;
  }

  /** Labels of unknown creates looked up by reading ListParcels (a Jepsen client's read after a fault). */
  private async resolve(mine: Set<number>): Promise<void> {
    const r = await call<{ parcels: ParcelSummary[] }>(this.rm, this.rm.listParcels, {});
    if (r.kind !== 'ok') return;
    for (const label of mine) {
      const l = this.labels.get(label)!;
      if (l.handle !== undefined) continue;
      const p = r.value.parcels.find((x) => x.label === label && x.ownerVmid === HOST);
      if (p !== undefined) l.handle = p.handle;
    }
  }

  private async reclaim(w: number, label: number, mine: Set<number>): Promise<Outcome<unknown>> {
    const l = this.labels.get(label)!;
    const r = await this.op(w, 'mem_reclaim', 'reclaim_parcel', label, () => call(this.rm, this.rm.memReclaim, { handle: l.handle, sanitize: false }), { handle: l.handle });
    if (r.kind === 'ok') {
      this.labels.delete(label);
      mine.delete(label);
    } else if (r.kind === 'fail' && r.error.includes('HANDLE_INVALID')) {
      // Gone already: an earlier reclaim with an unknown outcome applied.
      mine.delete(label);
    }
    return r;
  }

  private async accept(w: number, label: number): Promise<Outcome<unknown>> {
    const l = this.labels.get(label)!;
    const peer = this.peer?.vmid;
    if (peer === undefined) return { kind: 'info', error: 'no peer VM', code: grpc.status.UNAVAILABLE };
    const r = await this.op(w, 'mem_accept', 'other', label, () =>
      call(this.rm, this.rm.memAccept, MemAcceptRequest.fromPartial({ handle: l.handle!, memType: MemType.MEM_TYPE_NORMAL, transType: l.lend ? TransType.TRANS_TYPE_LEND : TransType.TRANS_TYPE_SHARE, done: true }), peer),
    );
    if (r.kind !== 'fail') l.accepted = r.kind === 'ok' ? true : undefined;
    return r;
  }

  private async release(w: number, label: number): Promise<Outcome<unknown>> {
    const l = this.labels.get(label)!;
    const peer = this.peer?.vmid;
    if (peer === undefined) return { kind: 'info', error: 'no peer VM', code: grpc.status.UNAVAILABLE };
    const r = await this.op(w, 'mem_release', 'other', label, () => call(this.rm, this.rm.memRelease, { handle: l.handle }, peer));
    if (r.kind === 'ok') l.accepted = false;
    return r;
  }

  /** Create, bind 1 MiB, DTB, boot context, start in `sessionId`: the VM as far as it got, and how the first failing step ended. */
  private async bootVm(sessionId: string): Promise<{ vm: Vm | undefined; outcome: Outcome<unknown> }> {
    const hostAddr = VM_BASE + (BigInt(this.nextVmSlot++) % VM_SLOTS) * 2n * MiB;
    const created = await call<{ vm?: Vm }>(this.vmm, this.vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 });
    if (created.kind !== 'ok') return { vm: undefined, outcome: created };
    const vm = created.value.vm!;
    const at = (extra: object): object => ({ sessionId, handle: vm.handle, ...extra });
    const steps: [unknown, object][] = [
      [this.vmm.mapMem, at({ binding: { guestAddr: 0x8000_0000n, hostAddr, size: 1n * MiB, mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true }, unmap: false })],
      [this.vmm.setDtbConfig, at({ guestAddr: 0x8008_0000n, size: 0x2000n })],
      [this.vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n })],
      [this.vmm.startVm, at({})],
    ];
    for (const [fn, req] of steps) {
      const s = await call(this.vmm, fn, req);
      if (s.kind !== 'ok') return { vm, outcome: s };
    }
    return { vm, outcome: { kind: 'ok', value: undefined } };
  }

  /** A GUNYAH VM booted through the VMM: one operation; a VM left half-made is destroyed. */
  private async vmStart(w: number): Promise<Outcome<unknown>> {
    const lease = await this.lease(w);
    if (lease === undefined) return { kind: 'info', error: 'no lease', code: grpc.status.UNAVAILABLE };
    const { sessionId } = lease;
    let vm: Vm | undefined;
    const r = await this.op(w, 'vm_start', 'other', undefined, async () => {
      const booted = await this.bootVm(sessionId);
      vm = booted.vm;
      return booted.outcome;
    });
    if (r.kind === 'ok') this.vms[w]!.push({ handle: vm!.handle, sessionId, vmmBoot: lease.vmmBoot });
    else if (vm !== undefined) await this.destroy(w, { handle: vm.handle, sessionId, vmmBoot: lease.vmmBoot });
    return r;
  }

  private async vmDestroy(w: number, prng: Prng): Promise<Outcome<unknown>> {
    const vms = this.vms[w]!;
    if (vms.length === 0) return { kind: 'fail', error: 'none', code: 0 };
    const vm = vms[prng.nextIntInclusive(0, vms.length - 1)]!;
    return this.destroy(w, vm);
  }

  private async destroy(w: number, vm: RunningVm): Promise<Outcome<unknown>> {
    const r = await this.op(w, 'vm_destroy', 'other', undefined, () => call<{ vm?: Vm }>(this.vmm, this.vmm.destroyVm, { sessionId: vm.sessionId, handle: vm.handle }, HOST, 60_000), { handle: String(vm.handle) });
    if (r.kind === 'ok' && r.value.vm !== undefined) this.leaked.push(...leaksOf(r.value.vm));
    // Destroyed, or its session is gone with the VMM that held it (the restart sweep's to tear down).
    if (r.kind === 'ok' || r.kind === 'fail') this.vms[w] = this.vms[w]!.filter((x) => x !== vm);
    return r;
  }

  /** The RM's HLOS parcels, the core's ownership map and invariants, and the handles we know. */
  async observe(phase: Observation['phase'], judgeForgotten: boolean): Promise<Observation> {
    await sleep(QUIESCE_MS);
    const parcels = await eventually('ListParcels', () => call<{ parcels: ParcelSummary[] }>(this.rm, this.rm.listParcels, {}));
    const runs: OwnershipRun[] = [];
    for (const r of this.ram) runs.push(...(await eventually('OwnershipMap', () => call<{ runs: OwnershipRun[] }>(this.core, this.core.ownershipMap, { base: r.base / PAGE, count: r.sizeBytes / PAGE, runsMax: 0 }))).runs);
    const inv = await eventually('CheckInvariants', () => call<{ violations: string[] }>(this.core, this.core.checkInvariants, {}));
    const hostOwned = (base: bigint): boolean => runs.some((r) => r.base <= base && base < r.base + r.count && r.ownerVmid === HOST && r.hostState === PageState.PAGE_STATE_OWNED);
    return {
      type: 'observe',
      phase,
      parcels: parcels.parcels
        .filter((p) => p.ownerVmid === HOST)
        .map((p) => ({
          handle: p.handle,
          owner: p.ownerVmid,
          label: p.label,
          state: ParcelState[p.state]?.replace('PARCEL_STATE_', '') ?? String(p.state),
          coreGrant: p.regions.some((g) => !hostOwned(g.base / PAGE)),
        })),
      ownership: runs.map((r) => `${hex(r.base)}+${hex(r.count)} owner=${r.ownerVmid} host=${PageState[r.hostState]?.replace('PAGE_STATE_', '') ?? r.hostState}`),
      invariantViolations: inv.violations.map((v) => `core: ${v}`),
      clientHandles: judgeForgotten ? { [HOST]: [...this.labels.values()].flatMap((l) => (l.handle === undefined ? [] : [l.handle])) } : {},
    };
  }
}

/** What a VM's teardown left behind, with its failed steps' last errors (why it was left). */
const leaksOf = (vm: Vm): string[] =>
  vm.leaked.length === 0 ? [] : [...vm.leaked.map((l) => `VM ${vm.vmid}: ${l}`), ...vm.teardown.filter((t) => !t.ok).map((t) => `VM ${vm.vmid}: teardown step ${t.step} failed after ${t.attempts} attempt(s): ${t.error}`)];

/** One way a run fell short: a checker verdict (`check:<name>`), or `missing_vms`, `leaked`, `live`, `sweep`, `bugs`. */
export interface Finding {
  readonly key: string;
  readonly details: readonly string[];
}

/**
 * Everything a finished run is judged on, as findings (empty: clean): the checker's verdicts on the
 * history, the VMs that went missing, what teardown reported leaked, `hypmesh check --live`'s
 * disagreements, a VMM restart sweep that did not end clean, and any `bug:` log line.
 */
export function findings(
  report: { verdicts: readonly { check: string; status: string; details: readonly string[] }[]; malformed: readonly string[] },
  run: { missingVms: readonly string[]; leaked: readonly string[]; live: { code: number; out: string; err: string }; sweeps: readonly string[]; bugs: readonly unknown[] },
): Finding[] {
  const out: Finding[] = [];
  if (report.malformed.length > 0) out.push({ key: 'malformed', details: report.malformed });
  for (const v of report.verdicts) if (v.status !== 'pass') out.push({ key: `check:${v.check}`, details: [v.status, ...v.details] });
  if (run.missingVms.length > 0) out.push({ key: 'missing_vms', details: run.missingVms });
  if (run.leaked.length > 0) out.push({ key: 'leaked', details: run.leaked });
  if (run.live.code !== 0) out.push({ key: 'live', details: [`exit ${run.live.code}`, ...run.live.out.trim().split('\n'), run.live.err] });
  const unclean = run.sweeps.filter((m) => m !== 'restart sweep done: everything an earlier VMM held is back');
  if (unclean.length > 0) out.push({ key: 'sweep', details: unclean });
  if (run.bugs.length > 0) out.push({ key: 'bugs', details: run.bugs.map((b) => JSON.stringify(b)) });
  return out;
}

/** The restart sweeps' end lines of every VMM process after the first (one per restart), or a note that one has not ended. */
export function sweepsOf(c: Cluster): string[] {
  return c.processes.all
    .filter((p) => p.name.startsWith('vmm#'))
    .map((p) => {
      const l = p.logs.find((x) => typeof x['msg'] === 'string' && x['msg'].startsWith('restart sweep'));
      return l === undefined ? `${p.name}: the restart sweep had not ended` : `${l['msg'] as string}${l['msg'] === 'restart sweep done: everything an earlier VMM held is back' ? '' : ` ${JSON.stringify(l['report'])}`}`;
    })
    .map((m) => (m.startsWith('restart sweep done: everything an earlier VMM held is back') ? 'restart sweep done: everything an earlier VMM held is back' : m));
}
