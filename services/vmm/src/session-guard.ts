/**
 * Sessions are bound to the principal that opened them (issue 11 item 5; packages/vmm sessions.ts):
 * every VmmService call that names a session (`session_id`) from any other principal is refused
 * before its handler runs, NOT_FOUND ENOENT session_unknown, as if the session did not exist, so
 * that knowing (or guessing) another client's id gives nothing: not its VMs, not a teardown.
 * The principal is the caller VMID and client name (admission.ts vmmPrincipal), from the
 * certificate with mTLS; without TLS they are declared, so the binding only keeps honest clients apart.
 */
import * as grpc from '@grpc/grpc-js';
import { domainStatus, fromThrown } from '@hypmesh/rpc';
import type { VmManager } from '@hypmesh/vmm';
import { vmmPrincipal } from './admission.js';

type Handler = (call: never, callback?: never) => void;

/** The refusal for a call naming a session its principal may not name; undefined to go on. */
function refusal(call: { readonly request?: unknown; readonly metadata: grpc.Metadata }, vmm: VmManager): grpc.StatusObject | undefined {
  const id = (call.request as { sessionId?: unknown } | undefined)?.sessionId;
  if (typeof id !== 'string' || id === '') return undefined;
  try {
    if (vmm.sessionHeldBy(id, vmmPrincipal(call).key)) return undefined;
  } catch (e) {
    return fromThrown(e) as unknown as grpc.StatusObject;
  }
  return domainStatus({ family: 'vmm', errno: 'ENOENT', rule: 'session_unknown', message: `no open session ${id} for this caller` }) as unknown as grpc.StatusObject;
}

/** `implementation` with the binding checked first on every unary and server-streaming method (the VM manager may be replaced by Reset). */
export function guardSessions(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, vmm: () => VmManager): grpc.UntypedServiceImplementation {
  const wrapped: Record<string, Handler> = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name] as Handler | undefined;
    if (handler === undefined || method.requestStream) continue;
    wrapped[name] = (
      !method.responseStream
        ? (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
            const refused = refusal(call, vmm());
            if (refused !== undefined) return callback(refused);
            (handler as unknown as grpc.handleUnaryCall<unknown, unknown>)(call, callback);
          }
        : (call: grpc.ServerWritableStream<unknown, unknown>) => {
            const refused = refusal(call, vmm());
            if (refused !== undefined) return void call.emit('error', refused);
            (handler as unknown as (c: typeof call) => void)(call);
          }
    ) as unknown as Handler;
  }
  return { ...implementation, ...wrapped } as grpc.UntypedServiceImplementation;
}
