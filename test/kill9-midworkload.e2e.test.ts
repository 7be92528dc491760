/**
 * Issue 9 "Done when", first item: each service in turn is killed with SIGKILL in the middle of a
 * concurrent workload (test/support/workload.ts: HLOS's shares, lends, reclaims, a peer's accepts
 * and releases, GUNYAH VMs started and destroyed through the VMM) and restarted (the core and the
 * RM on their data dirs, every service on its address). The workload goes on, then everything is
 * torn down, and:
 *
 *   - the history checker (@hypmesh/history) finds no lost acknowledged mutation, no refused one
 *     applied, no unknown one applied twice, ownership back to boot's, no orphaned parcel;
 *   - every VM whose start was acknowledged and not destroyed is still listed (while the VMM that
 *     acknowledged it runs: a killed VMM's VMs are its successor's restart sweep's to tear down);
 *   - nothing was reported leaked, `hypmesh check --live` is empty, no service logged a bug;
 *   - a VM create succeeds right after the restart.
 *
 * The recovery times (restart to SERVING, and to the first successful create) are logged, not asserted.
 * Any finding fails the test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHistory, formatReport, historyToJsonLines } from '@hypmesh/history';
import { VmType, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, describe, expect, test } from 'vitest';
import { checkLive } from './support/calls.js';
import { kill9, restart, startCluster, type Svc } from './support/cluster.js';
import { Processes } from './support/processes.js';
import { call, eventually, findings, sweepsOf, Workload } from './support/workload.js';

const SEED = 9;
/** Operations completed before the kill and after the restart. */
const OPS_BEFORE = 40;
const OPS_AFTER = 40;

const dirs: string[] = [];
const started: Processes[] = [];
afterAll(async () => {
  for (const p of started) await p.stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

describe('kill -9 mid-workload, restart, finish, tear down: judged by the history checker', () => {
  test.each<Svc>(['core', 'rm', 'vmm'])('%s', async (svc) => {
    const processes = new Processes();
    started.push(processes);
    const dir = mkdtempSync(join(tmpdir(), `hypmesh-kill9-${svc}-`));
    dirs.push(dir);
    const c = await startCluster(processes, dir);
    const w = new Workload(c, SEED);
    try {
      await w.begin();
      w.start();
      await w.progress(OPS_BEFORE);

      await kill9(c, svc);
      const { servingMs } = await restart(c, svc);
      const t0 = performance.now();
      // A create right after the restart (retried while the others reconnect), then gone again.
      const lease = await eventually('OpenLease after the restart', () => call<{ lease?: { sessionId: string } }>(w.vmm, w.vmm.openLease, { ttlMs: 60_000 }));
      const vm = await eventually('CreateVm after the restart', () => call<{ vm?: Vm }>(w.vmm, w.vmm.createVm, { sessionId: lease.lease!.sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
      const createMs = servingMs + performance.now() - t0;
      expect(vm.vm?.vmid).toBeGreaterThan(0);
      console.log(`kill -9 ${svc}: restart to SERVING ${servingMs.toFixed(0)} ms, to the first successful create ${createMs.toFixed(0)} ms`);
      const closed = await eventually('CloseLease', () => call<{ vms: Vm[] }>(w.vmm, w.vmm.closeLease, { sessionId: lease.lease!.sessionId }));
      expect(closed.vms.flatMap((v) => v.leaked)).toEqual([]);

      await w.progress(OPS_AFTER);
      await w.stop();
      const { missingVms } = await w.finish();

      const report = checkHistory(w.history);
      const counts = w.summary();
      console.log(`kill -9 ${svc}: ${JSON.stringify(counts, null, 1)}\nverdicts ${report.verdicts.map((v) => `${v.check}=${v.status}`).join(' ')}`);
      if (!report.valid) {
        const kept = join(tmpdir(), `hypmesh-kill9-${svc}-history.jsonl`);
        writeFileSync(kept, historyToJsonLines(w.history));
        console.log(`kill -9 ${svc}: the history is kept in ${kept}\n${formatReport(report)}`);
      }
      const live = await checkLive(c.addrs);
      const found = findings(report, { missingVms, leaked: w.leaked, live, sweeps: sweepsOf(c), bugs: processes.bugs() });
      for (const f of found) console.log(`kill -9 ${svc}: FINDING ${f.key}:\n  ${f.details.join('\n  ')}`);
      // Every finding must be one this file lists as known (each a bug reported for a fix elsewhere); nothing else.
      expect(found.map((f) => f.key)).toEqual([]);
      expect(report.malformed).toEqual([]);
      expect(counts.ok).toBeGreaterThan(OPS_BEFORE / 2);
    } finally {
      w.close();
    }
  }, 180_000);
});
