/**
 * A service's file in a data dir (`--data-dir`): one SQLite file per service (`core.sqlite`,
 * `rm.sqlite`), so one dir serves `npm start` and a volume per container serves compose. Its
 * metadata names the service, the format and the configuration its contents assume; a file of
 * another service, format or configuration is refused, not misread.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Journal, type JournalSync } from './journal.js';

export interface DataDirFile {
  readonly dir: string;
  /** File name in `dir`, e.g. `core.sqlite`. */
  readonly file: string;
  /** Who owns the file, e.g. `hypmesh-core`. */
  readonly service: string;
  /** Bumped when what is stored changes meaning. */
  readonly format: string;
  /** The configuration, as one canonical string: a restart must give the same. */
  readonly configured: string;
  readonly sync?: JournalSync;
  /** More metadata written when the file is created. */
  readonly initialMeta?: Readonly<Record<string, string>>;
}

/** Opens (creating `dir` and the file if need be) or refuses with the reason. */
export function openDataDir(f: DataDirFile): { ok: true; value: { journal: Journal; created: boolean } } | { ok: false; error: string } {
  mkdirSync(f.dir, { recursive: true });
  const journal = new Journal(join(f.dir, f.file), f.sync === undefined ? {} : { sync: f.sync });
  const refuse = (why: string) => {
    journal.close();
    return { ok: false as const, error: `data dir ${f.dir}: ${f.file} ${why}` };
  };
  const service = journal.meta('service');
  if (service === undefined) {
    journal.putMeta({ ...f.initialMeta, service: f.service, format: f.format, configured: f.configured });
    return { ok: true, value: { journal, created: true } };
  }
  if (service !== f.service) return refuse(`holds the state of ${service}, not ${f.service}`);
  if (journal.meta('format') !== f.format) return refuse(`is format ${journal.meta('format')}; ${f.service} reads ${f.format}`);
  const configured = journal.meta('configured');
  if (configured !== f.configured) return refuse(`was written by a ${f.service} configured with ${configured}, this one with ${f.configured}: start with the same options, or give an empty data dir`);
  return { ok: true, value: { journal, created: false } };
}
