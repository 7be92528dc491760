/**
 * Unknown outcomes between the VMM and the RM, settled by query (issue 9 §2: "retries with the same
 * key until it has a definite answer, or reconciles by query; it never records a state it has not
 * confirmed").
 *
 * Why query, not key: the VMM reaches the RM over HLOS's msgq (gunyah-rm.md §1.1–1.2), whose
 * header is msg_id, seq and the payload. There is no room for a request id, and the seq is the
 * transport's (16 bits, reused; a restarted RM does not know the old ones), so the RM cannot tell a
 * repeated request from a new one, and the VMM cannot ask "what did you answer to request K". What
 * it can ask is what the RM holds now: its VMs with their status and its parcels (RM ListVms and
 * ListParcels, HoldingsPort). So when a mutating call ends without a definite answer (msgq timeout,
 * the stream broke, the RM restarted mid-call: the adapter's `msgq_*` refusals), this port asks,
 * and the call's row of SETTLE says whether what the RM holds shows the call applied:
 *
 *   VM_ALLOCATE          exactly one HLOS VM the VMM does not know of (the VMID it was given)
 *   MEM_LEND, MEM_SHARE  exactly one HLOS parcel the VMM does not know of, with the request's ACL
 *   MEM_RECLAIM          the parcel is gone
 *   VM_DEALLOCATE        the VM is gone
 *   VM_INIT              the VM is READY (INIT_FAILED: it ran and failed, which stays a failure)
 *   VM_START             the VM is RUNNING, PAUSED or EXITED
 *   VM_STOP              the VM is EXITED
 *   VM_RESET             the VM is RESETTING or RESET
 *
 * A request that never left (no stream: `msgq_not_sent`, `msgq_closed`) is not in doubt and fails at
 * once; one not answered in time (`msgq_timeout`) is asked about once; one whose stream broke after it
 * was sent is asked about with retries (the RM may be restarting).
 *
 * Applied: the call succeeds with the reply the RM's state implies (the VMID, the parcel handle),
 * and the status read is passed on as a VM_STATUS notice (the real one may come later, or was lost
 * with the stream). Not applied, or the RM cannot be asked: the call fails as before (EIO: nothing
 * recorded), and a later teardown or restart sweep deals with the VM.
 *
 * "Does not know of" is exact only if no other call of the same kind is in flight: VM_ALLOCATE and
 * the parcel-making calls are therefore serialized here (one at a time each; the VMM makes them
 * once per create and per start). The VMIDs and parcels the VMM knows are those this port saw made
 * (and not yet released), plus what the restart sweep found (`know`).
 *
 * Calls not in SETTLE (the configuration calls before VM_INIT, GET_HYP_RESOURCES) change nothing a
 * teardown must undo, and fail as before.
 */
import type { VmStatus } from '@hypmesh/rm';
import { VMID_HLOS, type RmOutcome } from '@hypmesh/rm';
import type { CallName, ReplyOf, RequestOf } from '@hypmesh/rm-wire';
import type { VmmClock } from './clock.js';
import { MSGQ_FAILED_RULE_PREFIX, MSGQ_NOT_SENT_RULES, MSGQ_TIMEOUT_RULE, RM_PORT_CALLS, rmPortOver, type RmNotice, type RmPort } from './ports.js';
import type { HeldParcel, HeldVm, HoldingsPort } from './restart-sweep.js';

/** What the RM holds, as the settle rows read it. */
interface Facts {
  readonly vms: readonly HeldVm[];
  readonly parcels: readonly HeldParcel[];
}

/** What the VMM knows it holds in the RM. */
interface Known {
  readonly vmids: ReadonlySet<number>;
  readonly parcels: ReadonlySet<number>;
}

/** One call's row: what it creates (serialized), and the reply the RM's state shows, or undefined (not applied). */
interface SettleRow {
  readonly creates?: 'vmid' | 'parcel';
  /** The status the VM was found in, to pass on as a notice. */
  confirm(req: never, facts: Facts, known: Known): { readonly reply: unknown; readonly status?: { vmid: number; status: VmStatus | 'UNKNOWN' } } | undefined;
}

const statusOf = (facts: Facts, vmid: number): VmStatus | 'UNKNOWN' | undefined => facts.vms.find((v) => v.vmid === vmid)?.status;

/** The VM is in one of `statuses`: the call that leads there applied (empty reply). */
const reached =
  (...statuses: readonly VmStatus[]) =>
  (req: { readonly vmid: number }, facts: Facts): ReturnType<SettleRow['confirm']> => {
    const s = statusOf(facts, req.vmid);
    return s !== undefined && s !== 'UNKNOWN' && statuses.includes(s) ? { reply: {}, status: { vmid: req.vmid, status: s } } : undefined;
  };

