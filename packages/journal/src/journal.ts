/**
 * A command journal in SQLite (better-sqlite3 12.x): every accepted mutation as one row, appended
 * and committed before its reply, so a service rebuilt by replaying the rows in order is exactly
 * the service its clients last heard from (DESIGN.md §8, issue 9 item 1).
 *
 * Group commit: rows appended during one event-loop turn are written in ONE transaction at the
 * turn's end (setImmediate), and only then are their callbacks run, in append order. A reply that
 * needs no row (a read, a refusal) still waits for the rows appended before it (`afterDurable`):
 * it may have seen their effect, which a crash before the commit would undo.
 *
 * Durability (`sync`): the journal is in WAL mode. `normal` (default): a commit has write()n its
 * WAL frames to the OS before it returns; the OS keeps them if the process dies (kill -9 at any
 * instant loses nothing acknowledged), but a power loss or kernel crash may lose the last commits
 * (the file stays consistent: SQLite's WAL checksums cut a torn tail). `full`: every commit also
 * fsyncs the WAL, so acknowledged rows survive power loss too; it costs one fsync per group.
 *
 * Keyed state rows (`putState`) ride the same groups, for a service that keeps its state rather
 * than its commands (the RM, whose commands await the core and so cannot be replayed): a row put
 * several times in one group is written once, with its last value.
 *
 * A failed commit leaves the service's memory ahead of its journal, so the journal refuses every
 * later append (`failure`), and callers should exit and recover (crash-only).
 */

import Database from 'better-sqlite3';

export type JournalSync = 'normal' | 'full';

/** One accepted mutation: the command's name, who asked, and its encoded arguments. */
export interface JournalRecord {
  readonly name: string;
  readonly caller: string;
  readonly body: Uint8Array;
  /** The caller's idempotency key (request id), if it gave one: replay remembers it again. */
  readonly key?: string;
}

/** A record as stored, with its position in the journal (1, 2, …; never reused). */
export interface StoredRecord extends JournalRecord {
  readonly seq: number;
}

export interface JournalOptions {
  readonly sync?: JournalSync;
}

/** Called once the group holding the operation committed (`error` if the commit failed). */
export type Durable = (error?: Error) => void;

