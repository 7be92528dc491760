/**
 * The simulated machine: one stage-2 core, one RM and one VM manager in this process, joined by the
 * in-memory ports of faulty-ports.ts, over one simulated clock (the VMM's ManualClock: lease expiry,
 * RM waits, retries and injected delays all run on it). Nothing here reads the wall clock or
 * Math.random; every choice comes from the seed (simulation.ts) or the plan's seed (the engine).
 *
 * Memory (SIM_MEMORY, 128 MiB of RAM: small, so whole-space walks stay cheap):
 *   [RAM base, +16 MiB)       HLOS's parcel slots (actors.ts), 4 pages each
 *   [+16 MiB, +32 MiB)        VM binding slots, BINDING_PAGES each (GUNYAH and REALM guest memory)
 *   64 MiB below HYP's carve-out  the VMM's donation region (host-pages.ts donationRegionFrom)
 *
 * Notifications: the RM queues them per VM; this world drains every queue as it fills, numbers each
 * at RM_NOTIFICATION and delivers it (to the VMM for HLOS, to the guest's inbox otherwise) unless
 * the engine drops or delays it.
 */
import { FaultEngine, rmMessageMethod, type FaultEvent, type FaultPlan } from '@hypmesh/fault';
import { ResourceManager, VMID_HLOS, inProcessCore, type CoreGrantPort } from '@hypmesh/rm';
import type { CallName, ReplyOf, RequestOf } from '@hypmesh/rm-wire';
import { Stage2, type MemoryConfig } from '@hypmesh/stage2';
import {
  DEFAULT_VMM_CONFIG,
  RM_PORT_CALLS,
  ManualClock,
  VmManager,
  donationRegionFrom,
  inProcessCorePort,
  noticeOf,
  rmPortOver,
  type CorePort,
  type RmNotice,
  type RmPort,
  type VmmResult,
} from '@hypmesh/vmm';
import type { RmOutcome } from '@hypmesh/rm';
import { coreOutcome, faultCall, rmOutcome, rmiOutcome, vmmOutcome, wrapPort, type FaultContext } from './faulty-ports.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
export const PAGE_BYTES = 4096;
export const SIM_MEMORY: MemoryConfig = { paBits: 40, ram: [{ base: 2 * GiB, sizeBytes: 128 * MiB }], mmio: [{ base: 0, sizeBytes: 16 * MiB }] };
export const HLOS_AREA_BASE = 2 * GiB;
export const HLOS_SLOT_PAGES = 4;
export const HLOS_SLOTS = (16 * MiB) / (HLOS_SLOT_PAGES * PAGE_BYTES);
export const BINDING_AREA_BASE = 2 * GiB + 16 * MiB;
export const BINDING_PAGES = 8;
export const BINDING_SLOTS = (16 * MiB) / (BINDING_PAGES * PAGE_BYTES);
/** How long the VMM waits for an RM notification (simulated ms): short, so a lost one costs few steps. */
export const SIM_WAIT_MS = 50;
/** Teardown retries wait 10, 20, 40 ms: time for HLOS to reclaim what it lent the VM (actors.ts). */
export const SIM_RETRY_BACKOFF_MS = 10;

/** The core's methods that answer an errno (CoreResult); every other CorePort method is an RMI command. */
const CORE_RESULT_METHODS = new Set(['memoryMap', 'createAddressSpace', 'topUpTablePool', 'drainTablePool', 'destroyAddressSpace', 'createGrant', 'mapGrant', 'unmapGrant', 'destroyGrant', 'createVmSpace', 'destroyVmSpace']);

/** RmPort method → RM message (vmm ports.ts RM_PORT_CALLS, so a new call comes along). */
const RM_MESSAGE_OF: Readonly<Record<string, string>> = RM_PORT_CALLS;

export interface World {
  readonly s: Stage2;
  readonly rm: ResourceManager;
  readonly vmm: VmManager;
  readonly clock: ManualClock;
  readonly engine: FaultEngine;
  /** MEM_SHARED handles delivered to each guest VMID, in arrival order. */
  readonly inbox: Map<number, number[]>;
  /** A guest's or HLOS's RM call, through CLIENT_TO_RM. */
  rmCall<N extends CallName>(caller: number, name: N, request: RequestOf<N>): Promise<RmOutcome<ReplyOf<N>>>;
  /** A VMM session's call, through CLIENT_TO_VMM (`method` is the VmmService RPC name). */
  vmmCall<T>(method: string, call: () => Promise<VmmResult<T>> | VmmResult<T>): Promise<VmmResult<T>>;
}

