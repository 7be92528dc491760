/**
 * A fault plan as data: the TypeScript mirror of hypmesh.fault.v1.FaultPlan (proto/hypmesh/fault/v1/
 * fault.proto, which documents every field and its unit). Enum values drop their proto prefix
 * (`BOUNDARY_CLIENT_TO_RM` → `CLIENT_TO_RM`); oneofs become tagged unions; proto3 "unset" becomes an
 * absent property. load.ts reads the proto3-JSON form into this; validate.ts checks it.
 *
 * Which actions make sense where is one table, ACTIONS_AT_BOUNDARY (DESIGN.md §7): `corrupt` and
 * `reorder` exist only for msgq fragments, `drop` only where something travels one way (a message,
 * a fragment, a notification), the two failures only where there is a call with a reply.
 */

import type { ErrnoName, RmiErrorStatusName } from '@hypmesh/stage2';
import type { RmErrorName } from '@hypmesh/rm-wire';

/** Boundaries in proto enum order (value = index + 1). */
export const BOUNDARIES = [
  'CLIENT_TO_CORE',
  'CLIENT_TO_RM',
  'CLIENT_TO_VMM',
  'RM_TO_CORE',
  'VMM_TO_CORE',
  'VMM_TO_RM',
  'VMM_TO_RM_FRAGMENT',
  'RM_NOTIFICATION',
  'RM_TO_CLIENT_FRAGMENT',
] as const;
export type Boundary = (typeof BOUNDARIES)[number];

/** Action kinds in proto oneof order (field numbers 10–19). */
export const ACTION_KINDS = ['delay', 'fail_before', 'fail_after', 'duplicate', 'drop', 'corrupt', 'reorder', 'crash', 'pause', 'truncate'] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

type CallBoundary = 'CLIENT_TO_CORE' | 'CLIENT_TO_RM' | 'CLIENT_TO_VMM' | 'RM_TO_CORE' | 'VMM_TO_CORE' | 'VMM_TO_RM';
const CALL_ACTIONS = ['delay', 'fail_before', 'fail_after', 'duplicate', 'crash', 'pause'] as const;

/** The actions a rule may take at each boundary (fault.proto's header table). */
export const ACTIONS_AT_BOUNDARY = {
  CLIENT_TO_CORE: CALL_ACTIONS,
  CLIENT_TO_RM: CALL_ACTIONS,
  CLIENT_TO_VMM: CALL_ACTIONS,
  RM_TO_CORE: CALL_ACTIONS,
  VMM_TO_CORE: CALL_ACTIONS,
  // A whole RM message on the msgq can also vanish (the caller then times out).
  VMM_TO_RM: [...CALL_ACTIONS, 'drop'],
  // A fragment has no reply of its own: it can only be late, lost, repeated, damaged or overtaken.
  VMM_TO_RM_FRAGMENT: ['delay', 'duplicate', 'drop', 'corrupt', 'reorder', 'crash', 'pause'],
  // The RM queues notifications one way (gunyah-rm.md §2.2): late or lost.
  RM_NOTIFICATION: ['delay', 'drop', 'crash', 'pause'],
  // The RM's reply fragments on the byte face: late, lost, damaged, overtaken, or cut short (a reply
  // shorter than the caller expects: what a driver that does not check the reply size misreads).
  RM_TO_CLIENT_FRAGMENT: ['delay', 'drop', 'corrupt', 'reorder', 'truncate', 'crash', 'pause'],
} as const satisfies Record<Boundary, readonly ActionKind[]> & Record<CallBoundary, readonly ActionKind[]>;

/** gRPC status codes by name (grpc/grpc doc/statuscodes.md), so this package needs no grpc-js. */
export const GRPC_CODES = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCodeName = keyof typeof GRPC_CODES;

