/**
 * The steps both VM life cycles take (gunyah-lifecycle.ts, realm-lifecycle.ts), over the VMM's
 * ports: table-pool top-ups from the host's donation region (seed 003), teardown steps retried
 * with back-off and reported, and waits for the RM's VM_STATUS notifications (gunyah-rm.md §4.3).
 *
 * A life cycle is one row of the manager's table (vm-manager.ts LIFECYCLES): how a VM of that
 * type is made, started, stopped and torn down.
 */
import type { VmStatus } from '@hypmesh/rm';
import type { Binding } from './bindings.js';
import type { VmmClock } from './clock.js';
import { TOP_UP_PAGES_PER_CALL, type FrameRun, type HostPageAllocator } from './host-pages.js';
import { CORE_OUTCOME_UNKNOWN_RULE, type CorePort, type RmPort } from './ports.js';
import type { HoldingsPort } from './restart-sweep.js';
import type { Made, Vm, VmmConfig } from './vm-record.js';
import { vmmFail, vmmOk, type VmmError, type VmmResult } from './vmm-error.js';

export interface VmLifecycle {
  /**
   * Whether the RM knows the VM by its VMID and reports its status (VM_STATUS, VM_EXITED): the
   * manager tracks its RM status from LOAD and a start counts only once the RM says RUNNING.
   */
  readonly rmTracked: boolean;
  /** Makes the VM; `newVm` gives the record its handle once the VMID is known. */
  create(ops: VmOps, ipaBits: number, newVm: (vmid: number) => Vm): Promise<Made>;
  /** A binding this type refuses beyond the common checks (bindings.ts checkBind), or undefined. */
  refuseBinding(vm: Vm, b: Binding): VmmResult<never> | undefined;
  start(ops: VmOps, vm: Vm): Promise<VmmResult<void>>;
  /** Stops a RUNNING VM. */
  stop(ops: VmOps, vm: Vm): Promise<VmmResult<void>>;
  /** Gives back everything the VM holds; what cannot come back is listed in vm.leaked. */
  tearDown(ops: VmOps, vm: Vm): Promise<void>;
}

export class VmOps {
  private readonly waiters = new Set<() => void>();
  /** What the RM and the core hold (restart-sweep.ts), when the manager can ask: for `othersLetGo`, `refreshStatus` and unknown grants. */
  holdings: Pick<HoldingsPort, 'rmParcels' | 'rmVms' | 'hostGrants' | 'regionRuns'> | undefined;
  /** Whether the msgq link to the RM is up (LINK notices), and who waits for it to come back and be re-read. */
  private linkUp = true;
  private readonly linkWaiters = new Set<() => void>();

  constructor(
    readonly rm: RmPort,
    readonly core: CorePort,
    readonly pages: HostPageAllocator,
    readonly config: VmmConfig,
    private readonly clock: VmmClock,
  ) {}

  /** waitRm calls waiting now. */
  waiting(): number {
    return this.waiters.size;
  }

  /** A VM's RM status changed: every waitRm re-checks its condition. */
  statusChanged(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Waits until `vm`'s RM status satisfies `done`, at most config.waitMs; whether it did. */
  waitRm(vm: Vm, done: (s: VmStatus | 'UNKNOWN') => boolean): Promise<boolean> {
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

  /**
   * Donates `pages` more host pages to the VM's table pool (__pkvm_host_donate_hyp), in calls of at
   * most TOP_UP_PAGES_PER_CALL (the core's frames_per_call cap). A chunk the core refuses is freed;
   * the chunks before it stay in the pool, recorded, and come back at teardown like any other.
   */
  async topUp(vm: Vm, pages: number): Promise<VmmResult<void>> {
    for (let left = pages; left > 0; ) {
      const chunk = Math.min(left, TOP_UP_PAGES_PER_CALL);
      const run = this.pages.allocRun(chunk);
      if (run === undefined) return vmmFail('ENOMEM', 'donation_region_full', `no run of ${chunk} free pages`);
      const r = await this.core.topUpTablePool(vm.vmid, [run]);
      if (!r.ok) {
        if (r.error.rule !== CORE_OUTCOME_UNKNOWN_RULE || !(await this.donatedAnyway(run))) this.pages.freeRun(run);
        else vm.poolRuns.push(run);
        return vmmFail('ENOMEM', 'pool_top_up', `TopUpTablePool: ${r.error.errno} ${r.error.rule}`, r.error.errno);
      }
      vm.poolRuns.push(run);
      left -= chunk;
    }
    return vmmOk(undefined);
  }

  /**
   * Whether a top-up whose outcome stayed unknown took `run` anyway, by query (issue 9 item 2): the
   * core's ownership of the run, host-free or not. A run that cannot be read counts as taken: it
   * then stays with the VM's pool runs and is freed with its stage-2, rather than handed out again
   * while HYP may own it.
   */
  private async donatedAnyway(run: FrameRun): Promise<boolean> {
    const runs = await this.holdings?.regionRuns(run);
    return runs === undefined || !runs.ok || runs.value.some((r) => !r.hostFree);
  }

  /**
   * Waits until no parcel but the VM's own (`vm.parcels`) names it in its ACL: another HLOS
   * client's share or lend to the VM keeps a grant naming it, and VM_DEALLOCATE is refused until
   * that client reclaims it (vm-record.ts othersWaitMs). Whether they are gone (true without
   * holdings: nothing to wait for that the VMM can see).
   */
  async othersLetGo(vm: Vm): Promise<boolean> {
    if (this.holdings === undefined) return true;
    for (let waited = 0; ; waited += this.config.othersPollMs) {
      const parcels = await this.holdings.rmParcels();
      const own = new Set(vm.parcels.map((p) => p.handle));
      if (parcels.ok && !parcels.value.some((p) => !own.has(p.handle) && p.aclVmids.includes(vm.vmid))) return true;
      if (waited >= this.config.othersWaitMs) return false;
      await new Promise<void>((resolve) => void this.clock.after(this.config.othersPollMs, resolve));
    }
  }

  /** The RM link went down, or came back and the manager has re-read the RM's view (`resynced`). */
  linkChanged(up: boolean): void {
    this.linkUp = up;
    if (up) for (const w of [...this.linkWaiters]) w();
  }

  /** Resolves once the RM link is up again (at once if it is), or after `maxMs`; whether it is up. */
  private linkBack(maxMs: number): Promise<boolean> {
    if (this.linkUp) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (): void => {
        this.linkWaiters.delete(finish);
        cancel();
        resolve(this.linkUp);
      };
      const cancel = this.clock.after(maxMs, finish);
      this.linkWaiters.add(finish);
    });
  }

  /**
   * Re-reads the VM's RM status from the RM's own view (ListVms), when the manager can ask: a
   * notification may have been lost while the link was down (an RM restart), and a teardown
   * that acted on a stale status would skip VM_RESET or wait for a status that never comes.
   */
  async refreshStatus(vm: Vm): Promise<void> {
    const vms = await this.holdings?.rmVms();
    const now = vms?.ok ? vms.value.find((v) => v.vmid === vm.vmid) : undefined;
    if (now !== undefined && now.status !== vm.rmStatus) {
      vm.rmStatus = now.status;
      this.statusChanged();
    }
  }

  /** Runs teardown `step` up to attemptsMax times; records attempts and the last error. */
  async attempt(vm: Vm, step: string, run: () => Promise<VmmResult<void>>): Promise<boolean> {
    let last: VmmError | undefined;
    let rmWaitLeft = this.config.rmReturnWaitMs;
    for (let n = 1, tries = 1; n <= this.config.attemptsMax; n++, tries++) {
      const r = await run();
      if (r.ok) {
        vm.teardown.push({ step, attempts: tries, ok: true });
        return true;
      }
      last = r.error;
      // The RM could not be reached (EIO with no RM error: the msgq, or a notice that never came)
      // and the link is down: wait for it to come back and be re-read (resync), and try again
      // without counting this attempt, for rmReturnWaitMs in all (issue 9 §3).
      if (!this.linkUp && last.errno === 'EIO' && last.cause === undefined && rmWaitLeft > 0) {
        const t0 = this.clock.nowMs();
        await this.linkBack(rmWaitLeft);
        rmWaitLeft -= Math.max(1, this.clock.nowMs() - t0);
        n--;
        continue;
      }
      if (n < this.config.attemptsMax && this.config.retryBackoffMs > 0) {
        const ms = this.config.retryBackoffMs * 2 ** (n - 1);
        await new Promise<void>((resolve) => void this.clock.after(ms, resolve));
      }
    }
    vm.teardown.push({ step, attempts: this.config.attemptsMax, ok: false, error: `${last!.errno} ${last!.rule}: ${last!.message}` });
    return false;
  }
}
