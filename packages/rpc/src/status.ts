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
 * PERMISSION_DENIED is kept for caller identity: a VMID the RPC does not allow, or the RM's own
 * verdict on its caller (RM DENIED: not HLOS, not the owner). It is never given to a page or object
 * in the wrong state, so an authorization failure cannot be confused with a state error.
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
import { LINUX_ERRNO, RM_ERRORS, type RmErrorName } from '@hypmesh/rm-wire';
import { VMM_ERRNO, type VmmErrnoName, type VmmError } from '@hypmesh/vmm';
import { BadRequest, ErrorDetail, ErrorInfo, type OutputRegister } from '@hypmesh/proto';
import type { DependencyFailure, Unreached } from './dependency.js';
import { DETAIL_TYPES, STATUS_MESSAGE_MAX_BYTES, StatusError, boundText, packAny } from './status-details.js';

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

/**
 * Gunyah RM error (gunyah-rm.md §1.5) → gRPC code. The RM answers every check of §3 and §4.2 with
 * one of these; the rule in the detail says which check fired.
 */
export const rmErrorToGrpc = {
  OK: status.OK,
  // Also the RM's answer to a message ID it does not know or handle (§1.5, §2.1).
  UNIMPLEMENTED: status.UNIMPLEMENTED,
  NOMEM: status.RESOURCE_EXHAUSTED,
  // No free VMID, no IPA space for an accept, a list over 512 entries: a limit was reached.
  // (VM_GET_STATE of an unknown VM also says NORESOURCE; the rule tells it apart.)
  NORESOURCE: status.RESOURCE_EXHAUSTED,
  // The RM's verdict on its caller: not HLOS, not the owner, not allowed to see the VM. Also the
  // 64-parcel limit and a locked parcel, which the RM deliberately reports the same way.
  DENIED: status.PERMISSION_DENIED,
  // The message does not decode (length, truncation, trailing bytes, a rejected exit code).
  MSG_INVALID: status.INVALID_ARGUMENT,
  // Not UNAVAILABLE, which gRPC retry policies retry blindly (see EBUSY above).
  BUSY: status.FAILED_PRECONDITION,
  ARGUMENT_INVALID: status.INVALID_ARGUMENT,
  // No such parcel handle, or one the caller is not in the ACL of (the RM hides it): not found.
  HANDLE_INVALID: status.NOT_FOUND,
  // The accept's stated expectations (label, ACL, attrs, sanitized) are wrong for this parcel:
  // the borrower fixes its request or picks another handle.
  VALIDATE_FAILED: status.INVALID_ARGUMENT,
  // The hypervisor refused to map the parcel at the chosen IPAs (already mapped, no table pages):
  // the borrower's address space is not in a state that allows it.
  MAP_FAILED: status.FAILED_PRECONDITION,
  // An SGL range that is not the owner's memory (unmapped, not its extent, already in a parcel).
  MEM_INVALID: status.INVALID_ARGUMENT,
  // Reclaim while a borrower still has the parcel accepted: release first.
  MEM_INUSE: status.FAILED_PRECONDITION,
  // Release of a parcel the caller has not accepted.
  MEM_RELEASED: status.FAILED_PRECONDITION,
  // No such VM, or one the caller does not own (VM_STOP/VM_RESET hide it), or a VMID outside the
  // ACL: the named VM is not there for this caller.
  VMID_INVALID: status.NOT_FOUND,
  // MEM_QCOM_LOOKUP_SGL found no matching parcel.
  LOOKUP_FAILED: status.NOT_FOUND,
  IRQ_INVALID: status.INVALID_ARGUMENT,
  IRQ_INUSE: status.FAILED_PRECONDITION,
  IRQ_RELEASED: status.FAILED_PRECONDITION,
  IN_USE: status.FAILED_PRECONDITION,
  IRQ_NOT_MAPPED: status.FAILED_PRECONDITION,
  // The VM is not in a state (§4.3) that allows the call.
  VM_STATE: status.FAILED_PRECONDITION,
} as const satisfies Record<RmErrorName, status>;

/**
 * An RM error as the RM domain (@hypmesh/rm's RmOutcome) and the byte face's decoders return it.
 * Structural, so this package needs only the wire tables.
 */
/**
 * The VM manager's errnos (@hypmesh/vmm vmm-error.ts; the Gunyah VM-manager ioctls, gunyah-rm.md
 * §5), each justified like the families above.
 */
