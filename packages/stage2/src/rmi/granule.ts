/**
 * RMI_GRANULE_DELEGATE and RMI_GRANULE_UNDELEGATE (stage2-models.md §B2; R10 runtime/rmi/granule.c).
 *
 * Delegation moves a granule from the host's NS world to the RMM: its owner becomes HYP (the RMM
 * side of the split hypervisor), its RMM state DELEGATED, and the host loses access (EL3 flips the
 * GPT entry to Realm PAS). Undelegation is the reverse: state NS, owner HOST, host access restored
 * (identity mapped RWX, as at boot).
 *
 * Failure conditions, in the order of TF-RMM's CBMC testbench `tb_rmi_granule_delegate.c`, each
 * RMI_ERROR_INPUT:
 *   gran_align  the address is not 4 KiB aligned (or not an address at all);
 *   gran_bound  no delegable memory there (a hole, or MMIO: the granule array covers DRAM only);
 *   gran_state  the granule is not NS (UNDELEGATED);
 *   gran_gpt    EL3 would refuse the GPT transition: the granule is not the host's to give, i.e. not
 *               owned by HOST and OWNED in the host's view, or HYP holds it, or it is pinned, shared
 *               with a guest, or part of a grant.
 * Undelegate has gran_align, gran_bound, gran_state (not DELEGATED). EL3 undelegate cannot fail
 * here (TF-RMM panics if it does), so there is no gran_gpt.
 */

import { metaUpdate, type GranuleMeta } from '../memory/granule.js';
import { assert, err, ok, type Result } from '../result.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, VMID_HOST, VMID_HYP, type Pfn } from '../types.js';
import { hostAccess, viewIs } from '../views.js';
import { granuleAt, hexAddr, type NoOutputs } from './lookup.js';
import { sealPlan, type RmiPlan } from './rmm-state.js';
import { rmiError, type RmiError, type RmiErrorStatusName } from './status.js';

interface GranuleFacts {
  readonly s: Stage2;
  readonly addr: unknown;
  readonly at: ReturnType<typeof granuleAt>;
}

const metaOf = (f: GranuleFacts): GranuleMeta | undefined => (typeof f.at === 'object' ? f.at.meta : undefined);

/**
 * Whether the host may give this NS granule away (the gran_gpt condition): it is host-owned RAM the
 * host sees as OWNED, HYP does not hold it, and nothing pins, shares or grants it.
 */
export function hostCanDelegate(s: Stage2, pfn: number): boolean {
  const m = s.memory.meta.get(pfn);
  return (
    m !== null &&
    m.kind === 'RAM' &&
    m.rmi === 'NS' &&
    m.owner === VMID_HOST &&
    m.hyp === 'NOPAGE' &&
    m.hypUse === 'NONE' &&
    m.pins === 0 &&
    m.guestShares === 0 &&
    s.memory.grantOf.get(pfn) === 0 &&
    viewIs(s.host, pfn, 1, 'OWNED')
  );
}

interface FailureCondition {
  readonly rule: string;
  readonly status: RmiErrorStatusName;
  readonly holds: (f: GranuleFacts) => boolean;
  readonly message: (f: GranuleFacts) => string;
}

/** RMI_GRANULE_DELEGATE failure conditions, §B2 order (tb_rmi_granule_delegate.c). */
export const DELEGATE_FAILURES: readonly FailureCondition[] = [
  {
    rule: 'gran_align',
    status: 'RMI_ERROR_INPUT',
    holds: (f) => f.at === 'align',
    message: (f) => `${hexAddr(f.addr)} is not a 4 KiB aligned address`,
  },
  {
    rule: 'gran_bound',
    status: 'RMI_ERROR_INPUT',
    holds: (f) => f.at === 'bound',
    message: (f) => `${hexAddr(f.addr)} is not delegable memory (no DRAM granule there)`,
  },
  {
    rule: 'gran_state',
    status: 'RMI_ERROR_INPUT',
    holds: (f) => metaOf(f)?.rmi !== 'NS',
    message: (f) => `granule ${hexAddr(f.addr)} is ${metaOf(f)?.rmi}, not NS`,
  },
  {
    rule: 'gran_gpt',
    status: 'RMI_ERROR_INPUT',
    holds: (f) => !hostCanDelegate(f.s, (f.addr as number) / GRANULE_SIZE),
    message: (f) => `EL3 refuses to delegate ${hexAddr(f.addr)}: the host does not own it exclusively (shared, lent, pinned, granted or HYP's)`,
  },
];

