/**
 * Health that reflects dependencies (issue 10 item 2): the core, the RM and the VMM as separate
 * processes, with a short grace (--dependency-grace-ms 600). The core is killed: once the grace
 * has passed, the RM's and the VMM's `<service>/core` and the services themselves are NOT_SERVING,
 * the VMM's `<service>/rm` stays SERVING; a core started again on the same port brings every one
 * back to SERVING. Each transition is logged once per service.
 */

import { afterAll, beforeAll, expect, test } from 'vitest';
import { healthCheck } from './support/introspection.js';
import { Processes, serving, type Addresses } from './support/processes.js';

const GRACE_MS = 600;
const processes = new Processes();
let a: Addresses;

const RM = 'hypmesh.rm.v1.RmService';
const VMM = 'hypmesh.vmm.v1.VmmService';

/** Each service's health, as one comparable record. */
async function healths(): Promise<Record<string, string>> {
  const names: [string, string][] = [
    [a.rm, ''], [a.rm, RM], [a.rm, `${RM}/core`],
    [a.vmm, ''], [a.vmm, VMM], [a.vmm, `${VMM}/core`], [a.vmm, `${VMM}/rm`],
  ];
  const out: Record<string, string> = {};
  for (const [at, name] of names) out[`${at === a.rm ? 'rm' : 'vmm'} ${name || "''"}`] = await healthCheck(at, name);
  return out;
}

const all = (status: string, except: Record<string, string> = {}): Record<string, string> => ({
  "rm ''": status, [`rm ${RM}`]: status, [`rm ${RM}/core`]: status,
  "vmm ''": status, [`vmm ${VMM}`]: status, [`vmm ${VMM}/core`]: status, [`vmm ${VMM}/rm`]: status,
  ...except,
});

/** Polls until the healths are `want` (or 10 s pass); the last seen. */
async function until(want: Record<string, string>): Promise<Record<string, string>> {
  const end = Date.now() + 10_000;
  let got = await healths();
  while (JSON.stringify(got) !== JSON.stringify(want) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    got = await healths();
  }
  return got;
}

const transitions = (name: string, text: string): number => processes.logsOf(name).filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).includes(text)).length;

beforeAll(async () => {
  const env = { HYPMESH_DEPENDENCY_GRACE_MS: String(GRACE_MS) };
  a = await processes.startServices([], { rm: env, vmm: env });
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
}, 30_000);

test('SERVING while every dependency answers; per-dependency names are there', async () => {
  expect(await healths()).toEqual(all('SERVING'));
});

test('core killed: NOT_SERVING after the grace (the VMM\'s rm stays SERVING); core back on its port: SERVING again; each transition logged once', async () => {
  const core = processes.all.find((p) => p.name === 'core')!;
  const exited = new Promise((r) => core.child.once('exit', r));
  const t0 = Date.now();
  core.child.kill('SIGKILL');
  await exited;
  expect(await until(all('NOT_SERVING', { [`vmm ${VMM}/rm`]: 'SERVING' }))).toEqual(all('NOT_SERVING', { [`vmm ${VMM}/rm`]: 'SERVING' }));
  expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE_MS);

  await processes.spawnNode('core2', 'services/core/dist/main.js', ['--address', a.core], serving('hypmesh core serving'));
  expect(await until(all('SERVING'))).toEqual(all('SERVING'));
  for (const svc of ['rm', 'vmm']) {
    expect(transitions(svc, 'dependency core unreachable')).toBe(1);
    expect(transitions(svc, 'dependency core reachable again')).toBe(1);
  }
  expect(transitions('vmm', 'dependency rm')).toBe(0);
});
