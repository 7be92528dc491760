/**
 * The VMM's durable state (`--data-dir`, DESIGN.md §8; issue 9 §3): `vmm.sqlite` holds one state
 * row, the VM manager's leases and VM records (@hypmesh/vmm durable-state.ts), rewritten whenever
 * it changed and committed before the reply of the call that changed it (@hypmesh/journal's group
 * commit: every row of one event-loop turn in one transaction). A call that changed nothing still
 * waits for what is pending, since it may have seen it. Background changes (a teardown's steps, an
 * RM status notice, a lease ending) are saved as they happen, from the manager's events.
 *
 * One row, not a row per lease or VM, as the RM does (services/rm durable.ts): the VMM holds at
 * most the RM's 63 VMs, and one row cannot be half-written.
 *
 * What the next process does with it is the domain's (VmManager.sweepOrphans with the saved
 * state): live leases and their VMs are re-adopted after a check against the RM and the core; the
 * rest is torn down.
 */
import type { handleUnaryCall } from '@grpc/grpc-js';
import { decodeState, encodeState, exitOnCommitFailure, openDataDir, type Journal, type JournalSync } from '@hypmesh/journal';
import { VMM_DURABLE_FORMAT, type VmManager, type VmmDurableState } from '@hypmesh/vmm';

const VMM_STATE_FILE = 'vmm.sqlite';
const STATE_KEY = 'vmm';

export class VmmStore {
  private last: string | undefined;
  private closed = false;
  private current: () => VmManager = () => {
    throw new Error('bug: VmmStore.save before bind');
  };

  constructor(
    private readonly journal: Journal,
    private readonly failed: (e: Error) => void,
  ) {}

  /** The saved state, if any (start-up). */
  load(): VmmDurableState | undefined {
    const text = this.journal.state(STATE_KEY);
    return text === undefined ? undefined : (decodeState(text) as VmmDurableState);
  }

  /** Which manager `save` reads (the service's current one: Reset replaces it). */
  bind(current: () => VmManager): void {
    this.current = current;
  }

  /** Queues the manager's state into this turn's group if it changed; a no-op once closed. */
  save(): void {
    if (this.closed) return;
    const text = encodeState(this.current().durableState(Date.now()));
    if (text === this.last) return;
    this.last = text;
    this.journal.putState(STATE_KEY, text, (e) => {
      if (e !== undefined) this.failed(e);
    });
  }

  /** Runs `done` once everything queued so far is committed. */
  afterDurable(done: (e?: Error) => void): void {
    if (this.closed) done();
    else this.journal.afterDurable(done);
  }

  /** Saves a last time, commits and closes the file: later saves are no-ops (shutdown). */
  close(): void {
    if (this.closed) return;
    this.save();
    this.closed = true;
    this.journal.close();
  }
}

/**
 * The unary handlers of `service`, each replying only once the state it left is committed: the
 * reply (success or refusal) is held until `store.save()` and the commit of its group. A failed
 * commit never replies success: `failed` (exitOnCommitFailure) ends the process first.
 */
export function repliesAfterCommit<T extends object>(service: T, streams: readonly string[], store: VmmStore): T {
  const out: Record<string, unknown> = { ...(service as Record<string, unknown>) };
  for (const [name, h] of Object.entries(service)) {
    if (streams.includes(name) || typeof h !== 'function') continue;
    const inner = h as handleUnaryCall<unknown, unknown>;
    out[name] = ((call, callback) =>
      inner(call, (error, value, trailer, flags) => {
        store.save();
        store.afterDurable((e) => (e === undefined ? callback(error, value, trailer, flags) : callback(e)));
      })) satisfies handleUnaryCall<unknown, unknown>;
  }
  return out as T;
}

/** The store for `--data-dir` (nothing when not given), or why the data dir is refused. */
export function openVmmStore(dataDir: string | undefined, sync: JournalSync, log: { fatal(obj: object, msg: string): void }): { ok: true; value: VmmStore | undefined } | { ok: false; error: string } {
  if (dataDir === undefined || dataDir === '') return { ok: true, value: undefined };
  const opened = openDataDir({ dir: dataDir, file: VMM_STATE_FILE, service: 'hypmesh-vmm', format: VMM_DURABLE_FORMAT, configured: '{}', sync });
  if (!opened.ok) return opened;
  return { ok: true, value: new VmmStore(opened.value.journal, exitOnCommitFailure(log)) };
}
