/**
 * Decoders return values and never throw on input: `Result<T, E>`. A `throw` from this package means
 * a bug in the caller (an encoder given a value its wire field cannot hold), never bad bytes.
 * (Same shape as @hypmesh/stage2's Result; this package depends on no other hypmesh package.)
 */

export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });
