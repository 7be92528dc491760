/**
 * Faults from a service's configuration (issue 8 §2): `--faults plan.json` and `--fault-seed N`
 * (env HYPMESH_FAULTS, HYPMESH_FAULT_SEED). One function so every service reads them the same way
 * and refuses a bad plan at startup with every problem named, rather than running without faults.
 * Also the one-line JSON log of each injected fault.
 */

import { readFileSync } from 'node:fs';
import { eventToJson, formatIssues, loadPlanJson, type FaultEngine, type FaultEvent, type Result } from '@hypmesh/fault';

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
