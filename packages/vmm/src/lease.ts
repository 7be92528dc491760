/**
 * Lease sessions (DESIGN.md §4, seed 001): a session that lives while its client keeps renewing it,
 * for clients that cannot hold a stream open for the life of their VMs (the CLI runs one process
 * per command). It ends like a stream session: when it is closed or its lease runs out, every VM
 * of the session is torn down in the background, as gh_vm_release schedules the free.
 *
 * States of a lease: LIVE (expiresAtMs in the future; every call naming it moves expiresAtMs to
 * now + ttlMs) → ENDED (CLOSED by CloseLease, EXPIRED when the clock reaches expiresAtMs, SHUTDOWN
 * when the VMM stops). Only LIVE leases hold VMs. An ended lease leaves a record (the last
 * ENDED_LEASES_MAX of them) so that a late call gets EBADF naming why, as an ioctl on a released
 * fd gets -EBADF, instead of a bare "unknown session".
 *
 * Expiry is checked twice: by a timer on the clock port (so an idle lease ends without any call),
 * and by every touch (a call that arrives at or after expiresAtMs finds the lease ended even if
 * the timer has not run yet). One timer per lease: when it fires early (the lease was renewed),
 * it is set again for the remainder.
 *
 * Check order of a touch: lease_closed / lease_expired (EBADF, an ended lease) → the renewal.
 * Opening: lease_ttl_invalid (EINVAL, outside LEASE_TTL_MS_MIN..LEASE_TTL_MS_MAX).
 *
 * Tombstones are bounded twice (issue 10: VMM memory grew with every ended session): at most
 * ENDED_LEASES_MAX of them, and each for at most ENDED_LEASE_KEEP_MS. Their only use is a better
 * message for a late call, and a client that has not called for that long has long since given up
 * on the lease; older ones are forgotten (a late call then gets session_unknown and changes nothing).
 *
 * Across a VMM restart (`--data-dir`, durable-state.ts): a live lease is saved with its TTL and its
 * expiry and `adopt`ed by the next process with the time it has left, so the same id keeps working.
 * Tombstones are not saved: a late call after a restart gets session_unknown.
 *
 * Not modelled: authentication of the session id (any client naming it acts in the session, as
 * with stream sessions).
 */
import type { VmmClock } from './clock.js';
import { vmmFail, vmmOk, type VmmResult } from './vmm-error.js';

/** Shortest lease: a renewal every second is as chatty as a client should be. */
export const LEASE_TTL_MS_MIN = 1_000;
/** Longest lease: an abandoned lease holds its VMs (and their memory) at most this long. */
export const LEASE_TTL_MS_MAX = 3_600_000;
/** Ended leases remembered for their EBADF message; older ones become unknown sessions. */
export const ENDED_LEASES_MAX = 1_024;
/** How long an ended lease's tombstone is kept: one longest TTL, after which no client still waits on it. */
export const ENDED_LEASE_KEEP_MS = LEASE_TTL_MS_MAX;

export type LeaseEnd = 'CLOSED' | 'EXPIRED' | 'SHUTDOWN';

export interface LeaseView {
  readonly sessionId: string;
  readonly ttlMs: number;
  /** On the VMM's clock. */
  readonly expiresAtMs: number;
  /** expiresAtMs − now. */
  readonly expiresInMs: number;
}

interface Lease {
  readonly ttlMs: number;
  expiresAtMs: number;
  cancel: () => void;
}

/** OpenLease's ttl_ms: a whole number of milliseconds within the bounds. */
export function checkLeaseTtl(ttlMs: number): VmmResult<number> {
  if (!Number.isInteger(ttlMs) || ttlMs < LEASE_TTL_MS_MIN || ttlMs > LEASE_TTL_MS_MAX)
    return vmmFail('EINVAL', 'lease_ttl_invalid', `ttl_ms ${ttlMs} (${LEASE_TTL_MS_MIN}..${LEASE_TTL_MS_MAX})`);
  return vmmOk(ttlMs);
}

/** The live and recently ended leases; `onExpire` ends the session (tears its VMs down). */
export class LeaseTable {
  private readonly live = new Map<string, Lease>();
  private readonly ended = new Map<string, { readonly why: LeaseEnd; readonly atMs: number }>();

  constructor(
    private readonly clock: VmmClock,
    private readonly onExpire: (sessionId: string) => void,
  ) {}

  /** A lease for a new session id. */
  open(sessionId: string, ttlMs: number): VmmResult<LeaseView> {
    const ttl = checkLeaseTtl(ttlMs);
    if (!ttl.ok) return ttl;
    const lease: Lease = { ttlMs, expiresAtMs: this.clock.nowMs() + ttlMs, cancel: () => {} };
    this.live.set(sessionId, lease);
    this.arm(sessionId, lease);
    return vmmOk(this.viewOf(sessionId, lease));
  }

