/**
 * What the console shows, as plain data, and how a change between two looks becomes timeline
 * events. Pure: no I/O, no clock (the caller passes the time). The server (server.ts) fills a
 * Snapshot from the services' list calls and the page (page.ts) draws it.
 *
 * Frame numbers are JS numbers: a 48-bit PA (stage2-models.md §B4) has 2^36 frames, exact in a double.
 */

/** HYP, HOST/HLOS and RM VMIDs (gunyah-rm.md §4; DESIGN.md §2). */
export const VMID_HYP = 0;
export const VMID_HOST = 3;
export const VMID_RM = 0xff;

/** One region of the core's memory map, in frames. */
export interface RegionView {
  readonly kind: 'RAM' | 'MMIO' | string;
  readonly base: number;
  readonly count: number;
}

/** One ownership run (query.proto OwnershipRun), states named without their enum prefix. */
export interface RunView {
  readonly base: number;
  readonly count: number;
  readonly owner: number;
  readonly kind: string;
  /** The host's view (§A2): OWNED, SHARED_OWNED, SHARED_BORROWED, NOPAGE, LENT. */
  readonly host: string;
  readonly hyp: string;
  /** RMM granule state (§B2): NS, DELEGATED, RD, REC, REC_AUX, DATA, RTT. */
  readonly granule: string;
  /** Live grant id (u64, as a decimal string: ids pass 2^53); '' for none. */
  readonly grant: string;
  readonly pins: number;
  readonly guestShares: number;
}

/** One VM as the VMM holds it, with the RM's view of the same VMID beside it. */
export interface VmView {
  readonly handle: number;
  readonly type: string;
  readonly vmid: number;
  readonly ipaBits: number;
  readonly state: string;
  /** The RM status the VMM last heard (§4.3). */
  readonly rmStatus: string;
  /** What the RM's ListVms says now; '' when the RM does not list the VMID. */
  readonly rmListed: string;
  readonly hostPages: number;
  readonly session: string;
}

export interface ParcelView {
  readonly handle: number;
  readonly owner: number;
  readonly transType: string;
  readonly memType: string;
  readonly state: string;
  readonly acl: readonly number[];
  readonly acceptedBy: readonly number[];
  /** The core grant backing it ('' for none). */
  readonly grant: string;
  readonly bytes: number;
}

export interface GrantView {
  /** u64, as a decimal string. */
  readonly id: string;
  readonly type: string;
  readonly owner: number;
  readonly acl: readonly number[];
  readonly borrowers: readonly number[];
  readonly frames: number;
}

/**
 * One run of a VM's stage-2 (query.proto AddressSpaceRun): IPA frames [ipa, ipa+count) mapped to PA
 * frames from `pa`, by entries of one level, state and rights (stage2-models.md §A2, §B4).
 */
export interface Stage2RunView {
  readonly ipa: number;
  readonly count: number;
  readonly pa: number;
  /** Table level of the entries: 1 or 2 for blocks, 3 for pages. */
  readonly level: number;
  /** "rwx" with '-' for a right not given (X = 1, W = 2, R = 4). */
  readonly rights: string;
  readonly state: string;
  readonly device: boolean;
}

/** A VM's stage-2 as the page shows it; `error` when the core could not say (no such space). */
export interface Stage2View {
  readonly vmid: number;
  readonly runs: readonly Stage2RunView[];
  readonly error?: string;
  /** Set when the map had more runs than the console keeps. */
  readonly cut?: boolean;
}

/** Rights bits as "rwx" (query.proto AddressSpaceRun.perms: X = 1, W = 2, R = 4). */
export const rightsText = (perms: number): string => `${perms & 4 ? 'r' : '-'}${perms & 2 ? 'w' : '-'}${perms & 1 ? 'x' : '-'}`;

/** Everything the page draws but the timeline. `errors` names each service that could not be asked. */
export interface Snapshot {
  readonly regions: readonly RegionView[];
  readonly runs: readonly RunView[];
  readonly vms: readonly VmView[];
  readonly parcels: readonly ParcelView[];
  readonly grants: readonly GrantView[];
  readonly errors: readonly string[];
}

export const EMPTY_SNAPSHOT: Snapshot = { regions: [], runs: [], vms: [], parcels: [], grants: [], errors: [] };

