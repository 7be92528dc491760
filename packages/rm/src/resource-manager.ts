/**
 * The Resource Manager: one object holding VMs, parcels and per-client notification queues, and one
 * entry point, `call(caller, name, request)`, that both service faces (typed gRPC and byte-exact
 * msgq) use. The dispatch table below is indexed by message name (like TF-RMM's handler.c); a name
 * it lacks is answered UNIMPLEMENTED, as the real RM answers unknown message IDs (§1.5).
 *
 * Calls run one at a time, in arrival order: the real RM is a single-threaded loop, and a parcel
 * call that awaits the core must not interleave with another call on the same parcel or VM.
 *
 * Durable state (`persist`, durable-state.ts): after each call and each background stage, while no
 * other call runs, the port takes the state; a call's outcome is given back only once the promise
 * the port returned resolves (the state is committed), yet the next call need not wait for it.
 */
import type { CallName, NotificationName, NotificationOf, ReplyOf, RequestOf } from '@hypmesh/rm-wire';
import type { CoreGrantPort } from './core-port.js';
import { intentPort, settleIntents, type CoreIntent } from './intents.js';
import { IpaAllocator } from './ipa-allocator.js';
import { NotifyQueue } from './notify-queue.js';
import { PARCEL_CALLS, type Parcel } from './parcel.js';
import { rmFail, type RmOutcome } from './rm-outcome.js';
import { VM_CALLS, type Vm } from './vm.js';
import { VmidAllocator, type RmConfig, DEFAULT_RM_CONFIG } from './vmid.js';

/** A notification queued for one client VM. */
export type RmNotification = {
  [N in NotificationName]: { readonly name: N; readonly payload: NotificationOf<N>; readonly seq: number };
}[NotificationName];

export type CallHandler<N extends CallName> = (rm: ResourceManager, caller: number, request: RequestOf<N>) => Promise<RmOutcome<ReplyOf<N>>> | RmOutcome<ReplyOf<N>>;
export type CallTable = { readonly [N in CallName]?: CallHandler<N> };
/** Takes the RM's state after a call or stage; resolves once it is durable (a service's data dir). */
export type PersistPort = (rm: ResourceManager) => Promise<void>;

const CALLS: CallTable = { ...PARCEL_CALLS, ...VM_CALLS };

export class ResourceManager {
  readonly vms = new Map<number, Vm>();
  readonly parcels = new Map<number, Parcel>();
  readonly vmids: VmidAllocator;
  /** Each VM's IPA allocator (ipa-allocator.ts), created on first use; dropped on VM_DEALLOCATE. */
  readonly ipas = new Map<number, IpaAllocator>();
  /** Next parcel handle to try (RM: incrementing from 0, skipping used ones and 0xFFFFFFFF). */
  nextHandle = 0;
  /** Global notification sequence number (§1.3: RM notifications use one incrementing 16-bit counter). */
  notifySeq = 0;
  private readonly queues = new Map<number, NotifyQueue<RmNotification>>();
  private readonly listeners = new Set<(vmid: number, n: RmNotification) => void>();
  private tail: Promise<unknown> = Promise.resolve();
  /** Durable mode's port; undefined keeps the RM in memory only. */
  persist: PersistPort | undefined;
  /**
   * Core calls whose outcome the RM's state does not hold yet, by request id (intents.ts): durable
   * mode records each before making it; one stays open while its outcome is unknown.
   */
  readonly intents = new Map<string, CoreIntent>();
  /** Prefix of this RM's request ids: the service makes it unique (a data dir keeps it). */
  intentPrefix = 'rm';
  /** Request ids given so far. */
  intentSeq = 0;
  /** The port the calls use: every call an intent in durable mode (intents.ts), else `port` itself. */
  readonly core: CoreGrantPort;
  /** The same, for a MEM_APPEND with DONE (a settled one finalises its parcel). */
  readonly coreFinalising: CoreGrantPort;

  constructor(
    /** The core itself (the gRPC client, or an in-process core). */
    readonly port: CoreGrantPort,
    readonly config: RmConfig = DEFAULT_RM_CONFIG,
  ) {
    this.vmids = new VmidAllocator(config);
    this.core = intentPort(this);
    this.coreFinalising = intentPort(this, true);
  }

  /** The IPA allocator of `vmid` (created on first use over the configured IPA space). */
  ipaSpace(vmid: number): IpaAllocator {
    let a = this.ipas.get(vmid);
    if (a === undefined) this.ipas.set(vmid, (a = new IpaAllocator(this.config.ipaWindow)));
    return a;
  }

