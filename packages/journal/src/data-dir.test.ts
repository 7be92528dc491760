import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { openDataDir, type DataDirFile } from './data-dir.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A file in a dir that does not exist yet (openDataDir makes it). */
function file(): DataDirFile {
  const parent = mkdtempSync(join(tmpdir(), 'hypmesh-data-dir-'));
  dirs.push(parent);
  return { dir: join(parent, 'nested'), file: 'svc.sqlite', service: 'hypmesh-a', format: '1', configured: '{"x":1}' };
}

test.each([
  ['another service', { service: 'hypmesh-b' }, /svc.sqlite holds the state of hypmesh-a, not hypmesh-b/],
  ['another format', { format: '2' }, /svc.sqlite is format 1; hypmesh-a reads 2/],
  ['another configuration', { configured: '{"x":2}' }, /configured with \{"x":1\}, this one with \{"x":2\}/],
])('a file written by %s is refused, naming why', (_name, over, message) => {
  const first = file();
  const created = openDataDir(first);
  expect(created.ok && created.value.created).toBe(true);
  if (created.ok) created.value.journal.close();
  const again = openDataDir({ ...first, ...over });
  expect(again.ok ? 'opened' : again.error).toMatch(message);
  const same = openDataDir(first);
  expect(same.ok && same.value.created).toBe(false);
  if (same.ok) same.value.journal.close();
});
