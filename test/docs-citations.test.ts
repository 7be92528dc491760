/**
 * Every document the code cites is in docs/, and every cited section exists there (docs/README.md).
 *
 * Citations, as comments and protos write them:
 *   `gunyah-rm.md §4.2`, `stage2-models.md §A4–A5`, `DESIGN.md §1, §4`   → docs/<name>, heading 4.2 …
 *   `seed 003`                                                           → docs/seeds.md, heading "seed 003"
 *   a bare `<name>.md`                                                   → docs/<name> exists
 * A section exists when a Markdown heading's text starts with its number or letter, optionally after
 * `§`, followed by a space, a dot or the end of the line: `### 4.2 Request layouts`, `## B. Arm CCA`.
 * Seeds have headings that start `seed 0NN`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ROOT } from './support/processes.js';

const SCANNED = ['packages', 'services', 'tools', 'proto', 'test', 'docs', 'README.md'];
const SKIPPED_DIRS = new Set(['node_modules', 'dist']);
const SCANNED_EXT = /\.(ts|proto|md)$/;
const DOCS = join(ROOT, 'docs');

/** `.md` files that comments name but that belong to other projects (each with the repository). */
const EXTERNAL_MD = new Set([
  'PRNGs.md', // bryc/code, the splitmix32 notes (packages/fault/src/prng.ts)
  'statuscodes.md', // grpc/grpc doc/statuscodes.md (packages/fault/src/plan.ts)
  'README.md', // the root README and per-package READMEs
]);

/** A section id: `4`, `4.2`, `A5`, `B`; a trailing sentence dot is not part of it. */
const SECTION = String.raw`[0-9A-Z](?:[0-9A-Z.]*[0-9A-Z])?`;
/** `<name>.md` (maybe in backticks), then `§X` and any `, §Y` / ` and §Y` / `–Y` / `–§Y` that follow. */
const CITATION = new RegExp(
  String.raw`([A-Za-z0-9_-]+\.md)\`?\s+(§${SECTION}(?:(?:,\s*|\s+and\s+)§${SECTION}|[–-]§?${SECTION})*)`,
  'g',
);
const SECTION_IN_RUN = new RegExp(SECTION, 'g');
const BARE_MD = /(?<![\w./<-])([A-Za-z0-9_-]+\.md)\b/g;
/** `seed 003`, `seed 000/002`, `seeds 001, 003, 004`, `seeds 001 and 004`. */
const SEED = /\bseeds? (0\d\d(?:(?:\/|,\s*|\s+and\s+)0\d\d)*)/g;

interface Cite {
  readonly where: string;
  readonly doc: string;
  readonly section?: string;
}

function files(path: string, out: string[] = []): string[] {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return out;
  if (st.isFile()) {
    if (SCANNED_EXT.test(path)) out.push(path);
    return out;
  }
  for (const name of readdirSync(path)) {
    if (SKIPPED_DIRS.has(name) || name.startsWith('.')) continue;
    files(join(path, name), out);
  }
  return out;
}

function collect(): { cites: Cite[]; seeds: Cite[] } {
  const cites: Cite[] = [];
  const seeds: Cite[] = [];
  for (const file of SCANNED.flatMap((p) => files(join(ROOT, p)))) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(ROOT, file);
    text.split('\n').forEach((line, i) => {
      const where = `${rel}:${i + 1}`;
      for (const m of line.matchAll(CITATION)) {
        for (const s of m[2]!.matchAll(SECTION_IN_RUN)) cites.push({ where, doc: m[1]!, section: s[0] });
      }
      for (const m of line.matchAll(BARE_MD)) cites.push({ where, doc: m[1]! });
      for (const m of line.matchAll(SEED)) {
        for (const n of m[1]!.match(/0\d\d/g)!) seeds.push({ where, doc: 'seeds.md', section: `seed ${n}` });
      }
    });
  }
  return { cites, seeds };
}

/** The section ids a document's headings define (`### 4.2 Request …` → `4.2`; `## B. Arm` → `B`). */
function headings(doc: string): Set<string> {
  const ids = new Set<string>();
  for (const line of readFileSync(join(DOCS, doc), 'utf8').split('\n')) {
    const h = /^#{1,6}\s+§?(seed 0\d\d|[0-9A-Z](?:[0-9A-Z.]*[0-9A-Z])?)(?:[.\s:]|$)/.exec(line);
    if (h) ids.add(h[1]!);
  }
  return ids;
}

const { cites, seeds } = collect();
const docs = new Set(readdirSync(DOCS).filter((f) => f.endsWith('.md')));
const headingCache = new Map<string, Set<string>>();
const sectionsOf = (doc: string): Set<string> => {
  let h = headingCache.get(doc);
  if (!h) headingCache.set(doc, (h = headings(doc)));
  return h;
};

describe('docs/ holds what the code cites', () => {
  test('the scan finds the citations (a guard against a regex that matches nothing)', () => {
    expect(cites.filter((c) => c.section).length).toBeGreaterThan(100);
    expect(seeds.length).toBeGreaterThan(50);
  });

  test('every cited document is in docs/', () => {
    const missing = cites
      .filter((c) => !EXTERNAL_MD.has(c.doc) && !docs.has(c.doc))
      .map((c) => `${c.where}: ${c.doc}`);
    expect(missing).toEqual([]);
  });

  test('every cited section has a heading in its document', () => {
    const missing = cites
      .filter((c) => c.section !== undefined && docs.has(c.doc) && !sectionsOf(c.doc).has(c.section))
      .map((c) => `${c.where}: ${c.doc} §${c.section}`);
    expect(missing).toEqual([]);
  });

  test('every cited seed has a section in docs/seeds.md', () => {
    const missing = seeds.filter((c) => !sectionsOf('seeds.md').has(c.section!)).map((c) => `${c.where}: ${c.section}`);
    expect(missing).toEqual([]);
  });

  test('docs/README.md indexes every document in docs/', () => {
    const index = readFileSync(join(DOCS, 'README.md'), 'utf8');
    const unlisted = [...docs].filter((d) => d !== 'README.md' && !index.includes(`(${d})`));
    expect(unlisted).toEqual([]);
  });
});
