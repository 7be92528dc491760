/**
 * Domain error → gRPC status: the one place a domain code gets its gRPC code (DESIGN.md §5,
 * STYLE "Errors are values"), like Firecracker's `convert_to_response` or connect-es's code table.
 *
 * The gRPC code tells a generic client what to do: fix the request (INVALID_ARGUMENT), change the
 * state first (FAILED_PRECONDITION), add resources and retry (RESOURCE_EXHAUSTED), retry
 * (ABORTED). The exact domain code (name, number, rule, RMI index and outputs) travels beside it as
 * a hypmesh.common.v1.ErrorDetail and a google.rpc.ErrorInfo (status-details.ts), so nothing the
 * real call would return is lost. grpc-js itself never produces INVALID_ARGUMENT, NOT_FOUND,
 * ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE or DATA_LOSS (grpc-ecosystem.md §2.1),
 * so those codes always come from here.
 *
 * PERMISSION_DENIED is kept for caller identity (a VMID the RPC does not allow), never for a
 * domain code, so an authorization failure cannot be confused with a page in the wrong state.
 * Anything thrown that is not a StatusError is a bug and becomes INTERNAL (fromThrown), never UNKNOWN.
 */

import { status } from '@grpc/grpc-js';
import {
  ERRNO,
  RMI_STATUS,
  packRmiReturn,
  type DomainError,
  type ErrnoError,
  type ErrnoName,
  type RmiError,
  type RmiStatusName,
} from '@hypmesh/stage2';
import { BadRequest, ErrorDetail, ErrorInfo, type OutputRegister } from '@hypmesh/proto';
import { DETAIL_TYPES, StatusError, packAny } from './status-details.js';

/** errno (pKVM hypercalls, grants, address spaces; stage2-models.md §A5) → gRPC code. */
export const errnoToGrpc = {
  // pKVM's EPERM is "a page is in the wrong state for this transition" (§A4: any state mismatch),
  // not "you may not": the caller must change the state first. Caller identity is PERMISSION_DENIED.
  EPERM: status.FAILED_PRECONDITION,
  ENOENT: status.NOT_FOUND,
  // ENXIO: a KVM host-side realm walk (seed 004) met an RMI failure it does not handle and gave up,
  // as kvm_realm_* do: the RMM's state is not what the walk expects.
  ENXIO: status.FAILED_PRECONDITION,
  EINVAL: status.INVALID_ARGUMENT,
  // An empty table-page pool (seed 003): the host tops the pool up and retries (DESIGN.md §2).
  ENOMEM: status.RESOURCE_EXHAUSTED,
  // EBUSY: hyp still pins the page, a borrower still maps the grant, a share count is saturated.
  // Not UNAVAILABLE: gRPC retry policies retry UNAVAILABLE automatically, and retrying cannot help
  // until the client itself unpins or unmaps; it is a precondition on state the client controls.
  EBUSY: status.FAILED_PRECONDITION,
  EEXIST: status.ALREADY_EXISTS,
  // E2BIG: the request's size does not fit what is there (unsharing 4 KiB of a 2 MiB leaf, a list
  // over its limit): the client fixes the size.
  E2BIG: status.OUT_OF_RANGE,
  // EFAULT: a bad address (force reclaim of a PA that is not memory, §A5).
  EFAULT: status.INVALID_ARGUMENT,
  // EAGAIN: the call raced another transition (the VM handle went away, the page is in transit);
  // ABORTED is gRPC's "concurrency conflict, retry the sequence", and never library-generated.
  EAGAIN: status.ABORTED,
  // EHWPOISON: the guest page was force-reclaimed and poisoned (§A2, §A5): its contents are gone.
  EHWPOISON: status.DATA_LOSS,
  // ERANGE: a counter would leave its range (u16 pin count, §A6).
  ERANGE: status.OUT_OF_RANGE,
} as const satisfies Record<ErrnoName, status>;