/** A new HLOS parcel with the request's label whose ACL names exactly the request's VMIDs. */
const newParcel = (req: { readonly label: number; readonly acl: readonly { readonly vmid: number }[] }, facts: Facts, known: Known): ReturnType<SettleRow['confirm']> => {
  const want = req.acl.map((e) => e.vmid).sort((a, b) => a - b).join(',');
  const fresh = facts.parcels.filter(
    (p) => p.ownerVmid === VMID_HLOS && p.label === req.label && !known.parcels.has(p.handle) && [...p.aclVmids].sort((a, b) => a - b).join(',') === want,
  );
  return fresh.length === 1 ? { reply: { handle: fresh[0]!.handle } } : undefined;
};

export const SETTLE: Partial<Record<CallName, SettleRow>> = {
  VM_ALLOCATE: {
    creates: 'vmid',
    confirm: (req: RequestOf<'VM_ALLOCATE'>, facts: Facts, known: Known) => {
      const fresh = facts.vms.filter((v) => !known.vmids.has(v.vmid) && (req.vmid === 0 || v.vmid === req.vmid));
      return fresh.length === 1 ? { reply: { vmid: fresh[0]!.vmid } satisfies ReplyOf<'VM_ALLOCATE'> } : undefined;
    },
  },
  MEM_LEND: { creates: 'parcel', confirm: newParcel },
  MEM_SHARE: { creates: 'parcel', confirm: newParcel },
  MEM_RECLAIM: { confirm: (req: RequestOf<'MEM_RECLAIM'>, facts: Facts) => (facts.parcels.some((p) => p.handle === req.handle) ? undefined : { reply: {} }) },
  VM_DEALLOCATE: { confirm: (req: RequestOf<'VM_DEALLOCATE'>, facts: Facts) => (statusOf(facts, req.vmid) === undefined ? { reply: {} } : undefined) },
  VM_INIT: { confirm: reached('READY') },
  VM_START: { confirm: reached('RUNNING', 'PAUSED', 'EXITED') },
  VM_STOP: { confirm: reached('EXITED') },
  VM_RESET: { confirm: reached('RESETTING', 'RESET') },
};

/** What a settled call came to, for tests and logs. */
export interface Settled {
  readonly call: CallName;
  readonly applied: boolean;
  /** Why it could not be told (the RM could not be asked), if so. */
  readonly unreadable?: string;
}

/** An RmPort over `inner` that settles unknown outcomes by query (module comment). */
export class ReconcilingRm {
  readonly port: RmPort;
  /** Every unknown outcome this port settled or could not, in order (bounded: the last SETTLED_LOG_MAX). */
  readonly settled: Settled[] = [];
  private readonly vmids = new Set<number>();
  private readonly parcels = new Set<number>();
  private readonly listeners = new Set<(n: RmNotice) => void>();
  private readonly queues: Record<'vmid' | 'parcel', Promise<unknown>> = { vmid: Promise.resolve(), parcel: Promise.resolve() };

  constructor(
    inner: RmPort,
    private readonly query: Pick<HoldingsPort, 'rmVms' | 'rmParcels'>,
    private readonly clock: VmmClock,
    /**
     * Tries of the query are attemptsMax + QUERY_EXTRA_TRIES, the back-off before the nth retry
     * retryBackoffMs × 2^min(n−1, 2) (the service: 1, 2, 4, 4 s, 11 s in all).
     */
    private readonly attemptsMax: number,
    private readonly retryBackoffMs: number,
  ) {
    const methodOf = new Map(Object.entries(RM_PORT_CALLS).map(([method, name]) => [name as CallName, method]));
    const call = <N extends CallName>(name: N, req: RequestOf<N>): Promise<RmOutcome<ReplyOf<N>>> => {
      const send = () => (inner as unknown as Record<string, (r: unknown) => Promise<RmOutcome<ReplyOf<N>>>>)[methodOf.get(name)!]!(req);
      const row = SETTLE[name];
      if (row === undefined) return send();
      const run = () => this.callSettled(name, req, row, send);
      if (row.creates === undefined) return run();
      const turn = this.queues[row.creates].then(run, run);
      this.queues[row.creates] = turn.catch(() => undefined);
      return turn;
    };
    this.port = rmPortOver(call as never, (listener) => {
      this.listeners.add(listener);
      const off = inner.onNotice(listener);
      return () => {
        this.listeners.delete(listener);
        off();
      };
    });
  }