/** Timeline kinds, the page's filter checkboxes. */
export const EVENT_KINDS = ['vm', 'notification', 'parcel', 'grant', 'fault', 'service'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export interface TimelineEvent {
  readonly seq: number;
  readonly timeMs: number;
  readonly kind: EventKind;
  /** The VMIDs it concerns (the VM filter matches any). */
  readonly vmids: readonly number[];
  readonly text: string;
  /** An injected fault's rule id (fault.proto FaultEvent.rule_id). */
  readonly rule?: string;
}

export type EventDraft = Omit<TimelineEvent, 'seq' | 'timeMs'>;

/** A u64 id as text, '' for 0 (none). */
export const idText = (v: bigint): string => (v === 0n ? '' : v.toString());

/** Strips a proto enum's prefix: PAGE_STATE_LENT → LENT; unknown numbers stay numbers. */
export const enumName = (name: string | undefined, prefix: string): string => (name ?? '?').replace(prefix, '');

const byKey = <T, K>(items: readonly T[], key: (t: T) => K): Map<K, T> => new Map(items.map((t) => [key(t), t]));
const list = (xs: readonly number[]): string => (xs.length === 0 ? '-' : xs.join(','));

/**
 * The events that turn `prev` into `next`: VMs created, changing state, gone;
 * parcels and grants appearing, changing and going. A service that could not be asked in either
 * snapshot yields no events for what it lists (its rows did not really vanish).
 */
export function diffSnapshots(prev: Snapshot, next: Snapshot): EventDraft[] {
  const out: EventDraft[] = [];
  const down = (svc: string): boolean => [...prev.errors, ...next.errors].some((e) => e.startsWith(svc));
  for (const e of next.errors) if (!prev.errors.includes(e)) out.push({ kind: 'service', vmids: [], text: e });
  for (const e of prev.errors) if (!next.errors.includes(e)) out.push({ kind: 'service', vmids: [], text: `recovered: ${e}` });

  if (!down('vmm') && !down('rm')) {
    const before = byKey(prev.vms, (v) => v.handle);
    const after = byKey(next.vms, (v) => v.handle);
    for (const [h, v] of after) {
      const p = before.get(h);
      const vm = `VM ${h} (${v.type}, VMID ${v.vmid})`;
      if (p === undefined) out.push({ kind: 'vm', vmids: [v.vmid], text: `${vm} created: ${v.state}, RM ${v.rmStatus}` });
      else {
        // RM status changes are not diffed here: the RM's own VM_STATUS notifications are timeline
        // lines (server.ts, RmService.WatchNotifications), one source for `notification`.
        if (p.state !== v.state) out.push({ kind: 'vm', vmids: [v.vmid], text: `${vm} state ${p.state} → ${v.state}` });
      }
    }
    for (const [h, p] of before) if (!after.has(h)) out.push({ kind: 'vm', vmids: [p.vmid], text: `VM ${h} (${p.type}, VMID ${p.vmid}) gone` });
  }

  if (!down('rm')) {
    const before = byKey(prev.parcels, (p) => p.handle);
    const after = byKey(next.parcels, (p) => p.handle);
    for (const [h, p] of after) {
      const o = before.get(h);
      const who = [p.owner, ...p.acl];
      const parcel = `parcel ${h} (${p.transType} by VMID ${p.owner}, ACL ${list(p.acl)})`;
      if (o === undefined) out.push({ kind: 'parcel', vmids: who, text: `${parcel} ${p.state}` });
      else if (o.state !== p.state || list(o.acceptedBy) !== list(p.acceptedBy))
        out.push({ kind: 'parcel', vmids: who, text: `${parcel} ${o.state} → ${p.state}, accepted by ${list(p.acceptedBy)}` });
    }
    for (const [h, p] of before) if (!after.has(h)) out.push({ kind: 'parcel', vmids: [p.owner, ...p.acl], text: `parcel ${h} (${p.transType} by VMID ${p.owner}) reclaimed` });
  }

  if (!down('core')) {
    const before = byKey(prev.grants, (g) => g.id);
    const after = byKey(next.grants, (g) => g.id);
    for (const [id, g] of after) {
      const o = before.get(id);
      const grant = `grant ${id} ${g.type} of ${g.frames} frames by VMID ${g.owner} to ${list(g.acl)}`;
      if (o === undefined) out.push({ kind: 'grant', vmids: [g.owner, ...g.acl], text: grant });
      else if (list(o.borrowers) !== list(g.borrowers)) out.push({ kind: 'grant', vmids: [g.owner, ...g.acl], text: `${grant}: mapped by ${list(g.borrowers)}` });
    }
    for (const [id, g] of before) if (!after.has(id)) out.push({ kind: 'grant', vmids: [g.owner, ...g.acl], text: `grant ${id} ${g.type} by VMID ${g.owner} ended` });
  }
  return out;
}

/** A bounded, numbered timeline (the page gets the whole of it on connect, then each event). */
export class Timeline {
  private readonly events: TimelineEvent[] = [];
  private seq = 0;

  constructor(private readonly capacity = 2000) {}

  add(draft: EventDraft, timeMs: number): TimelineEvent {
    const e: TimelineEvent = { ...draft, seq: ++this.seq, timeMs };
    this.events.push(e);
    if (this.events.length > this.capacity) this.events.shift();
    return e;
  }

  all(): readonly TimelineEvent[] {
    return this.events;
  }
}
