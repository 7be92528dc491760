/**
 * A structural digest of the RM (VMs, parcels, VMID allocation, handle counter, queued
 * notifications) and, when given, of the core: equal digests mean a refused call changed nothing.
 */
import { snapshot as coreSnapshot, type Stage2 } from '@hypmesh/stage2';
import type { ResourceManager } from './resource-manager.js';

const plain = (v: unknown): unknown =>
  JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Map ? [...x.entries()] : x instanceof Set ? [...x] : x)));

export function snapshotRm(rm: ResourceManager, core?: Stage2): unknown {
  const vmids = [...rm.vms.keys()].sort((a, b) => a - b);
  return {
    vms: plain([...rm.vms.values()]),
    parcels: plain([...rm.parcels.values()]),
    allocated: vmids.filter((v) => rm.vmids.isAllocated(v)),
    nextHandle: rm.nextHandle,
    ipas: [...rm.ipas.entries()].sort(([a], [b]) => a - b).map(([v, a]) => [v, plain(a.ranges())]),
    queued: vmids.concat(3).map((v) => [v, rm.pendingFor(v)]),
    core: core === undefined ? null : coreSnapshot(core),
  };
}
