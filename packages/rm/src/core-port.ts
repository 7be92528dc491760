/**
 * The RM's only way to change stage-2 state: the core's grants (DESIGN.md §3 "All stage-2 effects
 * go through core grants"). A parcel is exactly one core grant: created with the first SGL chunk,
 * extended by each MEM_APPEND while nobody maps it, mapped on ACCEPT, unmapped on RELEASE and
 * destroyed on RECLAIM. Each of those is one atomic core call, so a refused call leaves nothing
 * behind in either service.
 *
 * Ranges are frames (address >> 12) of the acting VM's IPA space; rights use the Gunyah ACL bits
 * (X=1, W=2, R=4), which are also the core's. Implementations: `inProcessCore` below (tests,
 * embedded mode) and the gRPC client in services/rm.
 */

export type GrantKind = 'SHARE' | 'LEND' | 'DONATE';

export interface FrameRun {
  readonly base: number;
  readonly count: number;
}

/** A core refusal: the errno name and the rule that fired (core_service.proto ErrorDetail). */
export interface CoreRefusal {
  readonly errno: string;
  readonly rule: string;
  readonly message: string;
}

export type CoreResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: CoreRefusal };

export interface CoreGrantPort {
  createGrant(a: {
    readonly owner: number;
    readonly type: GrantKind;
    readonly ranges: readonly FrameRun[];
    readonly acl: readonly { readonly vmid: number; readonly perms: number }[];
  }): Promise<CoreResult<{ readonly grantId: number }>>;
  appendGrant(a: { readonly grantId: number; readonly owner: number; readonly ranges: readonly FrameRun[] }): Promise<CoreResult<void>>;
  mapGrant(a: {
    readonly grantId: number;
    readonly borrower: number;
    readonly perms: number;
    readonly ranges: readonly FrameRun[];
  }): Promise<CoreResult<void>>;
  unmapGrant(a: { readonly grantId: number; readonly borrower: number }): Promise<CoreResult<void>>;
  destroyGrant(a: { readonly grantId: number; readonly owner: number }): Promise<CoreResult<void>>;
}