export const vmmErrnoToGrpc = {
  // The VM is in the wrong state for the call (wrong state is a precondition, as pKVM's EPERM).
  EPERM: status.PERMISSION_DENIED,
  // No such VM handle in the caller's session, or no binding holds the range to unmap.
  ENOENT: status.NOT_FOUND,
  // A notification the teardown or stop waits for never came (the RM is not answering).
  EIO: status.UNAVAILABLE,
  // A realm host walk met an RMI state it does not handle (as the core's ENXIO).
  ENXIO: status.FAILED_PRECONDITION,
  // The session named is a lease that was closed or expired (an ioctl on a released fd): its VMs
  // are gone, as a stream session's handles are NOT_FOUND once the stream ended; open a new lease.
  EBADF: status.NOT_FOUND,
  // The RM raced a retry (not produced yet; kept for the -EAGAIN of hypercalls).
  EAGAIN: status.ABORTED,
  // The donation region or the VM's table pool is exhausted (after top-ups), or RM NOMEM.
  ENOMEM: status.RESOURCE_EXHAUSTED,
  // Bindings change before start only; an address space still maps memory.
  EBUSY: status.FAILED_PRECONDITION,
  // A host range binds once; guest ranges do not overlap.
  EEXIST: status.ALREADY_EXISTS,
  // START: the VM is not RUNNING (the first start failed), or RM NORESOURCE.
  ENODEV: status.FAILED_PRECONDITION,
  EINVAL: status.INVALID_ARGUMENT,
  // An RM-only error (IN_USE, IRQ_NOT_MAPPED, VM_STATE) as Linux reports it: wrong RM state.
  EBADMSG: status.FAILED_PRECONDITION,
  // address + size overflows 64 bits.
  EOVERFLOW: status.OUT_OF_RANGE,
  // The RM does not implement a call the sequence needs.
  EOPNOTSUPP: status.UNIMPLEMENTED,
} as const satisfies Record<VmmErrnoName, status>;

export interface RmDomainError {
  readonly family: 'rm';
  readonly rmError: Exclude<RmErrorName, 'OK'>;
  readonly rule: string;
  readonly message: string;
}

/** Every domain error a hypmesh service may return. */
export type AnyDomainError = DomainError | RmDomainError | VmmError;

/** ErrorInfo.domain of each family. */
export const ERROR_DOMAINS = { errno: 'errno.hypmesh', rmi: 'rmi.hypmesh', rm: 'rm.hypmesh', vmm: 'vmm.hypmesh' } as const;

/** The gRPC error for a domain error, with ErrorDetail and ErrorInfo attached. */
export function domainStatus(e: AnyDomainError): StatusError {
  switch (e.family) {
    case 'errno':
      return errnoStatus(e);
    case 'rmi':
      return rmiStatus(e);
    case 'rm':
      return rmStatus(e);
    case 'vmm':
      return vmmStatus(e);
  }
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
    linuxErrnoName: '',
    linuxErrno: 0,
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
    linuxErrnoName: '',
    linuxErrno: 0,
  };
  const info: ErrorInfo = { reason: e.status, domain: ERROR_DOMAINS.rmi, metadata: infoMeta };
  return new StatusError(rmiStatusToGrpc[e.status], `${e.status} index ${e.index} (${e.rule}): ${e.message}`, [
    packAny(DETAIL_TYPES.errorDetail, ErrorDetail, detail),
    packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info),
  ]);
}

function rmStatus(e: RmDomainError): StatusError {
  const row = RM_ERRORS[e.rmError];
  const linux = row.linuxErrno;
  const detail: ErrorDetail = {
    domain: 'rm',
    codeName: e.rmError,
    // The reply's u32 read as int32 (UNIMPLEMENTED 0xFFFFFFFF → -1), ErrorDetail.code's type.
    code: row.code | 0,
    rule: e.rule,
    rmiIndex: 0,
    rmiX0: 0n,
    outputs: [],
    linuxErrnoName: linux,
    linuxErrno: LINUX_ERRNO[linux],
  };
  const hex = `0x${row.code.toString(16)}`;
  const info: ErrorInfo = { reason: e.rmError, domain: ERROR_DOMAINS.rm, metadata: { rule: e.rule, code: hex, linux_errno: `-${linux}` } };
  return new StatusError(rmErrorToGrpc[e.rmError], `RM ${e.rmError} (${hex}, ${e.rule}): ${e.message}`, [
    packAny(DETAIL_TYPES.errorDetail, ErrorDetail, detail),
    packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info),
  ]);
}

