/**
 * The core's durable state (`--data-dir`, DESIGN.md §8): a command journal of every CoreService
 * call that succeeded and changed something, as (RPC name, caller VMID text, request bytes, and
 * its request id if it had one: keys.ts), committed before its reply (@hypmesh/journal's group commit). The domain is deterministic (no
 * clock, no randomness in @hypmesh/stage2), so replaying the journal through the same handlers into
 * a core built from the same configuration rebuilds exactly the acknowledged state, grant ids and
 * all: a restarted core continues the id sequence and never reuses an id of its previous life.
 *
 * A refused call changes nothing, so it is not journaled; its reply, like every read's, still waits
 * for the records appended before it, whose effect it may have seen. Reset wipes the journal and
 * stores the new map in the same group. The data dir holds `core.sqlite`; its metadata pins the
 * configuration the records assume (`configured`, from the flags at first start), the map in
 * force (`memory`, which Reset may change) and the boot generation grant ids carry (`generation`,
 * drawn at the first start and at each Reset: ids continue across restarts, and none of an earlier
 * Reset's ids names a grant again).
 *
 * Snapshots bound recovery: every `--snapshot-every` records (SNAPSHOT_EVERY_DEFAULT) the core's
 * image (@hypmesh/stage2 coreImage) replaces the records before it, in one transaction; recovery
 * restores the image and replays the records after it.
 */

import * as grpc from '@grpc/grpc-js';
import type { CoreServiceServer } from '@hypmesh/proto';
import { exitOnCommitFailure, openDataDir, type Journal, type JournalSync } from '@hypmesh/journal';
import { CALLER_VMID_KEY, CLIENT_KEY, principalOf, REQUEST_ID_KEY, type BugLog, type Principal } from '@hypmesh/rpc';
import type { CoreAdmission } from './admission.js';
import { isDeepStrictEqual } from 'node:util';
import { BOOT_GENERATION_MAX, coreImage, DEFAULT_STAGE2_CONFIG, restoreCore, snapshot, type Stage2, type Stage2Config } from '@hypmesh/stage2';
import { randomInt } from 'node:crypto';
import { digestOf, keysImage, METHODS, restoreKeys, type CoreKeys } from './keys.js';

const CORE_JOURNAL_FILE = 'core.sqlite';
const SERVICE = 'hypmesh-core';
/** Bumped when the record format changes; an older data dir is refused, not misread. */
const FORMAT = '1';

type Handler = grpc.handleUnaryCall<unknown, unknown>;

/**
 * A boot generation for a core that starts empty (a process without a data dir, a new data dir,
 * a Reset): grant ids of different boots then differ in their high bits (@hypmesh/stage2
 * GRANT_IDS_PER_GENERATION), so a client's id from an earlier boot is refused, never aliased. 0 is
 * left to the deterministic simulation and to data dirs older than generations.
 */
export function randomBootGeneration(): number {
  return randomInt(1, BOOT_GENERATION_MAX + 1);
}

/** The configuration as one canonical string (key order fixed), so equal configs compare equal. */
function canonical(c: Stage2Config): string {
  const regions = (rs: Stage2Config['memory']['ram']) => rs.map((r) => ({ base: r.base, sizeBytes: r.sizeBytes }));
  return JSON.stringify({ memory: { paBits: c.memory.paBits, ram: regions(c.memory.ram), mmio: regions(c.memory.mmio) }, hypReservationPages: c.hypReservationPages ?? null });
}

function fromCanonical(text: string): Stage2Config {
  const c = JSON.parse(text) as { memory: Stage2Config['memory']; hypReservationPages: number | null };
  return c.hypReservationPages === null ? { memory: c.memory } : { memory: c.memory, hypReservationPages: c.hypReservationPages };
}

/**
 * Opens (or creates) `dir`'s journal for a core started with `config`, and gives the configuration
 * to build the core from (the map in force, which a Reset may have changed, and the boot
 * generation: `firstGeneration` for a new data dir, random unless a test fixes it). A data dir of another
 * configuration, service or format is refused with the reason: its records would not replay.
 */