/** A queued write: a row, or a wipe (Reset) with the metadata that goes with it. */
type Pending =
  | { readonly kind: 'append'; readonly record: JournalRecord }
  | { readonly kind: 'clear'; readonly meta: Readonly<Record<string, string>>; readonly state: Readonly<Record<string, string | null>> }
  | { readonly kind: 'state'; readonly key: string; readonly value: string };

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS record (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, caller TEXT NOT NULL, body BLOB NOT NULL, key TEXT);
  CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export class Journal {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement<[string, string, Uint8Array, string | null]>;
  private readonly setMeta: Database.Statement<[string, string]>;
  private readonly setState: Database.Statement<[string, string]>;
  private readonly writeGroup: (ops: readonly Pending[]) => void;
  private pending: Pending[] = [];
  /** Callbacks of the open group, run in order after its commit. */
  private waiting: Durable[] = [];
  private flushScheduled = false;
  /** Set by the first failed commit; every later operation fails with it. */
  failure: Error | undefined;
  /** Groups committed and rows appended since open (the benchmark and logs report them). */
  readonly stats = { groups: 0, records: 0 };

  constructor(
    readonly path: string,
    options: JournalOptions = {},
  ) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.exec(SCHEMA);
    // A file made before records had keys: the column is added, its old rows have none.
    const columns = this.db.prepare('PRAGMA table_info(record)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'key')) this.db.exec('ALTER TABLE record ADD COLUMN key TEXT');
    this.insert = this.db.prepare('INSERT INTO record (name, caller, body, key) VALUES (?, ?, ?, ?)');
    this.setMeta = this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    this.setState = this.db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    this.writeGroup = this.db.transaction((ops: readonly Pending[]) => {
      const lastPut = new Map<string, Pending>();
      for (const op of ops) if (op.kind === 'state') lastPut.set(op.key, op);
      for (const op of ops) {
        if (op.kind === 'append') this.insert.run(op.record.name, op.record.caller, op.record.body, op.record.key ?? null);
        else if (op.kind === 'state') {
          if (lastPut.get(op.key) === op) this.setState.run(op.key, op.value);
        } else {
          this.db.prepare('DELETE FROM record').run();
          for (const [k, v] of Object.entries(op.meta)) this.setMeta.run(k, v);
          for (const [k, v] of Object.entries(op.state)) {
            if (v === null) this.db.prepare('DELETE FROM state WHERE key = ?').run(k);
            else this.setState.run(k, v);
          }
        }
      }
    });
  }

  /** A metadata value (configuration the journal's records assume), if set. */
  meta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  /** Sets metadata at once, synchronously committed (start-up only: nothing else is pending then). */
  putMeta(values: Readonly<Record<string, string>>): void {
    this.db.transaction(() => {
      for (const [k, v] of Object.entries(values)) this.setMeta.run(k, v);
    })();
  }

  /** A state row's value, if stored. */
  state(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM state WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  /** Every stored record in append order (replay at start-up). */
  *records(): IterableIterator<StoredRecord> {
    for (const row of this.db.prepare('SELECT seq, name, caller, body, key FROM record ORDER BY seq').iterate() as IterableIterator<{ seq: number; name: string; caller: string; body: Buffer; key: string | null }>) {
      const { key, ...rest } = row;
      yield key === null ? rest : { ...rest, key };
    }
  }

  /** Rows stored now. */
  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM record').get() as { n: number }).n;
  }

  /** Queues `record` into this turn's group; `done` runs after the group commits. */
  append(record: JournalRecord, done: Durable): void {
    this.enqueue({ kind: 'append', record }, done);
  }

  /** Queues state row `key` = `value` into this turn's group; `done` runs after the group commits. */
  putState(key: string, value: string, done: Durable): void {
    this.enqueue({ kind: 'state', key, value }, done);
  }

  /**
   * Queues a wipe of every record appended so far, with `meta` set and `state` rows put (null:
   * deleted) in the same transaction: a Reset (the state the records built is gone), or a
   * checkpoint (a snapshot row now stands for them).
   */
  clear(meta: Readonly<Record<string, string>>, state: Readonly<Record<string, string | null>>, done: Durable): void {
    this.enqueue({ kind: 'clear', meta, state }, done);
  }

  /** Runs `done` once everything appended before now is committed: at once if nothing is pending. */
  afterDurable(done: Durable): void {
    if (this.failure !== undefined) done(this.failure);
    else if (this.pending.length === 0) done();
    else this.waiting.push(done);
  }

  /** Commits the open group now (tests, and close). */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const ops = this.pending;
    const waiting = this.waiting;
    this.pending = [];
    this.waiting = [];
    try {
      this.writeGroup(ops);
      this.stats.groups++;
      this.stats.records += ops.filter((op) => op.kind === 'append').length;
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
    }
    for (const done of waiting) done(this.failure);
  }

  /** Commits what is pending and closes the database. */
  close(): void {
    this.flush();
    if (this.db.open) this.db.close();
  }

  private enqueue(op: Pending, done: Durable): void {
    if (this.failure !== undefined) return done(this.failure);
    this.pending.push(op);
    this.waiting.push(done);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }
}

/**
 * What a main does when a commit fails: log it and exit. The process's memory is then ahead of its
 * data dir; a restart recovers the last committed state, which is all that was acknowledged.
 */
export function exitOnCommitFailure(log: { fatal(obj: object, msg: string): void }): (e: Error) => void {
  return (e) => {
    log.fatal({ err: e }, 'journal commit failed: exiting, a restart recovers the last committed state');
    process.exit(1);
  };
}
