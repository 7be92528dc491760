/**
 * The RM's durable state (`--data-dir`, DESIGN.md §8): `rm.sqlite` holds one state row, the whole
 * RM (@hypmesh/rm rmDurableState: VMs, parcels, VMIDs, handles, IPA ranges, queued notifications),
 * rewritten whenever a call or background stage changed it and committed before that call's reply,
 * with every row of one event-loop turn in one transaction (@hypmesh/journal's group commit). A
 * call that changed nothing still waits for what is pending. The RM keeps state rather than a
 * command log because its calls await the core: replaying them would call the core again.
 *
 * The row is the whole RM, not a row per object: the RM is small (≤ 63 VMs, 64 parcels each) and
 * one row cannot be half-written. Notifications taken by a subscriber after the last commit come
 * back after a restart (delivery is at least once across a crash).
 *
 * Beside the RM's own durable state the row keeps each client's queue counters (notifications
 * dropped because its queue was full, and ever queued): a subscriber that returns after an RM
 * restart learns how many it missed (Subscribe's `dropped`, GetStats), issue 9 item 3. A row
 * written before they were kept restores them as zero.
 */
import { decodeState, encodeState, exitOnCommitFailure, openDataDir, type Journal, type JournalSync } from '@hypmesh/journal';
import { DEFAULT_RM_CONFIG, VMID_HLOS, restoreRm, rmDurableState, type PersistPort, type ResourceManager, type RmConfig, type RmDurableState } from '@hypmesh/rm';

const RM_STATE_FILE = 'rm.sqlite';

/** One client's queue counters: [vmid, dropped, queued]. */
type QueueCounters = [vmid: number, dropped: number, queued: number];
type StoredRm = RmDurableState & { readonly queueCounters?: readonly QueueCounters[] };

/** The counters of every queue that has counted anything: HLOS's, each VM's, and any other client with notifications waiting. */
function queueCounters(rm: ResourceManager): QueueCounters[] {
  const vmids = new Set<number>([VMID_HLOS, ...rm.vms.keys(), ...rm.pendingNotifications().map(([v]) => v)]);
  return [...vmids]
    .sort((a, b) => a - b)
    .map((v): QueueCounters => [v, rm.queue(v).dropped, rm.queue(v).pushed])
    .filter(([, dropped, queued]) => dropped > 0 || queued > 0);
}
const STATE_KEY = 'rm';
/** Who made each VMID and parcel (admission.ts snapshot): quotas hold across a restart. */
const ADMISSION_KEY = 'rm-admission';

/**
 * The port that keeps `rm`'s state in `journal` (ResourceManager.persist). A failed commit rejects
 * the call (its reply is an error) and calls `failed`.
 */
export function persistTo(journal: Journal, failed: (e: Error) => void): PersistPort {
  let last: string | undefined;
  return (rm) =>
    new Promise((resolve, reject) => {
      const text = encodeState({ ...rmDurableState(rm), queueCounters: queueCounters(rm) } satisfies StoredRm);
      const done = (e?: Error): void => {
        if (e === undefined) return resolve();
        failed(e);
        reject(e);
      };
      if (text === last) return journal.afterDurable(done);
      last = text;
      journal.putState(STATE_KEY, text, done);
    });
}

/** The port that keeps the admission ledger's snapshot in `journal` (RmAdmission persist). */
export function persistAdmissionTo(journal: Journal, failed: (e: Error) => void): (text: string) => Promise<void> {
  return (text) =>
    new Promise((resolve, reject) =>
      journal.putState(ADMISSION_KEY, text, (e) => {
        if (e === undefined) return resolve();
        failed(e);
        reject(e);
      }),
    );
}

/** The stored admission snapshot, if any. */
export const storedAdmission = (journal: Journal): string | undefined => journal.state(ADMISSION_KEY);

/** Puts the stored state, if any, into `rm` (fresh, same configuration); false when there was none. */
export function restoreFrom(journal: Journal, rm: ResourceManager): boolean {
  const text = journal.state(STATE_KEY);
  if (text === undefined) return false;
  const state = decodeState(text) as StoredRm;
  restoreRm(rm, state);
  // After restoreRm, whose re-queueing counted the waiting notifications as queued again.
  for (const [vmid, dropped, queued] of state.queueCounters ?? []) {
    const q = rm.queue(vmid);
    q.dropped = dropped;
    q.pushed = queued;
  }
  return true;
}

/** A main's durable options (`--data-dir`; nothing when not given), or the reason the data dir is refused. */
export function durableRmOptions(
  dataDir: string | undefined,
  config: RmConfig = DEFAULT_RM_CONFIG,
  sync: JournalSync,
  log: { fatal(obj: object, msg: string): void },
): { ok: true; value: { store?: Journal; storeFailed?: (e: Error) => void } } | { ok: false; error: string } {
  if (dataDir === undefined || dataDir === '') return { ok: true, value: {} };
  const opened = openDataDir({ dir: dataDir, file: RM_STATE_FILE, service: 'hypmesh-rm', format: '1', configured: encodeState(config), sync });
  if (!opened.ok) return opened;
  return { ok: true, value: { store: opened.value.journal, storeFailed: exitOnCommitFailure(log) } };
}
