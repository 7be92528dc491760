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
 * Not modelled: vCPUs and VM functions (§5.4), page faults (the grants are pre-faulted, above),
 * binding changes after start (EBUSY).
 */
import { ADDRESS_RANGE_ID, AUTH_MECH, MEM_TYPE, STOP_FLAGS, STOP_REASON, RM_ERRORS } from '@hypmesh/rm-wire';
import type { CoreResult, RmOutcome, VmStatus } from '@hypmesh/rm';
import { HYP_SPACE_IPA_BITS, realmCreateRttLevels, realmRootRttCount, realmTearDown, startLevel, type RealmHost } from '@hypmesh/stage2';
import { applyUnmap, checkBind, checkBootContext, checkDtb, REG_SETS, RIGHTS, type Binding, type RegSet } from './bindings.js';
import type { VmmClock } from './clock.js';
import { HostPageAllocator, PAGE_BYTES, type FrameRun } from './host-pages.js';
import { LeaseTable, type LeaseView } from './lease.js';
import { MSGQ_FAILED_RULE_PREFIX, type CorePort, type RmNotice, type RmPort } from './ports.js';
import { VMM_ERRNO, vmmFail, vmmOk, type VmmErrnoName, type VmmError, type VmmResult } from './vmm-error.js';

export type VmType = 'GUNYAH' | 'REALM';
export type VmState = 'CREATED' | 'RUNNING' | 'START_FAILED' | 'STOPPED' | 'DESTROYING' | 'DESTROYED';

export interface VmmConfig {
  /**
   * Host frames the VMM may donate and delegate. The service derives it from the core's memory map
   * unless configured (host-pages.ts donationRegionFrom: below HYP's carve-out at the top of the
   * highest RAM region); this default (the last 64 MiB of the default map's RAM) serves in-process
   * use on the default map only.
   */
  readonly donationRegion: FrameRun;
  /** Table-pool pages donated at create (the roots come with VM_ALLOCATE, from HYP's reservation). */
  readonly initialPoolPages: number;
  /** Pages added per top-up when the core answers ENOMEM or the RM NOMEM. */
  readonly topUpPages: number;
  /** Before VM_START, top the pool up to what mapping every boot parcel can take. */
  readonly reservePoolAtStart: boolean;
  /** Attempts of one failing step (create, start, each teardown step) before it is reported. */
  readonly attemptsMax: number;
  /**
   * Wait before the nth retry of a teardown step: retryBackoffMs × 2^(n−1) on the VMM clock. 0 (the
   * default) retries at once; the simulation sets it so that a step refused for a while (a grant
   * that another client still holds) can succeed once that client has let go.
   */
  readonly retryBackoffMs: number;
  /** How long to wait for an RM notification (EXITED, RESET). */
  readonly waitMs: number;
  /**
   * Prefix of session and lease ids. The service sets a random one per boot, so that an id a client
   * kept from an earlier VMM process (a CLI session file) can never name a new client's session.
   */
  readonly sessionIdPrefix: string;
}

const GiB = 2 ** 30;
export const DEFAULT_VMM_CONFIG: VmmConfig = {
  donationRegion: { base: (2 * GiB + 16 * GiB - 64 * 2 ** 20) / PAGE_BYTES, count: (64 * 2 ** 20) / PAGE_BYTES },
  initialPoolPages: 16,
  topUpPages: 16,
  reservePoolAtStart: true,
  attemptsMax: 4,
  retryBackoffMs: 0,
  waitMs: 5_000,
  sessionIdPrefix: '',
};

/** One teardown step as it went: how many attempts, and its last error if it never succeeded. */
export interface TeardownReport {
  readonly step: string;
  readonly attempts: number;
  readonly ok: boolean;
  readonly error?: string;
}

/** What `states()` gives per VM: no copy, the live fields. */
export interface VmStateSummary {
  readonly handle: number;
  readonly type: VmType;
  readonly vmid: number;
  readonly state: VmState;
}

export interface VmView {
  readonly handle: number;
  readonly type: VmType;
  /** The RM's VMID (GUNYAH) or the RMM's realm VMID is not tracked: 0 for REALM. */
  readonly vmid: number;
  readonly ipaBits: number;
  readonly session: string;
  readonly state: VmState;
  readonly rmStatus: VmStatus | 'UNKNOWN';
  readonly bindings: readonly Binding[];
  readonly dtb: { readonly guestAddr: bigint; readonly sizeBytes: bigint } | undefined;
  /** Host frames donated or delegated for this VM right now. */
  readonly hostPages: number;
  /** Host frame runs donated to HYP for its stage-2 table pool (roots and pool), HYP-owned while it lives. */
  readonly donatedRuns: readonly FrameRun[];
  readonly teardown: readonly TeardownReport[];
  /** Memory that could not be taken back (empty unless a teardown step kept failing). */
  readonly leaked: readonly string[];
}

export type VmEvent =
  | { readonly kind: 'STATE'; readonly handle: number; readonly state: VmState }
  | { readonly kind: 'RM_STATUS'; readonly handle: number; readonly rmStatus: VmStatus | 'UNKNOWN' }
  | { readonly kind: 'EXITED'; readonly handle: number; readonly exitType: number };

interface RealmRec {
  readonly rd: number;
  readonly roots: readonly number[];
  readonly sl: number;
}

interface Vm {
  readonly handle: number;
  readonly type: VmType;
  readonly vmid: number;
  readonly ipaBits: number;
  readonly session: string;
  state: VmState;
  rmStatus: VmStatus | 'UNKNOWN';
  bindings: Binding[];
  dtb: { guestAddr: bigint; sizeBytes: bigint } | undefined;
  readonly boot: Map<string, { set: RegSet; index: number; value: bigint }>;
  /** RM parcels of this VM (DTB first), with what they hold. */
  parcels: { handle: number; what: string }[];
  /** Core grants of the bindings' demand-paged memory (pre-faulted at START), until reclaimed. */
  demandPaged: DemandPagedGrant[];
  /** Frames donated to HYP for this VM's stage-2 (roots and pool). */
  poolRuns: FrameRun[];
  /** Realm granules (RD, roots, RTTs, DATA) are counted here. */
  realmPages: number;
  realm: RealmRec | undefined;
  startTried: boolean;
  /** The start sequence while it runs: a teardown waits for it (simulation bug 3, `start`). */
  starting: Promise<unknown> | undefined;
  readonly teardown: TeardownReport[];
  readonly leaked: string[];
  destroyed: Promise<VmView> | undefined;
}

