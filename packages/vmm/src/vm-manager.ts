/**
 * The host VM manager (DESIGN.md §4; gunyah-rm.md §4.4, §5; seeds 001, 003, 004): VM handles bound
 * to client sessions, guest memory, the L24 start sequence against the RM, stop, teardown in the
 * Linux order, realm VMs over the core's RMI, and the host pages it donates for them.
 *
 * Handles and sessions. A VM handle belongs to the session that created it, as a VM fd belongs to
 * the process that holds it: `endSession` (the client went away) tears every VM of the session
 * down in the background, as gh_vm_release schedules the free; `destroy` does the same at once
 * and reports the outcome (the DESTROY ioctl seed 001's reviewer asked for). A session is either
 * held by a stream (`openSession`/`endSession`: it ends when the client's stream does) or a lease
 * (`openLease`, lease.ts: it ends on `closeLease` or when nobody named it for its TTL); both end
 * the same way. Every call that names a lease renews it.
 *
 * State of a handle: CREATED → (start) RUNNING | START_FAILED → (stop) STOPPED →
 * (destroy / session end) DESTROYING → DESTROYED. The RM's own VM status (§4.3) is tracked from
 * VM_STATUS notifications next to it.
 *
 * Host pages (seed 003): a GUNYAH VM's stage-2 is made by VM_ALLOCATE (the RM has HYP build it from
 * its boot reservation, gunyah-rm.md §4.2); the VMM tops its table pool up, and every realm granule
 * is delegated, from the HostPageAllocator's region; all of it is taken back on teardown; a page
 * that cannot be taken back is listed in the VM's `leaked`, never dropped silently.
 *
 * Guest memory of a GUNYAH VM, as L24 places it (§4.4). The DTB range goes through the RM: a
 * 1-ACL MEM_LEND parcel, CONFIG_IMAGE and SET_ADDRESS_LAYOUT(IMAGE), so VM_START maps it at its
 * guest address. Every other byte of every binding bypasses the RM, as L24's demand paging does
 * (§4.4 last bullet, vm_mgr_mem.c: memextent_donate + addrspace_map): one core grant per binding
 * from the host — LEND for a lend binding (the host loses access, donate "to-protected"), SHARE for
 * a share binding (the host keeps it, "to-sibling") — mapped into the guest's stage-2 at the
 * binding's guest address with the binding's R/W/X (L24 maps RWX/RX or RW/R by the folio's
 * writability; the model keeps the binding's rights exactly). The model has no vCPU faults, so the
 * grants are pre-faulted: all mapped at START after GET_HYP_RESOURCES (where L24 gets the guest's
 * address-space and memextent capabilities; VM_SET_DEMAND_PAGING has named the lend ranges) and
 * before VM_START, so the guest never runs without them; a failed START unmaps and destroys what it
 * mapped. Teardown reclaims them (unmap as the guest, destroy as HOST: "reclaim = unmap + donate
 * back") where _gunyah_vm_put reclaims all demand-paged memory, before VM_RESET.
 *
 * The parts: sessions.ts (sessions and leases), gunyah-lifecycle.ts and realm-lifecycle.ts (one
 * row each of LIFECYCLES below), vm-ops.ts (the steps both take), vm-record.ts (what they share),
 * restart-sweep.ts and durable-state.ts (what a restarted VMM takes back or re-adopts),
 * reconcile.ts (RM calls whose outcome is unknown, settled by query).
 *
 * Not modelled: vCPUs and VM functions (§5.4), page faults (the grants are pre-faulted, above),
 * binding changes after start (EBUSY).
 */
import { applyUnmap, checkBind, checkBootContext, checkDtb, holdsHost, type Binding, type RegSet } from './bindings.js';
import { HYP_SPACE_IPA_BITS } from '@hypmesh/stage2';
import { VMID_HLOS } from '@hypmesh/rm';
import type { VmmClock } from './clock.js';
import { GUNYAH_LIFECYCLE } from './gunyah-lifecycle.js';
import { HostPageAllocator, PAGE_BYTES, type FrameRun } from './host-pages.js';
import type { LeaseView } from './lease.js';
import type { CorePort, RmNotice, RmPort } from './ports.js';
import { REALM_LIFECYCLE } from './realm-lifecycle.js';
import { ORPHANED_SESSION, orphansOf, type HeldGrant, type HeldParcel, type HeldVm, type HoldingsPort, type RegionRun, type SweepOutcome, type SweepReport } from './restart-sweep.js';
import { ReconcilingRm } from './reconcile.js';
import { SessionRegistry } from './sessions.js';
import { readoptable, resumedState, savedVmOf, type VmmDurableState } from './durable-state.js';
import { VmOps, type VmLifecycle } from './vm-ops.js';
import { viewOf, type Vm, type VmEvent, type VmmConfig, type VmState, type VmStateSummary, type VmType, type VmView } from './vm-record.js';
import { vmmFail, vmmOk, type VmmResult } from './vmm-error.js';

export { DEFAULT_VMM_CONFIG } from './vm-record.js';
export type { TeardownReport, VmEvent, VmmConfig, VmState, VmStateSummary, VmType, VmView } from './vm-record.js';

/** How each VM type is made, started, stopped and torn down. */
const LIFECYCLES: Record<VmType, VmLifecycle> = { GUNYAH: GUNYAH_LIFECYCLE, REALM: REALM_LIFECYCLE };

/** The shortest wait before the restart sweep asks the core about its held frames again. */
const HOLDINGS_REREAD_MIN_MS = 100;

export class VmManager {
  readonly pages: HostPageAllocator;
  private readonly ops: VmOps;
  /** By `id` (manager-wide); a session's handle set holds these ids too. */
  private readonly vms = new Map<number, Vm>();
  /** VMs the RM reports on (LIFECYCLES rmTracked), by VMID. */
  private readonly byVmid = new Map<number, Vm>();
  private readonly sessions: SessionRegistry;
  private readonly listeners = new Set<(e: VmEvent) => void>();
  private readonly background = new Set<Promise<unknown>>();
  private nextId = 1;
  /** With handlesPerSession, each session's next handle, keyed by its handle set so it goes with the session. */
  private readonly nextInSession = new WeakMap<Set<number>, number>();
  private readonly unsubscribe: () => void;

  /** The RM port's reconciler (reconcile.ts), when the manager can query the RM's holdings. */
  readonly reconciler: ReconcilingRm | undefined;
  readonly rm: RmPort;

  constructor(
    rm: RmPort,
    readonly core: CorePort,
    readonly config: VmmConfig,
    /** Time for the RM waits and the leases (clock.ts; the service passes the real timers). */
    private readonly clock: VmmClock,
    /**
     * The RM's and the core's holdings: given, an RM call whose outcome is unknown is settled by
     * asking the RM what it holds (reconcile.ts) before anything is recorded.
     */
    holdings?: HoldingsPort,
  ) {
    this.reconciler = holdings === undefined ? undefined : new ReconcilingRm(rm, holdings, clock, config.attemptsMax, config.retryBackoffMs);
    this.rm = this.reconciler?.port ?? rm;
    this.pages = new HostPageAllocator(config.donationRegion);
    this.ops = new VmOps(this.rm, core, this.pages, config, clock);
    this.ops.holdings = holdings;
    this.sessions = new SessionRegistry(
      clock,
      config.sessionIdPrefix,
      (handles) => {
        for (const h of handles) this.track(this.destroy(h));
      },
      config.sessionIdSecret,
    );
    this.unsubscribe = this.rm.onNotice((n) => this.notice(n));
  }

  // ---- sessions ---------------------------------------------------------------------------------

  /** A new client session, bound to `owner` if given (sessions.ts); its VMs live until `endSession`. */
  openSession(owner?: string): string {
    return this.sessions.openStream(owner);
  }

  /** Whether principal `who` may name session `id` (sessions.ts heldBy). */
  sessionHeldBy(id: string, who: string): boolean {
    return this.sessions.heldBy(id, who);
  }

  /** The client went away: every VM of the session is torn down in the background (gh_vm_release). */
  endSession(id: string): void {
    this.sessions.end(id);
  }

  /** OpenLease: a new session that lives `ttlMs` past the last call naming it. EINVAL lease_ttl_invalid. */
  openLease(ttlMs: number, owner?: string): VmmResult<LeaseView> {
    return this.sessions.openLease(ttlMs, owner);
  }

  /** RenewLease: the lease runs `ttlMs` from now. EBADF lease_expired/lease_closed; ENOENT session_unknown; EINVAL not_a_lease. */
  renewLease(id: string): VmmResult<LeaseView> {
    return this.sessions.renew(id);
  }

