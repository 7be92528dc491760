/**
 * Operations return values, never throw for bad input: `Result<T, E>`. A `throw` inside the domain
 * is a bug (a broken invariant), and the service turns it into INTERNAL.
 */

export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });
export const OK: Result<void, never> = { ok: true, value: undefined };

/** Asserts what a check phase proved. Never used to validate input. */
export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new InvariantBroken(what);
}

export class InvariantBroken extends Error {
  override readonly name = 'InvariantBroken';
}