/** A create's outcome: the VM, or the error and, when the undo was refused, the VM left half made. */
type Made = VmmResult<Vm> | { readonly ok: false; readonly error: VmmError; readonly unfinished: Vm };

/** One binding's memory outside the DTB range: a core grant from HOST, mapped by the guest or not yet. */
interface DemandPagedGrant {
  readonly grantId: number;
  readonly what: string;
  mapped: boolean;
}

/** A run of a binding: `size` bytes at guest address `guest`, backed by host memory at `host`. */
interface BindingPiece {
  readonly guest: bigint;
  readonly host: bigint;
  readonly size: bigint;
}

const PAGE = BigInt(PAGE_BYTES);
const RWX = RIGHTS.R | RIGHTS.W | RIGHTS.X;
const alignDown = (v: bigint): bigint => v - (v % PAGE);
const alignUp = (v: bigint): bigint => alignDown(v + PAGE - 1n);
const runsPages = (runs: readonly FrameRun[]): number => runs.reduce((n, r) => n + r.count, 0);

/** An RM refusal as Linux reports it (§1.5): the errno, with the RM code as the cause. */
function fromRm(r: RmOutcome<unknown> & { ok: false }, rule: string, what: string): VmmResult<never> {
  // The msgq could not carry the call: gunyah_rm_call returns the transport's errno, not an RM error.
  if (r.error.rule.startsWith(MSGQ_FAILED_RULE_PREFIX)) return vmmFail('EIO', rule, `${what}: ${r.error.rule}: ${r.error.message}`);
  const row = RM_ERRORS[r.error.rmError];
  const errno = (row.linuxErrno ?? 'EBADMSG') as VmmErrnoName;
  return vmmFail(errno, rule, `${what}: RM ${r.error.rmError} (${r.error.rule}): ${r.error.message}`, r.error.rmError);
}

/** A core refusal of a hypercall: its errno if the VMM has it (else EINVAL), the core's errno as the cause. */
function fromCore(r: CoreResult<unknown> & { ok: false }, rule: string, what: string): VmmResult<never> {
  const errno = (r.error.errno in VMM_ERRNO ? r.error.errno : 'EINVAL') as VmmErrnoName;
  return vmmFail(errno, rule, `${what}: ${r.error.errno} ${r.error.rule}: ${r.error.message}`, r.error.errno);
}

export class VmManager {
  readonly pages: HostPageAllocator;
  private readonly vms = new Map<number, Vm>();
  private readonly byVmid = new Map<number, Vm>();
  private readonly sessions = new Map<string, Set<number>>();
  private readonly leases: LeaseTable;
  private readonly listeners = new Set<(e: VmEvent) => void>();
  private readonly waiters = new Set<() => void>();
  private readonly background = new Set<Promise<unknown>>();
  private nextHandle = 1;
  private nextSession = 1;
  private readonly unsubscribe: () => void;

  constructor(
    readonly rm: RmPort,
    readonly core: CorePort,
    readonly config: VmmConfig,
    /** Time for the RM waits and the leases (clock.ts; the service passes the real timers). */
    private readonly clock: VmmClock,
  ) {
    this.pages = new HostPageAllocator(config.donationRegion);
    this.leases = new LeaseTable(clock, (id) => this.endSession(id));
    this.unsubscribe = rm.onNotice((n) => this.notice(n));
  }

  // ---- sessions ---------------------------------------------------------------------------------

  /** A new client session; its VMs live until `endSession`. */
  openSession(): string {
    const id = `session-${this.config.sessionIdPrefix}${this.nextSession++}`;
    this.sessions.set(id, new Set());
    return id;
  }

  /** The client went away: every VM of the session is torn down in the background (gh_vm_release). */
  endSession(id: string): void {
    const handles = this.sessions.get(id);
    if (handles === undefined) return;
    this.sessions.delete(id);
    for (const h of handles) this.track(this.destroy(h));
  }

  /** OpenLease: a new session that lives `ttlMs` past the last call naming it. EINVAL lease_ttl_invalid. */
  openLease(ttlMs: number): VmmResult<LeaseView> {
    const id = `lease-${this.config.sessionIdPrefix}${this.nextSession}`;
    const lease = this.leases.open(id, ttlMs);
    if (!lease.ok) return lease;
    this.nextSession++;
    this.sessions.set(id, new Set());
    return lease;
  }

  /** RenewLease: the lease runs `ttlMs` from now. EBADF lease_expired/lease_closed; EINVAL session_unknown, not_a_lease. */
  renewLease(id: string): VmmResult<LeaseView> {
    const touched = this.leases.touch(id);
    if (touched !== undefined) return touched;
    return this.sessions.has(id) ? vmmFail('EINVAL', 'not_a_lease', `${id} is held by its OpenSession stream, not a lease`) : vmmFail('EINVAL', 'session_unknown', `no open session ${id}`);
  }

  /**
   * CloseLease: ends the lease and its session as a closed stream does, then waits for the
   * teardowns it started and returns each VM's final view. Errors as renewLease.
   */
  async closeLease(id: string): Promise<VmmResult<VmView[]>> {
    const live = this.renewLease(id);
    if (!live.ok) return live;
    const handles = [...(this.sessions.get(id) ?? [])];
    this.leases.end(id, 'CLOSED');
    this.endSession(id);
    const done = await Promise.all(handles.map((h) => this.destroy(h)));
    return vmmOk(done.flatMap((r) => (r.ok ? [r.value] : [])));
  }

