/**
 * `hypmesh chaos`: a seeded workload against a running hypmesh over gRPC, recorded as a history and
 * judged by the checker (DESIGN.md §7, issue 8 item 4; Jepsen's shape: set up, inject faults during
 * the workload, heal, tear down, read the final state, check).
 *
 *   1. setup (no faults): a lease session and one GUNYAH "peer" VM through the VM manager, whose
 *      VMID the parcels name in their ACL; the `boot` observation is taken before it.
 *   2. faults: with --faults, the plan is armed on every service through FaultService.Arm (a
 *      service that answers UNIMPLEMENTED cannot inject faults: said so, exit 2).
 *   3. workload: K ops drawn from the seed (splitmix32, @hypmesh/fault's Prng), one at a time:
 *      MEM_SHARE and MEM_LEND of 1–4 pages as HLOS with a fresh label; MEM_RECLAIM of a live one;
 *      a VM cycle through the VMM (create, bind, DTB, start, stop, destroy). Each is an `invoke`,
 *      then `ok`, `fail` (the service answered a refusal) or `info` (UNAVAILABLE, DEADLINE_EXCEEDED,
 *      CANCELLED, UNKNOWN, INTERNAL: the outcome is not known).
 *   4. heal: Disarm on every service; quiescence; the `run` observation.
 *   5. teardown: every parcel carrying one of our labels is reclaimed (ops with unknown outcome are
 *      resolved by reading ListParcels, as a Jepsen client reads after healing); the lease is
 *      closed, which destroys every VM of the session; quiescence; the `final` observation.
 *   6. the history is written (--history) and checked; exit 1 on any violation.
 *
 * Observations: the RM's parcels as HLOS sees them (ListParcels), the core's ownership map
 * (OwnershipMap over the memory map) and its invariants (CheckInvariants), and the handles this
 * client knows. The `run` observation does not judge forgotten handles (the VMM's parcels are
 * live then and this client cannot know their handles); `final` does: after teardown nothing of
 * HLOS's may be left that nobody knows.
 */
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Prng, loadPlanJson } from '@hypmesh/fault';
import { checkHistory, formatReport, historyToJsonLines, type CheckReport, type HistoryEntry, type Observation } from '@hypmesh/history';
import { CoreServiceClient, MemoryKind, PageState, type MemoryMap, type OwnershipRun } from '@hypmesh/proto';
import { FaultPlan as FaultPlanProto, FaultServiceClient } from '@hypmesh/proto/fault';
import { MemLendRequest, MemShareRequest, MemType, ParcelState, RmServiceClient, type ParcelSummary } from '@hypmesh/proto/rm';
import { BindMode, RegSet, VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { meta, cliCredentials } from './call.js';

const HOST = 3;
const PAGE = 4096n;
const MiB = 1n << 20n;
/** Parcel area: 64 slots of 4 pages, so that no two live parcels overlap. */
const SLOTS = 64;
const SLOT_PAGES = 4n;
/** How long the system gets to settle (RM background work, VMM teardown) before an observation. */
const QUIESCE_MS = 300;
const CALL_DEADLINE_MS = 5_000;
/** gRPC codes after which the caller cannot know whether the call applied (Jepsen's `info`). */
const UNKNOWN_OUTCOME = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED, grpc.status.UNKNOWN, grpc.status.INTERNAL]);

export interface ChaosOptions {
  readonly core: string;
  readonly rm: string;
  readonly vmm: string;
  readonly seed: number;
  readonly ops: number;
  /** The plan's proto3-JSON text, if faults are wanted. */
  readonly faultsJson?: string;
  readonly faultSeed?: number;
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly history: readonly HistoryEntry[];
  readonly report: CheckReport;
}

export class FaultServiceMissing extends Error {}

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void) => unknown;
type Outcome<T> = { kind: 'ok'; value: T } | { kind: 'fail' | 'info'; error: string };

