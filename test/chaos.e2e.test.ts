/**
 * `hypmesh chaos` against the three services as separate processes (issue 8 item 4, "Done when"):
 * a clean run passes the checker; a run under a fault plan armed through FaultService passes it
 * too; and a VMM with the test-only planted bug (HYPMESH_TEST_PLANT_BUG=teardown-skip-reclaim)
 * is caught: its teardown leaves a parcel nobody knows.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runChaos } from '../tools/cli/src/chaos.js';
import { Processes } from './support/processes.js';

const started: Processes[] = [];
async function services(env: Parameters<Processes['startServices']>[1] = {}) {
  const p = new Processes();
  started.push(p);
  return { p, addrs: await p.startServices(['--check-invariants'], env) };
}
afterAll(async () => {
  for (const p of started) await p.stopAll();
});

const failing = (r: Awaited<ReturnType<typeof runChaos>>) => r.report.verdicts.filter((v) => v.status === 'fail').map((v) => `${v.check}: ${v.details.join('; ')}`);

describe('hypmesh chaos over separate processes', () => {
  it('a clean run passes every check', async () => {
    const { p, addrs } = await services();
    const r = await runChaos({ ...addrs, seed: 7, ops: 40 });
    expect(failing(r)).toEqual([]);
    expect(r.report.verdicts.map((v) => v.status)).toEqual(['pass', 'pass', 'pass', 'pass', 'pass', 'pass']);
    expect(r.history.filter((e) => e.type === 'ok').length).toBeGreaterThan(20);
    expect(p.bugs()).toEqual([]);
  }, 120_000);

  it('a run under faults (lost replies, refusals) passes every check', async () => {
    const { addrs } = await services();
    const plan = {
      rules: [
        { id: 'share-reply-lost', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { method: 'MemShare', every: 3 }, failAfter: { code: 'UNAVAILABLE' } },
        { id: 'lend-refused', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { method: 'MemLend', nth: 1 }, failBefore: { domainError: { rmError: 'NOMEM' } } },
        { id: 'reclaim-lost', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { method: 'MemReclaim', nth: 2 }, failAfter: { code: 'DEADLINE_EXCEEDED' } },
      ],
    };
    const r = await runChaos({ ...addrs, seed: 7, ops: 40, faultsJson: JSON.stringify(plan), faultSeed: 1 });
    expect(r.history.some((e) => e.type === 'info')).toBe(true);
    expect(failing(r)).toEqual([]);
  }, 120_000);

  it('the planted bug (VMM teardown skips one reclaim) is caught', async () => {
    const { addrs } = await services({ vmm: { HYPMESH_TEST_PLANT_BUG: 'teardown-skip-reclaim' } });
    const r = await runChaos({ ...addrs, seed: 7, ops: 40 });
    expect(r.history.some((e) => e.type === 'ok' && e.f === 'vm_cycle')).toBe(true);
    expect(r.report.valid).toBe(false);
    const failed = r.report.verdicts.filter((v) => v.status === 'fail').map((v) => v.check);
    expect(failed).toContain('no_orphaned_parcel');
    expect(failed).toContain('ownership_equals_boot');
  }, 120_000);
});
