/**
 * Which dependency a request could not reach (DESIGN.md §8 "Honest signals", issue 10). A service's
 * ports turn a failed outbound call into a domain refusal (the RM's EIO grpc_unavailable, the VMM's
 * EIO msgq_timeout), which the domain may report under its own code, as a Linux driver would. The
 * caller of the service needs to know the refusal came from an outage, so each request runs in a
 * scope (unaryWith) where the outbound clients note every call that could not reach its dependency;
 * a request that then fails is answered with the dependency's status (status.ts dependencyStatus),
 * not the domain's code. Outcomes the dependency decided (its own refusals) are not noted.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { status } from '@grpc/grpc-js';

/** The services a hypmesh service calls. */
export type Dependency = 'core' | 'rm';

/** How a call failed to reach its dependency: the gRPC code names it. */
export type Unreached = 'UNAVAILABLE' | 'DEADLINE_EXCEEDED';

export interface DependencyFailure {
  readonly dependency: Dependency;
  readonly unreached: Unreached;
  readonly message: string;
}

interface Scope {
  failure?: DependencyFailure;
}

const scopes = new AsyncLocalStorage<Scope>();

/** Runs one request's handler in a fresh scope; `failure()` reads what its outbound calls noted. */
export function inDependencyScope<T>(run: () => T): { readonly result: T; readonly failure: () => DependencyFailure | undefined } {
  const scope: Scope = {};
  return { result: scopes.run(scope, run), failure: () => scope.failure };
}

/**
 * Taken when an outbound call starts (inside the request's async context): call the result with
 * the failure if the call could not reach its dependency. The latest failure of a request wins.
 */
export function dependencyNoter(dependency: Dependency): (unreached: Unreached, message: string) => void {
  const scope = scopes.getStore();
  return (unreached, message) => {
    if (scope !== undefined) scope.failure = { dependency, unreached, message };
  };
}

/** The gRPC status codes of a client call that mean "not reached" (everything else is an answer). */
export const unreachedOf = (code: status): Unreached | undefined =>
  code === status.UNAVAILABLE ? 'UNAVAILABLE' : code === status.DEADLINE_EXCEEDED ? 'DEADLINE_EXCEEDED' : undefined;