  /**
   * Reset (VmmService.Reset): forgets every session, lease and VM handle *without* a teardown call
   * to the RM or the core, and stops listening to the RM; the service then builds a fresh manager.
   * Whatever those VMs held stays in the RM and the core until they are reset too (vmm, then rm,
   * then core: `hypmesh reset`). Teardowns already running finish on their own.
   */
  /** How many VM handles and sessions (streams and leases) this manager holds. */
  counts(): { readonly vms: number; readonly sessions: number } {
    return { vms: this.vms.size, sessions: this.sessions.size };
  }

  abandon(): void {
    this.sessions.clear();
    this.vms.clear();
    this.byVmid.clear();
    this.endLeases();
    this.unsubscribe();
  }

  /** Ends every live lease (the VMM is shutting down): their VMs are torn down in the background. */
  endLeases(): void {
    for (const id of this.leases.liveIds()) {
      this.leases.end(id, 'SHUTDOWN');
      this.endSession(id);
    }
  }

  /** A call names `session`: renews it if it is a lease; EBADF if it is an ended lease. */
  private touch(session: string | undefined): VmmResult<void> {
    if (session === undefined) return vmmOk(undefined);
    const t = this.leases.touch(session);
    return t === undefined || t.ok ? vmmOk(undefined) : t;
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
    this.emit({ kind: 'STATE', handle: vm.handle, state });
  }

  private notice(n: RmNotice): void {
    const vm = this.byVmid.get(n.vmid);
    if (vm === undefined) return;
    if (n.kind === 'VM_STATUS') {
      vm.rmStatus = n.status;
      this.emit({ kind: 'RM_STATUS', handle: vm.handle, rmStatus: n.status });
    } else {
      this.emit({ kind: 'EXITED', handle: vm.handle, exitType: n.exitType });
    }
    for (const w of [...this.waiters]) w();
  }

