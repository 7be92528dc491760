/**
 * What hypmesh finds in the seed-002 Linux driver (rsc-mgr-rpc.ts), as two scenarios run in one
 * process: the driver over the byte face of a real @hypmesh/rm ResourceManager on an in-process
 * core, the fault engine at the byte-face boundaries (msgq-in-process.ts), every step recorded as
 * a history (@hypmesh/history) and judged by the checker.
 *
 *   linux-append-orphan        a 600-entry share: the first MEM_APPEND is refused, then the
 *                              MEM_RECLAIM the error path sends. gh_rm_mem_lend_common ignores the
 *                              reclaim's result and forgets the handle: the RM still holds the
 *                              parcel, its memory is still shared, nobody knows the handle.
 *   linux-unchecked-reply-size the MEM_SHARE reply is cut to 2 bytes of handle; the driver reads 4
 *                              (`p->mem_handle = le32_to_cpu(*resp)` without looking at resp_size),
 *                              two of them from beyond the reply, and keeps a handle the RM never
 *                              issued; its later reclaim fails and the real parcel is orphaned.
 *
 * Both plans are data (examples/faults/*.json has the same rules).
 */
import { FaultEngine, loadPlanJson, type FaultEvent } from '@hypmesh/fault';
import { checkHistory, type CheckReport, type HistoryEntry, type Observation } from '@hypmesh/history';
import { MsgqEndpoint, ResourceManager, VMID_HLOS, inProcessCore, rmInvariants } from '@hypmesh/rm';
import { Stage2, checkInvariants, ownershipMap, type MemoryConfig } from '@hypmesh/stage2';
import { GhRm } from './gh-rm-call.js';
import { MsgqClient } from './msgq-client.js';
import { inProcessTransport } from './msgq-in-process.js';
import {
  GH_MEM_HANDLE_INVAL,
  GH_RM_ACL_R,
  GH_RM_ACL_W,
  GH_RM_ACL_X,
  GH_RM_MEM_TYPE_NORMAL,
  gh_rm_mem_reclaim,
  gh_rm_mem_share,
  newTrace,
  type DriverTrace,
  type gh_rm_mem_entry,
  type gh_rm_mem_parcel,
} from './rsc-mgr-rpc.js';

const GiB = 2 ** 30;
const PAGE = 4096;
const RAM_BASE = 2 * GiB;
export const SCENARIO_MEMORY: MemoryConfig = { paBits: 40, ram: [{ base: RAM_BASE, sizeBytes: 1 * GiB }], mmio: [] };

export const SCENARIO_PLANS = {
  'linux-append-orphan': {
    rules: [
      {
        id: 'append-fails',
        description: 'The RM refuses the first MEM_APPEND of the share (gunyah-rm.md §3.2).',
        boundary: 'BOUNDARY_CLIENT_TO_RM',
        match: { rmMessage: 'MEM_APPEND', nth: 1 },
        failBefore: { domainError: { rmError: 'NOMEM' } },
      },
      {
        id: 'reclaim-fails',
        description: 'The MEM_RECLAIM the driver sends on its error path is refused too.',
        boundary: 'BOUNDARY_CLIENT_TO_RM',
        match: { rmMessage: 'MEM_RECLAIM', nth: 1 },
        failBefore: { domainError: { rmError: 'BUSY' } },
      },
    ],
  },
  'linux-unchecked-reply-size': {
    rules: [
      {
        id: 'short-share-reply',
        description: 'The MEM_SHARE reply fragment is cut to 14 bytes: header (8), RM error OK (4), 2 of the 4 handle bytes.',
        boundary: 'BOUNDARY_RM_TO_CLIENT_FRAGMENT',
        match: { rmMessage: 'MEM_SHARE', nth: 1 },
        truncate: { keepBytes: 14 },
      },
    ],
  },
} as const;

export type ScenarioName = keyof typeof SCENARIO_PLANS;
export const SCENARIO_NAMES = Object.keys(SCENARIO_PLANS) as ScenarioName[];

