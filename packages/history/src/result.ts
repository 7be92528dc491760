/**
 * Errors are values: `Result<T, E>` (same shape as @hypmesh/stage2's and @hypmesh/rm-wire's). A
 * `throw` from this package means a bug in the caller, never a bad plan or a bad call.
 */

export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });
