/**
 * `--fault-rate p`: random faults as ordinary plan rules (so the engine, replay and shrinking treat
 * them like any other), one per row of RANDOM_FAULTS, each firing with probability p on the calls
 * it matches, drawn from its own stream of the run's seed.
 *
 * The table holds the faults the system is built to survive, so a run with random faults must pass
 * every checker. What is left out, and why:
 *   - lost replies (fail_after) of calls that create something (VM_ALLOCATE, MEM_LEND, CreateGrant,
 *     CreateAddressSpace): the caller never learns the handle, so nobody can give it back. That is
 *     a client's orphan, which issue 8 item 5 demonstrates on purpose, not a server bug to hunt.
 *   - RM_TO_CORE and VMM_TO_CORE lost replies: hypercalls, whose replies cannot be lost.
 */
import type { Boundary, FaultAction, FaultPlan, FaultRule } from '@hypmesh/fault';

interface RandomFaultRow {
  readonly boundary: Boundary;
  /** RPC (core) or RM message name; absent = every call at the boundary. */
  readonly method?: string;
  readonly rmMessage?: string;
  readonly action: FaultAction;
}

const errno = (e: 'ENOMEM' | 'EBUSY'): FaultAction => ({ kind: 'fail_before', failure: { kind: 'domain', error: { family: 'errno', errno: e } } });
const unavailable: FaultAction = { kind: 'fail_before', failure: { kind: 'grpc', code: 'UNAVAILABLE' } };
const lostReply: FaultAction = { kind: 'fail_after', code: 'UNAVAILABLE' };
const delay: FaultAction = { kind: 'delay', fixedMs: 10, jitterMs: 10 };

export const RANDOM_FAULTS: readonly RandomFaultRow[] = [
  // The RM's grants: the core refuses; the RM answers its caller and changes nothing.
  { boundary: 'RM_TO_CORE', method: 'CreateGrant', action: errno('ENOMEM') },
  { boundary: 'RM_TO_CORE', method: 'AppendGrant', action: errno('ENOMEM') },
  { boundary: 'RM_TO_CORE', method: 'MapGrant', action: errno('ENOMEM') },
  // Inside VM_RESET too: the RM retries, and a VM it cannot empty stays RESETTING (bug 1's fix).
  { boundary: 'RM_TO_CORE', method: 'UnmapGrant', action: errno('EBUSY') },
  { boundary: 'RM_TO_CORE', method: 'DestroyGrant', action: errno('EBUSY') },
  // VM_ALLOCATE's and VM_DEALLOCATE's stage-2 (§4.2): refused, the RM answers and keeps the VMID as it was.
  { boundary: 'RM_TO_CORE', method: 'CreateAddressSpace', action: errno('ENOMEM') },
  { boundary: 'RM_TO_CORE', method: 'DestroyAddressSpace', action: errno('EBUSY') },
  // The VMM's hypercalls: table pages, grants, teardown steps (retried, or reported as leaked).
  { boundary: 'VMM_TO_CORE', method: 'TopUpTablePool', action: errno('ENOMEM') },
  { boundary: 'VMM_TO_CORE', method: 'CreateGrant', action: errno('ENOMEM') },
  { boundary: 'VMM_TO_CORE', method: 'MapGrant', action: errno('ENOMEM') },
  { boundary: 'VMM_TO_CORE', method: 'UnmapGrant', action: errno('EBUSY') },
  { boundary: 'VMM_TO_CORE', method: 'DestroyGrant', action: errno('EBUSY') },
  // The msgq: a call refused or late.
  { boundary: 'VMM_TO_RM', action: unavailable },
  { boundary: 'VMM_TO_RM', action: delay },
  // Clients of the RM: refused, late, or a lost reply of a call that is safe to repeat.
  { boundary: 'CLIENT_TO_RM', action: unavailable },
  { boundary: 'CLIENT_TO_RM', action: delay },
  { boundary: 'CLIENT_TO_RM', rmMessage: 'MEM_ACCEPT', action: lostReply },
  { boundary: 'CLIENT_TO_RM', rmMessage: 'MEM_RELEASE', action: lostReply },
  { boundary: 'CLIENT_TO_RM', rmMessage: 'MEM_RECLAIM', action: lostReply },
  { boundary: 'CLIENT_TO_RM', rmMessage: 'MEM_NOTIFY', action: lostReply },
  // VMM sessions: refused, or the reply of a create/start/stop/destroy lost (the VM still belongs
  // to the session, which tears it down when it ends).
  { boundary: 'CLIENT_TO_VMM', action: unavailable },
  { boundary: 'CLIENT_TO_VMM', method: 'CreateVm', action: lostReply },
  { boundary: 'CLIENT_TO_VMM', method: 'StartVm', action: lostReply },
  { boundary: 'CLIENT_TO_VMM', method: 'StopVm', action: lostReply },
  { boundary: 'CLIENT_TO_VMM', method: 'DestroyVm', action: lostReply },
  // Notifications: late (the VMM's waits run on the simulated clock).
  { boundary: 'RM_NOTIFICATION', action: delay },
];

/** The rules of `--fault-rate rate` (none at rate 0). */
export function randomFaultRules(rate: number): FaultRule[] {
  if (!(rate > 0)) return [];
  return RANDOM_FAULTS.map((row, i) => ({
    id: `random.${i}.${row.boundary.toLowerCase()}.${(row.method ?? row.rmMessage ?? 'any').toLowerCase()}.${row.action.kind}`,
    boundary: row.boundary,
    match: { ...(row.method === undefined ? {} : { method: row.method }), ...(row.rmMessage === undefined ? {} : { rmMessage: row.rmMessage }), probability: rate },
    action: row.action,
  }));
}

/** A user plan with the random rules after its own (the plan's rules win a tie: first that fires). */
export const withRandomFaults = (plan: FaultPlan, rate: number): FaultPlan => ({ rules: [...plan.rules, ...randomFaultRules(rate)] });