export interface ScenarioResult {
  readonly name: ScenarioName;
  readonly events: readonly FaultEvent[];
  readonly trace: DriverTrace;
  readonly history: readonly HistoryEntry[];
  readonly report: CheckReport;
  /** What the scenario shows, one sentence per line, for people. */
  readonly findings: readonly string[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const errnoText = (ret: number): string => (ret === 0 ? '0' : `${ret}`);

/** The system under test: core, RM with HLOS and one guest, the driver on HLOS's queue pair. */
async function boot(plan: unknown, seed: number) {
  const s = new Stage2({ memory: SCENARIO_MEMORY });
  const rm = new ResourceManager(inProcessCore(s));
  const alloc = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
  if (!alloc.ok || alloc.value.vmid === null) throw new Error('scenario: VM_ALLOCATE failed');
  const guest = alloc.value.vmid;
  // VM_ALLOCATE made the guest's stage-2 (from HYP's reservation), so the guest can be named in ACLs.
  const engine = new FaultEngine({ nowMs: () => 0 });
  const events: FaultEvent[] = [];
  engine.subscribe((e) => events.push(e));
  const loaded = loadPlanJson(JSON.stringify(plan));
  if (!loaded.ok) throw new Error(`scenario plan: ${JSON.stringify(loaded.error)}`);
  const armed = engine.arm(loaded.value, seed);
  if (!armed.ok) throw new Error('scenario plan refused');
  const endpoint = new MsgqEndpoint(rm, VMID_HLOS);
  const ghRm = new GhRm(new MsgqClient(inProcessTransport(endpoint, engine), 2_000));
  /** What the checker needs: parcels, the core's ownership, every invariant, the driver's handles. */
  const observe = async (phase: Observation['phase'], driverHandles: readonly number[]): Promise<Observation> => {
    await rm.idle();
    const runs = ownershipMap(s, RAM_BASE / PAGE, GiB / PAGE);
    if (!runs.ok) throw new Error('scenario: ownershipMap refused');
    return {
      type: 'observe',
      phase,
      parcels: [...rm.parcels.values()].map((p) => ({ handle: p.handle, owner: p.owner, label: p.label, state: p.state, coreGrant: s.grants.has(p.grantId) })),
      ownership: runs.value.runs.map((r) => `${hex(r.base)}+${hex(r.count)} owner=${r.owner} host=${r.host}`),
      invariantViolations: [...checkInvariants(s).map((v) => `core: ${typeof v === 'string' ? v : JSON.stringify(v)}`), ...rmInvariants(rm, s).map((v) => `rm: ${v}`)],
      clientHandles: { [VMID_HLOS]: [...driverHandles] },
    };
  };
  return { guest, ghRm, events, observe, close: () => ghRm.close() };
}

/** `count` one-page entries two pages apart (so that no two merge into one region). */
const pages = (count: number): gh_rm_mem_entry[] => Array.from({ length: count }, (_, i) => ({ phys_addr: BigInt(RAM_BASE + i * 2 * PAGE), size: BigInt(PAGE) }));

/** A share keeps the owner's access, so HLOS is in the ACL (RM rule share_owner_not_in_acl, §3.2). */
const shareAcl = (guest: number) => [
  { vmid: VMID_HLOS, perms: GH_RM_ACL_R | GH_RM_ACL_W | GH_RM_ACL_X },
  { vmid: guest, perms: GH_RM_ACL_R | GH_RM_ACL_W },
];

const known = (p: gh_rm_mem_parcel): number[] => (p.mem_handle === GH_MEM_HANDLE_INVAL ? [] : [p.mem_handle]);

export async function linuxAppendOrphan(seed = 1): Promise<ScenarioResult> {
  const sys = await boot(SCENARIO_PLANS['linux-append-orphan'], seed);
  const label = 0x4f;
  const p: gh_rm_mem_parcel = { mem_type: GH_RM_MEM_TYPE_NORMAL, label, acl_entries: shareAcl(sys.guest), mem_entries: pages(600), mem_handle: GH_MEM_HANDLE_INVAL };
  const trace = newTrace();
  const h: HistoryEntry[] = [await sys.observe('boot', [])];
  h.push({ type: 'invoke', process: 0, f: 'gh_rm_mem_share', kind: 'create_parcel', label, value: { entries: 600 } });
  const ret = await gh_rm_mem_share(sys.ghRm, p, trace);
  h.push(ret === 0 ? { type: 'ok', process: 0, f: 'gh_rm_mem_share', value: { handle: p.mem_handle } } : { type: 'fail', process: 0, f: 'gh_rm_mem_share', error: `errno ${ret}` });
  h.push(await sys.observe('run', known(p)));
  // Teardown: the driver's caller cleans up what it knows of: nothing.
  h.push(await sys.observe('final', known(p)));
  sys.close();
  const report = checkHistory(h);
  const read = trace.handleReads[0];
  const parcel = (h[h.length - 1] as Observation).parcels.find((x) => x.label === label);
  const findings = [
    `gh_rm_mem_share returned ${errnoText(ret)} (faults injected: ${sys.events.map((e) => `${e.ruleId} on ${e.rmMessage ?? e.boundary}`).join(', ')})`,
    `the error path's MEM_RECLAIM returned ${trace.ignoredReclaims.map(errnoText).join(', ')}, which gh_rm_mem_lend_common ignores`,
    `the driver set mem_handle to GH_MEM_HANDLE_INVAL (it had read ${read === undefined ? 'nothing' : hex(read.value)})`,
    parcel === undefined
      ? 'the RM holds no parcel: nothing orphaned'
      : `orphaned parcel ${hex(parcel.handle)}: the RM still holds it (${parcel.state}), its memory is still shared (core grant ${parcel.coreGrant ? 'present' : 'gone'}), and the driver no longer knows the handle`,
  ];
  return { name: 'linux-append-orphan', events: sys.events, trace, history: h, report, findings };
}

export async function linuxUncheckedReplySize(seed = 1): Promise<ScenarioResult> {
  const sys = await boot(SCENARIO_PLANS['linux-unchecked-reply-size'], seed);
  const label = 0x52;
  const p: gh_rm_mem_parcel = { mem_type: GH_RM_MEM_TYPE_NORMAL, label, acl_entries: shareAcl(sys.guest), mem_entries: pages(1), mem_handle: GH_MEM_HANDLE_INVAL };
  const trace = newTrace();
  const h: HistoryEntry[] = [await sys.observe('boot', [])];
  h.push({ type: 'invoke', process: 0, f: 'gh_rm_mem_share', kind: 'create_parcel', label });
  const ret = await gh_rm_mem_share(sys.ghRm, p, trace);
  h.push(ret === 0 ? { type: 'ok', process: 0, f: 'gh_rm_mem_share', value: { handle: p.mem_handle } } : { type: 'fail', process: 0, f: 'gh_rm_mem_share', error: `errno ${ret}` });
  h.push(await sys.observe('run', known(p)));
  // Teardown: the driver reclaims the parcel it believes it has.
  h.push({ type: 'invoke', process: 0, f: 'gh_rm_mem_reclaim', kind: 'reclaim_parcel', label, value: { handle: p.mem_handle } });
  const reclaimed = await gh_rm_mem_reclaim(sys.ghRm, p);
  h.push(reclaimed === 0 ? { type: 'ok', process: 0, f: 'gh_rm_mem_reclaim' } : { type: 'fail', process: 0, f: 'gh_rm_mem_reclaim', error: `errno ${reclaimed}` });
  const stillKnown = reclaimed === 0 ? [] : known(p);
  h.push(await sys.observe('final', stillKnown));
  sys.close();
  const report = checkHistory(h);
  const read = trace.handleReads[0];
  const parcel = (h[h.length - 1] as Observation).parcels.find((x) => x.label === label);
  const findings = [
    read === undefined
      ? `gh_rm_mem_share returned ${errnoText(ret)} without reading a handle${trace.oops === undefined ? '' : ` (${trace.oops})`}`
      : `gh_rm_mem_share returned ${errnoText(ret)} with handle ${hex(read.value)}, read from a ${read.respSize}-byte reply: ${read.bytesBeyondReply} of its 4 bytes came from beyond the reply (stale heap, 0x6b = POISON_FREE)`,
    parcel === undefined ? 'the RM holds no parcel' : `the RM issued handle ${hex(parcel.handle)}; the driver holds ${hex(p.mem_handle)}`,
    `gh_rm_mem_reclaim(${hex(p.mem_handle)}) returned ${errnoText(reclaimed)}`,
    parcel === undefined ? 'nothing orphaned' : `orphaned parcel ${hex(parcel.handle)}: the RM still holds it (${parcel.state}), its memory is still shared, and the driver never knew the handle`,
  ];
  return { name: 'linux-unchecked-reply-size', events: sys.events, trace, history: h, report, findings };
}

export const SCENARIOS: Record<ScenarioName, (seed?: number) => Promise<ScenarioResult>> = {
  'linux-append-orphan': linuxAppendOrphan,
  'linux-unchecked-reply-size': linuxUncheckedReplySize,
};
