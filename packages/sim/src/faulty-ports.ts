/**
 * The simulation's in-memory ports with the fault engine in front of them (DESIGN.md §7): the same
 * port interfaces the gRPC adapters implement (rm CoreGrantPort, vmm RmPort and CorePort), each
 * call numbered and decided by one FaultEngine at its boundary, then applied by the engine's own
 * `applyAt` over the simulated clock. So a plan fires at the same op indices here as over gRPC.
 *
 *   RM_TO_CORE      every CoreGrantPort method (the RM's grants)
 *   VMM_TO_CORE     every CorePort method (address spaces, grants, RMI)
 *   VMM_TO_RM       every RmPort call (one per RM message)
 *   RM_NOTIFICATION every notification the RM queues for HLOS (VM_STATUS, VM_EXITED) or a guest
 *   CLIENT_TO_RM    guests' and HLOS's parcel calls (actors.ts)
 *   CLIENT_TO_VMM   VMM sessions' calls (actors.ts)
 *
 * Wrapping is by method, over whatever functions the port object has (`wrapPort`), so a method a
 * port gains later (CoreGrantPort.createVmSpace / destroyVmSpace) is wrapped with no change here;
 * only `coreOutcome`'s table says how a refused call of that family looks.
 *
 * A refused or lost call is shaped as the transport would answer: a core hypercall refusal is an
 * errno (EIO for a transport-level status), an RMI refusal an RMI status, an RM call a BUSY with a
 * `msgq_` rule (ports.ts MSGQ_FAILED_RULE_PREFIX: the VMM reports it as EIO).
 */
import { applyAt, rmMessageMethod, type ApplyPorts, type Boundary, type FaultEngine, type FaultEvent, type Failure, type FaultPoint, type OutcomeAdapter } from '@hypmesh/fault';
import { rmFail, type CoreResult, type RmOutcome } from '@hypmesh/rm';
import { vmmFail, type VmmErrnoName, type VmmResult } from '@hypmesh/vmm';

/** What the fault wrappers need: the engine, and time and crash as the simulation models them. */
export interface FaultContext {
  readonly engine: FaultEngine;
  readonly apply: ApplyPorts;
}

const ruleOf = (e: FaultEvent): string => `fault_${e.ruleId}`;

/** A core hypercall refused or lost: an errno (core_service.proto ErrorDetail). */
export const coreOutcome: OutcomeAdapter<CoreResult<never>> = {
  refused: (f: Failure, e) => ({ ok: false, error: { errno: f.kind === 'domain' && (f.error.family === 'errno' || f.error.family === 'vmm') ? f.error.errno : 'EIO', rule: ruleOf(e), message: `injected: ${e.ruleId}` } }),
  lost: (code, message, e) => ({ ok: false, error: { errno: 'EIO', rule: `${ruleOf(e)}_${code.toLowerCase()}`, message } }),
};

/** An RMI command refused or lost: an RMI status (ERROR_INPUT unless the plan names one). */
export const rmiOutcome: OutcomeAdapter<unknown> = {
  refused: (f: Failure, e) => ({
    ok: false,
    error: { family: 'rmi', status: f.kind === 'domain' && f.error.family === 'rmi' ? f.error.status : 'ERROR_INPUT', index: f.kind === 'domain' && f.error.family === 'rmi' ? f.error.index : 0, rule: ruleOf(e), message: `injected: ${e.ruleId}`, outputs: {} },
  }),
  lost: (code, message, e) => ({ ok: false, error: { family: 'rmi', status: 'ERROR_INPUT', index: 0, rule: `${ruleOf(e)}_${code.toLowerCase()}`, message, outputs: {} } }),
};

/** An RM call refused or lost: the RM's error if the plan names one, else the msgq failed (BUSY msgq_*). */
export const rmOutcome: OutcomeAdapter<RmOutcome<never>> = {
  refused: (f: Failure, e) => (f.kind === 'domain' && f.error.family === 'rm' ? rmFail(f.error.rmError, ruleOf(e), `injected: ${e.ruleId}`) : rmFail('BUSY', `msgq_unavailable_${ruleOf(e)}`, `injected: ${e.ruleId}`)),
  lost: (code, message, e) => rmFail('BUSY', `msgq_${code.toLowerCase()}_${ruleOf(e)}`, message),
};

/** A VMM call refused or lost: the VMM's errno if the plan names one, else EIO. */
export const vmmOutcome: OutcomeAdapter<VmmResult<never>> = {
  refused: (f: Failure, e) => vmmFail(f.kind === 'domain' && (f.error.family === 'vmm' || f.error.family === 'errno') ? (f.error.errno as VmmErrnoName) : 'EIO', ruleOf(e), `injected: ${e.ruleId}`),
  lost: (code, message, e) => vmmFail('EIO', `${ruleOf(e)}_${code.toLowerCase()}`, message),
};

/** Port methods whose gRPC method is not their own name (services/rm/src/core-client.ts). */
const PORT_METHOD_RPC: Readonly<Record<string, string>> = {
  createVmSpace: 'CreateAddressSpace',
  destroyVmSpace: 'DestroyAddressSpace',
};

/** `createGrant` → `CreateGrant`: the gRPC method a port method is, so one plan fits both modes. */
export const rpcName = (method: string): string => PORT_METHOD_RPC[method] ?? method[0]!.toUpperCase() + method.slice(1);

/**
 * Runs one call through the engine at `point`. A call no rule fires on (almost every call) is the
 * call itself: applyAt, an async function, would wrap its promise in one more and cost the caller
 * extra microtask turns; a synchronous throw still becomes a rejection, as it would there.
 */
export function faultCall<T>(ctx: FaultContext, point: FaultPoint, call: () => Promise<T>, outcome: OutcomeAdapter<unknown>): Promise<T> {
  const decision = ctx.engine.decide(point);
  if (decision.fault) return applyAt(decision, call, outcome as OutcomeAdapter<T>, ctx.apply);
  try {
    return call();
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * `inner` with every function property routed through the engine at `boundary` (`skip` names
 * methods that are no calls, such as onNotice). `outcomeOf` picks the outcome shape per method;
 * `pointOf` may add the RM message a method carries.
 */
export function wrapPort<P extends object>(
  inner: P,
  boundary: Boundary,
  ctx: FaultContext,
  outcomeOf: (method: string) => OutcomeAdapter<unknown>,
  options: { readonly skip?: readonly string[]; readonly rmMessageOf?: (method: string) => string | undefined; readonly callerVmid?: number } = {},
): P {
  const out: Record<string, unknown> = {};
  const source = inner as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const value = source[key];
    if (typeof value !== 'function' || options.skip?.includes(key)) {
      out[key] = value;
      continue;
    }
    const fn = value as (...args: unknown[]) => Promise<unknown>;
    const rmMessage = options.rmMessageOf?.(key);
    const point: FaultPoint = {
      boundary,
      method: rmMessage === undefined ? rpcName(key) : rmMessageMethod(rmMessage),
      ...(rmMessage === undefined ? {} : { rmMessage }),
      ...(options.callerVmid === undefined ? {} : { callerVmid: options.callerVmid }),
    };
    const outcome = outcomeOf(key);
    // faultCall inlined: a call no rule fires on (almost every call) builds no closure.
    out[key] = (...args: unknown[]) => {
      const decision = ctx.engine.decide(point);
      if (decision.fault) return applyAt(decision, () => fn.apply(inner, args), outcome, ctx.apply);
      try {
        return fn.apply(inner, args);
      } catch (e) {
        return Promise.reject(e);
      }
    };
  }
  return out as P;
}
