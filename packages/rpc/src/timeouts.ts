/**
 * Deadlines of a service's outbound calls (DESIGN.md §8: every client call has a deadline): one
 * per dependency, set by `--<dependency>-timeout-ms` / `HYPMESH_<DEPENDENCY>_TIMEOUT_MS` in every
 * main. The RM's deadline for the core is below the VMM's for the RM, so a VMM call the RM cannot
 * finish for want of the core gets the RM's answer, not a timeout of its own.
 */

import type { Dependency } from './dependency.js';

/** Default deadline of one outbound call, per dependency. */
export const DEPENDENCY_TIMEOUT_MS: Readonly<Record<Dependency, number>> = { core: 5_000, rm: 10_000 };

export const TIMEOUT_MS_MAX = 600_000;

/** A deadline flag's value: whole milliseconds in 1..600000, or why not. */
export function parseTimeoutMs(text: string): { readonly ok: true; readonly value: number } | { readonly ok: false; readonly error: string } {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= TIMEOUT_MS_MAX ? { ok: true, value: n } : { ok: false, error: `expected milliseconds in 1..${TIMEOUT_MS_MAX}` };
}

/**
 * A command-line parser of a deadline flag: throws `invalid` (commander's InvalidArgumentError,
 * passed in so this package needs no CLI library) with the reason.
 */
export const timeoutMsParser =
  (invalid: new (message: string) => Error) =>
  (text: string): number => {
    const t = parseTimeoutMs(text);
    if (!t.ok) throw new invalid(t.error);
    return t.value;
  };