/** What a caller sees when its reply is lost: the two codes grpc-js itself produces for it. */
export const LOST_REPLY_CODES = ['UNAVAILABLE', 'DEADLINE_EXCEEDED'] as const;
export type LostReplyCode = (typeof LOST_REPLY_CODES)[number];

/**
 * The VM manager's errno names (@hypmesh/vmm's VMM_ERRNO). Listed here rather than imported so that
 * @hypmesh/vmm and @hypmesh/rm can one day use the engine without a package cycle; plan.test.ts
 * checks the list equals VMM_ERRNO.
 */
export const VMM_ERRNO_NAMES = [
  'EPERM',
  'ENOENT',
  'EIO',
  'ENXIO',
  'EBADF',
  'EAGAIN',
  'ENOMEM',
  'EBUSY',
  'EEXIST',
  'ENODEV',
  'EINVAL',
  'EBADMSG',
  'EOVERFLOW',
  'EOPNOTSUPP',
] as const;
export type VmmErrnoName = (typeof VMM_ERRNO_NAMES)[number];

/** A domain error to answer with, one per error family of packages/rpc status.ts. */
export type DomainFailure =
  | { readonly family: 'errno'; readonly errno: ErrnoName }
  | { readonly family: 'rm'; readonly rmError: Exclude<RmErrorName, 'OK'> }
  | { readonly family: 'rmi'; readonly status: RmiErrorStatusName; readonly index: number }
  | { readonly family: 'vmm'; readonly errno: VmmErrnoName };

/** How a refused call fails: a plain gRPC status, or a domain error encoded as the service would. */
export type Failure =
  | { readonly kind: 'grpc'; readonly code: Exclude<GrpcCodeName, 'OK'>; readonly message?: string }
  | { readonly kind: 'domain'; readonly error: DomainFailure };

export type CrashPoint = 'BEFORE_COMMIT' | 'AFTER_COMMIT';

/** A rule's action (the FaultRule.action oneof). */
export type FaultAction =
  | { readonly kind: 'delay'; readonly fixedMs: number; readonly jitterMs: number }
  | { readonly kind: 'fail_before'; readonly failure: Failure }
  | { readonly kind: 'fail_after'; readonly code: LostReplyCode; readonly message?: string }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'corrupt'; readonly byteCount: number }
  | { readonly kind: 'reorder' }
  | { readonly kind: 'crash'; readonly point: CrashPoint }
  | { readonly kind: 'pause'; readonly durationMs: number }
  | { readonly kind: 'truncate'; readonly keepBytes: number };

/** FaultMatch: every property present must hold; absent ones match anything. */
export interface FaultMatch {
  readonly method?: string;
  readonly rmMessage?: string;
  readonly rmMessageId?: number;
  readonly callerVmid?: number;
  readonly nth?: number;
  readonly every?: number;
  readonly probability?: number;
  readonly afterOp?: number;
  readonly beforeOp?: number;
  /** Absent or 0 = unlimited. */
  readonly timesMax?: number;
}

export interface FaultRule {
  readonly id: string;
  readonly description?: string;
  readonly boundary: Boundary;
  readonly match: FaultMatch;
  readonly action: FaultAction;
}

export interface FaultPlan {
  readonly rules: readonly FaultRule[];
}

/** Limits (fault.proto): a plan is read by people; a delay or pause longer than 10 minutes is a hang. */
export const RULES_MAX = 256;
export const RULE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const DELAY_MS_MAX = 600_000;
export const PAUSE_MS_MAX = 600_000;
/** A msgq fragment is at most 240 bytes (gunyah-rm.md §1.3). */
export const CORRUPT_BYTES_MAX = 240;
/** A truncated fragment keeps fewer bytes than the 240 a fragment may have (§1.3). */
export const TRUNCATE_KEEP_BYTES_MAX = 239;
/** RMI status index is x0 bits [15:8] (stage2-models.md §B1). */
export const RMI_INDEX_MAX = 255;
export const U32_MAX = 0xffff_ffff;