  /**
   * A lease saved by an earlier VMM process (durable-state.ts), with `remainingMs` of its TTL left
   * (≤ 0: it expired while no VMM ran, and is not adopted). Whether it was adopted.
   */
  adopt(sessionId: string, ttlMs: number, remainingMs: number): boolean {
    if (!checkLeaseTtl(ttlMs).ok || remainingMs <= 0 || this.live.has(sessionId)) return false;
    const lease: Lease = { ttlMs, expiresAtMs: this.clock.nowMs() + Math.min(remainingMs, ttlMs), cancel: () => {} };
    this.live.set(sessionId, lease);
    this.arm(sessionId, lease);
    return true;
  }

  /** Each live lease as `durable-state.ts` saves it: its TTL and the time it has left. */
  liveLeases(): { readonly sessionId: string; readonly ttlMs: number; readonly remainingMs: number }[] {
    const now = this.clock.nowMs();
    return [...this.live].map(([sessionId, l]) => ({ sessionId, ttlMs: l.ttlMs, remainingMs: l.expiresAtMs - now }));
  }

  /** Sizes of what the table keeps (live leases, tombstones), for the session-memory checks. */
  sizes(): { readonly live: number; readonly ended: number } {
    this.forgetOldTombstones();
    return { live: this.live.size, ended: this.ended.size };
  }

  /** Whether `sessionId` is or was a lease this table still remembers. */
  knows(sessionId: string): boolean {
    return this.live.has(sessionId) || this.ended.has(sessionId);
  }

  isLive(sessionId: string): boolean {
    return this.live.has(sessionId);
  }

  /**
   * A call names `sessionId`: renew it if it is a live lease; EBADF if it is an ended one
   * (expiring it first if its time is up); undefined if it is not a lease (a stream session).
   */
  touch(sessionId: string): VmmResult<LeaseView> | undefined {
    const lease = this.live.get(sessionId);
    if (lease !== undefined && this.clock.nowMs() >= lease.expiresAtMs) this.expire(sessionId);
    this.forgetOldTombstones();
    const gone = this.ended.get(sessionId);
    if (gone !== undefined) {
      const ago = this.clock.nowMs() - gone.atMs;
      const what = { CLOSED: 'was closed', EXPIRED: 'expired (not renewed within its TTL)', SHUTDOWN: 'ended when the VMM shut down' }[gone.why];
      return vmmFail('EBADF', gone.why === 'CLOSED' ? 'lease_closed' : 'lease_expired', `session ${sessionId} ${what} ${ago} ms ago; its VMs were torn down; open a new lease`);
    }
    if (lease === undefined) return undefined;
    lease.expiresAtMs = this.clock.nowMs() + lease.ttlMs;
    return vmmOk(this.viewOf(sessionId, lease));
  }

  /** Ends a live lease (no-op otherwise); the caller ends the session. */
  end(sessionId: string, why: LeaseEnd): boolean {
    const lease = this.live.get(sessionId);
    if (lease === undefined) return false;
    lease.cancel();
    this.live.delete(sessionId);
    this.ended.set(sessionId, { why, atMs: this.clock.nowMs() });
    for (const old of this.ended.keys()) {
      if (this.ended.size <= ENDED_LEASES_MAX) break;
      this.ended.delete(old);
    }
    this.forgetOldTombstones();
    return true;
  }

  /** Drops tombstones older than ENDED_LEASE_KEEP_MS (the map is in end order: oldest first). */
  private forgetOldTombstones(): void {
    const now = this.clock.nowMs();
    for (const [id, t] of this.ended) {
      if (now - t.atMs < ENDED_LEASE_KEEP_MS) break;
      this.ended.delete(id);
    }
  }

  /** Cancels every live lease's timer and forgets it, without ending it (sessions.ts detach). */
  detach(): void {
    for (const l of this.live.values()) l.cancel();
    this.live.clear();
  }

  liveIds(): string[] {
    return [...this.live.keys()];
  }

  private expire(sessionId: string): void {
    if (this.end(sessionId, 'EXPIRED')) this.onExpire(sessionId);
  }

  /** One timer per lease, at expiresAtMs as it was when set; early (renewed since) → set again. */
  private arm(sessionId: string, lease: Lease): void {
    lease.cancel = this.clock.after(lease.expiresAtMs - this.clock.nowMs(), () => {
      if (this.live.get(sessionId) !== lease) return;
      if (this.clock.nowMs() >= lease.expiresAtMs) this.expire(sessionId);
      else this.arm(sessionId, lease);
    });
  }

  private viewOf(sessionId: string, lease: Lease): LeaseView {
    return { sessionId, ttlMs: lease.ttlMs, expiresAtMs: lease.expiresAtMs, expiresInMs: lease.expiresAtMs - this.clock.nowMs() };
  }
}
