/**
 * The VM manager's sessions (DESIGN.md §4, seed 001): who holds which VM handles. A session is
 * held by a stream (OpenSession: it ends when the client's stream does) or by a lease (lease.ts:
 * it ends on CloseLease, on expiry or at shutdown); both end the same way, by handing their
 * handles to `onEnd`, which tears the VMs down as gh_vm_release schedules the free.
 *
 * Ids are bearer handles: whoever names one acts in that session. With a `secret` source (the
 * service: 128 random bits per id, VmmConfig.sessionIdSecret; issue 11 item 5) they are
 * `session-<secret>` and `lease-<secret>`, which nobody can guess; without (the simulation and
 * the domain tests, which must be deterministic) `session-<prefix><n>` from one counter.
 *
 * A session opened with an `owner` (the service: the caller's principal) is bound to it: `heldBy`
 * is false for anyone else, and the service answers them as for a session that does not exist.
 * A lease adopted from an earlier process (durable-state.ts) has no saved owner and stays unbound.
 */
import type { VmmClock } from './clock.js';
import { LeaseTable, type LeaseEnd, type LeaseView } from './lease.js';
import { vmmFail, vmmOk, type VmmResult } from './vmm-error.js';

export class SessionRegistry {
  private readonly sessions = new Map<string, Set<number>>();
  /** The principal each bound session was opened by (none: unbound). */
  private readonly owners = new Map<string, string>();
  private readonly leases: LeaseTable;
  private next = 1;

  constructor(
    clock: VmmClock,
    private readonly prefix: string,
    /** A session ended: its VM handles (the set is no longer the registry's). */
    private readonly onEnd: (handles: ReadonlySet<number>) => void,
    /** The unguessable part of each new id; none: the prefix and a counter. */
    private readonly secret?: () => string,
  ) {
    this.leases = new LeaseTable(clock, (id) => this.end(id));
  }

  get size(): number {
    return this.sessions.size;
  }

  private newId(kind: 'session' | 'lease'): string {
    return this.secret === undefined ? `${kind}-${this.prefix}${this.next}` : `${kind}-${this.secret()}`;
  }

  /** A session held by the caller's stream, bound to `owner` if given. */
  openStream(owner?: string): string {
    const id = this.newId('session');
    this.next++;
    this.sessions.set(id, new Set());
    if (owner !== undefined) this.owners.set(id, owner);
    return id;
  }

  /** A session that lives `ttlMs` past the last call naming it, bound to `owner` if given. EINVAL lease_ttl_invalid. */
  openLease(ttlMs: number, owner?: string): VmmResult<LeaseView> {
    const id = this.newId('lease');
    const lease = this.leases.open(id, ttlMs);
    if (!lease.ok) return lease;
    this.next++;
    this.sessions.set(id, new Set());
    if (owner !== undefined) this.owners.set(id, owner);
    return lease;
  }

  /**
   * Whether `who` may name session `id`: it is unbound or bound to `who`. An id that names no live
   * session is anyone's to name (the domain answers it as unknown), so this reveals nothing.
   */
  heldBy(id: string, who: string): boolean {
    const owner = this.owners.get(id);
    return owner === undefined || owner === who;
  }

  /**
   * A lease saved by an earlier VMM process (durable-state.ts), under its old id, with the time it
   * has left; its session starts empty (the manager re-adopts its VMs). Whether it was adopted
   * (not when its time ran out while no VMM ran).
   */
  adoptLease(id: string, ttlMs: number, remainingMs: number): boolean {
    if (this.sessions.has(id) || !this.leases.adopt(id, ttlMs, remainingMs)) return false;
    this.sessions.set(id, new Set());
    return true;
  }

  /** The live leases as durable-state.ts saves them. */
  liveLeases(): ReturnType<LeaseTable['liveLeases']> {
    return this.leases.liveLeases();
  }

  /** Sizes of every per-session structure (sessions, live leases, ended-lease tombstones). */
  sizes(): { readonly sessions: number; readonly leases: number; readonly endedLeases: number } {
    const l = this.leases.sizes();
    return { sessions: this.sessions.size, leases: l.live, endedLeases: l.ended };
  }

  /**
   * Cancels every lease timer and forgets every session *without* ending any (a durable VMM
   * stopping: its saved leases and their VMs live on for the next process, durable-state.ts).
   */
  detach(): void {
    this.sessions.clear();
    this.owners.clear();
    this.leases.detach();
  }

  /** The lease runs `ttlMs` from now. EBADF lease_expired/lease_closed; ENOENT session_unknown; EINVAL not_a_lease. */
  renew(id: string): VmmResult<LeaseView> {
    const touched = this.leases.touch(id);
    if (touched !== undefined) return touched;
    return this.sessions.has(id) ? vmmFail('EINVAL', 'not_a_lease', `${id} is held by its OpenSession stream, not a lease`) : vmmFail('ENOENT', 'session_unknown', `no open session ${id}`);
  }

  /** A call names `session`: renews it if it is a lease; EBADF if it is an ended lease. */
  touch(session: string | undefined): VmmResult<void> {
    if (session === undefined) return vmmOk(undefined);
    const t = this.leases.touch(session);
    return t === undefined || t.ok ? vmmOk(undefined) : t;
  }

  /** The live session's handle set (the same set while the session lives), or undefined. */
  handles(session: string): Set<number> | undefined {
    return this.sessions.get(session);
  }

  /** The session is over (its stream closed, or its lease ended): its VMs go to `onEnd`. */
  end(id: string): void {
    const handles = this.sessions.get(id);
    if (handles === undefined) return;
    this.sessions.delete(id);
    this.owners.delete(id);
    this.onEnd(handles);
  }

  /** Ends a lease and its session, recording why for later calls that name it (EBADF). */
  endLease(id: string, why: LeaseEnd): void {
    this.leases.end(id, why);
    this.end(id);
  }

  /** Ends every live lease (the VMM is shutting down): their VMs go to `onEnd`. */
  endLeases(): void {
    for (const id of this.leases.liveIds()) this.endLease(id, 'SHUTDOWN');
  }

  /** Forgets every session without ending any VM (VmManager.abandon); lease timers are cancelled. */
  forget(): void {
    this.sessions.clear();
    this.owners.clear();
    this.endLeases();
  }
}