function unary<T>(client: grpc.Client, fn: unknown, req: object, vmid = HOST): Promise<Outcome<T>> {
  return new Promise((resolve) =>
    (fn as Unary).call(client, req, meta(vmid), { deadline: Date.now() + CALL_DEADLINE_MS }, (e, r) => {
      if (e === null) resolve({ kind: 'ok', value: r as T });
      else resolve({ kind: UNKNOWN_OUTCOME.has(e.code) ? 'info' : 'fail', error: `${grpc.status[e.code]}: ${e.details}` });
    }),
  );
}

async function must<T>(what: string, p: Promise<Outcome<T>>): Promise<T> {
  const r = await p;
  if (r.kind !== 'ok') throw new Error(`hypmesh chaos: ${what} failed (${r.error})`);
  return r.value;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => {});
  const creds = cliCredentials();
  const core = new CoreServiceClient(o.core, creds);
  const rm = new RmServiceClient(o.rm, creds);
  const vmm = new VmmServiceClient(o.vmm, creds);
  const faults = [o.core, o.rm, o.vmm].map((a) => new FaultServiceClient(a, creds));
  const names = ['core', 'rm', 'vmm'];
  const h: HistoryEntry[] = [];
  const prng = new Prng(o.seed >>> 0);
  try {
    const map = (await must<{ memoryMap?: MemoryMap }>('GetMemoryMap', unary(core, core.getMemoryMap, {}))).memoryMap!;
    const ram = map.regions.filter((r) => r.kind === MemoryKind.MEMORY_KIND_RAM);
    const low = ram[0]!;
    // The demo's area (1 GiB into the lowest RAM region) plus 64 MiB for VM bindings, +128 MiB for parcels.
    const hostRam = low.base + (low.sizeBytes >= 2n * 1024n * MiB ? 1024n * MiB : low.sizeBytes / 2n - ((low.sizeBytes / 2n) % (2n * MiB)));
    const vmArea = hostRam + 64n * MiB;
    const parcelArea = hostRam + 128n * MiB;

    /** Labels this client created (or tried to), with the handle when known. */
    const live = new Map<number, { handle: number | undefined; slot: number }>();
    const freeSlots = Array.from({ length: SLOTS }, (_, i) => i);

    const observe = async (phase: Observation['phase'], judgeForgotten: boolean): Promise<Observation> => {
      await sleep(QUIESCE_MS);
      const parcels = (await must<{ parcels: ParcelSummary[] }>('ListParcels', unary(rm, rm.listParcels, {}))).parcels;
      const runs: OwnershipRun[] = [];
      for (const r of ram) runs.push(...(await must<{ runs: OwnershipRun[] }>('OwnershipMap', unary(core, core.ownershipMap, { base: r.base / PAGE, count: r.sizeBytes / PAGE, runsMax: 0 }))).runs);
      const inv = await must<{ violations: string[] }>('CheckInvariants', unary(core, core.checkInvariants, {}));
      const hostOwned = (base: bigint): boolean => runs.some((r) => r.base <= base && base < r.base + r.count && r.ownerVmid === HOST && r.hostState === PageState.PAGE_STATE_OWNED);
      return {
        type: 'observe',
        phase,
        parcels: parcels
          .filter((p) => p.ownerVmid === HOST)
          .map((p) => ({
            handle: p.handle,
            owner: p.ownerVmid,
            label: p.label,
            state: ParcelState[p.state]?.replace('PARCEL_STATE_', '') ?? String(p.state),
            // The grant is there while any of the parcel's pages is not plainly the host's.
            coreGrant: p.regions.some((g) => !hostOwned(g.base / PAGE)),
          })),
        ownership: runs.map((r) => `${hex(r.base)}+${hex(r.count)} owner=${r.ownerVmid} host=${PageState[r.hostState]?.replace('PAGE_STATE_', '') ?? r.hostState}`),
        invariantViolations: inv.violations.map((v) => `core: ${v}`),
        clientHandles: judgeForgotten ? { [HOST]: [...live.values()].flatMap((l) => (l.handle === undefined ? [] : [l.handle])) } : {},
      };
    };

    // Before anything changes: can every service inject faults at all?
    if (o.faultsJson !== undefined)
      for (const [i, f] of faults.entries()) {
        const e = await new Promise<grpc.ServiceError | null>((resolve) => f.list({}, meta(HOST), (err) => resolve(err)));
        if (e?.code === grpc.status.UNIMPLEMENTED)
          throw new FaultServiceMissing(
            `hypmesh chaos: the ${names[i]} service at ${[o.core, o.rm, o.vmm][i]} does not serve hypmesh.fault.v1.FaultService (UNIMPLEMENTED), so it cannot inject faults; run without --faults, or start a build whose services take --faults`,
          );
      }

    h.push(await observe('boot', true));

    // 1. setup, no faults yet
    const sessionId = (await must<{ lease?: { sessionId: string } }>('OpenLease', unary(vmm, vmm.openLease, { ttlMs: 600_000 }))).lease!.sessionId;
    const peer = (await must<{ vm?: Vm }>('CreateVm (peer)', unary(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }))).vm!;
    log(`chaos: seed ${o.seed}, ${o.ops} ops; peer VM VMID ${hex(peer.vmid)}`);

    // 2. faults
    if (o.faultsJson !== undefined) {
      const plan = loadPlanJson(o.faultsJson);
      if (!plan.ok) throw new Error(`hypmesh chaos: the plan is invalid:\n  ${plan.error.map((i) => `${i.path}: ${i.message}`).join('\n  ')}`);
      const proto = FaultPlanProto.fromJSON(JSON.parse(o.faultsJson));
      for (const [i, f] of faults.entries()) {
        const r = await new Promise<grpc.ServiceError | null>((resolve) => f.arm({ plan: proto, seed: (o.faultSeed ?? o.seed) >>> 0 }, meta(HOST), (e) => resolve(e)));
        if (r?.code === grpc.status.UNIMPLEMENTED)
          throw new FaultServiceMissing(`hypmesh chaos: the ${names[i]} service at ${[o.core, o.rm, o.vmm][i]} does not serve hypmesh.fault.v1.FaultService (UNIMPLEMENTED), so it cannot inject faults; run without --faults, or start a build whose services take --faults`);
        if (r !== null) throw new Error(`hypmesh chaos: arming the plan on ${names[i]} failed: ${grpc.status[r.code]}: ${r.details}`);
      }
      log(`chaos: plan armed on core, rm and vmm (fault seed ${(o.faultSeed ?? o.seed) >>> 0})`);
    }

    // 3. workload
    let nextLabel = 1;
    let vmSlot = 0;
    const record = <T>(f: string, r: Outcome<T>, value?: (v: T) => unknown): void => {
      if (r.kind === 'ok') h.push({ type: 'ok', process: 0, f, ...(value === undefined ? {} : { value: value(r.value) }) });
      else h.push({ type: r.kind, process: 0, f, error: r.error });
    };
    for (let op = 0; op < o.ops; op++) {
      const roll = prng.nextFraction();
      const labels = [...live.keys()].filter((l) => live.get(l)!.handle !== undefined);
      if (roll < 0.6 && freeSlots.length > 0) {
        const lend = roll < 0.15;
        const f = lend ? 'mem_lend' : 'mem_share';
        const slot = freeSlots.splice(prng.nextIntInclusive(0, freeSlots.length - 1), 1)[0]!;
        const pages = BigInt(prng.nextIntInclusive(1, Number(SLOT_PAGES)));
        const label = nextLabel++;
        const base = parcelArea + BigInt(slot) * SLOT_PAGES * PAGE;
        const acl = lend ? [{ vmid: peer.vmid, rights: 6 }] : [{ vmid: HOST, rights: 7 }, { vmid: peer.vmid, rights: 6 }];
        h.push({ type: 'invoke', process: 0, f, kind: 'create_parcel', label, value: { base: hex(base), pages: Number(pages) } });
        const req = { memType: MemType.MEM_TYPE_NORMAL, label, acl, sgl: [{ base, size: pages * PAGE }] };
        const r = await unary<{ handle: number }>(rm, lend ? rm.memLend : rm.memShare, lend ? MemLendRequest.fromPartial(req) : MemShareRequest.fromPartial(req));
        record(f, r, (v) => ({ handle: v.handle }));
        if (r.kind === 'fail') freeSlots.push(slot);
        else live.set(label, { handle: r.kind === 'ok' ? r.value.handle : undefined, slot });
      } else if (roll < 0.9 && labels.length > 0) {
        const label = labels[prng.nextIntInclusive(0, labels.length - 1)]!;
        const l = live.get(label)!;
        h.push({ type: 'invoke', process: 0, f: 'mem_reclaim', kind: 'reclaim_parcel', label, value: { handle: l.handle } });
        const r = await unary(rm, rm.memReclaim, { handle: l.handle, sanitize: false });
        record('mem_reclaim', r);
        if (r.kind === 'ok') {
          live.delete(label);
          freeSlots.push(l.slot);
        }
      } else {
        const guest = vmArea + BigInt(vmSlot++ % 8) * 4n * MiB;
        h.push({ type: 'invoke', process: 0, f: 'vm_cycle', kind: 'other', value: { host: hex(guest) } });
        record('vm_cycle', await vmCycle(vmm, sessionId, guest));
      }
    }

    // 4. heal
    if (o.faultsJson !== undefined) for (const f of faults) await new Promise((resolve) => f.disarm({ ruleIds: [], all: true }, meta(HOST), resolve));
    h.push(await observe('run', false));

    // 5. teardown: reclaim every parcel with one of our labels (resolving unknown outcomes by reading)
    const ours = (await must<{ parcels: ParcelSummary[] }>('ListParcels', unary(rm, rm.listParcels, {}))).parcels.filter((p) => p.ownerVmid === HOST && live.has(p.label));
    for (const p of ours) {
      h.push({ type: 'invoke', process: 0, f: 'mem_reclaim', kind: 'reclaim_parcel', label: p.label, value: { handle: p.handle } });
      const r = await unary(rm, rm.memReclaim, { handle: p.handle, sanitize: false });
      record('mem_reclaim', r);
      if (r.kind === 'ok') live.delete(p.label);
      else live.set(p.label, { handle: p.handle, slot: -1 });
    }
    for (const [label, l] of live) if (!ours.some((p) => p.label === label) && l.handle === undefined) live.delete(label);
    await must('CloseLease', unary(vmm, vmm.closeLease, { sessionId }));
    h.push(await observe('final', true));
    return { history: h, report: checkHistory(h) };
  } finally {
    for (const c of [core, rm, vmm, ...faults]) c.close();
  }
}

