/**
 * Reset support for the services (each service's Reset RPC): the gRPC server registers one
 * implementation for life, so the handlers it registers look up, on every call, the handlers of the
 * state the service acts on *now*. Reset builds fresh state and fresh handlers and swaps them in;
 * calls already running finish on the old state, which nothing reaches any more.
 */

/** An implementation whose every method forwards to the same-named method of `current()`. */
export function delegating<T extends object>(names: readonly (keyof T & string)[], current: () => T): T {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    out[name] = (...args: unknown[]) => (current()[name] as (...a: unknown[]) => unknown)(...args);
  }
  return out as T;
}