  /** Whether the RM handles message `name` (else the reply is UNIMPLEMENTED). */
  static handles(name: string): name is CallName {
    return name in CALLS;
  }

  /** Handles one request from `caller`, after every earlier call has finished. */
  call<N extends CallName>(caller: number, name: N, request: RequestOf<N>): Promise<RmOutcome<ReplyOf<N>>> {
    const run = async (): Promise<RmOutcome<ReplyOf<N>>> => {
      const handler = CALLS[name] as CallHandler<N> | undefined;
      if (handler === undefined) return rmFail('UNIMPLEMENTED', 'message_unhandled', `the RM does not handle ${name}`);
      return handler(this, caller, request);
    };
    if (this.persist === undefined) {
      const result = this.tail.then(run, run);
      this.tail = result.catch(() => undefined);
      return result;
    }
    // The state is taken inside the call's turn on the tail, so it is exactly this call's result;
    // the port is read then, so an RM whose port was removed (a Reset replaced it) writes nothing.
    const taken = this.tail.then(run, run).then(async (outcome) => ({ outcome, durable: this.persist?.(this) }));
    this.tail = taken.catch(() => undefined);
    return taken.then(async ({ outcome, durable }) => {
      await durable;
      return outcome;
    });
  }

  /**
   * Runs `task` after the current call and every call already queued, before any later one: the
   * background stages of a call (VM_RESET) that the real RM finishes after it has replied.
   */
  afterCall(task: () => Promise<void>): void {
    // Without a port the chain is exactly as before durable state (the simulation's schedules rely on it).
    const stage = this.persist === undefined ? task : () => task().then(() => void this.persist?.(this));
    this.tail = this.tail.then(stage).catch((e: unknown) => this.bugs.push(e));
  }

  /**
   * Settles the open intents (intents.ts) after every call already queued, before any later one;
   * resolves to how many stay open (the core gave no definite answer yet).
   */
  settleIntents(): Promise<number> {
    const run = async (): Promise<number> => (this.intents.size === 0 ? 0 : settleIntents(this));
    const settled = this.tail.then(run, run);
    this.tail = settled.then(() => this.persist?.(this)).catch((e: unknown) => this.bugs.push(e));
    return settled;
  }

  /** Resolves once every queued call and background stage has finished. */
  async idle(): Promise<void> {
    for (let t = this.tail; ; t = this.tail) {
      await t;
      if (t === this.tail) return;
    }
  }

  /** Errors thrown by background stages (bugs); a service logs them. */
  readonly bugs: unknown[] = [];

  /** The notification queue of client `vmid` (created on first use). */
  queue(vmid: number): NotifyQueue<RmNotification> {
    let q = this.queues.get(vmid);
    if (q === undefined) this.queues.set(vmid, (q = new NotifyQueue()));
    return q;
  }

  /**
   * Parcels `vmid` can see: the ones it owns and the ones whose ACL names it, in handle order. An
   * introspection aid (the CLI's `parcel list`), not an RM message: the real RM tells borrowers
   * about parcels only by MEM_SHARED.
   */
  /** Every parcel, ascending handle (admin introspection, ListParcels all_vms). */
  allParcels(): Parcel[] {
    return [...this.parcels.values()].sort((a, b) => a.handle - b.handle);
  }

  parcelsVisibleTo(vmid: number): Parcel[] {
    return [...this.parcels.values()].filter((p) => p.owner === vmid || p.acl.some((e) => e.vmid === vmid)).sort((a, b) => a.handle - b.handle);
  }

  /** Every client's waiting notifications, oldest first (durable state; nothing is taken). */
  pendingNotifications(): [vmid: number, notifications: RmNotification[]][] {
    return [...this.queues.entries()].filter(([, q]) => q.length > 0).map(([vmid, q]) => [vmid, q.peekAll()]);
  }

  /** Notifications waiting for `vmid` (no queue is created). */
  pendingFor(vmid: number): number {
    return this.queues.get(vmid)?.length ?? 0;
  }

  /** Queues a notification for `to` and wakes its subscribers. */
  notify<N extends NotificationName>(to: number, name: N, payload: NotificationOf<N>): void {
    const n = { name, payload, seq: this.notifySeq } as RmNotification;
    this.queue(to).push(n);
    this.notifySeq = (this.notifySeq + 1) & 0xffff;
    for (const l of this.listeners) l(to, n);
  }

  /** Calls `listener(vmid, n)` whenever notification `n` is queued for `vmid`; returns an unsubscribe. */
  onNotify(listener: (vmid: number, n: RmNotification) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
