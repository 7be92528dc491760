/**
 * Faults from a service's configuration (issue 8 §2): `--faults plan.json` and `--fault-seed N`
 * (env HYPMESH_FAULTS, HYPMESH_FAULT_SEED). One function so every service reads them the same way
 * and refuses a bad plan at startup with every problem named, rather than running without faults.
 * Also the one-line JSON log of each injected fault.
 */

import { readFileSync } from 'node:fs';
import type { ServeFaults } from './server.js';
import { FaultEngine, eventToJson, type Boundary, formatIssues, loadPlanJson, type FaultEvent, type Result } from '@hypmesh/fault';

export const FAULTS_ENV = 'HYPMESH_FAULTS';
export const FAULT_SEED_ENV = 'HYPMESH_FAULT_SEED';

/** A seed as the flag or env gives it: a decimal or 0x-hex u32. */
export function parseFaultSeed(text: string): Result<number, string> {
  const t = text.trim();
  if (!/^(?:0[xX][0-9a-fA-F]{1,8}|\d{1,10})$/.test(t) || Number(t) > 0xffff_ffff) return { ok: false, error: `fault seed ${JSON.stringify(text)}: must be a u32 (decimal or 0x-hex)` };
  return { ok: true, value: Number(t) };
}

/** Read, validate and arm the plan file; the error text names the file and every bad path. */
export function armFromFile(engine: FaultEngine, path: string, seed: number): Result<number, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { ok: false, error: `${path}: ${(e as Error).message}` };
  }
  const plan = loadPlanJson(text);
  if (!plan.ok) return { ok: false, error: formatIssues(plan.error.map((i) => ({ path: `${path}: ${i.path}`, message: i.message }))) };
  const armed = engine.arm(plan.value, seed);
  return armed.ok ? armed : { ok: false, error: formatIssues(armed.error) };
}

/** One JSON line per injected fault: `{"fault": <FaultEvent as proto3 JSON>}`. */
export const faultLogLine = (event: FaultEvent): string => JSON.stringify({ fault: eventToJson(event) });

/** What a service's main reads: `--faults` / HYPMESH_FAULTS and `--fault-seed` / HYPMESH_FAULT_SEED (commander's names). */
export interface FaultOptions {
  readonly faults?: string;
  readonly faultSeed?: string;
}

export interface ProcessFaultPorts {
  /** Where each fault's JSON line goes (default: stdout, which is synchronous on a pipe or file, so a crash's line is out before the exit). */
  readonly writeLine?: (line: string) => void;
  readonly nowMs?: () => number;
}

/** The process's one engine (engine.ts: one per process), and how it was armed at startup. */
export interface ProcessFaults {
  readonly engine: FaultEngine;
  readonly seed: number;
  /** Rules armed from the plan file (0 without one). */
  readonly rulesArmed: number;
}

/**
 * The engine every boundary of this process shares: seeded, armed from the plan file if one is
 * given, and logging each injected fault as one JSON line. A bad seed or plan is an error naming
 * every problem: the main refuses to start rather than run a test without the faults it asked for.
 */
export function processFaultEngine(options: FaultOptions, ports: ProcessFaultPorts = {}): Result<ProcessFaults, string> {
  const seed = options.faultSeed === undefined ? { ok: true as const, value: 0 } : parseFaultSeed(options.faultSeed);
  if (!seed.ok) return seed;
  const engine = new FaultEngine({ nowMs: ports.nowMs ?? Date.now });
  let rulesArmed = 0;
  if (options.faults !== undefined && options.faults !== '') {
    const armed = armFromFile(engine, options.faults, seed.value);
    if (!armed.ok) return armed;
    rulesArmed = armed.value;
  } else {
    // No plan: still seeded, so a plan armed later over FaultService without a seed of its own replays.
    engine.arm({ rules: [] }, seed.value);
  }
  const writeLine = ports.writeLine ?? ((line: string) => void process.stdout.write(line + '\n'));
  engine.subscribe((event) => writeLine(faultLogLine(event)));
  return { ok: true, value: { engine, seed: seed.value, rulesArmed } };
}

/**
 * serveGrpc's `faults` from a server's option (the three services' servers): the given engine; by
 * default an unarmed engine of the server's own, so every server has a FaultService to arm; 'off'
 * serves no FaultService and intercepts nothing (the benchmark's baseline).
 */
export function frontDoorFaults(faults: FaultEngine | 'off' | undefined, boundary: Boundary): { faults?: ServeFaults } {
  if (faults === 'off') return {};
  return { faults: { engine: faults ?? new FaultEngine({ nowMs: Date.now }), boundary } };
}
