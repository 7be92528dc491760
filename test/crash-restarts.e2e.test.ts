/**
 * Issue 9 item 6: seeded crash-restarts across the three services, judged by the history checker.
 * A seeded driver picks a service, a mutating method it serves and a crash point (BEFORE_COMMIT or
 * AFTER_COMMIT), arms that one `crash` rule through FaultService.Arm, and lets the concurrent
 * workload (test/support/workload.ts) run until the service exits 137; then it restarts only that
 * service (the core and the RM on their data dirs) and goes on. After COUNT crash-restarts the
 * workload stops, everything is torn down and judged as in test/kill9-midworkload.e2e.test.ts, and
 * any finding fails the test. A rule whose method is not called within FIRE_WITHIN_MS is
 * disarmed and does not count.
 *
 * The count survived and the time it took are logged (README "Crash-restart tests").
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Prng } from '@hypmesh/fault';
import { checkHistory, formatReport, historyToJsonLines } from '@hypmesh/history';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { afterAll, expect, test } from 'vitest';
import { checkLive } from './support/calls.js';
import { exitWithin, restart, startCluster, type Svc } from './support/cluster.js';
import { Processes } from './support/processes.js';
import { call, eventually, findings, sleep, sweepsOf, Workload } from './support/workload.js';

/**
 * Crash-restarts to survive: 24 in `npm test` (about two minutes); .ci/run runs the 200 as
 * well (HYPMESH_CRASH_RESTARTS=200: 10 to 20 minutes on the 2-core machine).
 */
const COUNT = Number(process.env['HYPMESH_CRASH_RESTARTS'] ?? 24);
const SEED = Number(process.env['HYPMESH_CRASH_SEED'] ?? 6);
/** A rule that has not fired by then is disarmed (its method is not being called). */
const FIRE_WITHIN_MS = 15_000;

/** Where each service's rule is armed, and the mutating calls the workload (or a service behind it) makes there. */
const TARGETS: Record<Svc, { boundary: string; key: 'method' | 'rmMessage'; names: readonly string[] }> = {
  core: { boundary: 'BOUNDARY_CLIENT_TO_CORE', key: 'method', names: ['CreateGrant', 'DestroyGrant', 'MapGrant', 'UnmapGrant', 'CreateAddressSpace', 'DestroyAddressSpace', 'TopUpTablePool'] },
  rm: { boundary: 'BOUNDARY_CLIENT_TO_RM', key: 'rmMessage', names: ['MEM_SHARE', 'MEM_LEND', 'MEM_RECLAIM', 'MEM_ACCEPT', 'MEM_RELEASE', 'VM_ALLOCATE', 'VM_START', 'VM_STOP', 'VM_RESET', 'VM_DEALLOCATE'] },
  vmm: { boundary: 'BOUNDARY_CLIENT_TO_VMM', key: 'method', names: ['OpenLease', 'CreateVm', 'MapMem', 'SetDtbConfig', 'SetBootContext', 'StartVm', 'DestroyVm'] },
};
const SVCS: readonly Svc[] = ['core', 'rm', 'vmm'];

/**
 * A VMM that its crash rule killed before its restart sweep ended is superseded, not a finding: the
 * next VMM's sweep finds all of it again from the RM and the core (packages/vmm restart-sweep.ts),
 * so nothing an interrupted sweep was doing is lost. The sweep waits for other HLOS clients to
 * reclaim their parcels naming the VMs it tears down (the workload's parcels for the old peer), so
 * under a crash every few seconds most sweeps are interrupted. The last VMM's sweep must end, and
 * clean, and the end-state checks show that everything came back.
 */
