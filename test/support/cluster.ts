/**
 * The three services as separate processes that a test can kill and restart one at a time (issue 9
 * item 6, DESIGN.md §8): the core and the RM keep their state in `--data-dir` (one subdirectory
 * each), and every restart reuses the service's address, so the other two reconnect to it as they
 * would to a restarted container. A restart's time to SERVING is measured from the spawn.
 */
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Processes, serving, type Addresses, type Proc } from './processes.js';

export type Svc = 'core' | 'rm' | 'vmm';
export const SERVICES: readonly Svc[] = ['core', 'rm', 'vmm'];

export interface Cluster {
  readonly processes: Processes;
  readonly addrs: Addresses;
  /** The running process of each service (the latest one started). */
  readonly proc: Record<Svc, Proc>;
  /** How many times each service was started (1 after startCluster); a client's view of a boot. */
  readonly boots: Record<Svc, number>;
}

const MAIN: Record<Svc, string> = { core: 'services/core/dist/main.js', rm: 'services/rm/dist/main.js', vmm: 'services/vmm/dist/main.js' };

function args(svc: Svc, address: string, addrs: Partial<Addresses>, dir: string): string[] {
  switch (svc) {
    case 'core':
      return ['--address', address, '--check-invariants', '--data-dir', join(dir, 'core')];
    case 'rm':
      return ['--address', address, '--core', addrs.core!, '--data-dir', join(dir, 'rm')];
    case 'vmm':
      return ['--address', address, '--rm', addrs.rm!, '--core', addrs.core!];
  }
}

/** The core, the RM and the VMM on ephemeral ports, in that order; the core and the RM on data dirs under `dir`. */
export async function startCluster(processes: Processes, dir: string): Promise<Cluster & { dir: string }> {
  mkdirSync(join(dir, 'core'), { recursive: true });
  mkdirSync(join(dir, 'rm'), { recursive: true });
  const addrs: { core?: string; rm?: string; vmm?: string } = {};
  const proc: Partial<Record<Svc, Proc>> = {};
  for (const svc of SERVICES) {
    const { proc: p, line } = await processes.spawnNode(svc, MAIN[svc], args(svc, '127.0.0.1:0', addrs, dir), serving(`hypmesh ${svc} serving`));
    addrs[svc] = `127.0.0.1:${line['port'] as number}`;
    proc[svc] = p;
  }
  return { processes, dir, addrs: addrs as Addresses, proc: proc as Record<Svc, Proc>, boots: { core: 1, rm: 1, vmm: 1 } };
}

/** Resolves with the exit code (137 for a fault's crash) or the signal once `p` has exited. */
export function exitOf(p: Proc): Promise<number | string> {
  if (p.child.exitCode !== null) return Promise.resolve(p.child.exitCode);
  if (p.child.signalCode !== null) return Promise.resolve(p.child.signalCode);
  return once(p.child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
}

/** The exit code (or signal) of `p` if it exits within `ms`, else 'not exited' (its listener removed). */
export function exitWithin(p: Proc, ms: number): Promise<number | string> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return exitOf(p);
  return once(p.child, 'exit', { signal: AbortSignal.timeout(ms) }).then(
    ([code, signal]) => (code ?? signal) as number | string,
    () => 'not exited',
  );
}

/** SIGKILL to `svc`, resolved once it has exited. */
export async function kill9(c: Cluster, svc: Svc): Promise<void> {
  const exited = exitOf(c.proc[svc]);
  c.proc[svc].child.kill('SIGKILL');
  await exited;
}

/** Starts `svc` again on its address (and data dir); resolves once it serves, with the time that took. */
export async function restart(c: Cluster & { dir: string }, svc: Svc): Promise<{ servingMs: number; proc: Proc }> {
  const t0 = performance.now();
  const boot = c.boots[svc] + 1;
  const { proc } = await c.processes.spawnNode(`${svc}#${boot}`, MAIN[svc], args(svc, c.addrs[svc], c.addrs, c.dir), serving(`hypmesh ${svc} serving`));
  c.proc[svc] = proc;
  c.boots[svc] = boot;
  return { servingMs: performance.now() - t0, proc };
}