/** RMI status (Arm CCA RMM 1.0, stage2-models.md §B1) → gRPC code. */
export const rmiStatusToGrpc = {
  RMI_SUCCESS: status.OK,
  // RMI lumps malformed arguments and objects in the wrong external state (a granule not
  // DELEGATED) into ERROR_INPUT; the detail's rule (gran_align, gran_state, ...) tells them apart.
  RMI_ERROR_INPUT: status.INVALID_ARGUMENT,
  RMI_ERROR_REALM: status.FAILED_PRECONDITION,
  RMI_ERROR_REC: status.FAILED_PRECONDITION,
  // RTT walks that stop short ("missing RTT") or entries in the wrong state; KVM's teardown and
  // map loops branch on the index and `top` in the detail, not on the code.
  RMI_ERROR_RTT: status.FAILED_PRECONDITION,
} as const satisfies Record<RmiStatusName, status>;

/** ErrorInfo.domain of each family. */
export const ERROR_DOMAINS = { errno: 'errno.hypmesh', rmi: 'rmi.hypmesh' } as const;

/** The gRPC error for a domain error, with ErrorDetail and ErrorInfo attached. */
export function domainStatus(e: DomainError): StatusError {
  return e.family === 'errno' ? errnoStatus(e) : rmiStatus(e);
}

function errnoStatus(e: ErrnoError): StatusError {
  const detail: ErrorDetail = {
    domain: 'errno',
    codeName: e.errno,
    code: ERRNO[e.errno],
    rule: e.rule,
    rmiIndex: 0,
    rmiX0: 0n,
    outputs: [],
  };
  const info: ErrorInfo = { reason: e.errno, domain: ERROR_DOMAINS.errno, metadata: { rule: e.rule } };
  return new StatusError(errnoToGrpc[e.errno], `${e.errno} (${e.rule}): ${e.message}`, [
    packAny(DETAIL_TYPES.errorDetail, ErrorDetail, detail),
    packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info),
  ]);
}

function rmiStatus(e: RmiError): StatusError {
  // The index is one byte of x0 (§B1); an LPA2 level -1 travels as its two's-complement byte.
  const index = e.index & 0xff;
  const x0 = packRmiReturn(e.status, index);
  const outputs: OutputRegister[] = [];
  const infoMeta: Record<string, string> = { rule: e.rule, index: String(e.index), x0: `0x${x0.toString(16)}` };
  for (const [name, value] of Object.entries(e.outputs)) {
    infoMeta[name] = String(value);
    if (Number.isSafeInteger(value) && value >= 0) outputs.push({ name, value: BigInt(value) });
  }
  const detail: ErrorDetail = {
    domain: 'rmi',
    codeName: e.status,
    code: RMI_STATUS[e.status],
    rule: e.rule,
    rmiIndex: index,
    rmiX0: BigInt(x0),
    outputs,
  };
  const info: ErrorInfo = { reason: e.status, domain: ERROR_DOMAINS.rmi, metadata: infoMeta };
  return new StatusError(rmiStatusToGrpc[e.status], `${e.status} index ${e.index} (${e.rule}): ${e.message}`, [
    packAny(DETAIL_TYPES.errorDetail, ErrorDetail, detail),
    packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info),
  ]);
}

/** A malformed request: INVALID_ARGUMENT naming the field, with a google.rpc.BadRequest. */
export function invalidArgument(field: string, why: string): StatusError {
  const bad: BadRequest = { fieldViolations: [{ field, description: why }] };
  return new StatusError(status.INVALID_ARGUMENT, `${field}: ${why}`, [
    packAny(DETAIL_TYPES.badRequest, BadRequest, bad),
  ]);
}

/** The caller's identity does not allow this RPC. */
export function permissionDenied(why: string): StatusError {
  return new StatusError(status.PERMISSION_DENIED, why);
}

/** Where bugs are reported: pino's `logger.error(obj, msg)` fits. */
export interface BugLog {
  error(obj: object, msg: string): void;
}

/**
 * Anything thrown becomes a coded error: a StatusError stays as it is; everything else is a bug
 * (a broken domain invariant, a handler mistake) and becomes INTERNAL, logged with its stack and
 * kept as `cause`. Never UNKNOWN, which grpc-js would send for an escaped throw.
 */
export function fromThrown(e: unknown, log?: BugLog, where = 'handler'): StatusError {
  if (e instanceof StatusError) return e;
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  log?.error({ err: e, where }, `bug: ${where} threw ${what}`);
  return new StatusError(status.INTERNAL, `internal error in ${where} (a hypmesh bug): ${what}`, [], { cause: e });
}