function vmmStatus(e: VmmError): StatusError {
  const detail: ErrorDetail = {
    domain: 'vmm',
    codeName: e.errno,
    code: VMM_ERRNO[e.errno],
    rule: e.rule,
    rmiIndex: 0,
    rmiX0: 0n,
    outputs: [],
    linuxErrnoName: e.errno,
    linuxErrno: VMM_ERRNO[e.errno],
  };
  const meta: Record<string, string> = { rule: e.rule };
  if (e.cause !== undefined) meta['cause'] = e.cause;
  const info: ErrorInfo = { reason: e.errno, domain: ERROR_DOMAINS.vmm, metadata: meta };
  return new StatusError(vmmErrnoToGrpc[e.errno], `${e.errno} (${e.rule}): ${e.message}`, [
    packAny(DETAIL_TYPES.errorDetail, ErrorDetail, detail),
    packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info),
  ]);
}

/** How much of a caller's input a status message quotes back (the rest is only counted). */
export const ECHO_MAX_BYTES = 200;

/** Caller input as a status message quotes it: JSON-quoted, at most ECHO_MAX_BYTES, marked when cut. */
export const quoted = (input: string): string => boundText(input, ECHO_MAX_BYTES, (s) => JSON.stringify(s));

/**
 * A dependency the service could not reach (dependency.ts) → the caller's code: what the service's
 * own call to it got, so the caller's retry policy (keyed on UNAVAILABLE) applies. Never
 * INVALID_ARGUMENT or a domain code: the request may be fine, the dependency was not there.
 */
export const dependencyToGrpc = {
  UNAVAILABLE: { code: status.UNAVAILABLE, reason: 'DEPENDENCY_UNAVAILABLE', says: 'is unreachable' },
  DEADLINE_EXCEEDED: { code: status.DEADLINE_EXCEEDED, reason: 'DEPENDENCY_DEADLINE_EXCEEDED', says: 'did not answer within its deadline' },
} as const satisfies Record<Unreached, { code: status; reason: string; says: string }>;

/**
 * The status of a request that failed because `f.dependency` could not be reached: ErrorInfo names
 * the dependency; the domain's own refusal stays in the message and the ErrorDetail.
 */
export function dependencyStatus(f: DependencyFailure, e: AnyDomainError): StatusError {
  const row = dependencyToGrpc[f.unreached];
  const domain = domainStatus(e);
  const info: ErrorInfo = { reason: row.reason, domain: 'hypmesh', metadata: { dependency: f.dependency, rule: e.rule } };
  const detail = domain.detailMessages.find((d) => d.typeUrl.endsWith(DETAIL_TYPES.errorDetail));
  return new StatusError(row.code, `${f.dependency} ${row.says} (${f.message}); so: ${domain.details}`, [
    packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info),
    ...(detail === undefined ? [] : [detail]),
  ]);
}

/** A malformed request: INVALID_ARGUMENT naming the field, with a google.rpc.BadRequest. */
export function invalidArgument(field: string, why: string): StatusError {
  // The description rides in the trailers beside the message: bounded the same way.
  const bad: BadRequest = { fieldViolations: [{ field, description: boundText(why, STATUS_MESSAGE_MAX_BYTES) }] };
  return new StatusError(status.INVALID_ARGUMENT, `${field}: ${why}`, [
    packAny(DETAIL_TYPES.badRequest, BadRequest, bad),
  ]);
}

/** The caller's identity does not allow this RPC. */
/**
 * Admission control refused the request before anything changed (DESIGN.md §8, issue 10): a
 * per-client quota is used up or one request asks for more work than a call may do. The rule
 * (`quota_address_spaces`, `cap_pages_per_call`, ...) is ErrorInfo.reason, so clients branch on it;
 * `metadata` says what was asked, what is held and the limit, so the client can back off or split.
 */
export function resourceExhausted(rule: string, why: string, metadata: Readonly<Record<string, string>> = {}): StatusError {
  const info: ErrorInfo = { reason: rule, domain: ADMISSION_DOMAIN, metadata: { ...metadata } };
  return new StatusError(status.RESOURCE_EXHAUSTED, `${rule}: ${why}`, [packAny(DETAIL_TYPES.errorInfo, ErrorInfo, info)]);
}

/** ErrorInfo.domain of admission refusals (resourceExhausted). */
export const ADMISSION_DOMAIN = 'admission.hypmesh';

export function permissionDenied(why: string): StatusError {
  return new StatusError(status.PERMISSION_DENIED, why);
}

/** Where bugs are reported: pino's `logger.error(obj, msg)` fits; warn, info and debug where a service logs more. */
export interface BugLog {
  error(obj: object, msg: string): void;
  warn?(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
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