/** One VM's life through the VMM, Linux order (the demo's): a failure anywhere destroys what exists. */
async function vmCycle(vmm: VmmServiceClient, sessionId: string, hostAddr: bigint): Promise<Outcome<unknown>> {
  const created = await unary<{ vm?: Vm }>(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 });
  if (created.kind !== 'ok') return created;
  const handle = created.value.vm!.handle;
  const at = (extra: object) => ({ sessionId, handle, ...extra });
  const steps: [unknown, object][] = [
    [vmm.mapMem, at({ binding: { guestAddr: 0x8000_0000n, hostAddr, size: 1n * MiB, mode: BindMode.BIND_MODE_LEND, allowRead: true, allowWrite: true, allowExec: true }, unmap: false })],
    [vmm.setDtbConfig, at({ guestAddr: 0x8008_0000n, size: 0x2000n })],
    [vmm.setBootContext, at({ regSet: RegSet.REG_SET_PC, index: 0, value: 0x8000_0000n })],
    [vmm.startVm, at({})],
    [vmm.stopVm, at({})],
  ];
  let first: Outcome<unknown> = { kind: 'ok', value: undefined };
  for (const [fn, req] of steps) {
    const r = await unary(vmm, fn, req);
    if (r.kind !== 'ok') {
      first = r;
      break;
    }
  }
  const destroyed = await unary<{ vm?: Vm }>(vmm, vmm.destroyVm, at({}));
  if (first.kind !== 'ok') return first;
  if (destroyed.kind !== 'ok') return destroyed;
  const leaked = destroyed.value.vm?.leaked ?? [];
  return { kind: 'ok', value: { leaked } };
}

export { formatReport, historyToJsonLines };

/** Writes the history as JSON lines. */
export function writeHistory(path: string, h: readonly HistoryEntry[]): void {
  writeFileSync(path, historyToJsonLines(h));
}
