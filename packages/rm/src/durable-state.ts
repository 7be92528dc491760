/**
 * The RM's durable state (DESIGN.md §8): everything a restarted RM needs to be the RM its clients
 * last heard from, as plain data (Maps, Sets and bigints kept; the service stores it). The RM keeps
 * state, not a command log: its calls await the core, so replaying them would call the core again.
 *
 * What it holds is what snapshot.ts digests: VMs, parcels, the VMIDs allocated, the next parcel
 * handle, every VM's IPA ranges in use, the notification sequence and the notifications still
 * queued. Not held: subscriptions and half-reassembled msgq messages (they die with their streams),
 * and a call in flight (unacknowledged: it is absent after a restart). A core call it already made
 * stays made: the state holds the intent recorded before it (intents.ts), which the restarted RM
 * settles, so the RM and the core agree again (DESIGN.md §8).
 */
import type { CoreIntent } from './intents.js';
import type { IpaAllocator } from './ipa-allocator.js';
import type { Parcel } from './parcel.js';
import type { ResourceManager, RmNotification } from './resource-manager.js';
import type { Vm } from './vm.js';

export interface RmDurableState {
  readonly vms: readonly Vm[];
  readonly parcels: readonly Parcel[];
  readonly vmids: readonly number[];
  readonly nextHandle: number;
  readonly notifySeq: number;
  readonly ipas: readonly [vmid: number, ranges: ReturnType<IpaAllocator['ranges']>][];
  readonly queued: readonly [vmid: number, notifications: RmNotification[]][];
  /** Core calls made or being made whose outcome the state does not hold (absent in older rows). */
  readonly intents?: readonly CoreIntent[];
  readonly intentPrefix?: string;
  readonly intentSeq?: number;
}

/** VMIDs are 16-bit; the RM hands out only 0x00–0xFF, but a scan of the whole byte is cheap. */
const VMID_SCAN_LIMIT = 0x100;

export function rmDurableState(rm: ResourceManager): RmDurableState {
  const vmids: number[] = [];
  for (let v = 0; v < VMID_SCAN_LIMIT; v++) if (rm.vmids.isAllocated(v)) vmids.push(v);
  return {
    vms: [...rm.vms.values()],
    parcels: [...rm.parcels.values()],
    vmids,
    nextHandle: rm.nextHandle,
    notifySeq: rm.notifySeq,
    ipas: [...rm.ipas.entries()].map(([vmid, a]) => [vmid, [...a.ranges()]]),
    queued: rm.pendingNotifications(),
    intents: [...rm.intents.values()],
    intentPrefix: rm.intentPrefix,
    intentSeq: rm.intentSeq,
  };
}

/** Puts `state` into `rm`, a freshly built RM (nothing in it yet) of the same configuration. */
export function restoreRm(rm: ResourceManager, state: RmDurableState): void {
  if (rm.vms.size > 0 || rm.parcels.size > 0) throw new Error('bug: restoreRm into an RM that holds state');
  for (const vm of state.vms) rm.vms.set(vm.vmid, vm);
  for (const p of state.parcels) rm.parcels.set(p.handle, p);
  for (const v of state.vmids) rm.vmids.take(v);
  rm.nextHandle = state.nextHandle;
  rm.notifySeq = state.notifySeq;
  for (const [vmid, ranges] of state.ipas) rm.ipaSpace(vmid).restore(ranges);
  for (const [vmid, notifications] of state.queued) for (const n of notifications) rm.queue(vmid).push(n);
  for (const i of state.intents ?? []) rm.intents.set(i.id, i);
  if (state.intentPrefix !== undefined) rm.intentPrefix = state.intentPrefix;
  rm.intentSeq = state.intentSeq ?? 0;
}