/** RMI_GRANULE_UNDELEGATE failure conditions, §B2 order. */
export const UNDELEGATE_FAILURES: readonly FailureCondition[] = [
  DELEGATE_FAILURES[0] as FailureCondition,
  DELEGATE_FAILURES[1] as FailureCondition,
  {
    rule: 'gran_state',
    status: 'RMI_ERROR_INPUT',
    holds: (f) => metaOf(f)?.rmi !== 'DELEGATED',
    message: (f) => `granule ${hexAddr(f.addr)} is ${metaOf(f)?.rmi}, not DELEGATED`,
  },
];

function firstFailure(conditions: readonly FailureCondition[], f: GranuleFacts): RmiError | undefined {
  const c = conditions.find((cond) => cond.holds(f));
  return c === undefined ? undefined : rmiError(c.status, 0, c.rule, c.message(f));
}

type GranulePlan = RmiPlan<{ readonly pfn: Pfn }>;

function checkGranule(s: Stage2, addr: unknown, conditions: readonly FailureCondition[]): Result<GranulePlan, RmiError> {
  const f: GranuleFacts = { s, addr, at: granuleAt(s, addr) };
  const failure = firstFailure(conditions, f);
  if (failure !== undefined) return err(failure);
  assert(typeof f.at === 'object', 'a granule that passed gran_bound exists');
  return ok(sealPlan({ pfn: f.at.pfn }));
}

/** The record changes of delegate and undelegate, memoised per record. */
const toDelegated = metaUpdate({ owner: VMID_HYP, rmi: 'DELEGATED' });
const toUndelegated = metaUpdate({ owner: VMID_HOST, rmi: 'NS' });

/** NS → DELEGATED; owner HOST → HYP; the host's view OWNED → NOPAGE. */
function commitDelegate(s: Stage2, p: GranulePlan): void {
  s.memory.meta.update(p.pfn, 1, toDelegated as (m: GranuleMeta | null) => GranuleMeta);
  // The host pool is sized at boot to map all memory at page granularity, so a split never runs dry.
  s.host.table.rewrite(p.pfn, 1, hostAccess('NOPAGE', 'RAM'), s.host.pool);
}

/** DELEGATED → NS; owner HYP → HOST; the host's view NOPAGE → OWNED (identity, RWX). */
function commitUndelegate(s: Stage2, p: GranulePlan): void {
  s.memory.meta.update(p.pfn, 1, toUndelegated as (m: GranuleMeta | null) => GranuleMeta);
  s.host.table.rewrite(p.pfn, 1, hostAccess('OWNED', 'RAM'), s.host.pool);
}

/** RMI_GRANULE_DELEGATE(addr), §B2. */
export function granuleDelegate(s: Stage2, addr: number): Result<NoOutputs, RmiError> {
  const plan = checkGranule(s, addr, DELEGATE_FAILURES);
  if (!plan.ok) return plan;
  commitDelegate(s, plan.value);
  return ok({});
}

/** RMI_GRANULE_UNDELEGATE(addr), §B2. */
export function granuleUndelegate(s: Stage2, addr: number): Result<NoOutputs, RmiError> {
  const plan = checkGranule(s, addr, UNDELEGATE_FAILURES);
  if (!plan.ok) return plan;
  commitUndelegate(s, plan.value);
  return ok({});
}
