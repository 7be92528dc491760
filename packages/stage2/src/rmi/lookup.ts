/**
 * Finding the granules an RMI command names (R10 lib/granule `find_granule`/`find_lock_granule`):
 * an address names a granule only if it is a 4 KiB aligned address of DRAM (the RMM's granule
 * array covers DRAM only, so MMIO and holes are out of bounds), and the command needs it in one
 * state. Each check is named as TF-RMM's CBMC testbenches name them: `<operand>_align`,
 * `<operand>_bound`, `<operand>_state`; all three are RMI_ERROR_INPUT.
 *
 * Inputs come from outside (gRPC, fuzzers): any value that is not a non-negative safe integer is
 * refused here, never thrown on.
 */

import { withMeta, type GranuleMeta, type RmiGranuleState } from '../memory/granule.js';
import { assert, err, ok, type Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, type Pfn } from '../types.js';
import type { Realm } from './rmm-state.js';
import { rmiError, type RmiError } from './status.js';

export type Outputs = Readonly<Record<string, number>>;
/** The success value of a command whose only output is x0. */
export type NoOutputs = Readonly<Record<string, never>>;

export const inputError = (rule: string, message: string, outputs: Outputs = {}): Result<never, RmiError> =>
  err(rmiError('RMI_ERROR_INPUT', 0, rule, message, { ...outputs }));
export const rttError = (level: number, rule: string, message: string, outputs: Outputs = {}): Result<never, RmiError> =>
  err(rmiError('RMI_ERROR_RTT', level, rule, message, { ...outputs }));
export const realmError = (index: number, rule: string, message: string): Result<never, RmiError> =>
  err(rmiError('RMI_ERROR_REALM', index, rule, message));
export const recError = (rule: string, message: string): Result<never, RmiError> => err(rmiError('RMI_ERROR_REC', 0, rule, message));

export const hexAddr = (addr: unknown): string =>
  typeof addr === 'number' && Number.isSafeInteger(addr) && addr >= 0 ? `0x${addr.toString(16)}` : String(addr);

/** Whether `v` is a usable address or count: a non-negative safe integer. */
export const isU64 = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The granule record at a granule address, or why there is none ('align' | 'bound'). */
export function granuleAt(s: Stage2, addr: unknown): { pfn: Pfn; meta: GranuleMeta } | 'align' | 'bound' {
  if (typeof addr !== 'number' || !Number.isInteger(addr) || addr % GRANULE_SIZE !== 0) return 'align';
  if (addr < 0 || addr >= s.memory.frameCount * GRANULE_SIZE) return 'bound';
  const pfn = (addr / GRANULE_SIZE) as Pfn;
  const meta = s.memory.meta.get(pfn);
  if (meta === null || meta.kind !== 'RAM') return 'bound';
  return { pfn, meta };
}

/** find_lock_granule(addr, state): the granule at `addr` in state `state`, else INPUT `<operand>_*`. */
export function findGranule(s: Stage2, addr: unknown, state: RmiGranuleState, operand: string): Result<Pfn, RmiError> {
  const g = granuleAt(s, addr);
  if (g === 'align') return inputError(`${operand}_align`, `${operand} ${hexAddr(addr)} is not a 4 KiB aligned address`);
  if (g === 'bound') return inputError(`${operand}_bound`, `${operand} ${hexAddr(addr)} is not a granule of DRAM`);
  if (g.meta.rmi !== state) return inputError(`${operand}_state`, `${operand} ${hexAddr(addr)} is ${g.meta.rmi}, not ${state}`);
  return ok(g.pfn);
}

/** The realm whose RD is at `addr` (an RD granule), else INPUT rd_align/rd_bound/rd_state. */
export function findRealm(s: Stage2, addr: unknown): Result<Realm, RmiError> {
  const rd = findGranule(s, addr, 'RD', 'rd');
  if (!rd.ok) return rd;
  const realm = s.rmm.realms.get(rd.value);
  if (realm === undefined) return inputError('rd_state', `rd ${hexAddr(addr)} holds no realm`);
  return ok(realm);
}

/** Sets the RMM granule state of one granule (its owner stays HYP). Commit-only: the check proved it exists. */
export function setGranuleState(s: Stage2, pfn: number, rmi: RmiGranuleState): void {
  s.memory.meta.update(pfn, 1, (m) => {
    assert(m !== null, 'an RMM granule is memory');
    return withMeta(m, { rmi });
  });
}
