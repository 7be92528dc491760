/**
 * `npm start -- --console [host:port]` (issue 12 item 1): the suite serves the web console beside
 * the three services, says where in its `hypmesh serving` line and on stdout, and stops it with
 * them on SIGTERM. No browser needed: the page and its data are fetched over HTTP (the browser
 * tests are test/console.e2e.test.ts). A bad console address stops the suite with the reason.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, expect, test } from 'vitest';
import { Processes, ROOT, type LogLine } from './support/processes.js';

const processes = new Processes();
afterAll(() => processes.stopAll(), 30_000);

const SUITE = 'services/suite/dist/main.js';
/** The suite's ready line names every address (no single `port`). */
const servingSuite = (l: LogLine): boolean => l['msg'] === 'hypmesh serving';
const EPHEMERAL = ['--core-address', '127.0.0.1:0', '--rm-address', '127.0.0.1:0', '--vmm-address', '127.0.0.1:0'];

test('suite --console: the console is served with the services, shows the host map, and stops with them', async () => {
  const { proc, line } = await processes.spawnNode('suite', SUITE, [...EPHEMERAL, '--console', '127.0.0.1:0'], servingSuite);
  const url = String(line['console']);
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  const page = await fetch(url);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<title>hypmesh console</title>');
  // The console reaches the suite's own services: the host owns the map, and its stage-2 is there.
  const snap = (await (await fetch(`${url}snapshot.json`)).json()) as { runs: { owner: number }[]; errors: string[] };
  expect(snap.errors).toEqual([]);
  expect(snap.runs.some((r) => r.owner === 3)).toBe(true);
  const s2 = (await (await fetch(`${url}stage2.json?vmid=3`)).json()) as { runs: { rights: string; level: number }[] };
  expect(s2.runs.length).toBeGreaterThan(0);
  expect(s2.runs.every((r) => /^[r-][w-][x-]$/.test(r.rights) && r.level >= 0 && r.level <= 3)).toBe(true);
  const exited = once(proc.child, 'exit');
  proc.child.kill('SIGTERM');
  expect((await exited)[0]).toBe(0);
  await expect(fetch(url)).rejects.toThrow();
}, 60_000);

test('suite without --console serves no console; a bad --console address stops it with the reason', async () => {
  const { line } = await processes.spawnNode('suite-plain', SUITE, EPHEMERAL, servingSuite);
  expect(line['console']).toBeUndefined();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
  const r = spawnSync(process.execPath, [SUITE, ...EPHEMERAL, '--console', 'nowhere'], { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000 });
  expect(r.status).toBe(1);
  expect(r.stdout + r.stderr).toMatch(/console address nowhere: expected host:port/);
}, 60_000);
