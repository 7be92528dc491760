/**
 * What the VM manager's parts share (vm-manager.ts): a VM's record and its public view, the
 * manager's configuration, and how RM and core refusals become the errno a Linux VMM reports.
 * The life cycles (gunyah-lifecycle.ts, realm-lifecycle.ts) act on a `Vm`; the manager hands out
 * `VmView` copies only.
 */
import { RM_ERRORS } from '@hypmesh/rm-wire';
import type { CoreResult, RmOutcome, VmStatus } from '@hypmesh/rm';
import type { Binding, RegSet } from './bindings.js';
import type { FrameRun } from './host-pages.js';
import { MSGQ_FAILED_RULE_PREFIX } from './ports.js';
import { VMM_ERRNO, vmmFail, type VmmErrnoName, type VmmError, type VmmResult } from './vmm-error.js';

export type VmType = 'GUNYAH' | 'REALM';
export type VmState = 'CREATED' | 'RUNNING' | 'START_FAILED' | 'STOPPED' | 'DESTROYING' | 'DESTROYED';

export interface VmmConfig {
  /**
   * Host frames the VMM may donate and delegate: derived from the core's memory map unless
   * configured (host-pages.ts donationRegionFrom: below HYP's carve-out at the top of the highest
   * RAM region). There is no default: a fixed one would overlap HYP's carve-out on some map (issue
   * 10: the last 64 MiB of the default RAM held 8,723 of HYP's frames).
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
  /**
   * The unguessable part of each session and lease id (the service: 128 random bits, issue 11 item
   * 5), replacing prefix and counter; none (the simulation, domain tests): deterministic ids.
   */
  readonly sessionIdSecret?: () => string;
  /**
   * Number VM handles per session, as file descriptors are per process: each session's first VM is
   * handle 1, and a handle names a VM only together with its session (the service sets this).
   * Off, handles are counted across the manager, so a handle alone names a VM (the simulation keys
   * its bookkeeping by it).
   */
  readonly handlesPerSession: boolean;
  /**
   * VM_DEALLOCATE is refused while any grant names the VM (its VMID must not be inherited), and
   * parcels other HLOS clients made for it are theirs to reclaim, not the VMM's (restart-sweep.ts).
   * The restart sweep's teardown of a VM that such parcels name polls the RM every `othersPollMs`
   * until they are gone, at most `othersWaitMs`, before VM_DEALLOCATE (and lists the VMID as leaked
   * past that).
   */
  readonly othersPollMs: number;
  readonly othersWaitMs: number;
  /**
   * How long a teardown step that failed because the RM could not be reached (its msgq link is
   * down: an RM restarting) waits for the link to come back, in all, before its attempts count
   * again (vm-ops.ts attempt).
   */
  readonly rmReturnWaitMs: number;
}

/** Everything but the donation region, which comes from the core's memory map. */
export const DEFAULT_VMM_CONFIG: Omit<VmmConfig, 'donationRegion'> = {
  initialPoolPages: 16,
  topUpPages: 16,
  reservePoolAtStart: true,
  attemptsMax: 4,
  retryBackoffMs: 0,
  waitMs: 5_000,
  sessionIdPrefix: '',
  handlesPerSession: false,
  othersPollMs: 250,
  othersWaitMs: 120_000,
  rmReturnWaitMs: 30_000,
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

/** `session` is the handle's (the manager sets it on every event; with handlesPerSession a handle alone is ambiguous). */
export type VmEvent =
  | { readonly kind: 'STATE'; readonly handle: number; readonly session?: string; readonly state: VmState }
  | { readonly kind: 'RM_STATUS'; readonly handle: number; readonly session?: string; readonly rmStatus: VmStatus | 'UNKNOWN' }
  | { readonly kind: 'EXITED'; readonly handle: number; readonly session?: string; readonly exitType: number };


export interface RealmRec {
  readonly rd: number;
  readonly roots: readonly number[];
  readonly sl: number;
  /** RECs (the VMM makes none; a realm found at restart may have some). */
  readonly recs: readonly number[];
  /**
   * Found at restart (restart-sweep.ts): its granules were held, not allocated, so the sweep frees
   * them once the core has them back, and its teardown does not.
   */
  readonly foundAtRestart: boolean;
}

export interface Vm {
  /** The manager-wide key of the record; equal to `handle` unless handles are per session. */
  readonly id: number;
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
  /**
   * Demand-paged CreateGrants whose outcome stayed unknown (ports.ts OUTCOME_UNKNOWN_RULE): the core
   * may hold grants for this VM under ids the VMM never learnt; teardown settles them by query
   * (gunyah-lifecycle.ts settleUnknownGrants). Not saved: a restarted VMM's sweep finds them anyway.
   */
  unknownGrants: number;
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
export type Made = VmmResult<Vm> | { readonly ok: false; readonly error: VmmError; readonly unfinished: Vm };

/** One binding's memory outside the DTB range: a core grant from HOST, mapped by the guest or not yet. */
export interface DemandPagedGrant {
  readonly grantId: number;
  readonly what: string;
  mapped: boolean;
}

export const runsPages = (runs: readonly FrameRun[]): number => runs.reduce((n, r) => n + r.count, 0);

/** The copy of a VM's record that callers get: nothing in it aliases the record. */
export function viewOf(vm: Vm): VmView {
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

/** An RM refusal as Linux reports it (§1.5): the errno, with the RM code as the cause. */
export function fromRm(r: RmOutcome<unknown> & { ok: false }, rule: string, what: string): VmmResult<never> {
  // The msgq could not carry the call: gunyah_rm_call returns the transport's errno, not an RM error.
  if (r.error.rule.startsWith(MSGQ_FAILED_RULE_PREFIX)) return vmmFail('EIO', rule, `${what}: ${r.error.rule}: ${r.error.message}`);
  const row = RM_ERRORS[r.error.rmError];
  const errno = (row.linuxErrno ?? 'EBADMSG') as VmmErrnoName;
  return vmmFail(errno, rule, `${what}: RM ${r.error.rmError} (${r.error.rule}): ${r.error.message}`, r.error.rmError);
}

/** A core refusal of a hypercall: its errno if the VMM has it (else EINVAL), the core's errno as the cause. */
export function fromCore(r: CoreResult<unknown> & { ok: false }, rule: string, what: string): VmmResult<never> {
  const errno = (r.error.errno in VMM_ERRNO ? r.error.errno : 'EINVAL') as VmmErrnoName;
  return vmmFail(errno, rule, `${what}: ${r.error.errno} ${r.error.rule}: ${r.error.message}`, r.error.errno);
}