  /**
   * CloseLease: ends the lease and its session as a closed stream does, then waits for the
   * teardowns it started and returns each VM's final view. Errors as renewLease.
   */
  async closeLease(id: string): Promise<VmmResult<VmView[]>> {
    const live = this.renewLease(id);
    if (!live.ok) return live;
    const handles = [...(this.sessions.handles(id) ?? [])];
    this.sessions.endLease(id, 'CLOSED');
    const done = await Promise.all(handles.map((h) => this.destroy(h)));
    return vmmOk(done.flatMap((r) => (r.ok ? [r.value] : [])));
  }

  /** Whether session `id` (stream or lease) is live; no side effect (a lease is not renewed). */
  hasSession(id: string): boolean {
    return this.sessions.handles(id) !== undefined;
  }

  /** How many VM handles and sessions (streams and leases) this manager holds. */
  counts(): { readonly vms: number; readonly sessions: number } {
    return { vms: this.vms.size, sessions: this.sessions.size };
  }

  /**
   * Reset (VmmService.Reset): forgets every session, lease and VM handle *without* a teardown call
   * to the RM or the core, and stops listening to the RM; the service then builds a fresh manager.
   * Whatever those VMs held stays in the RM and the core until they are reset too (vmm, then rm,
   * then core: `hypmesh reset`). Teardowns already running finish on their own.
   */
  abandon(): void {
    this.sessions.forget();
    this.vms.clear();
    this.byVmid.clear();
    this.unsubscribe();
  }

  /**
   * What a durable VMM saves (durable-state.ts): the live leases with their expiry on the wall
   * clock (`wallMs`: the caller's Date.now(); the domain never reads it), every VM's record, and
   * the next handle.
   */
  durableState(wallMs: number): VmmDurableState {
    return {
      nextHandle: this.nextId,
      leases: this.sessions.liveLeases().map((l) => {
        const handles = this.sessions.handles(l.sessionId);
        const nextHandle = handles === undefined ? undefined : this.nextInSession.get(handles);
        return { sessionId: l.sessionId, ttlMs: l.ttlMs, expiresAtWallMs: Math.round(wallMs + l.remainingMs), ...(nextHandle !== undefined && { nextHandle }) };
      }),
      vms: [...this.vms.values()].map(savedVmOf),
    };
  }

  /**
   * The size of every structure that holds something per session or per VM (issue 10: "session
   * memory freed when sessions end"): once every session has ended and its teardowns finished,
   * each is back to what it was before the sessions (tombstones: bounded, lease.ts).
   */
  footprint(): Readonly<Record<string, number>> {
    const s = this.sessions.sizes();
    const r = this.reconciler?.sizes();
    return { ...s, vms: this.vms.size, byVmid: this.byVmid.size, listeners: this.listeners.size, background: this.background.size, rmWaiters: this.ops.waiting(), ...(r && { rmVmidsKnown: r.vmids, rmParcelsKnown: r.parcels }) };
  }

  /**
   * A durable VMM stopping (SIGTERM with `--data-dir`): cancels the lease timers and stops
   * listening, *without* ending the leases, so that the next process re-adopts them and their VMs
   * from the saved state. Call it after the last save.
   */
  detach(): void {
    this.sessions.detach();
    this.unsubscribe();
  }

  /** Ends every live lease (the VMM is shutting down): their VMs are torn down in the background. */
  endLeases(): void {
    this.sessions.endLeases();
  }

  /** Resolves when every background teardown has finished. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Stops listening to the RM (after `idle`); ends the leases still live (cancelling their timers). */
  close(): void {
    this.endLeases();
    this.unsubscribe();
  }