  /** Waits until `vm`'s RM status satisfies `done`, at most config.waitMs; whether it did. */
  private waitRm(vm: Vm, done: (s: VmStatus | 'UNKNOWN') => boolean): Promise<boolean> {
    if (done(vm.rmStatus)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (!done(vm.rmStatus)) return;
        finish(true);
      };
      const finish = (v: boolean): void => {
        this.waiters.delete(check);
        cancel();
        resolve(v);
      };
      const cancel = this.clock.after(this.config.waitMs, () => finish(done(vm.rmStatus)));
      this.waiters.add(check);
    });
  }

  // ---- queries ----------------------------------------------------------------------------------

  private get(handle: number, session?: string): VmmResult<Vm> {
    const touched = this.touch(session);
    if (!touched.ok) return touched;
    const vm = this.vms.get(handle);
    if (vm === undefined || (session !== undefined && vm.session !== session)) return vmmFail('ENOENT', 'no_such_vm', `no VM handle ${handle}${session === undefined ? '' : ` in ${session}`}`);
    return vmmOk(vm);
  }

  /** The VM's view; with `session`, only if the handle belongs to it (ENOENT no_such_vm otherwise). */
  view(handle: number, session?: string): VmView | undefined {
    const got = this.get(handle, session);
    return got.ok ? this.viewOf(got.value) : undefined;
  }

  /** GetVm: the view, or ENOENT no_such_vm when the handle is not in `session`. */
  describe(handle: number, session: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    return got.ok ? vmmOk(this.viewOf(got.value)) : got;
  }

  list(): VmView[] {
    return [...this.vms.values()].map((v) => this.viewOf(v));
  }

  /**
   * Each VM's identity and state as the manager holds them right now, in handle order, without
   * building views (`list` copies bindings, teardown reports and leaks per VM), in creation order: for checkers that
   * run after every step of a simulation. Read it before the next call changes a state.
   */
  states(): IterableIterator<VmStateSummary> {
    return this.vms.values();
  }

  /** ListVms: the session's VMs (those being torn down included), by handle. EBADF for an ended lease; EINVAL session_unknown. */
  listVms(session: string): VmmResult<VmView[]> {
    const touched = this.touch(session);
    if (!touched.ok) return touched;
    const handles = this.sessions.get(session);
    if (handles === undefined) return vmmFail('EINVAL', 'session_unknown', `no open session ${session}`);
    const vms = [...handles].sort((a, b) => a - b).flatMap((h) => this.vms.get(h) ?? []);
    return vmmOk(vms.map((vm) => this.viewOf(vm)));
  }

  private viewOf(vm: Vm): VmView {
    return {
      handle: vm.handle,
      type: vm.type,
      vmid: vm.vmid,
      ipaBits: vm.ipaBits,
      session: vm.session,
      state: vm.state,
      rmStatus: vm.rmStatus,
      bindings: [...vm.bindings],
      dtb: vm.dtb,
      hostPages: runsPages(vm.poolRuns) + vm.realmPages,
      donatedRuns: vm.poolRuns.map((r) => ({ ...r })),
      teardown: [...vm.teardown],
      leaked: [...vm.leaked],
    };
  }

  // ---- create -----------------------------------------------------------------------------------

  /**
   * GUNYAH_CREATE_VM with a typed argument (seed 001). GUNYAH: VM_ALLOCATE(0), which has the core
   * make the VM's stage-2; then host pages donated to its table pool (createGunyah).
   * REALM: delegate the RD and the root RTTs, REALM_CREATE.
   */
  async create(session: string, type: VmType, ipaBits: number): Promise<VmmResult<VmView>> {
    const touched = this.touch(session);
    if (!touched.ok) return touched;
    const handles = this.sessions.get(session);
    if (handles === undefined) return vmmFail('EINVAL', 'session_unknown', `no open session ${session}`);
    if (type !== 'GUNYAH' && type !== 'REALM') return vmmFail('EINVAL', 'vm_type_invalid', `VM type ${String(type)}`);
    if (!Number.isInteger(ipaBits) || ipaBits < 32 || ipaBits > 48) return vmmFail('EINVAL', 'ipa_bits_invalid', `ipa_bits ${ipaBits} (32..48)`);
    const made = type === 'GUNYAH' ? await this.createGunyah(session, ipaBits) : await this.createRealm(session, ipaBits);
    if (!made.ok) {
      // Half made and the undo refused: the VM is the session's like any other, and its teardown
      // (with retries) takes it down or reports what it could not; the caller still sees the error.
      if ('unfinished' in made) this.track(this.destroy(this.register(made.unfinished, handles).handle));
      return { ok: false, error: made.error };
    }
    const vm = this.register(made.value, handles);
    // The session ended (stream closed, lease expired or closed) while the VM was being made.
    if (this.sessions.get(session) !== handles) this.track(this.destroy(vm.handle));
    return vmmOk(this.viewOf(vm));
  }

  /** A made VM joins the tables and its session. */
  private register(vm: Vm, handles: Set<number>): Vm {
    this.vms.set(vm.handle, vm);
    if (vm.type === 'GUNYAH') this.byVmid.set(vm.vmid, vm);
    handles.add(vm.handle);
    this.emit({ kind: 'STATE', handle: vm.handle, state: vm.state });
    return vm;
  }

  private newVm(session: string, type: VmType, vmid: number, ipaBits: number): Vm {
    return {
      handle: this.nextHandle++,
      type,
      vmid,
      ipaBits,
      session,
      state: 'CREATED',
      rmStatus: type === 'GUNYAH' ? 'LOAD' : 'UNKNOWN',
      bindings: [],
      dtb: undefined,
      boot: new Map(),
      parcels: [],
      demandPaged: [],
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

  /**
   * GUNYAH create (gunyah-rm.md §4.2): VM_ALLOCATE(0) makes the VM and, in the core, its stage-2 of
   * the platform's IPA width (HYP builds it from its boot reservation for the RM), so the VMM no
   * longer creates the space; it only tops the pool up with host pages (seed 003's donation flow).
   * A width above the platform's cannot be given: EINVAL ipa_bits_beyond_platform, nothing allocated.
   */
  private async createGunyah(session: string, ipaBits: number): Promise<Made> {
    if (ipaBits > HYP_SPACE_IPA_BITS)
      return vmmFail('EINVAL', 'ipa_bits_beyond_platform', `ipa_bits ${ipaBits}: the RM gives GUNYAH VMs a ${HYP_SPACE_IPA_BITS}-bit stage-2`);
    const alloc = await this.rm.vmAllocate({ vmid: 0 });
    if (!alloc.ok) return fromRm(alloc, 'vm_allocate', 'VM_ALLOCATE');
    const vmid = alloc.value.vmid ?? 0;
    const vm = this.newVm(session, 'GUNYAH', vmid, ipaBits);
    const topped = await this.topUp(vm, this.config.initialPoolPages);
    if (topped.ok) return vmmOk(vm);
    const undone = await this.rm.vmDeallocate({ vmid });
    if (undone.ok) return topped;
    // VM_DEALLOCATE refused (its stage-2 would not go): the VM must not be forgotten (create()).
    return { ok: false, error: topped.error, unfinished: vm };
  }

  private async createRealm(session: string, ipaBits: number): Promise<Made> {
    const sl = startLevel(ipaBits);
    const count = realmRootRttCount(ipaBits, sl);
    const rdAddr = this.pages.allocPage();
    const rootRun = this.pages.allocRun(count);
    const giveBack = (): void => {
      if (rdAddr !== undefined) this.pages.freePage(rdAddr);
      if (rootRun !== undefined) this.pages.freeRun(rootRun);
    };
    if (rdAddr === undefined || rootRun === undefined) {
      giveBack();
      return vmmFail('ENOMEM', 'donation_region_full', `no pages for the RD and ${count} root RTTs`);
    }
    const roots = Array.from({ length: count }, (_, i) => (rootRun.base + i) * PAGE_BYTES);
    const delegated: number[] = [];
    const undo = async (): Promise<void> => {
      for (const a of delegated) await this.core.granuleUndelegate(a);
      giveBack();
    };
    for (const a of [rdAddr, ...roots]) {
      const d = await this.core.granuleDelegate(a);
      if (!d.ok) {
        await undo();
        return vmmFail('EINVAL', 'granule_delegate', `RMI_GRANULE_DELEGATE 0x${a.toString(16)}: ${d.error.status} ${d.error.rule}`, d.error.status);
      }
      delegated.push(a);
    }
    const c = await this.core.realmCreate(rdAddr, { s2sz: ipaBits, rttLevelStart: sl, rttNumStart: count, rttBase: roots[0]! });
    if (!c.ok) {
      await undo();
      return vmmFail('EINVAL', 'realm_create', `RMI_REALM_CREATE: ${c.error.status} ${c.error.rule}: ${c.error.message}`, c.error.status);
    }
    const vm = this.newVm(session, 'REALM', 0, ipaBits);
    vm.realm = { rd: rdAddr, roots, sl };
    vm.realmPages = 1 + count;
    return vmmOk(vm);
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
      return vmmOk(this.viewOf(vm));
    }
    if (vm.type === 'REALM' && (b.mode !== 'LEND' || b.guestAddr + b.sizeBytes > 1n << BigInt(vm.ipaBits - 1)))
      return vmmFail('EINVAL', 'realm_binding_not_private', 'a realm binding is lent and lies in the protected address range');
    const all = [...this.vms.values()].flatMap((v) => v.bindings);
    const ok = checkBind(vm.bindings, b, { ipaBits: vm.ipaBits, allBindings: all, hostReserved: (a, s) => this.pages.overlaps(a, s) });
    if (!ok.ok) return ok;
    vm.bindings.push(ok.value);
    return vmmOk(this.viewOf(vm));
  }

  /** GUNYAH_VM_SET_DTB_CONFIG. */
  setDtbConfig(handle: number, guestAddr: bigint, sizeBytes: bigint, session?: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const d = checkDtb(guestAddr, sizeBytes);
    if (!d.ok) return d;
    got.value.dtb = d.value;
    return vmmOk(this.viewOf(got.value));
  }

  /** GUNYAH_VM_SET_BOOT_CONTEXT. */
  setBootContext(handle: number, set: RegSet, index: number, value: bigint, session?: string): VmmResult<VmView> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    const key = checkBootContext(vm.startTried, set, index);
    if (!key.ok) return key;
    vm.boot.set(key.value, { set, index, value });
    return vmmOk(this.viewOf(vm));
  }

  // ---- start ------------------------------------------------------------------------------------

  /**
   * GUNYAH_VM_START (§5.3): idempotent; the first call runs the L24 sequence (§4.4), later calls
   * return at once, -ENODEV if the VM is not RUNNING.
   */
  async start(handle: number, session?: string): Promise<VmmResult<VmView>> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    if (vm.startTried) return vm.state === 'RUNNING' ? vmmOk(this.viewOf(vm)) : vmmFail('ENODEV', 'not_running', `VM ${handle} is ${vm.state}`);
    if (vm.state === 'DESTROYING') return vmmFail('ENODEV', 'vm_destroying', `VM ${handle} is being torn down`);
    vm.startTried = true;
    // A teardown that begins while the sequence runs waits for it (tearDown awaits `starting`), as
    // gh_vm_put waits for the last reference, an ioctl in progress included: otherwise the start
    // lends the DTB or maps grants after the teardown reclaimed them, and its final state
    // overwrites DESTROYING (found by the simulation: README "Deterministic simulation", bug 3).
    const run = vm.type === 'GUNYAH' ? this.startGunyah(vm) : this.startRealm(vm);
    vm.starting = run;
    const r = await run;
    vm.starting = undefined;
    const now = vm.state as VmState; // changed by a teardown while the sequence ran
    if (now === 'DESTROYING' || now === 'DESTROYED') return r.ok ? vmmFail('ENODEV', 'vm_destroying', `VM ${handle} was torn down while it started`) : r;
    if (!r.ok) {
      this.setState(vm, 'START_FAILED');
      return r;
    }
    if (vm.type === 'GUNYAH' && vm.rmStatus !== 'RUNNING') {
      this.setState(vm, 'START_FAILED');
      return vmmFail('ENODEV', 'not_running', `VM ${handle} is ${vm.rmStatus} after VM_START`);
    }
    this.setState(vm, 'RUNNING');
    return vmmOk(this.viewOf(vm));
  }

  /** `b` without the guest range [lo, hi) (the DTB parcel's): what its demand-paged grant holds. */
  private static without(b: Binding, lo: bigint, hi: bigint): BindingPiece[] {
    const out: BindingPiece[] = [];
    const end = b.guestAddr + b.sizeBytes;
    if (hi <= b.guestAddr || lo >= end) return [{ guest: b.guestAddr, host: b.hostAddr, size: b.sizeBytes }];
    if (lo > b.guestAddr) out.push({ guest: b.guestAddr, host: b.hostAddr, size: lo - b.guestAddr });
    if (hi < end) out.push({ guest: hi, host: b.hostAddr + (hi - b.guestAddr), size: end - hi });
    return out;
  }

  private async startGunyah(vm: Vm): Promise<VmmResult<void>> {
    const vmid = vm.vmid;
    if (vm.dtb === undefined) return vmmFail('EINVAL', 'dtb_not_set', 'GUNYAH_VM_SET_DTB_CONFIG first');
    const lo = alignDown(vm.dtb.guestAddr);
    const hi = alignUp(vm.dtb.guestAddr + vm.dtb.sizeBytes);
    const holder = vm.bindings.find((b) => b.guestAddr <= lo && hi <= b.guestAddr + b.sizeBytes);
    if (holder === undefined) return vmmFail('EINVAL', 'dtb_not_in_binding', 'the DTB must lie inside one binding');
    // 1. Lend the DTB range as a 1-ACL parcel (MEM_LEND).
    const dtbParcel = await this.rm.memLend({
      memType: MEM_TYPE.NORMAL,
      flags: 0,
      label: 0,
      acl: [{ vmid, rights: RWX }],
      sgl: [{ base: holder.hostAddr + (lo - holder.guestAddr), size: hi - lo }],
      attrs: [],
    });
    if (!dtbParcel.ok) return fromRm(dtbParcel, 'start_dtb_lend', 'MEM_LEND of the DTB');
    vm.parcels.push({ handle: dtbParcel.value.handle, what: 'dtb' });
    // The bindings are no parcels: their memory reaches the guest as demand-paged grants (below).
    if (this.config.reservePoolAtStart) {
      const need = this.tablePagesFor(vm, [...vm.bindings.map((b) => b.sizeBytes), hi - lo]);
      const topped = await this.topUp(vm, need);
      if (!topped.ok) return topped;
    }
    for (let attempt = 1; ; attempt++) {
      const r = await this.startFromConfig(vm, dtbParcel.value.handle, lo, hi);
      if (r.ok || r.error.cause !== 'NOMEM' || r.error.rule !== 'start_vm_start' || attempt >= this.config.attemptsMax) return r;
      // VM_START ran out of table pages while mapping the boot parcels; the VM is INIT_FAILED and
      // its demand-paged memory is reclaimed (before the reset, as _gunyah_vm_put does). Top the
      // pool up, reset the VM (RESET may be configured again, §4.3) and run it again.
      const topped = await this.topUp(vm, this.config.topUpPages);
      if (!topped.ok) return topped;
      const reset = await this.rm.vmReset({ vmid });
      if (!reset.ok) return fromRm(reset, 'start_retry_reset', 'VM_RESET before a retried start');
      if (!(await this.waitRm(vm, (s) => s === 'RESET'))) return vmmFail('EIO', 'start_retry_reset', 'no VM_STATUS RESET');
    }
  }

  /**
   * CONFIG_IMAGE → SET_DEMAND_PAGING → SET_ADDRESS_LAYOUT → VM_INIT → SET_BOOT_CONTEXT* →
   * GET_HYP_RESOURCES → (the bindings' demand-paged grants, pre-faulted) → VM_START. A failed
   * VM_START reclaims the grants again.
   */
  private async startFromConfig(vm: Vm, dtbHandle: number, lo: bigint, hi: bigint): Promise<VmmResult<void>> {
    const vmid = vm.vmid;
    const dtb = vm.dtb!;
    const steps: [string, () => Promise<RmOutcome<unknown>>][] = [
      ['vm_config_image', () => this.rm.vmConfigImage({ vmid, authMech: AUTH_MECH.NONE, memHandle: dtbHandle, imageOffset: 0n, imageSize: 0n, dtbOffset: dtb.guestAddr - lo, dtbSize: dtb.sizeBytes })],
      ['vm_set_demand_paging', () => this.rm.vmSetDemandPaging({ vmid, ranges: vm.bindings.filter((b) => b.mode === 'LEND').map((b) => ({ base: b.guestAddr, size: b.sizeBytes })) })],
      ['vm_set_address_layout', () => this.rm.vmSetAddressLayout({ vmid, rangeId: ADDRESS_RANGE_ID.IMAGE, base: lo, size: hi - lo })],
      ['vm_init', () => this.rm.vmInit({ vmid, reserved: 0 })],
      ...[...vm.boot.values()].map(
        (r): [string, () => Promise<RmOutcome<unknown>>] => [`vm_set_boot_context_${r.set}${r.index}`, () => this.rm.vmSetBootContext({ vmid, regSet: REG_SETS[r.set].wire, regIndex: r.index, value: r.value })],
      ),
      ['vm_get_hyp_resources', () => this.rm.vmGetHypResources({ vmid })],
    ];
    for (const [name, run] of steps) {
      const r = await run();
      if (!r.ok) return fromRm(r, `start_${name}`, name.toUpperCase());
    }
    const mapped = await this.mapDemandPaged(vm, lo, hi);
    if (!mapped.ok) return mapped;
    const started = await this.rm.vmStart({ vmid });
    if (started.ok) return vmmOk(undefined);
    await this.reclaimDemandPaged(vm, false);
    return fromRm(started, 'start_vm_start', 'VM_START');
  }

  /**
   * Pre-faults every binding (less the DTB range [lo, hi)) as L24's demand paging would on the
   * guest's first touch (§4.4 last bullet): CreateGrant as HOST (LEND or SHARE, ACL = the guest
   * with the binding's rights), then MapGrant as the guest at the binding's guest address with
   * those rights. ENOMEM from MapGrant (the guest's table pool) tops the pool up and maps again
   * (seed 003). Any other failure unmaps and destroys what this call made, and reports it.
   */
  private async mapDemandPaged(vm: Vm, lo: bigint, hi: bigint): Promise<VmmResult<void>> {
    const frames = (pieces: readonly BindingPiece[], at: 'guest' | 'host'): FrameRun[] => pieces.map((p) => ({ base: Number(p[at] / PAGE), count: Number(p.size / PAGE) }));
    const fail = async (r: VmmResult<never>): Promise<VmmResult<void>> => {
      await this.reclaimDemandPaged(vm, false);
      return r;
    };
    for (const b of vm.bindings) {
      const pieces = VmManager.without(b, lo, hi);
      if (pieces.length === 0) continue;
      const what = `binding@0x${b.guestAddr.toString(16)}`;
      const c = await this.core.createGrant({ type: b.mode, ranges: frames(pieces, 'host'), acl: [{ vmid: vm.vmid, perms: b.rights }] });
      if (!c.ok) return fail(fromCore(c, 'start_demand_paged_grant', `CreateGrant ${b.mode} of the ${what}`));
      const g: DemandPagedGrant = { grantId: c.value.grantId, what, mapped: false };
      vm.demandPaged.push(g);
      for (let attempt = 1; !g.mapped; attempt++) {
        const m = await this.core.mapGrant({ grantId: g.grantId, borrower: vm.vmid, perms: b.rights, ranges: frames(pieces, 'guest') });
        if (m.ok) g.mapped = true;
        else if (m.error.errno !== 'ENOMEM' || attempt >= this.config.attemptsMax) return fail(fromCore(m, 'start_demand_paged_map', `MapGrant ${g.grantId} of the ${what}`));
        else {
          const topped = await this.topUp(vm, this.config.topUpPages);
          if (!topped.ok) return fail(topped);
        }
      }
    }
    return vmmOk(undefined);
  }

  /**
   * Reclaims one demand-paged grant (L24 "reclaim = unmap + donate back"): UnmapGrant as the guest,
   * DestroyGrant as HOST. Safe to repeat: a grant the guest no longer maps (not_mapped) or that is
   * gone (no_such_grant, a reply lost after the core acted) counts as done.
   */
  private async reclaimGrant(vm: Vm, g: DemandPagedGrant): Promise<VmmResult<void>> {
    if (g.mapped) {
      const u = await this.core.unmapGrant({ grantId: g.grantId, borrower: vm.vmid });
      if (!u.ok && u.error.rule !== 'not_mapped' && u.error.rule !== 'no_such_grant') return fromCore(u, 'demand_paged_unmap', `UnmapGrant ${g.grantId} (${g.what})`);
      g.mapped = false;
    }
    const d = await this.core.destroyGrant({ grantId: g.grantId });
    if (!d.ok && d.error.rule !== 'no_such_grant') return fromCore(d, 'demand_paged_destroy', `DestroyGrant ${g.grantId} (${g.what})`);
    vm.demandPaged = vm.demandPaged.filter((x) => x !== g);
    return vmmOk(undefined);
  }

  /**
   * Every demand-paged grant of `vm`, last first. `final` (teardown): each is retried as a teardown
   * step and reported, and one that never comes back is listed in `leaked`; otherwise (a failed
   * START rolling back) one try each, and what is left stays for the teardown.
   */
  private async reclaimDemandPaged(vm: Vm, final: boolean): Promise<void> {
    for (const g of [...vm.demandPaged].reverse()) {
      if (!final) {
        await this.reclaimGrant(vm, g);
        continue;
      }
      const ok = await this.attempt(vm, `reclaim_demand_paged ${g.what}`, () => this.reclaimGrant(vm, g));
      if (!ok) vm.leaked.push(`grant ${g.grantId} (${g.what}${g.mapped ? ', still mapped by the guest' : ''}): the host has no access to a lent binding until it is destroyed`);
    }
  }

  /** Table pages that mapping ranges of these sizes can take at most (a straddle per level). */
  private tablePagesFor(vm: Vm, sizes: readonly bigint[]): number {
    // A GUNYAH VM's stage-2 has the platform's width whatever the VMM asked (createGunyah).
    const sl = startLevel(vm.type === 'GUNYAH' ? HYP_SPACE_IPA_BITS : vm.ipaBits);
    let n = 0;
    for (const size of sizes) for (let l = sl + 1; l <= 3; l++) n += Number(size / BigInt(2 ** (12 + 9 * (4 - l)))) + 2;
    return n;
  }

  /** Donates `pages` more host pages to the VM's table pool (__pkvm_host_donate_hyp). */
  private async topUp(vm: Vm, pages: number): Promise<VmmResult<void>> {
    if (pages <= 0) return vmmOk(undefined);
    const run = this.pages.allocRun(pages);
    if (run === undefined) return vmmFail('ENOMEM', 'donation_region_full', `no run of ${pages} free pages`);
    const r = await this.core.topUpTablePool(vm.vmid, [run]);
    if (!r.ok) {
      this.pages.freeRun(run);
      return vmmFail('ENOMEM', 'pool_top_up', `TopUpTablePool: ${r.error.errno} ${r.error.rule}`, r.error.errno);
    }
    vm.poolRuns.push(run);
    return vmmOk(undefined);
  }

  private realmHost(vm: Vm): RealmHost {
    return {
      alloc: () => {
        const a = this.pages.allocPage();
        if (a !== undefined) vm.realmPages++;
        return a;
      },
      free: (addr) => {
        this.pages.freePage(addr);
        vm.realmPages--;
      },
      warn: (message) => vm.leaked.push(`WARN: ${message}`),
    };
  }

  /** A realm's start: RTTs, INIT_RIPAS and DATA_CREATE over every binding, then REALM_ACTIVATE. */
  private async startRealm(vm: Vm): Promise<VmmResult<void>> {
    const realm = vm.realm!;
    const host = this.realmHost(vm);
    const fail = (rule: string, what: string, e: { status: string; rule: string; message: string }): VmmResult<never> =>
      vmmFail('EINVAL', rule, `${what}: ${e.status} ${e.rule}: ${e.message}`, e.status);
    for (const b of vm.bindings) {
      const base = Number(b.guestAddr);
      const end = base + Number(b.sizeBytes);
      for (let ipa = base; ipa < end; ipa = Math.floor(ipa / (2 * 2 ** 20) + 1) * 2 * 2 ** 20) {
        const r = await realmCreateRttLevels(this.core, realm.rd, host, ipa, realm.sl, 3);
        if (!r.ok) return vmmFail(r.error.errno === 'ENOMEM' ? 'ENOMEM' : 'ENXIO', `start_${r.error.rule}`, r.error.message, r.error.rmi?.status);
      }
      for (let at = base; at < end; ) {
        const r = await this.core.rttInitRipas(realm.rd, at, end);
        if (!r.ok) return fail('start_init_ripas', 'RMI_RTT_INIT_RIPAS', r.error);
        at = r.value['top'] ?? end; // x1, the progress (stage2 names the output `top`)
      }
      for (let ipa = base; ipa < end; ipa += PAGE_BYTES) {
        const data = host.alloc();
        if (data === undefined) return vmmFail('ENOMEM', 'donation_region_full', 'no page for a DATA granule');
        const d = await this.core.granuleDelegate(data);
        if (!d.ok) {
          host.free(data);
          return fail('start_granule_delegate', 'RMI_GRANULE_DELEGATE', d.error);
        }
        const c = await this.core.dataCreate(realm.rd, data, ipa, Number(b.hostAddr) + (ipa - base), 0);
        if (!c.ok) {
          await this.core.granuleUndelegate(data);
          host.free(data);
          return fail('start_data_create', 'RMI_DATA_CREATE', c.error);
        }
      }
    }
    const a = await this.core.realmActivate(realm.rd);
    if (!a.ok) return fail('start_realm_activate', 'RMI_REALM_ACTIVATE', a.error);
    return vmmOk(undefined);
  }

  // ---- stop -------------------------------------------------------------------------------------

  /** Forced VM_STOP, then wait for EXITED (§4.4). */
  async stop(handle: number, session?: string): Promise<VmmResult<VmView>> {
    const got = this.get(handle, session);
    if (!got.ok) return got;
    const vm = got.value;
    if (vm.state !== 'RUNNING') return vmmFail('EINVAL', 'not_running', `VM ${handle} is ${vm.state}`);
    if (vm.type === 'GUNYAH') {
      const r = await this.forceStop(vm);
      if (!r.ok) return r;
    }
    // A teardown that began while VM_STOP waited owns the state now.
    if ((vm.state as VmState) !== 'RUNNING') return vmmFail('ENODEV', 'vm_destroying', `VM ${handle} is ${vm.state}`);
    this.setState(vm, 'STOPPED');
    return vmmOk(this.viewOf(vm));
  }

  private async forceStop(vm: Vm): Promise<VmmResult<void>> {
    const r = await this.rm.vmStop({ vmid: vm.vmid, flags: STOP_FLAGS.FORCE, stopReason: STOP_REASON.FORCE_STOP });
    if (!r.ok) return fromRm(r, 'vm_stop', 'VM_STOP');
    if (!(await this.waitRm(vm, (s) => s !== 'RUNNING' && s !== 'PAUSED'))) return vmmFail('EIO', 'vm_stop_wait', 'the VM did not leave RUNNING');
    return vmmOk(undefined);
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

  /** Runs `step` up to attemptsMax times; records attempts and the last error. */
  private async attempt(vm: Vm, step: string, run: () => Promise<VmmResult<void>>): Promise<boolean> {
    let last: VmmError | undefined;
    for (let n = 1; n <= this.config.attemptsMax; n++) {
      const r = await run();
      if (r.ok) {
        vm.teardown.push({ step, attempts: n, ok: true });
        return true;
      }
      last = r.error;
      if (n < this.config.attemptsMax && this.config.retryBackoffMs > 0) {
        const ms = this.config.retryBackoffMs * 2 ** (n - 1);
        await new Promise<void>((resolve) => void this.clock.after(ms, resolve));
      }
    }
    vm.teardown.push({ step, attempts: this.config.attemptsMax, ok: false, error: `${last!.errno} ${last!.rule}: ${last!.message}` });
    return false;
  }

  private async reclaimAll(vm: Vm, final: boolean): Promise<void> {
    for (const p of [...vm.parcels]) {
      const r = await this.rm.memReclaim({ handle: p.handle, flags: 0 });
      if (r.ok) {
        vm.parcels = vm.parcels.filter((q) => q !== p);
        vm.teardown.push({ step: `mem_reclaim ${p.what}`, attempts: 1, ok: true });
      } else if (final) {
        const ok = await this.attempt(vm, `mem_reclaim ${p.what}`, async () => {
          const again = await this.rm.memReclaim({ handle: p.handle, flags: 0 });
          return again.ok ? vmmOk(undefined) : fromRm(again, 'mem_reclaim', `MEM_RECLAIM ${p.handle}`);
        });
        if (ok) vm.parcels = vm.parcels.filter((q) => q !== p);
        else vm.leaked.push(`parcel ${p.handle} (${p.what}): ${r.error.rmError}`);
      }
    }
  }

  /** _gunyah_vm_put's order (§4.4), then the core's pages back to the host (seed 003). */
  private async tearDown(vm: Vm): Promise<VmView> {
    this.setState(vm, 'DESTROYING');
    if (vm.starting !== undefined) await vm.starting.catch(() => undefined);
    if (vm.type === 'GUNYAH') await this.tearDownGunyah(vm);
    else await this.tearDownRealm(vm);
    this.vms.delete(vm.handle);
    if (vm.type === 'GUNYAH') this.byVmid.delete(vm.vmid);
    this.sessions.get(vm.session)?.delete(vm.handle);
    this.setState(vm, 'DESTROYED');
    return this.viewOf(vm);
  }

  /**
   * _gunyah_vm_put (§4.4): forced stop if RUNNING, wait until not RUNNING; reclaim the DTB parcel
   * (parcels nobody accepted go now, accepted ones after the reset has released them); reclaim all
   * demand-paged memory; VM_RESET if EXITED/READY/INIT_FAILED and wait for RESET; DEALLOC_VMID.
   * VM_DEALLOCATE also destroys the VM's stage-2 in the core, which gives the donated pool pages back (seed 003).
   */
  private async tearDownGunyah(vm: Vm): Promise<void> {
    const vmid = vm.vmid;
    if (vm.rmStatus === 'RUNNING' || vm.rmStatus === 'PAUSED') await this.attempt(vm, 'vm_stop', () => this.forceStop(vm));
    await this.reclaimAll(vm, false);
    await this.reclaimDemandPaged(vm, true);
    if (vm.rmStatus === 'EXITED' || vm.rmStatus === 'READY' || vm.rmStatus === 'INIT_FAILED') {
      await this.attempt(vm, 'vm_reset', async () => {
        const r = await this.rm.vmReset({ vmid });
        if (!r.ok && vm.rmStatus !== 'RESETTING' && vm.rmStatus !== 'RESET') return fromRm(r, 'vm_reset', 'VM_RESET');
        return (await this.waitRm(vm, (s) => s === 'RESET')) ? vmmOk(undefined) : vmmFail('EIO', 'vm_reset_wait', 'no VM_STATUS RESET');
      });
    }
    await this.reclaimAll(vm, true);
    // VM_DEALLOCATE destroys the VM's stage-2 in the core (§4.2): the pages the VMM donated to its
    // pool come back to the host with it, so they are free again only once it succeeded.
    const dealloc = await this.attempt(vm, 'vm_deallocate', async () => {
      const r = await this.rm.vmDeallocate({ vmid });
      return r.ok ? vmmOk(undefined) : fromRm(r, 'vm_deallocate', 'VM_DEALLOCATE');
    });
    if (dealloc) {
      for (const run of vm.poolRuns) this.pages.freeRun(run);
      vm.poolRuns = [];
    } else {
      vm.leaked.push(`VMID ${vmid} (RM status ${vm.rmStatus})`);
      vm.leaked.push(`${runsPages(vm.poolRuns)} stage-2 pool pages of VM ${vmid} (its stage-2 goes with VM_DEALLOCATE)`);
    }
  }

  private async tearDownRealm(vm: Vm): Promise<void> {
    const realm = vm.realm!;
    const host = this.realmHost(vm);
    const layout = { rd: realm.rd, roots: realm.roots, ipaBits: vm.ipaBits, startLevel: realm.sl, recs: [] };
    await this.attempt(vm, 'realm_tear_down', async () => {
      const r = await realmTearDown(this.core, layout, host);
      return r.ok ? vmmOk(undefined) : vmmFail(r.error.errno === 'ENOMEM' ? 'ENOMEM' : r.error.errno === 'EBUSY' ? 'EBUSY' : 'ENXIO', r.error.rule, r.error.message, r.error.rmi?.status);
    });
    if (vm.realmPages > 0) vm.leaked.push(`${vm.realmPages} realm granules still delegated`);
  }
}
