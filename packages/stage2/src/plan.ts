/**
 * Check, then commit (STYLE.md; pKVM's check-then-WARN_ON(commit), Hafnium's reserve-then-commit).
 *
 * A `check*` function only reads and returns a Plan: every stage-2 rewrite, every granule-record
 * update and every bookkeeping step the call will make. Building a Plan counts the table pages each
 * rewrite needs against each address space's pool, so -ENOMEM comes before any change. `commit`
 * accepts only a Plan (only `plan()` builds one, like Hafnium's `vm_locked`), cannot fail, and
 * applies the steps in order: table rewrites, record updates, then bookkeeping.
 */

import type { AddressSpace } from './address-space.js';
import { lastResultMemo, type GranuleMeta } from './memory/granule.js';
import { errnoError, type ErrnoError } from './pkvm/errno.js';
import { err, ok, type Result } from './result.js';
import type { LeafRewrite } from './s2tt/translation-table.js';
import type { Stage2 } from './stage2.js';
import { vmidName } from './types.js';

export interface TableStep {
  readonly space: AddressSpace;
  readonly base: number;
  readonly count: number;
  readonly rewrite: LeafRewrite;
}

export interface MetaStep {
  readonly base: number;
  readonly count: number;
  readonly update: (m: GranuleMeta) => GranuleMeta;
}

export interface PlanSteps {
  readonly tables?: readonly TableStep[];
  readonly meta?: readonly MetaStep[];
  /** Sets the grant id recorded for [base, base+count) (0 clears). */
  readonly grantMarks?: readonly { readonly base: number; readonly count: number; readonly grant: number }[];
  /** Bookkeeping that cannot fail (grant records, pools, address-space maps), run last. */
  readonly finally?: readonly (() => void)[];
}

declare const planBrand: unique symbol;
export type Plan = PlanSteps & { readonly [planBrand]: true };

/** Reserves table pages for every step (all spaces, all ranges) and seals the plan. */
export function plan(steps: PlanSteps): Result<Plan, ErrnoError> {
  const tables = steps.tables ?? [];
  if (tables.length === 1) {
    // The common single-range call: no per-space bookkeeping needed.
    const t = tables[0]!;
    const needed = t.space.table.tablesNeeded(t.base, t.count, t.rewrite);
    return needed > t.space.pool.size ? err(poolEmpty(t.space, needed)) : ok(steps as Plan);
  }
  const bySpace = new Map<AddressSpace, { needed: number; virtual: Set<number> }>();
  for (const t of tables) {
    let acc = bySpace.get(t.space);
    if (acc === undefined) bySpace.set(t.space, (acc = { needed: 0, virtual: new Set() }));
    acc.needed += t.space.table.tablesNeeded(t.base, t.count, t.rewrite, acc.virtual);
  }
  for (const [space, { needed }] of bySpace) {
    if (needed > space.pool.size) return err(poolEmpty(space, needed));
  }
  return ok(steps as Plan);
}

const poolEmpty = (space: AddressSpace, needed: number): ErrnoError =>
  errnoError(
    'ENOMEM',
    'table_pool_empty',
    `${vmidName(space.vmid)} needs ${needed} stage-2 table page(s) and its pool holds ${space.pool.size}: top up the pool and retry`,
  );

export function commit(s: Stage2, p: Plan): void {
  for (const t of p.tables ?? []) t.space.table.rewrite(t.base, t.count, t.rewrite, t.space.pool);
  for (const m of p.meta ?? []) {
    const update = lastResultMemo(m.update);
    s.memory.meta.update(m.base, m.count, (g) => update(g as GranuleMeta));
  }
  for (const g of p.grantMarks ?? []) s.memory.grantOf.update(g.base, g.count, () => g.grant);
  for (const f of p.finally ?? []) f();
}

/** check → commit in one call, for operations whose check phase is `check`. */
export function run<T>(s: Stage2, checked: Result<{ plan: Plan; value: T }, ErrnoError>): Result<T, ErrnoError> {
  if (!checked.ok) return checked;
  commit(s, checked.value.plan);
  return ok(checked.value.value);
}