export function openCoreJournal(dir: string, config: Stage2Config, sync: JournalSync = 'normal', firstGeneration: number = randomBootGeneration()): { ok: true; value: { journal: Journal; config: Stage2Config } } | { ok: false; error: string } {
  const configured = canonical(config);
  const opened = openDataDir({ dir, file: CORE_JOURNAL_FILE, service: SERVICE, format: FORMAT, configured, sync, initialMeta: { memory: configured, generation: String(firstGeneration) } });
  if (!opened.ok) return opened;
  const { journal } = opened.value;
  // A data dir written before generations existed booted as generation 0.
  return { ok: true, value: { journal, config: { ...fromCanonical(journal.meta('memory')!), bootGeneration: Number(journal.meta('generation') ?? '0') } } };
}

/**
 * A main's durable options (`--data-dir`; nothing when not given): the opened journal, the
 * configuration to build from, and an exit on a failed commit (a restart recovers the last
 * committed state). A refused data dir is the error to exit 2 with.
 */
export function durableCoreOptions(
  dataDir: string | undefined,
  config: Stage2Config = DEFAULT_STAGE2_CONFIG,
  sync: JournalSync,
  log: { fatal(obj: object, msg: string): void },
): { ok: true; value: { journal?: Journal; stage2Config?: Stage2Config; journalFailed?: (e: Error) => void } } | { ok: false; error: string } {
  if (dataDir === undefined || dataDir === '') return { ok: true, value: {} };
  const opened = openCoreJournal(dataDir, config, sync);
  if (!opened.ok) return opened;
  return { ok: true, value: { journal: opened.value.journal, stage2Config: opened.value.config, journalFailed: exitOnCommitFailure(log) } };
}

/**
 * Replays every record through `handlers` (the plain ones, which journal nothing), remembering the
 * key of each keyed one with the response it gives again (keys.ts). Each one succeeded when it was
 * journaled and the domain is deterministic, so a refusal now means the data dir does not belong to
 * this code: an error naming the record.
 */
export function replayJournal(
  journal: Journal,
  handlers: CoreServiceServer,
  keys: CoreKeys,
  applied: (rpc: string, who: Principal, req: unknown, value: unknown) => void = () => undefined,
): { ok: true; value: number } | { ok: false; error: string } {
  let count = 0;
  for (const r of journal.records()) {
    const method = METHODS[r.name];
    const handler = (handlers as unknown as Record<string, Handler>)[r.name];
    if (method === undefined || handler === undefined) return { ok: false, error: `record ${r.seq}: unknown RPC ${r.name}` };
    const { vmid: caller, client } = recordCaller(r.caller);
    const metadata = new grpc.Metadata();
    metadata.set(CALLER_VMID_KEY, caller);
    if (client !== undefined) metadata.set(CLIENT_KEY, client);
    const call = { request: method.requestDeserialize(Buffer.from(r.body)), metadata, getPath: () => method.path } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
    let outcome: grpc.ServiceError | null | undefined;
    let value: unknown;
    handler(call, (e, v) => {
      outcome = e as grpc.ServiceError | null;
      value = v;
    });
    if (outcome !== null) return { ok: false, error: `record ${r.seq} (${r.name} by ${r.caller}) did not replay: ${outcome === undefined ? 'no synchronous reply' : outcome.details}` };
    // Quotas are charged again as when the call was made (admission.ts); a replayed record is never refused by them.
    applied(r.name, principalOf(call), call.request, value);
    if (r.key !== undefined) keys.remember({ caller, key: r.key, rpc: r.name, digest: digestOf(r.name, call.request), outcome: { ok: true, value } });
    count++;
  }
  return { ok: true, value: count };
}

/**
 * A record's caller text: the caller VMID, then `/<client>` when the call named its client
 * (`x-hypmesh-client`), so replay charges quotas to the same principal. Records written before
 * admission control hold the VMID alone (the anonymous client).
 */
export function callerText(metadata: grpc.Metadata): string {
  const vmid = String(metadata.get(CALLER_VMID_KEY)[0]);
  const client = metadata.get(CLIENT_KEY)[0];
  return typeof client === 'string' ? `${vmid}/${client}` : vmid;
}

function recordCaller(text: string): { vmid: string; client?: string } {
  const slash = text.indexOf('/');
  return slash === -1 ? { vmid: text } : { vmid: text.slice(0, slash), client: text.slice(slash + 1) };
}

/** What happens between a handler's result and its reply; `reply()` sends the result, `reply(e)` sends `e` instead. */
type ReplyError = Parameters<grpc.sendUnaryData<unknown>>[0];
export type ReplyStep = (rpc: string, mutating: boolean, call: grpc.ServerUnaryCall<unknown, unknown>, err: ReplyError, reply: (instead?: ReplyError) => void) => void;