  private track(p: Promise<unknown>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  // ---- events -----------------------------------------------------------------------------------

  watch(listener: (e: VmEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: VmEvent): void {
    for (const l of this.listeners) l(e);
  }

  private setState(vm: Vm, state: VmState): void {
    vm.state = state;
    this.emit({ kind: 'STATE', handle: vm.handle, session: vm.session, state });
  }

  private notice(n: RmNotice): void {
    if (n.kind === 'LINK') {
      if (n.up) void this.resync().then(() => this.ops.linkChanged(true));
      else this.ops.linkChanged(false);
      return;
    }
    const vm = this.byVmid.get(n.vmid);
    if (vm === undefined) return;
    if (n.kind === 'VM_STATUS') {
      vm.rmStatus = n.status;
      this.emit({ kind: 'RM_STATUS', handle: vm.handle, session: vm.session, rmStatus: n.status });
    } else {
      this.emit({ kind: 'EXITED', handle: vm.handle, session: vm.session, exitType: n.exitType });
    }
    this.ops.statusChanged();
  }

  /**
   * The msgq link came back (issue 9 §3): notifications the RM sent or meant to send while it was
   * down may be lost (an RM killed mid-VM_RESET, a queue that overflowed), so re-read the RM's view
   * of every VM it reports on (ListVms) and take each status as if notified; waits (stop, reset,
   * start) and teardown retries go on from there. Without holdings there is nothing to re-read.
   */
  private async resync(): Promise<void> {
    const vms = await this.ops.holdings?.rmVms();
    if (vms === undefined || !vms.ok) return;
    for (const v of vms.value) {
      const vm = this.byVmid.get(v.vmid);
      if (vm === undefined || vm.rmStatus === v.status) continue;
      vm.rmStatus = v.status;
      this.emit({ kind: 'RM_STATUS', handle: vm.handle, session: vm.session, rmStatus: v.status });
    }
    this.ops.statusChanged();
  }

  // ---- queries ----------------------------------------------------------------------------------

  /** With `session`, the session's VM of that handle; without (internal and simulation use), the VM of that manager-wide id. */
  private get(handle: number, session?: string): VmmResult<Vm> {
    const touched = this.sessions.touch(session);
    if (!touched.ok) return touched;
    const vm = session === undefined ? this.vms.get(handle) : this.inSession(session, handle);
    if (vm === undefined) return vmmFail('ENOENT', 'no_such_vm', `no VM handle ${handle}${session === undefined ? '' : ` in ${session}`}`);
    return vmmOk(vm);
  }

  private inSession(session: string, handle: number): Vm | undefined {
    if (!this.config.handlesPerSession) {
      const vm = this.vms.get(handle);
      return vm?.session === session ? vm : undefined;
    }
    for (const id of this.sessions.handles(session) ?? []) if (this.vms.get(id)?.handle === handle) return this.vms.get(id);
    return undefined;
  }

  /** The VM's view; with `session`, only if the handle belongs to it (ENOENT no_such_vm otherwise). */
  view(handle: number, session?: string): VmView | undefined {
    const got = this.get(handle, session);
    return got.ok ? viewOf(got.value) : undefined;
  }

  /** GetVm: the view, or ENOENT no_such_vm when the handle is not in `session`. */
  describe(handle: number, session: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    return got.ok ? vmmOk(viewOf(got.value)) : got;
  }

  list(): VmView[] {
    return [...this.vms.values()].map(viewOf);
  }

  /**
   * Each VM's identity and state as the manager holds them right now, in handle order, without
   * building views (`list` copies bindings, teardown reports and leaks per VM): for checkers that
   * run after every step of a simulation. Read it before the next call changes a state.
   */
  states(): IterableIterator<VmStateSummary> {
    return this.vms.values();
  }

  /** ListVms: the session's VMs (those being torn down included), by handle. EBADF for an ended lease; ENOENT session_unknown. */
  listVms(session: string): VmmResult<VmView[]> {
    const touched = this.sessions.touch(session);
    if (!touched.ok) return touched;
    const handles = this.sessions.handles(session);
    if (handles === undefined) return vmmFail('ENOENT', 'session_unknown', `no open session ${session}`);
    const vms = [...handles].sort((a, b) => a - b).flatMap((h) => this.vms.get(h) ?? []);
    return vmmOk(vms.map(viewOf));
  }

  // ---- create -----------------------------------------------------------------------------------

  /**
   * GUNYAH_CREATE_VM with a typed argument (seed 001). GUNYAH: VM_ALLOCATE(0), which has the core
   * make the VM's stage-2; then host pages donated to its table pool (createGunyah).
   * REALM: delegate the RD and the root RTTs, REALM_CREATE.
   */
  async create(session: string, type: VmType, ipaBits: number): Promise<VmmResult<VmView>> {
    const touched = this.sessions.touch(session);
    if (!touched.ok) return touched;
    const handles = this.sessions.handles(session);
    if (handles === undefined) return vmmFail('ENOENT', 'session_unknown', `no open session ${session}`);
    const lifecycle = Object.hasOwn(LIFECYCLES, type) ? LIFECYCLES[type] : undefined;
    if (lifecycle === undefined) return vmmFail('EINVAL', 'vm_type_invalid', `VM type ${String(type)}`);
    if (!Number.isInteger(ipaBits) || ipaBits < 32 || ipaBits > 48) return vmmFail('EINVAL', 'ipa_bits_invalid', `ipa_bits ${ipaBits} (32..48)`);
    const made = await lifecycle.create(this.ops, ipaBits, (vmid) => this.newVm(session, handles, type, vmid, ipaBits));
    if (!made.ok) {
      // Half made and the undo refused: the VM is the session's like any other, and its teardown
      // (with retries) takes it down or reports what it could not; the caller still sees the error.
      if ('unfinished' in made) this.track(this.destroy(this.register(made.unfinished, handles).id));
      return { ok: false, error: made.error };
    }
    const vm = this.register(made.value, handles);
    // The session ended (stream closed, lease expired or closed) while the VM was being made.
    if (this.sessions.handles(session) !== handles) this.track(this.destroy(vm.id));
    return vmmOk(viewOf(vm));
  }

  /** A made VM joins the tables and its session. */
  private register(vm: Vm, handles: Set<number>): Vm {
    this.vms.set(vm.id, vm);
    if (LIFECYCLES[vm.type].rmTracked) this.byVmid.set(vm.vmid, vm);
    handles.add(vm.id);
    this.emit({ kind: 'STATE', handle: vm.handle, session: vm.session, state: vm.state });
    return vm;
  }

  /** A new record; `handle` given (a re-adopted VM keeps its saved one), else the session's next. */
  private newVm(session: string, handles: Set<number>, type: VmType, vmid: number, ipaBits: number, given?: number): Vm {
    // Without per-session handles a handle is the record's id, so a re-adopted VM keeps it as its id
    // (the saved next id is past every saved one, durable-state.ts).
    const id = given !== undefined && !this.config.handlesPerSession ? given : this.nextId;
    this.nextId = Math.max(this.nextId, id + 1);
    const handle = given ?? (this.config.handlesPerSession ? (this.nextInSession.get(handles) ?? 1) : id);
    // A handle is never given twice in a session, even once its VM is gone (a closed fd's number).
    this.nextInSession.set(handles, Math.max(this.nextInSession.get(handles) ?? 1, handle + 1));
    return {
      id,
      handle,
      type,
      vmid,
      ipaBits,
      session,
      state: 'CREATED',
      rmStatus: LIFECYCLES[type].rmTracked ? 'LOAD' : 'UNKNOWN',
      bindings: [],
      dtb: undefined,
      boot: new Map(),
      parcels: [],
      demandPaged: [],
      unknownGrants: 0,
      poolRuns: [],
      realmPages: 0,
      realm: undefined,
      startTried: false,
      starting: undefined,
      teardown: [],
      leaked: [],
      destroyed: undefined,
    };
  }

  // ---- restart ----------------------------------------------------------------------------------

  /**
   * After a restart (restart-sweep.ts): holds the donation region's frames that are not the host's,
   * rebuilds a record of every VM HLOS holds in the RM and of every realm in the RMM and tears each
   * down in the background, as a session end does, then undelegates the region's unused DELEGATED
   * granules. Resolves once the frames are held and the orphans registered (creates work
   * from then on); `swept` resolves when every teardown has finished and the frames the host got
   * back are free again. EIO holdings_unreadable when the RM or the core cannot be asked.
   */
  async sweepOrphans(port: HoldingsPort, saved?: { readonly state: VmmDurableState; readonly wallMs: number }): Promise<VmmResult<SweepOutcome>> {
    const unreadable = (what: string, why: string): VmmResult<never> => vmmFail('EIO', 'holdings_unreadable', `${what}: ${why}`);
    this.ops.holdings ??= port;
    const region = await port.regionRuns(this.config.donationRegion);
    if (!region.ok) return unreadable('OwnershipMap of the donation region', region.error);
    // The grants before the parcels: a parcel another HLOS client is making while the sweep reads has
    // its grant in the core before it is in the RM, and must be in the parcel list read after, or
    // its grant would look like the VMM's demand-paged memory (restart-sweep.ts orphansOf).
    const grants = await port.hostGrants();
    const [vms, parcels, realms] = await Promise.all([port.rmVms(), port.rmParcels(), port.realms()]);
    if (!vms.ok) return unreadable('RM ListVms', vms.error);
    if (!parcels.ok) return unreadable('RM ListParcels', parcels.error);
    if (!grants.ok) return unreadable('core ListGrants', grants.error);
    if (!realms.ok) return unreadable('core ListRealms', realms.error);
    // Everything HLOS holds in the RM now is the manager's (adopted or orphaned): not a call's unknown outcome.
    this.reconciler?.know(
      vms.value.map((v) => v.vmid),
      parcels.value.filter((p) => p.ownerVmid === VMID_HLOS).map((p) => p.handle),
    );
    const adopted = saved === undefined ? [] : this.readopt(saved.state, saved.wallMs, vms.value, parcels.value, grants.value, region.value);
    const adoptedVmids = new Set(adopted.map((vm) => vm.vmid));
    const held = region.value.filter((r) => !r.hostFree).flatMap((r) => this.pages.holdUnused(r));
    const handles = new Set<number>();
    const found = (type: VmType, vmid: number, ipaBits: number): Vm => {
      const vm = this.newVm(ORPHANED_SESSION, handles, type, vmid, ipaBits);
      vm.startTried = true;
      return vm;
    };
    const orphans = orphansOf(vms.value.filter((v) => !adoptedVmids.has(v.vmid)), parcels.value, grants.value).map((o) => {
      const vm = found('GUNYAH', o.vmid, HYP_SPACE_IPA_BITS);
      vm.rmStatus = o.status;
      vm.parcels = o.parcels.map((handle) => ({ handle, what: `parcel ${handle} (found at restart)` }));
      vm.demandPaged = o.grants.map((g) => ({ grantId: g.grantId, what: `grant ${g.grantId} (found at restart)`, mapped: g.mapped }));
      return this.register(vm, handles);
    });
    const realmOrphans = realms.value.map((r) => {
      const vm = found('REALM', 0, r.ipaBits);
      vm.realm = { rd: r.rd, roots: r.roots, sl: r.startLevel, recs: r.recs, foundAtRestart: true };
      return this.register(vm, handles);
    });
    const unused = region.value.filter((r) => r.delegatedUnused);
    const swept = (async (): Promise<SweepReport> => {
      const views = await Promise.all([...orphans, ...realmOrphans].map((vm) => this.destroy(vm.id)));
      for (const run of unused) for (let f = run.base; f < run.base + run.count; f++) await this.core.granuleUndelegate(f * PAGE_BYTES);
      const stillHeld = await this.releaseHeld(port, held);
      return {
        tornDown: orphans.map((vm) => vm.vmid),
        realmsTornDown: realmOrphans.map((vm) => vm.realm!.rd),
        leaked: views.flatMap((v) =>
          v.ok && v.value.leaked.length > 0 ? [{ vmid: v.value.vmid, what: v.value.leaked, why: v.value.teardown.filter((t) => !t.ok).map((t) => `${t.step}: ${t.error ?? ''}`) }] : [],
        ),
        framesHeld: held.reduce((n, r) => n + r.count, 0),
        framesStillHeld: stillHeld,
      };
    })();
    this.track(swept);
    return vmmOk({ orphans: orphans.map((vm) => vm.vmid), realms: realms.value.map((r) => r.rd), adopted: adopted.map((vm) => vm.vmid), swept });
  }

  /**
   * The saved state's live leases under their old ids, and each of their GUNYAH VMs the RM still
   * lists as HLOS's whose saved pool runs the core still holds away from the host (durable-state.ts),
   * with the RM status, parcels and grants the RM and the core report now. The pool runs are held
   * as the VM's again (its teardown frees them). Leases that expired while no VMM ran are not
   * adopted: their VMs are orphans like any other.
   */
  private readopt(state: VmmDurableState, wallMs: number, rmVms: readonly HeldVm[], parcels: readonly HeldParcel[], grants: readonly HeldGrant[], region: readonly RegionRun[]): Vm[] {
    this.nextId = Math.max(this.nextId, state.nextHandle);
    for (const l of state.leases) {
      this.sessions.adoptLease(l.sessionId, l.ttlMs, l.expiresAtWallMs - wallMs);
      const handles = this.sessions.handles(l.sessionId);
      if (handles !== undefined && l.nextHandle !== undefined) this.nextInSession.set(handles, l.nextHandle);
    }
    const inRm = new Map(rmVms.map((v) => [v.vmid, v]));
    const hostFree = region.filter((r) => r.hostFree);
    const awayFromHost = (run: FrameRun): boolean => !hostFree.some((r) => r.base < run.base + run.count && run.base < r.base + r.count);
    const out: Vm[] = [];
    for (const saved of state.vms) {
      const handles = this.sessions.handles(saved.session);
      const rm = inRm.get(saved.vmid);
      if (handles === undefined || rm === undefined || !readoptable(saved) || this.byVmid.has(saved.vmid) || !saved.poolRuns.every(awayFromHost)) continue;
      const [now] = orphansOf([rm], parcels, grants);
      const label = new Map(saved.parcels.map((p) => [p.handle, p.what]));
      const grantLabel = new Map(saved.demandPaged.map((g) => [g.grantId, g.what]));
      const vm: Vm = {
        ...this.newVm(saved.session, handles, saved.type, saved.vmid, saved.ipaBits, saved.handle),
        state: resumedState(saved),
        rmStatus: rm.status,
        bindings: [...saved.bindings],
        dtb: saved.dtb,
        boot: new Map(saved.boot.map(([k, v]) => [k, { ...v }])),
        parcels: (now?.parcels ?? []).map((handle) => ({ handle, what: label.get(handle) ?? `parcel ${handle} (found at restart)` })),
        demandPaged: (now?.grants ?? []).map((g) => ({ grantId: g.grantId, what: grantLabel.get(g.grantId) ?? `grant ${g.grantId} (found at restart)`, mapped: g.mapped })),
        poolRuns: saved.poolRuns.flatMap((r) => this.pages.holdUnused(r)),
        startTried: saved.startTried,
      };
      out.push(this.register(vm, handles));
    }
    return out;
  }

  /**
   * Frees the held frames the core reports back with the host; how many are still not. A core that
   * cannot answer (restarting) is asked again, with back-off, for as long as a teardown waits for a
   * dependency (rmReturnWaitMs): counting its frames as still held would keep them from this VMM
   * for good though the teardowns gave them back. Frames still unread after that stay held.
   */
  private async releaseHeld(port: HoldingsPort, held: readonly FrameRun[]): Promise<number> {
    let still = 0;
    for (const run of held) {
      let now = await port.regionRuns(run);
      for (let n = 0, waited = 0; !now.ok; n++) {
        const ms = Math.max(HOLDINGS_REREAD_MIN_MS, this.config.retryBackoffMs) * 2 ** Math.min(n, 2);
        if ((waited += ms) > this.config.rmReturnWaitMs) break;
        await new Promise<void>((resolve) => void this.clock.after(ms, resolve));
        now = await port.regionRuns(run);
      }
      for (const r of now.ok ? now.value : [{ ...run, hostFree: false }]) {
        // Only what was held: a run the core merged with its neighbours is clipped to `run`.
        const base = Math.max(r.base, run.base);
        const count = Math.min(r.base + r.count, run.base + run.count) - base;
        if (count <= 0) continue;
        if (r.hostFree) this.pages.freeRun({ base, count });
        else still += count;
      }
    }
    return still;
  }

  // ---- configuration before start ---------------------------------------------------------------

  /** GUNYAH_VM_MAP_MEM (§5.3): bind, or with `unmap` trim a binding's head or tail. */
  mapMem(handle: number, b: Binding, unmap = false, session?: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    if (vm.startTried) return vmmFail('EBUSY', 'vm_started', 'bindings change before start only (no page faults in this model: START maps them all)');
    if (unmap) {
      const rest = applyUnmap(vm.bindings, b);
      if (!rest.ok) return rest;
      vm.bindings = rest.value;
      return vmmOk(viewOf(vm));
    }
    const refused = LIFECYCLES[vm.type].refuseBinding(vm, b);
    if (refused !== undefined) return refused;
    const hostBound = (a: bigint, s: bigint): boolean => {
      for (const v of this.vms.values()) if (holdsHost(v.bindings, a, s)) return true;
      return false;
    };
    const ok = checkBind(vm.bindings, b, { ipaBits: vm.ipaBits, hostBound, hostReserved: (a, s) => this.pages.overlaps(a, s) });
    if (!ok.ok) return ok;
    vm.bindings.push(ok.value);
    return vmmOk(viewOf(vm));
  }

  /** GUNYAH_VM_SET_DTB_CONFIG. */
  setDtbConfig(handle: number, guestAddr: bigint, sizeBytes: bigint, session?: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const d = checkDtb(guestAddr, sizeBytes);
    if (!d.ok) return d;
    got.value.dtb = d.value;
    return vmmOk(viewOf(got.value));
  }

  /** GUNYAH_VM_SET_BOOT_CONTEXT. */
  setBootContext(handle: number, set: RegSet, index: number, value: bigint, session?: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    const key = checkBootContext(vm.startTried, set, index);
    if (!key.ok) return key;
    vm.boot.set(key.value, { set, index, value });
    return vmmOk(viewOf(vm));
  }

  // ---- start ------------------------------------------------------------------------------------

  /**
   * GUNYAH_VM_START (§5.3): idempotent; the first call runs the type's start sequence (GUNYAH: L24's,
   * §4.4), later calls return at once, -ENODEV if the VM is not RUNNING.
   */
  async start(handle: number, session?: string): Promise<VmmResult<VmView>> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    if (vm.startTried) return vm.state === 'RUNNING' ? vmmOk(viewOf(vm)) : vmmFail('ENODEV', 'not_running', `VM ${handle} is ${vm.state}`);
    if (vm.state === 'DESTROYING') return vmmFail('ENODEV', 'vm_destroying', `VM ${handle} is being torn down`);
    vm.startTried = true;
    // A teardown that begins while the sequence runs waits for it (tearDown awaits `starting`), as
    // gh_vm_put waits for the last reference, an ioctl in progress included: otherwise the start
    // lends the DTB or maps grants after the teardown reclaimed them, and its final state
    // overwrites DESTROYING (found by the simulation: README "Deterministic simulation", bug 3).
    const lifecycle = LIFECYCLES[vm.type];
    const run = lifecycle.start(this.ops, vm);
    vm.starting = run;
    const r = await run;
    vm.starting = undefined;
    const now = vm.state as VmState; // changed by a teardown while the sequence ran
    if (now === 'DESTROYING' || now === 'DESTROYED') return r.ok ? vmmFail('ENODEV', 'vm_destroying', `VM ${handle} was torn down while it started`) : r;
    if (!r.ok) {
      this.setState(vm, 'START_FAILED');
      return r;
    }
    if (lifecycle.rmTracked && vm.rmStatus !== 'RUNNING') {
      this.setState(vm, 'START_FAILED');
      return vmmFail('ENODEV', 'not_running', `VM ${handle} is ${vm.rmStatus} after VM_START`);
    }
    this.setState(vm, 'RUNNING');
    return vmmOk(viewOf(vm));
  }

  // ---- stop -------------------------------------------------------------------------------------

  /** GUNYAH: forced VM_STOP, then wait for EXITED (§4.4). */
  async stop(handle: number, session?: string): Promise<VmmResult<VmView>> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    if (vm.state !== 'RUNNING') return vmmFail('EINVAL', 'not_running', `VM ${handle} is ${vm.state}`);
    const r = await LIFECYCLES[vm.type].stop(this.ops, vm);
    if (!r.ok) return r;
    // A teardown that began while VM_STOP waited owns the state now.
    if ((vm.state as VmState) !== 'RUNNING') return vmmFail('ENODEV', 'vm_destroying', `VM ${handle} is ${vm.state}`);
    this.setState(vm, 'STOPPED');
    return vmmOk(viewOf(vm));
  }

