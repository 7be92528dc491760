/**
 * `hypmesh sim --seeds A..B --jobs N`: a campaign on worker threads prints, writes and exits exactly
 * as the sequential one (--jobs 1) does: the same per-seed lines in seed order (verdicts, fault
 * counts, log hashes), the same replay files of the failing seeds, the same event logs, the same
 * exit status. Only the timings differ. Few steps, so it stays fast.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from './support/processes.js';

/** Runs the campaign in a fresh directory; its output without timings, and every file it wrote. */
function campaign(jobs: number): { code: number | null; out: string; files: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), `hypmesh-sim-jobs${jobs}-`));
  const args = ['sim', '--seeds', '5..8', '--steps', '300', '--fault-rate', '0.05', '--check-every', '100', '--faults', join(ROOT, 'examples/faults/sim-lost-lend-reply.json'), '--log', 'run.log', '--jobs', String(jobs)];
  const r = spawnSync(process.execPath, [join(ROOT, 'tools/cli/dist/main.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  const out = r.stdout.replace(/, \d+ steps\/s/g, '').replace(/ in [\d.]+ s/, '').replace(/, \d+ job\(s\)/, '');
  const files = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
  return { code: r.status, out, files };
}

test('sim_campaign_jobs_2_same_as_jobs_1: same lines in seed order, same replay files and logs, same exit', () => {
  const one = campaign(1);
  const two = campaign(2);
  expect(one.out.match(/^seed \d+/gm)).toEqual(['seed 5', 'seed 6', 'seed 7', 'seed 8']);
  // The lost MEM_LEND reply orphans a parcel: failing seeds exercise the replay files too.
  expect(one.out).toContain('FAILED');
  expect(Object.keys(one.files).filter((f) => f.startsWith('sim-replay-')).length).toBeGreaterThan(0);
  expect(two.out).toBe(one.out);
  expect(two.files).toEqual(one.files);
  expect(two.code).toBe(one.code);
}, 120_000);
