/**
 * The VMM's admission control (issue 10, DESIGN.md §8 "Admission control"): per-client quotas on
 * sessions, VMs and streams, so one client cannot exhaust the VM manager for the rest (the issue:
 * VMM memory grew 88 → 114 MiB over 6,000 sessions). A principal is the caller VMID plus the
 * client's `x-hypmesh-client` name (@hypmesh/rpc admission.ts); the VMM serves host processes
 * (vmm_service.proto), so a call without a caller VMID header is the host's (VMID 3).
 *
 * Refusals are RESOURCE_EXHAUSTED `quota_<rule>` with ErrorInfo, decided before the VM manager is
 * called, so nothing changes. Charges are by object (a session id, a VM handle, a stream) and are
 * released once the VM manager no longer has the object (`reconcile` asks it before each check):
 * a session closed, a lease expired, a VM destroyed or torn down with its session, a Reset.
 */

import { AdmissionLimits, CALLER_VMID_KEY, QuotaLedger, callerVmid, clientName, peerIdentity, principal, principalOf, resourceExhausted, type AdmissionTable, type CallerCall, type Principal, type StatusError } from '@hypmesh/rpc';

export type VmmQuota = 'sessions' | 'vms' | 'streams' | 'memory_bytes_per_vm';

/** The VMM's rules and their defaults (per client; `--quota` / HYPMESH_VMM_QUOTA override them). */
export const VMM_ADMISSION: AdmissionTable<VmmQuota> = {
  // OpenSession streams and leases held at once: each keeps a handle set, a watcher, a lease timer.
  sessions: { kind: 'quota', counts: 'sessions', limit: 64 },
  // VMs (being made, live or being torn down): about half of the RM's 63 dynamic VMIDs (gunyah-rm.md §4.1).
  vms: { kind: 'quota', counts: 'VMs', limit: 32 },
  // OpenSession + WatchVm streams open at once: each holds an HTTP/2 stream and an event listener.
  streams: { kind: 'quota', counts: 'streams', limit: 64 },
  // Guest memory bound to one VM (MapMem): StartVm donates table pages for all of it from the
  // donation region (gunyah-lifecycle.ts tablePagesFor, about 2 MiB per GiB), so one huge VM could
  // take the region from every other. 8 GiB: half the default host RAM, a quarter of the region.
  memory_bytes_per_vm: { kind: 'cap', counts: 'bytes bound to one VM', limit: 8 * 2 ** 30 },
};

/** The limits in force: the table's defaults, then `--quota` specs (throws Error naming a bad spec). */
export const vmmAdmissionLimits = (specs: readonly string[] = []): AdmissionLimits<VmmQuota> => new AdmissionLimits(VMM_ADMISSION, specs);

/** HOST: the VMM's clients are host processes; a call without a caller VMID is one. */
const VMID_HOST = 3;

/** The call's principal: its caller VMID (HOST when absent) and client name; a malformed header is INVALID_ARGUMENT. */
export function vmmPrincipal(call: CallerCall): Principal {
  // Over mTLS the certificate names the caller, header or not (caller.ts).
  if (peerIdentity(call) !== undefined) return principalOf(call);
  const vmid = call.metadata.get(CALLER_VMID_KEY).length === 0 ? VMID_HOST : callerVmid(call);
  return principal(vmid, clientName(call.metadata));
}

/** What the admission asks the VM manager: whether an object is still there. */
export interface VmmHoldings {
  hasSession(id: string): boolean;
  hasVm(vm: VmKey): boolean;
}

/** A VM as its client names it: a handle within a session. */
export interface VmKey {
  readonly handle: number;
  readonly session: string;
}

export class VmmAdmission {
  readonly ledger: QuotaLedger<VmmQuota>;
  /** `rule|id` of each charged session and VM, and how to tell it is gone. */
  private readonly objects = new Map<string, () => boolean>();
  private tickets = 0;

  constructor(
    limits: AdmissionLimits<VmmQuota>,
    private readonly holds: VmmHoldings,
  ) {
    this.ledger = new QuotaLedger(limits);
  }

  /** The refusal if `who` may not take one more of `rule`, after releasing what is gone. */
  refusal(rule: VmmQuota, who: Principal): StatusError | undefined {
    this.reconcile();
    return this.ledger.refusal(rule, who);
  }

  /** Charges session `id` (already opened) to `who`. */
  session(who: Principal, id: string): void {
    this.charge('sessions', who, id, () => this.holds.hasSession(id));
  }

  /**
   * Runs `create` if `who` may hold one more VM, charging the VM it made (`made` reads its handle and
   * session from the result, undefined when none was made: handles are numbered per session); else
   * throws the refusal and nothing ran. A create in flight holds a reservation, so concurrent creates
   * cannot overshoot.
   */
  async vm<T>(who: Principal, create: () => Promise<T>, made: (result: T) => VmKey | undefined): Promise<T> {
    const refused = this.refusal('vms', who);
    if (refused !== undefined) throw refused;
    const ticket = `pending:${this.tickets++}`;
    this.ledger.charge('vms', who, ticket);
    try {
      const result = await create();
      const vm = made(result);
      if (vm !== undefined) this.charge('vms', who, `${vm.session}/${vm.handle}`, () => this.holds.hasVm(vm));
      return result;
    } finally {
      this.ledger.release('vms', ticket);
    }
  }

  /** A stream for `who`: its release (idempotent), or throws the refusal. */
  stream(who: Principal): () => void {
    const refused = this.ledger.refusal('streams', who);
    if (refused !== undefined) throw refused;
    const id = `stream:${this.tickets++}`;
    this.ledger.charge('streams', who, id);
    let done = false;
    return () => {
      if (!done) this.ledger.release('streams', id);
      done = true;
    };
  }

  /** The cap on one VM's bound memory: undefined if `asked` more bytes fit beside the `bound` ones, else the refusal. */
  memoryRefusal(who: Principal, bound: bigint, asked: bigint): StatusError | undefined {
    const limit = this.ledger.limits.limit('memory_bytes_per_vm', who);
    if (limit === Infinity || bound + asked <= BigInt(limit)) return undefined;
    return resourceExhausted('cap_memory_bytes_per_vm', `the VM has ${bound} bytes bound and asks for ${asked} more; one VM may have at most ${limit}`, {
      principal: who.key,
      bound: String(bound),
      asked: String(asked),
      limit: String(limit),
    });
  }

  /** Releases every session and VM the VM manager no longer has. */
  reconcile(): void {
    for (const [key, there] of [...this.objects]) {
      if (there()) continue;
      this.objects.delete(key);
      const at = key.indexOf('|');
      this.ledger.release(key.slice(0, at) as VmmQuota, key.slice(at + 1));
    }
  }

  private charge(rule: VmmQuota, who: Principal, id: string, there: () => boolean): void {
    this.ledger.release(rule, id);
    this.ledger.charge(rule, who, id);
    this.objects.set(`${rule}|${id}`, there);
  }
}
