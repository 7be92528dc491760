/**
 * The hypmesh services as separate processes for the cross-service tests in test/: each main binds
 * 127.0.0.1:0 and logs `{"msg":"hypmesh <svc> serving","port":…}` as one JSON line (pino), which
 * is read here, so no test uses a fixed port. A process's every JSON stdout line is kept, so a test
 * can require, at the end, that no service logged a bug or an invariant violation.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const START_TIMEOUT_MS = 20_000;
/** After SIGTERM a service drains for at most 5 s (its main's grace); then it is killed. */
const STOP_KILL_AFTER_MS = 5_000;

export type LogLine = Record<string, unknown>;

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every JSON log line the process wrote. */
  readonly logs: LogLine[];
}

/** Where each service of a three-process hypmesh listens (host:port on loopback). */
export interface Addresses {
  readonly core: string;
  readonly rm: string;
  readonly vmm: string;
}

/** A ready predicate: the `msg` line of a main that has bound its port. */
export const serving =
  (msg: string) =>
  (l: LogLine): boolean =>
    l['msg'] === msg && typeof l['port'] === 'number';

/** A service-to-service link, named dialer_dialed. */
export type Link = 'rm_core' | 'vmm_rm' | 'vmm_core';
/** The address a service dials to reach `upstream` over `link`: the upstream itself, or a proxy in front of it (test/support/toxiproxy.ts). */
export type Dial = (link: Link, upstream: string) => Promise<string>;
const direct: Dial = async (_link, upstream) => upstream;

/** Extra environment per service (e.g. the VMM's test-only HYPMESH_TEST_PLANT_BUG). */
export interface ServiceEnv {
  readonly core?: Readonly<Record<string, string>>;
  readonly rm?: Readonly<Record<string, string>>;
  readonly vmm?: Readonly<Record<string, string>>;
}

/** Every process one test file started, stopped together in reverse start order. */
export class Processes {
  readonly all: Proc[] = [];

  /** Spawns `node <script> ...args` from the repository root with no HYPMESH_* variables of the caller (only `extraEnv`); resolves with the first JSON stdout line `ready` accepts. */
  async spawnNode(
    name: string,
    script: string,
    args: readonly string[],
    ready: (line: LogLine) => boolean,
    extraEnv: Readonly<Record<string, string>> = {},
  ): Promise<{ proc: Proc; line: LogLine }> {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
    const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, env: { ...env, HYPMESH_LOG_LEVEL: 'info', ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc: Proc = { name, child, logs: [] };
    this.all.push(proc);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: child.stdout! });
    const line = await new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`)), START_TIMEOUT_MS);
      child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready; stderr: ${stderr}`)));
      lines.on('line', (text) => {
        let parsed: LogLine;
        try {
          parsed = JSON.parse(text) as LogLine;
        } catch {
          return;
        }
        proc.logs.push(parsed);
        if (ready(parsed)) {
          clearTimeout(timer);
          resolve(parsed);
        }
      });
    });
    return { proc, line };
  }

  /**
   * The core (`coreArgs` added), the RM reaching it and the VMM reaching both, each its own process
   * on an ephemeral port, started in that order (each needs the previous one's address), each with
   * its `env` added; each dials the others at the address `dial` gives.
   */
  async startServices(coreArgs: readonly string[] = [], env: ServiceEnv = {}, dial: Dial = direct): Promise<Addresses> {
    const at = (line: LogLine): string => `127.0.0.1:${line['port'] as number}`;
    const c = await this.spawnNode('core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', ...coreArgs], serving('hypmesh core serving'), env.core);
    const core = at(c.line);
    const r = await this.spawnNode('rm', 'services/rm/dist/main.js', ['--address', '127.0.0.1:0', '--core', await dial('rm_core', core)], serving('hypmesh rm serving'), env.rm);
    const rm = at(r.line);
    const v = await this.spawnNode('vmm', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', await dial('vmm_rm', rm), '--core', await dial('vmm_core', core)], serving('hypmesh vmm serving'), env.vmm);
    return { core, rm, vmm: at(v.line) };
  }

  /** The JSON log lines of the process named `name` (empty if none ran). */
  logsOf(name: string): LogLine[] {
    return this.all.find((p) => p.name === name)?.logs ?? [];
  }

  /** Lines any process logged as a bug (`bug: …`, the services' log of anything thrown). */
  bugs(): LogLine[] {
    return this.all.flatMap((p) => p.logs.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('bug:')));
  }

  /** SIGTERM to every process still running, the last started first (the VMM before the RM and the core it tears down through); SIGKILL after the grace. */
  async stopAll(): Promise<void> {
    for (const p of [...this.all].reverse()) await stop(p);
  }
}

export async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = once(p.child, 'exit');
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), STOP_KILL_AFTER_MS);
  await exited;
  clearTimeout(timer);
}