/** rmMessageMethod, remembered per message (clients call it on every RM call). */
const RM_METHOD_OF = new Map<string, string>();
function methodOf(name: string): string {
  let m = RM_METHOD_OF.get(name);
  if (m === undefined) RM_METHOD_OF.set(name, (m = rmMessageMethod(name)));
  return m;
}

export function buildWorld(plan: FaultPlan, faultSeed: number, onFault: (e: FaultEvent) => void): World {
  const s = new Stage2({ memory: SIM_MEMORY });
  const clock = new ManualClock(0);
  const engine = new FaultEngine({ nowMs: () => clock.nowMs() });
  const armed = engine.arm(plan, faultSeed);
  if (!armed.ok) throw new Error(`sim: invalid fault plan: ${armed.error.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  engine.subscribe(onFault);
  const ctx: FaultContext = {
    engine,
    apply: {
      sleep: (ms) => new Promise((resolve) => void clock.after(ms, resolve)),
      // A simulated crash loses the reply (applyAt returns `lost`); the domains keep their state, as
      // a crash after commit with a restart that recovers it would. Recorded by onFault.
      crash: () => undefined,
    },
  };

  // RM → core: every CoreGrantPort method, present and future, in one wrap.
  const coreGrants: CoreGrantPort = wrapPort(inProcessCore(s), 'RM_TO_CORE', ctx, () => coreOutcome);
  const rm = new ResourceManager(coreGrants);

  // Notifications: one listener drains every queue as it fills (the msgq delivers at once).
  const vmmListeners = new Set<(n: RmNotice) => void>();
  const inbox = new Map<number, number[]>();
  const deliver = (to: number, name: string, payload: unknown): void => {
    if (to === VMID_HLOS) {
      const notice = noticeOf(name, payload);
      if (notice !== undefined) for (const l of vmmListeners) l(notice);
    } else if (name === 'MEM_SHARED') {
      let box = inbox.get(to);
      if (box === undefined) inbox.set(to, (box = []));
      box.push((payload as { handle: number }).handle);
    }
  };
  rm.onNotify((to) => {
    for (const n of rm.queue(to).drain()) {
      const d = engine.decide({ boundary: 'RM_NOTIFICATION', rmMessage: n.name, callerVmid: to });
      if (!d.fault) deliver(to, n.name, n.payload);
      else if (d.event.action.kind === 'delay') clock.after(d.event.action.delayMs, () => deliver(to, n.name, n.payload));
      else if (d.event.action.kind === 'pause') clock.after(d.event.action.durationMs, () => deliver(to, n.name, n.payload));
      // drop and crash: the notification is lost.
    }
  });

  const rmPort: RmPort = wrapPort(
    rmPortOver(
      (name, req) => rm.call(VMID_HLOS, name, req),
      (l) => {
        vmmListeners.add(l);
        return () => vmmListeners.delete(l);
      },
    ),
    'VMM_TO_RM',
    ctx,
    () => rmOutcome,
    { skip: ['onNotice'], rmMessageOf: (m) => RM_MESSAGE_OF[m], callerVmid: VMID_HLOS },
  );
  const corePort: CorePort = wrapPort(inProcessCorePort(s), 'VMM_TO_CORE', ctx, (m) => (CORE_RESULT_METHODS.has(m) ? coreOutcome : rmiOutcome));

  const map = { ram: s.memory.regions.filter((r) => r.kind === 'RAM').map((r) => ({ base: r.base, count: r.count })), hypCarveout: { ...s.hostCarveout } };
  const donationRegion = donationRegionFrom(map);
  if (donationRegion === undefined) throw new Error('sim: no donation region in SIM_MEMORY');
  const vmm = new VmManager(rmPort, corePort, { ...DEFAULT_VMM_CONFIG, donationRegion, waitMs: SIM_WAIT_MS, retryBackoffMs: SIM_RETRY_BACKOFF_MS }, clock);

  return {
    s,
    rm,
    vmm,
    clock,
    engine,
    inbox,
    rmCall: (caller, name, request) =>
      faultCall(ctx, { boundary: 'CLIENT_TO_RM', method: methodOf(name), rmMessage: name, callerVmid: caller }, () => rm.call(caller, name, request), rmOutcome),
    vmmCall: (method, call) => faultCall(ctx, { boundary: 'CLIENT_TO_VMM', method }, () => Promise.resolve(call()), vmmOutcome),
  };
}