  /** VMIDs and parcels the VMM holds that this port did not see made (the restart sweep's). */
  know(vmids: readonly number[], parcels: readonly number[]): void {
    for (const v of vmids) this.vmids.add(v);
    for (const p of parcels) this.parcels.add(p);
  }

  /** Sizes of what it tracks (the session-memory checks: they follow the VMs, not the sessions). */
  sizes(): { readonly vmids: number; readonly parcels: number } {
    return { vmids: this.vmids.size, parcels: this.parcels.size };
  }

  private async callSettled<N extends CallName>(name: N, req: RequestOf<N>, row: SettleRow, send: () => Promise<RmOutcome<ReplyOf<N>>>): Promise<RmOutcome<ReplyOf<N>>> {
    const r = await send();
    if (r.ok) {
      this.note(name, req, r.value);
      return r;
    }
    if (!r.error.rule.startsWith(MSGQ_FAILED_RULE_PREFIX) || MSGQ_NOT_SENT_RULES.has(r.error.rule)) return r;
    // Not answered in time: the RM is stopped or overloaded, not restarting, so it is asked once (a
    // caller waits no longer than its RM deadline twice over); a stream that broke after the send
    // may be an RM restarting, which the retries wait out.
    const facts = await this.read(r.error.rule === MSGQ_TIMEOUT_RULE ? 1 : this.attemptsMax + QUERY_EXTRA_TRIES);
    if (!facts.ok) {
      this.log({ call: name, applied: false, unreadable: facts.error });
      return { ok: false, error: { ...r.error, message: `${r.error.message}; its outcome is unknown: the RM could not be asked (${facts.error})` } };
    }
    const found = row.confirm(req as never, facts.value, { vmids: this.vmids, parcels: this.parcels });
    this.log({ call: name, applied: found !== undefined });
    if (found === undefined) return { ok: false, error: { ...r.error, message: `${r.error.message}; asked after, the RM shows it not applied` } };
    const reply = found.reply as ReplyOf<N>;
    this.note(name, req, reply);
    if (found.status !== undefined) for (const l of [...this.listeners]) l({ kind: 'VM_STATUS', ...found.status });
    return { ok: true, value: reply };
  }

  /** The RM's VMs and parcels, asked up to `tries` times with the back-off above (the RM may be restarting). */
  private async read(tries: number): Promise<{ ok: true; value: Facts } | { ok: false; error: string }> {
    let why = '';
    for (let n = 1; n <= tries; n++) {
      const [vms, parcels] = await Promise.all([this.query.rmVms(), this.query.rmParcels()]);
      if (vms.ok && parcels.ok) return { ok: true, value: { vms: vms.value, parcels: parcels.value } };
      why = !vms.ok ? vms.error : !parcels.ok ? parcels.error : '';
      if (n < tries && this.retryBackoffMs > 0) await new Promise<void>((resolve) => void this.clock.after(this.retryBackoffMs * 2 ** Math.min(n - 1, 2), resolve));
    }
    return { ok: false, error: why };
  }

  /** A call the RM applied: what the VMM now holds there. */
  private note(name: CallName, req: unknown, reply: unknown): void {
    if (name === 'VM_ALLOCATE') {
      const vmid = (reply as ReplyOf<'VM_ALLOCATE'>).vmid;
      if (vmid !== null) this.vmids.add(vmid);
    } else if (name === 'VM_DEALLOCATE') this.vmids.delete((req as RequestOf<'VM_DEALLOCATE'>).vmid);
    else if (name === 'MEM_LEND' || name === 'MEM_SHARE') this.parcels.add((reply as ReplyOf<'MEM_LEND'>).handle);
    else if (name === 'MEM_RECLAIM') this.parcels.delete((req as RequestOf<'MEM_RECLAIM'>).handle);
  }

  private log(s: Settled): void {
    this.settled.push(s);
    if (this.settled.length > SETTLED_LOG_MAX) this.settled.shift();
  }
}

/**
 * Query tries beyond a teardown step's attempts: an RM restarted by its supervisor takes a process
 * start and a restore to answer (about 2–3 s measured, test/vmm-reconcile.e2e.test.ts), and a
 * create or a start has no outer retry; a teardown step retries on its own, so more would only
 * lengthen each of its attempts during a partition.
 */
export const QUERY_EXTRA_TRIES = 1;

/** Settled outcomes remembered for tests and logs. */
export const SETTLED_LOG_MAX = 256;
