/**
 * The RM's admission control (issue 10, DESIGN.md §8 "Admission control"): per-client quotas on
 * what the RM hands out, so one HLOS tool cannot take every VMID or every one of HLOS's parcels
 * and starve the VMM (the findings: 63 VM_ALLOCATEs and then every CreateVm is ENODEV; 64
 * MEM_SHAREs and then every StartVm is EPERM). A principal is the caller VMID plus the client's
 * `x-hypmesh-client` name (@hypmesh/rpc admission.ts).
 *
 * Both faces are admitted by this one object, before the RM is called, so a refusal changes
 * nothing: the typed face answers RESOURCE_EXHAUSTED `quota_<rule>` with ErrorInfo; the byte face
 * answers the RM error the RM itself gives when that pool is empty (RULE_RM_ERRORS), since a msgq
 * reply carries only a code (gunyah-rm.md §1.4), and counts the refusal as `quota_<rule>` in
 * GetStats caller_refusals and the stream's refusals trailer.
 *
 * What a principal holds is charged by object (a VMID, a parcel handle) when the RM made it, and is
 * released once the RM no longer has it (VM_DEALLOCATE, MEM_RECLAIM, a Reset): `reconcile` asks the
 * RM before every check, so every way an object goes is covered without hooking each call. Who made
 * each object is durable with the RM's state (`--data-dir`): `snapshot` / `restore`, committed
 * before the call's reply. The RM's state and the ledger are two rows written one after the other,
 * so a crash between them leaves that one object (never replied to) charged to no one.
 */

import { AdmissionLimits, QuotaLedger, principal, type AdmissionTable, type Principal, type StatusError } from '@hypmesh/rpc';
import type { ResourceManager } from '@hypmesh/rm';
import { RM_CODECS, decodeReply, type CallName, type Codec, type RmErrorName } from '@hypmesh/rm-wire';

export type RmQuota = 'vmids' | 'parcels' | 'streams';

/**
 * The RM's rules. Defaults are at most half of each pool, so a client other than the VMM can take
 * half and the VMM still has the rest; the VMM (`x-hypmesh-client: vmm`) is not limited below the
 * RM's own limits (RM_QUOTA_OVERRIDES).
 */
export const RM_ADMISSION: AdmissionTable<RmQuota> = {
  // 63 dynamic VMIDs 0x80–0xBE (gunyah-rm.md §4.1): one client may hold 31 of them.
  vmids: { kind: 'quota', counts: 'VMIDs', limit: 31 },
  // 64 parcels per owner VM (§3.1 MAX_MEMPARCEL_PER_VM), shared by every HLOS tool: 32 for one client.
  parcels: { kind: 'quota', counts: 'parcels', limit: 32 },
  // Exchange + Subscribe streams open at once: each holds a queue pair's buffers and a notifier.
  streams: { kind: 'quota', counts: 'streams', limit: 16 },
};

/** The VMM makes every guest: it may use the RM's whole pools (the RM's own limits still hold). */
export const RM_QUOTA_OVERRIDES: readonly string[] = ['vmm:vmids=unlimited', 'vmm:parcels=unlimited'];

/** The limits in force: the table, the VMM's overrides, then `--quota` specs (throws Error naming a bad spec). */
export const rmAdmissionLimits = (specs: readonly string[] = []): AdmissionLimits<RmQuota> => new AdmissionLimits(RM_ADMISSION, [...RM_QUOTA_OVERRIDES, ...specs]);

type ObjectQuota = Exclude<RmQuota, 'streams'>;

/**
 * The RM error a refused byte-face request answers with: what the RM answers when the pool is
 * empty (§1.5), so a client's existing handling applies. VMIDs: NORESOURCE, as VM_ALLOCATE with no
 * free VMID (§4.2, Linux -ENODEV); parcels: DENIED, as the 65th parcel of one owner (§3.1, -EPERM).
 */
export const RULE_RM_ERRORS: Readonly<Record<ObjectQuota, RmErrorName>> = { vmids: 'NORESOURCE', parcels: 'DENIED' };

/** The RM calls that make an object under a quota, and where their reply names it. */
const MAKES: Readonly<Record<string, { readonly rule: ObjectQuota; readonly id: (reply: never) => number | null }>> = {
  VM_ALLOCATE: { rule: 'vmids', id: (r: { vmid: number | null }) => r.vmid },
  MEM_SHARE: { rule: 'parcels', id: (r: { handle: number }) => r.handle },
  MEM_LEND: { rule: 'parcels', id: (r: { handle: number }) => r.handle },
  MEM_DONATE: { rule: 'parcels', id: (r: { handle: number }) => r.handle },
};

/** Whether the RM still has the object (reconcile). */
const EXISTS: Readonly<Record<ObjectQuota, (rm: ResourceManager, id: number) => boolean>> = {
  vmids: (rm, id) => rm.vmids.isAllocated(id),
  parcels: (rm, id) => rm.parcels.has(id),
};

/** A refused call: the gRPC status (typed face) and the RM error (byte face). */
export interface QuotaRefusal {
  readonly status: StatusError;
  readonly rmError: RmErrorName;
  readonly rule: `quota_${RmQuota}`;
}