function unsuperseded(sweeps: readonly string[], lastVmmBoot: number): string[] {
  return sweeps.filter((line) => {
    const m = /^vmm#(\d+): the restart sweep had not ended$/.exec(line);
    return m === null || Number(m[1]) >= lastVmmBoot;
  });
}

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-crash-restarts-'));
afterAll(async () => {
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

test(`${COUNT} seeded crash-restarts (seed ${SEED}) across core, RM and VMM: nothing lost, nothing applied twice, nothing leaked`, async () => {
  const t0 = performance.now();
  const c = await startCluster(processes, dir);
  const w = new Workload(c, SEED);
  const faults: Partial<Record<Svc, FaultServiceClient>> = {};
  const faultClient = (svc: Svc): FaultServiceClient =>
    (faults[svc] ??= new FaultServiceClient(c.addrs[svc], grpc.credentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 }));
  const prng = new Prng(SEED);
  const crashes: Record<Svc, number> = { core: 0, rm: 0, vmm: 0 };
  const servingMs: number[] = [];
  let notFired = 0;
  try {
    await w.begin();
    w.start();
    await w.progress(10);
    for (let n = 0; crashes.core + crashes.rm + crashes.vmm < COUNT; n++) {
      const svc = SVCS[prng.nextIntInclusive(0, 2)]!;
      const t = TARGETS[svc];
      const name = t.names[prng.nextIntInclusive(0, t.names.length - 1)]!;
      const point = prng.nextFraction() < 0.5 ? 'CRASH_POINT_BEFORE_COMMIT' : 'CRASH_POINT_AFTER_COMMIT';
      const rule = { id: `crash-${n}`, boundary: t.boundary, match: { [t.key]: name, nth: 1 }, crash: { point } };
      const f = faultClient(svc);
      const proc = c.proc[svc];
      // Only its own rule may end a service: one found dead is a finding of its own.
      for (const s of SVCS) {
        const p = c.proc[s];
        if (p.child.exitCode !== null || p.child.signalCode !== null)
          throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) with no rule of its own fired; its last log lines: ${p.logs.slice(-5).map((l) => JSON.stringify(l)).join(' | ')}`);
      }
      // The rule may fire (and the service exit) before Arm's reply leaves it: then the exit is the answer.
      let armed = false;
      for (let i = 0; i < 150 && !armed && proc.child.exitCode === null && proc.child.signalCode === null; i++) {
        armed = (await call(f, f.arm, { plan: FaultPlan.fromJSON({ rules: [rule] }), seed: SEED })).kind === 'ok';
        if (!armed) await sleep(200);
      }
      if (!armed && proc.child.exitCode === null && proc.child.signalCode === null) {
        const state = processes.all.slice(-6).map((p) => `${p.name}: exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}, last ${p.logs.slice(-3).map((l) => JSON.stringify(l)).join(' ')}`);
        throw new Error(`Arm ${rule.id} on ${svc} never answered\n${state.join('\n')}`);
      }
      const exit = await exitWithin(proc, FIRE_WITHIN_MS);
      if (exit === 'not exited') {
        notFired++;
        await eventually(`Disarm ${rule.id}`, () => call(f, f.disarm, { ruleIds: [], all: true }));
        continue;
      }
      expect({ rule: rule.id, exit }).toEqual({ rule: rule.id, exit: 137 });
      expect(proc.logs.some((l) => (l['fault'] as { ruleId?: string } | undefined)?.ruleId === rule.id)).toBe(true);
      crashes[svc]++;
      servingMs.push((await restart(c, svc)).servingMs);
    }
    await w.progress(10);
    await w.stop();
    const { missingVms } = await w.finish();
    const report = checkHistory(w.history);
    const live = await checkLive(c.addrs);
    const found = findings(report, { missingVms, leaked: w.leaked, live, sweeps: unsuperseded(sweepsOf(c), c.boots.vmm), bugs: processes.bugs() });
    const totalS = (performance.now() - t0) / 1000;
    const sorted = [...servingMs].sort((a, b) => a - b);
    console.log(
      `crash-restarts: ${COUNT} survived (core ${crashes.core}, rm ${crashes.rm}, vmm ${crashes.vmm}; ${notFired} rules not fired) in ${totalS.toFixed(0)} s; ` +
        `restart to SERVING median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} ms, max ${sorted.at(-1)?.toFixed(0)} ms; operations ${JSON.stringify({ ...w.summary(), why: undefined })}`,
    );
    if (!report.valid) {
      const kept = join(tmpdir(), `hypmesh-crash-restarts-${SEED}-history.jsonl`);
      writeFileSync(kept, historyToJsonLines(w.history));
      console.log(`crash-restarts: the history is kept in ${kept}\n${formatReport(report)}`);
    }
    for (const x of found) console.log(`crash-restarts: FINDING ${x.key}:\n  ${x.details.slice(0, 12).join('\n  ')}`);
    if (found.length > 0) {
      console.log(`crash-restarts: what the core and the RM hold at the end:\n  ${(await w.leftovers()).join('\n  ')}`);
      // Every service's log lines, for the finding's cause (the services' processes are gone after the test).
      const logs = join(tmpdir(), `hypmesh-crash-restarts-${SEED}-logs.jsonl`);
      writeFileSync(logs, processes.all.flatMap((p) => p.logs.map((l) => JSON.stringify({ proc: p.name, ...l }))).join('\n') + '\n');
      console.log(`crash-restarts: the services' logs are kept in ${logs}`);
    }
    expect(found.map((x) => x.key)).toEqual([]);
    expect(crashes.core + crashes.rm + crashes.vmm).toBe(COUNT);
  } finally {
    await w.stop();
    w.close();
    for (const f of Object.values(faults)) f.close();
  }
}, 3_600_000);