/** Records between snapshots, by default: recovery replays at most this many after the image. */
export const SNAPSHOT_EVERY_DEFAULT = 10_000;
/** The state row holding the latest core image (@hypmesh/stage2 coreImage). */
const IMAGE_KEY = 'core-image';
/** The state row holding the keys remembered when that image was cut (keys.ts keysImage). */
const KEYS_IMAGE_KEY = 'core-keys';
/** The state row holding the admission ledger when that image was cut (admission.ts image). */
const QUOTAS_IMAGE_KEY = 'core-quotas';

/**
 * The core to recover into: the stored image (the state its records were cut at), else `boot()`;
 * the keys stored with the image are remembered into `keys`.
 */
export function recoveryBase(journal: Journal, boot: () => Stage2, keys: CoreKeys, admission?: CoreAdmission): { stage2: Stage2; fromImage: boolean } {
  const image = journal.state(IMAGE_KEY);
  const keysRow = journal.state(KEYS_IMAGE_KEY);
  if (keysRow !== undefined) restoreKeys(keysRow, keys);
  const quotasRow = journal.state(QUOTAS_IMAGE_KEY);
  if (quotasRow !== undefined && admission !== undefined) admission.restore(quotasRow);
  return image === undefined ? { stage2: boot(), fromImage: false } : { stage2: restoreCore(image), fromImage: true };
}

/**
 * The journal's step before a reply (server.ts applies it to every RPC): a mutation that succeeded
 * is appended, a Reset wipes the journal, anything else waits for what is pending; the reply goes
 * once that is committed. A failed commit answers UNAVAILABLE (the caller cannot know whether the
 * change survives) and calls `failed`: the process should exit and recover, its memory being ahead
 * of its journal.
 *
 * Every `snapshotEvery` records (0: never), right after the append that reaches it (so the core in
 * memory is exactly what the records built), the core's image replaces them in the same group.
 * The image is restored and compared with the live core's digest first; one that would not restore
 * to the same core is logged as a bug and not written, and the journal just grows.
 */
export function journalStep(
  journal: Journal,
  core: () => Stage2,
  keys: CoreKeys,
  failed: (e: Error) => void,
  log: BugLog,
  snapshotEvery: number = SNAPSHOT_EVERY_DEFAULT,
  admission?: CoreAdmission,
): ReplyStep {
  let sinceImage = journal.count();
  const checkpoint = (): void => {
    sinceImage = 0;
    try {
      const image = coreImage(core());
      if (!isDeepStrictEqual(snapshot(restoreCore(image)), snapshot(core()))) throw new Error('the image does not restore to the same core');
      // The keys go with the image: the records that named them are gone (keys.ts).
      // And the quota ledger: the records that charged it are gone (admission.ts).
      journal.clear({}, { [IMAGE_KEY]: image, [KEYS_IMAGE_KEY]: keysImage(keys), [QUOTAS_IMAGE_KEY]: admission?.image() ?? null }, () => undefined);
    } catch (e) {
      log.error({ err: e }, 'bug: core image not written; the journal keeps every record');
    }
  };
  return (rpc, mutating, call, err, reply) => {
    const committed = (e?: Error): void => {
      if (e === undefined) return reply();
      failed(e);
      reply({ code: grpc.status.UNAVAILABLE, details: `the core could not journal this call (${e.message}); it restarts from its data dir` });
    };
    if (err !== null) journal.afterDurable(committed);
    else if (rpc === 'reset') {
      sinceImage = 0;
      journal.clear({ memory: canonical(core().config), generation: String(core().config.bootGeneration ?? 0) }, { [IMAGE_KEY]: null, [KEYS_IMAGE_KEY]: null, [QUOTAS_IMAGE_KEY]: null }, committed);
    } else if (mutating) {
      const key = call.metadata.get(REQUEST_ID_KEY)[0];
      const record = { name: rpc, caller: callerText(call.metadata), body: METHODS[rpc]!.requestSerialize(call.request) };
      journal.append(typeof key === 'string' ? { ...record, key } : record, committed);
      if (snapshotEvery > 0 && ++sinceImage >= snapshotEvery) checkpoint();
    } else journal.afterDurable(committed);
  };
}