/** One attribution as the data dir keeps it. */
type Held = readonly [rule: ObjectQuota, id: number, vmid: number, client: string];

/** The object a byte-face reply payload (`[err][data]`) names; null when an OK reply names none; undefined when nothing was made. */
export function madeByReply(name: string, payload: Uint8Array | undefined): number | null | undefined {
  const m = MAKES[name];
  if (m === undefined || payload === undefined) return undefined;
  const frame = decodeReply(payload);
  if (!frame.ok || frame.value.errorCode !== 0) return undefined;
  const reply = (RM_CODECS[name as CallName] as { readonly reply: Codec<unknown> }).reply.decode(frame.value.data);
  return reply.ok ? m.id(reply.value as never) : null;
}

export class RmAdmission {
  readonly ledger: QuotaLedger<RmQuota>;
  /** `rule|id` → who made it: VMIDs and parcels the RM still has (as of the last reconcile). */
  private readonly owners = new Map<string, Principal>();
  private tickets = 0;

  constructor(
    readonly limits: AdmissionLimits<RmQuota>,
    private readonly rm: ResourceManager,
    /** Durable mode: keeps `snapshot()` (resolves once committed); called after an object is charged. */
    private readonly persist?: (text: string) => Promise<void>,
  ) {
    this.ledger = new QuotaLedger(limits);
  }

  /** Whether call `name` makes an object under a quota. */
  static makes(name: string): boolean {
    return Object.hasOwn(MAKES, name);
  }

  /**
   * Runs `dispatch` (the RM call) if `who` may make one more of what `name` makes, charging it for
   * what the RM made (`made` reads its id from the result: undefined when the call failed, null
   * when it succeeded without naming it); else the refusal, and nothing ran. A call in flight holds
   * a reservation, so concurrent calls cannot overshoot the quota.
   */
  async around<T>(who: Principal, name: string, dispatch: () => Promise<T>, made: (result: T) => number | null | undefined): Promise<{ ok: true; value: T } | { ok: false; refusal: QuotaRefusal }> {
    const m = MAKES[name];
    if (m === undefined) return { ok: true, value: await dispatch() };
    this.reconcile();
    const status = this.ledger.refusal(m.rule, who);
    if (status !== undefined) return { ok: false, refusal: { status, rmError: RULE_RM_ERRORS[m.rule], rule: `quota_${m.rule}` } };
    const ticket = `pending:${this.tickets++}`;
    this.ledger.charge(m.rule, who, ticket);
    try {
      const value = await dispatch();
      const id = made(value);
      if (id === undefined) return { ok: true, value };
      if (id !== null) this.attribute(m.rule, who, id);
      else if (m.rule === 'vmids') this.attributeUnowned(who);
      if (this.persist !== undefined) await this.persist(this.snapshot());
      return { ok: true, value };
    } finally {
      this.ledger.release(m.rule, ticket);
    }
  }

  /** A stream for `who`: its release (call once when the stream ends), or the refusal. */
  openStream(who: Principal): { ok: true; release: () => void } | { ok: false; status: StatusError } {
    const status = this.ledger.refusal('streams', who);
    if (status !== undefined) return { ok: false, status };
    const id = `stream:${this.tickets++}`;
    this.ledger.charge('streams', who, id);
    return { ok: true, release: () => this.ledger.release('streams', id) };
  }

  /** Releases what the RM no longer has. */
  reconcile(): void {
    for (const key of [...this.owners.keys()]) {
      const [rule, id] = key.split('|') as [ObjectQuota, string];
      if (!EXISTS[rule](this.rm, Number(id))) {
        this.owners.delete(key);
        this.ledger.release(rule, id);
      }
    }
  }

  /** Who holds what, for the data dir. */
  snapshot(): string {
    const held: Held[] = [...this.owners].map(([key, who]) => {
      const [rule, id] = key.split('|') as [ObjectQuota, string];
      return [rule, Number(id), who.vmid, who.client];
    });
    return JSON.stringify(held);
  }

  /** Charges again what `snapshot` kept (a restart on the data dir); what the RM no longer has is dropped. */
  restore(text: string): void {
    const held = JSON.parse(text) as Held[];
    for (const [rule, id, vmid, client] of held) if (Object.hasOwn(EXISTS, rule)) this.attribute(rule, principal(vmid, client), id);
    this.reconcile();
  }

  private attribute(rule: ObjectQuota, who: Principal, id: number): void {
    // The RM just handed the id out, so an earlier holder of the same id has lost it.
    this.ledger.release(rule, String(id));
    this.ledger.charge(rule, who, String(id));
    this.owners.set(`${rule}|${id}`, who);
  }

  /** VM_ALLOCATE of an explicit VMID answers no VMID on the byte face: charge the allocated VMIDs no one holds. */
  private attributeUnowned(who: Principal): void {
    for (const vmid of this.rm.vms.keys()) if (!this.owners.has(`vmids|${vmid}`)) this.attribute('vmids', who, vmid);
  }
}
