/**
 * In-process adapters for tests and the embedded mode: an RmPort over @hypmesh/rm's
 * ResourceManager (calls as HLOS, notifications from HLOS's queue) and a CorePort over a Stage2
 * (stage2's own RmiPort plus address spaces, the realm-building RMI commands and the grants of
 * demand-paged memory: owner HOST, borrower the guest).
 */
import { VMID_HLOS, VM_STATUS, type ResourceManager, type VmStatus } from '@hypmesh/rm';
import {
  createGrant,
  dataCreate,
  destroyGrant,
  drainTablePool,
  mapGrant,
  ownershipMap,
  pfn,
  realmActivate,
  realmCreate,
  rttInitRipas,
  stage2RmiPort,
  topUpTablePool,
  unmapGrant,
  vmid,
  VMID_HOST,
  type ErrnoError,
  type Result,
  type Stage2,
} from '@hypmesh/stage2';
import type { CoreResult } from '@hypmesh/rm';
import { donationRegionFrom, PAGE_BYTES, type FrameRun, type RamMapView } from './host-pages.js';
import { rmPortOver, type CorePort, type RmNotice, type RmPort } from './ports.js';
import type { HoldingsPort } from './restart-sweep.js';

const STATUS_NAMES = new Map<number, VmStatus>(Object.entries(VM_STATUS).map(([k, v]) => [v, k as VmStatus]));
export const vmStatusName = (n: number): VmStatus | 'UNKNOWN' => STATUS_NAMES.get(n) ?? 'UNKNOWN';

/** The RM's VM_STATUS / VM_EXITED payloads as notices; other notifications are not the VMM's. */
export function noticeOf(name: string, payload: unknown): RmNotice | undefined {
  const p = payload as { vmid: number; vmStatus?: number; exitType?: number };
  if (name === 'VM_STATUS') return { kind: 'VM_STATUS', vmid: p.vmid, status: vmStatusName(p.vmStatus ?? -1) };
  if (name === 'VM_EXITED') return { kind: 'VM_EXITED', vmid: p.vmid, exitType: p.exitType ?? 0 };
  return undefined;
}

/** An RmPort over an in-process RM: HLOS's calls, and HLOS's notification queue drained as it fills. */
export function inProcessRm(rm: ResourceManager): RmPort {
  const listeners = new Set<(n: RmNotice) => void>();
  rm.onNotify((to) => {
    if (to !== VMID_HLOS || listeners.size === 0) return;
    for (const n of rm.queue(VMID_HLOS).drain()) {
      const notice = noticeOf(n.name, n.payload);
      if (notice !== undefined) for (const l of listeners) l(notice);
    }
  });
  return rmPortOver(
    (name, req) => rm.call(VMID_HLOS, name, req),
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  );
}

const core = <T>(r: Result<T, ErrnoError>): Promise<CoreResult<T>> =>
  Promise.resolve(r.ok ? { ok: true, value: r.value } : { ok: false, error: { errno: r.error.errno, rule: r.error.rule, message: r.error.message } });
const frames = (runs: readonly FrameRun[]) => runs.map((r) => ({ base: pfn(r.base), count: r.count }));

/** An in-process core's RAM and HYP's carve-out, as GetMemoryMap reports them. */
export function ramMapOf(s: Stage2): RamMapView {
  return { ram: s.memory.regions.filter((r) => r.kind === 'RAM').map((r) => ({ base: r.base, count: r.count })), hypCarveout: { ...s.hostCarveout } };
}

/** The donation region a VMM over an in-process core takes (host-pages.ts donationRegionFrom). */
export function donationRegionOf(s: Stage2): FrameRun {
  const region = donationRegionFrom(ramMapOf(s));
  if (region === undefined) throw new Error('the core has no RAM left for a donation region');
  return region;
}

/** A CorePort over an in-process stage-2 core. */
export function inProcessCorePort(s: Stage2): CorePort {
  return {
    ...stage2RmiPort(s),
    memoryMap: () => Promise.resolve({ ok: true, value: ramMapOf(s) }),
    topUpTablePool: (v, runs) => core(topUpTablePool(s, vmid(v), frames(runs))),
    drainTablePool: (v, max) => core(drainTablePool(s, vmid(v), max)),
    realmCreate: (rd, params) => Promise.resolve(realmCreate(s, rd, params)),
    realmActivate: (rd) => Promise.resolve(realmActivate(s, rd)),
    dataCreate: (rd, data, ipa, src, flags) => Promise.resolve(dataCreate(s, rd, data, ipa, src, flags)),
    rttInitRipas: (rd, base, top) => Promise.resolve(rttInitRipas(s, rd, base, top)),
    createGrant: (a) => core(createGrant(s, { owner: VMID_HOST, type: a.type, ranges: a.ranges, acl: a.acl.map((e) => ({ vmid: vmid(e.vmid), perms: e.perms })) })),
    mapGrant: (a) => core(mapGrant(s, { grantId: a.grantId, borrower: vmid(a.borrower), perms: a.perms, ranges: a.ranges })),
    unmapGrant: (a) => core(unmapGrant(s, a.grantId, vmid(a.borrower))),
    destroyGrant: (a) => core(destroyGrant(s, a.grantId, VMID_HOST)),
  };
}

/** What HLOS holds in an in-process RM and core (restart-sweep.ts), as the services' introspection RPCs report it. */
export function inProcessHoldings(rm: ResourceManager, s: Stage2): HoldingsPort {
  const ok = <T>(value: T) => Promise.resolve({ ok: true as const, value });
  return {
    rmVms: () => ok([...rm.vms.values()].filter((v) => v.owner === VMID_HLOS && v.vmid !== VMID_HLOS).map((v) => ({ vmid: v.vmid, status: v.status }))),
    rmParcels: () => ok(rm.allParcels().map((p) => ({ handle: p.handle, ownerVmid: p.owner, label: p.label, aclVmids: p.acl.map((e) => e.vmid), grantId: p.grantId }))),
    hostGrants: () =>
      ok([...s.grants.values()].filter((g) => g.owner === VMID_HOST).map((g) => ({ grantId: g.id, aclVmids: g.acl.map((e) => e.vmid as number), borrowerVmids: [...g.borrowers.keys()].map(Number) }))),
    realms: () =>
      ok(
        [...s.rmm.realms.values()].map((r) => ({
          rd: r.rd * PAGE_BYTES,
          ipaBits: r.ipaBits,
          startLevel: r.startLevel,
          roots: r.roots.map((t) => t.frame * PAGE_BYTES),
          recs: [...s.rmm.recs.values()].filter((c) => c.rd === r.rd).map((c) => c.frame * PAGE_BYTES),
        })),
      ),
    regionRuns: (run) => {
      const m = ownershipMap(s, run.base, run.count);
      if (!m.ok) return Promise.resolve({ ok: false as const, error: `${m.error.errno} ${m.error.rule}: ${m.error.message}` });
      return ok(m.value.runs.map((r) => ({ base: r.base, count: r.count, hostFree: r.owner === VMID_HOST && r.host === 'OWNED' && r.rmi === 'NS', delegatedUnused: r.rmi === 'DELEGATED' })));
    },
  };
}
