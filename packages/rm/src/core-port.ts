/**
 * The RM's only way to change stage-2 state: the core's grants (DESIGN.md §3 "All stage-2 effects
 * go through core grants"). A parcel is exactly one core grant: created with the first SGL chunk,
 * extended by each MEM_APPEND while nobody maps it, mapped on ACCEPT, unmapped on RELEASE and
 * destroyed on RECLAIM. Each of those is one atomic core call, so a refused call leaves nothing
 * behind in either service; a call whose outcome is unknown is settled by the same call again,
 * which the gRPC port sends with the same request id (refusal rule `outcome_unknown`).
 *
 * Ranges are frames (address >> 12) of the acting VM's IPA space; rights use the Gunyah ACL bits
 * (X=1, W=2, R=4), which are also the core's. Implementations: `inProcessCore` below (tests,
 * embedded mode) and the gRPC client in services/rm.
 *
 * Create and append return the grant's physical runs (PA frames, merged where physically
 * contiguous): they are the parcel's regions (gunyah-rm.md §3.2 "split into physically-contiguous
 * regions", §3.7) and where HLOS, identity-mapped, maps what it accepts (§4.1). A create names the
 * memory type, so the core refuses RAM for an IO parcel and MMIO for a NORMAL one (§3.2).
 *
 * The VM's stage-2 itself is the RM's to make, as the real RM has the hypervisor create a VM's
 * address space at VM_ALLOCATE (gunyah-rm.md §4.2): `createVmSpace` and `destroyVmSpace` act as the
 * RM (VMID 0xFF), and the core builds the space from HYP's boot reservation, so a client that only
 * talks to the RM can name the new VM in an ACL at once. The host may top its pool up later.
 */

export type GrantKind = 'SHARE' | 'LEND' | 'DONATE';
/** The memory a grant's ranges must be: NORMAL = RAM (mem_type NORMAL), DEVICE = MMIO (mem_type IO). */
export type GrantMemoryKind = 'NORMAL' | 'DEVICE';

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

/**
 * A core call's request id (`x-hypmesh-request-id`): given by a durable RM, which records the call
 * as an intent under this id before making it (intents.ts), so that the same call after a restart
 * is answered with the first outcome. Without one the port keys the call itself.
 */
export interface Keyed {
  readonly requestId?: string;
}

export interface CoreGrantPort {
  createGrant(a: {
    readonly owner: number;
    readonly type: GrantKind;
    readonly memoryType: GrantMemoryKind;
    readonly ranges: readonly FrameRun[];
    readonly acl: readonly { readonly vmid: number; readonly perms: number }[];
  } & Keyed): Promise<CoreResult<{ readonly grantId: number; readonly physRuns: readonly FrameRun[] }>>;
  /** Extends a grant; returns the whole grant's physical runs after the append. */
  appendGrant(a: { readonly grantId: number; readonly owner: number; readonly ranges: readonly FrameRun[] } & Keyed): Promise<CoreResult<{ readonly physRuns: readonly FrameRun[] }>>;
  mapGrant(a: {
    readonly grantId: number;
    readonly borrower: number;
    readonly perms: number;
    readonly ranges: readonly FrameRun[];
  } & Keyed): Promise<CoreResult<void>>;
  unmapGrant(a: { readonly grantId: number; readonly borrower: number } & Keyed): Promise<CoreResult<void>>;
  destroyGrant(a: { readonly grantId: number; readonly owner: number } & Keyed): Promise<CoreResult<void>>;
  /** The VM's empty stage-2, made by the RM from HYP's reservation (an unused one it made before is kept). */
  createVmSpace(a: { readonly vmid: number; readonly ipaBits: number } & Keyed): Promise<CoreResult<void>>;
  /** Tears the VM's stage-2 down; the core refuses while it maps memory or a grant names it. */
  destroyVmSpace(a: { readonly vmid: number } & Keyed): Promise<CoreResult<void>>;
}
