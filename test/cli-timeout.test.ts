/**
 * Every CLI call has a deadline (issue 10: `vm list` and `map` hung forever against a paused
 * service). The CLI runs as its own process against a server that accepts connections and never
 * answers (a TCP listener that says nothing, as a SIGSTOPped service does): with `--timeout 500`
 * it gives up within the timeout, names the service and its address, and exits 2; a refused
 * connection is named the same way.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ROOT } from './support/processes.js';

const TIMEOUT_MS = 500;
let silent: Server;
const sockets: Socket[] = [];
let address = '';
let dir = '';

beforeAll(async () => {
  silent = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(silent.address() as { port: number }).port}`;
  dir = mkdtempSync(join(tmpdir(), 'hypmesh-cli-timeout-'));
  writeFileSync(join(dir, 'session'), 'lease-test-1\n');
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `hypmesh ...args` with every service at `at`; its exit code and stderr (a hang fails the test by its timeout). */
function hypmesh(at: string, ...args: string[]): Promise<{ code: number | null; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
  const child = spawn(process.execPath, ['tools/cli/dist/main.js', ...args], {
    cwd: ROOT,
    env: { ...env, HYPMESH_CORE_ADDR: at, HYPMESH_RM_ADDR: at, HYPMESH_VMM_ADDR: at, HYPMESH_SESSION_FILE: join(dir, 'session') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

test.each([
  ['map', ['map', '--size', '4KiB'], 'hypmesh.core.v1.CoreService'],
  ['vm list', ['vm', 'list'], 'hypmesh.vmm.v1.VmmService'],
  ['parcel list', ['parcel', 'list', '--as', '3'], 'hypmesh.rm.v1.RmService'],
])('%s against a service that never answers: DEADLINE_EXCEEDED naming it within --timeout, exit 2', async (_what, args, service) => {
  const r = await hypmesh(address, '--timeout', String(TIMEOUT_MS), ...args);
  expect(r.code).toBe(2);
  // The CLI's own deadline ended the call (a hang would fail the test by its timeout instead).
  expect(r.stderr).toContain(`DEADLINE_EXCEEDED: ${service} at ${address} did not answer within ${TIMEOUT_MS} ms (--timeout)`);
});

test('demo against services that never answer: DEADLINE_EXCEEDED within --timeout, non-zero exit', async () => {
  const r = await hypmesh(address, '--timeout', String(TIMEOUT_MS), 'demo');
  expect(r.code).not.toBe(0);
  // DEADLINE_EXCEEDED: the CLI's deadline (the only one) ended the call, not the test's timeout.
  expect(r.stderr).toContain('DEADLINE_EXCEEDED');
});

test('a refused connection: UNAVAILABLE naming the service and its address, exit 2', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const at = `127.0.0.1:${(closed.address() as { port: number }).port}`;
  await new Promise((r) => closed.close(r));
  const r = await hypmesh(at, '--timeout', String(TIMEOUT_MS), 'map', '--size', '4KiB');
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(`hypmesh.core.v1.CoreService at ${at} cannot be reached`);
});

test('--timeout refuses a value that is no deadline', async () => {
  const r = await hypmesh(address, '--timeout', '0', 'map');
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain('expected milliseconds in 1..600000');
});