  // ---- teardown ---------------------------------------------------------------------------------

  /** Explicit destroy (seed 001): the teardown now; resolves with the final view. */
  destroy(handle: number, session?: string): Promise<VmmResult<VmView>> {
    const got = this.get(handle, session);
    if (!got.ok) return Promise.resolve(got);
    const vm = got.value;
    vm.destroyed ??= this.tearDown(vm);
    return vm.destroyed.then((v) => vmmOk(v));
  }

  /** The type's teardown (GUNYAH: _gunyah_vm_put's order, §4.4), then the handle is gone. */
  private async tearDown(vm: Vm): Promise<VmView> {
    this.setState(vm, 'DESTROYING');
    if (vm.starting !== undefined) await vm.starting.catch(() => undefined);
    const lifecycle = LIFECYCLES[vm.type];
    await lifecycle.tearDown(this.ops, vm);
    this.vms.delete(vm.id);
    // Only its own entry: a VMID the RM handed to another VM since (after a VM_DEALLOCATE that went
    // through) is that VM's now.
    if (lifecycle.rmTracked && this.byVmid.get(vm.vmid) === vm) this.byVmid.delete(vm.vmid);
    this.sessions.handles(vm.session)?.delete(vm.id);
    this.setState(vm, 'DESTROYED');
    return viewOf(vm);
  }
}
