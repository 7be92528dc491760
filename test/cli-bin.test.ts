/**
 * `npx hypmesh` on a fresh clone: npm links a package's bins at install time, before any build, and
 * skips a bin whose file does not exist yet. So the CLI's bin must be a committed file outside
 * dist/ (tools/cli/bin/hypmesh.mjs), and it must run the built CLI.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from './support/processes.js';

test('the hypmesh bin is a committed file outside dist/, so npm links it before anything is built', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'tools/cli/package.json'), 'utf8')) as { bin: Record<string, string> };
  const bin = pkg.bin['hypmesh'];
  expect(bin).toBeDefined();
  expect(bin).not.toMatch(/(^|\/)dist\//);
  // Present before any build (CI checks out a clean tree, then runs this after `npm ci`).
  expect(existsSync(join(ROOT, 'tools/cli', bin!))).toBe(true);
});

test('the launcher runs the built CLI', () => {
  const out = execFileSync(process.execPath, [join(ROOT, 'tools/cli/bin/hypmesh.mjs'), '--help'], { cwd: ROOT, encoding: 'utf8' });
  expect(out).toContain('Usage: hypmesh');
});
