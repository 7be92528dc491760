/**
 * The VM manager's two boundaries (DESIGN.md §1): `vmm → rm` is the host↔RM message queue, one
 * method per RM call the Linux VM manager makes (gunyah-rm.md §4.4) plus the two notifications it
 * listens to (VM_STATUS, VM_EXITED; §2.2); `vmm → core` is hypercalls and RMI calls, the address-space
 * management of seed 003 and the RMI commands of a realm's life (seed 004). Both are async: the
 * adapters are in-process (in-process.ts) or gRPC (services/vmm).
 *
 * Every RM call is made as HLOS (VMID 3), the VM manager's own VM; every core call as HOST, except
 * the borrower half of a demand-paged grant (mapGrant, unmapGrant), made as the guest.
 */
import type { CoreResult, RmOutcome, VmStatus } from '@hypmesh/rm';
import type { CallName, ReplyOf, RequestOf } from '@hypmesh/rm-wire';
import type { NoOutputs, Outputs, RealmParams, RmiError, RmiPort, Result } from '@hypmesh/stage2';
import type { FrameRun, RamMapView } from './host-pages.js';

type RmCall<N extends CallName> = (request: RequestOf<N>) => Promise<RmOutcome<ReplyOf<N>>>;

/**
 * What the VMM hears from the RM: a VM's new status, or its exit (§2.2, §4.3); and, from a
 * transport adapter, its msgq link going down or coming back (LINK). Notifications sent while the
 * link was down may be lost (an RM restart, a full queue), so a LINK up tells the VM manager to
 * re-read the RM's view of its VMs (vm-manager.ts resync).
 */
export type RmNotice =
  | { readonly kind: 'VM_STATUS'; readonly vmid: number; readonly status: VmStatus | 'UNKNOWN' }
  | { readonly kind: 'VM_EXITED'; readonly vmid: number; readonly exitType: number }
  | { readonly kind: 'LINK'; readonly up: boolean };

export interface RmPort {
  vmAllocate: RmCall<'VM_ALLOCATE'>;
  memLend: RmCall<'MEM_LEND'>;
  memShare: RmCall<'MEM_SHARE'>;
  memReclaim: RmCall<'MEM_RECLAIM'>;
  vmConfigImage: RmCall<'VM_CONFIG_IMAGE'>;
  vmSetDemandPaging: RmCall<'VM_SET_DEMAND_PAGING'>;
  vmSetAddressLayout: RmCall<'VM_SET_ADDRESS_LAYOUT'>;
  vmInit: RmCall<'VM_INIT'>;
  /** VM_SET_CONTEXT 0x56000031 (Linux VM_SET_BOOT_CONTEXT). */
  vmSetBootContext: RmCall<'VM_SET_CONTEXT'>;
  vmGetHypResources: RmCall<'VM_GET_HYP_RESOURCES'>;
  vmStart: RmCall<'VM_START'>;
  vmStop: RmCall<'VM_STOP'>;
  vmReset: RmCall<'VM_RESET'>;
  vmDeallocate: RmCall<'VM_DEALLOCATE'>;
  /** Calls `listener` for every VM_STATUS and VM_EXITED sent to HLOS, and every LINK change; returns an unsubscribe. */
  onNotice(listener: (n: RmNotice) => void): () => void;
}

/** RmPort method → RM message name (one table; both adapters are built from it). */
export const RM_PORT_CALLS = {
  vmAllocate: 'VM_ALLOCATE',
  memLend: 'MEM_LEND',
  memShare: 'MEM_SHARE',
  memReclaim: 'MEM_RECLAIM',
  vmConfigImage: 'VM_CONFIG_IMAGE',
  vmSetDemandPaging: 'VM_SET_DEMAND_PAGING',
  vmSetAddressLayout: 'VM_SET_ADDRESS_LAYOUT',
  vmInit: 'VM_INIT',
  vmSetBootContext: 'VM_SET_CONTEXT',
  vmGetHypResources: 'VM_GET_HYP_RESOURCES',
  vmStart: 'VM_START',
  vmStop: 'VM_STOP',
  vmReset: 'VM_RESET',
  vmDeallocate: 'VM_DEALLOCATE',
} as const satisfies Record<Exclude<keyof RmPort, 'onNotice'>, CallName>;

/**
 * Rule prefix of a refusal that is not the RM's: the message queue could not carry the call (the RM
 * is unreachable, the stream broke, no reply before the deadline). A transport adapter refuses such
 * a call with RM error BUSY and rule `msgq_<why>` (msgq_unavailable, msgq_timeout), since RmOutcome
 * has only RM codes; the VM manager reports it as EIO, as gunyah_rm_call returns the transport's
 * errno and no RM error.
 */
export const MSGQ_FAILED_RULE_PREFIX = 'msgq_';

/**
 * msgq failures whose request never left the VMM (no stream to the RM, the client closed): the RM
 * cannot have applied it, so its outcome is known, not in doubt (reconcile.ts asks nothing).
 */
export const MSGQ_NOT_SENT_RULES: ReadonlySet<string> = new Set([`${MSGQ_FAILED_RULE_PREFIX}not_sent`, `${MSGQ_FAILED_RULE_PREFIX}closed`]);

/** The msgq failure of a request sent and not answered in time: the RM may be stopped, not restarting. */
export const MSGQ_TIMEOUT_RULE = `${MSGQ_FAILED_RULE_PREFIX}timeout`;

/** One generic RM call (the msgq: any message ID with its payload). */
export type RmCaller = <N extends CallName>(name: N, request: RequestOf<N>) => Promise<RmOutcome<ReplyOf<N>>>;

/** An RmPort from one generic call function and a notification source. */
export function rmPortOver(call: RmCaller, onNotice: RmPort['onNotice']): RmPort {
  const port: Record<string, unknown> = { onNotice };
  for (const [method, name] of Object.entries(RM_PORT_CALLS)) port[method] = (req: never) => call(name, req);
  return port as unknown as RmPort;
}

type RmiResult<T> = Promise<Result<T, RmiError>>;

/**
 * The refusal rule of a core call whose outcome stayed unknown: the core was down, the deadline
 * passed or the reply was lost on every try (the gRPC adapter's keyed retries, @hypmesh/rpc
 * OUTCOME_UNKNOWN_RULE). The core may have applied it.
 */
export const CORE_OUTCOME_UNKNOWN_RULE = 'outcome_unknown';

/**
 * A demand-paged grant's type: LEND for a lend binding (the host loses access, L24's donate
 * "to-protected"), SHARE for a share binding (the host keeps it, "to-sibling"); gunyah-rm.md §4.4.
 */
export type DemandPagedGrantType = 'LEND' | 'SHARE';

/**
 * The core as the VMM uses it: seed 003's address-space management, the RMI (seed 004), and the
 * grants through which a GUNYAH VM's bindings reach its stage-2 directly, bypassing the RM (L24
 * demand paging, gunyah-rm.md §4.4 last bullet: memextent_donate + addrspace_map, vm_mgr_mem.c).
 *
 * Grant calls act as the side of the grant the domain checks (the core reads the caller VMID):
 * createGrant and destroyGrant as HOST, the owner of the bound memory; mapGrant and unmapGrant as
 * the guest, the borrower. The VMM may act for its guest because it is the host kernel driving the
 * hypercalls of a VM it created: in L24 Linux holds the guest's address-space and memextent
 * capabilities (GET_HYP_RESOURCES) and calls addrspace_map/unmap on them itself; the guest takes no
 * part. Ranges are frames (address >> 12): the host's identity map (IPA = PA) for createGrant, the
 * guest's IPA space for mapGrant, filled in grant order. Rights are the Gunyah ACL bits (X=1, W=2,
 * R=4), which are also the core's.
 */
export interface CorePort extends RmiPort {
  /** GetMemoryMap: the core's RAM regions and HYP's carve-out, so the VMM can place its donation region. */
  memoryMap(): Promise<CoreResult<RamMapView>>;
  // No create or destroy of a GUNYAH VM's stage-2: VM_ALLOCATE / VM_DEALLOCATE do that (gunyah-rm.md §4.2).
  topUpTablePool(vmid: number, frames: readonly FrameRun[]): Promise<CoreResult<{ readonly poolPages: number }>>;
  drainTablePool(vmid: number, maxPages: number): Promise<CoreResult<{ readonly returnedPages: number; readonly poolPages: number }>>;
  realmCreate(rd: number, params: RealmParams): RmiResult<NoOutputs>;
  realmActivate(rd: number): RmiResult<NoOutputs>;
  dataCreate(rd: number, data: number, ipa: number, src: number, flags: number): RmiResult<Outputs>;
  rttInitRipas(rd: number, base: number, top: number): RmiResult<Outputs>;
  /** CreateGrant as HOST: the host's `ranges` to an ACL (the guest, with the binding's rights). */
  createGrant(a: { readonly type: DemandPagedGrantType; readonly ranges: readonly FrameRun[]; readonly acl: readonly { readonly vmid: number; readonly perms: number }[] }): Promise<CoreResult<{ readonly grantId: number }>>;
  /** MapGrant as `borrower` (the guest): at the guest frames `ranges`, with `perms`. */
  mapGrant(a: { readonly grantId: number; readonly borrower: number; readonly perms: number; readonly ranges: readonly FrameRun[] }): Promise<CoreResult<void>>;
  /** UnmapGrant as `borrower` (the guest). */
  unmapGrant(a: { readonly grantId: number; readonly borrower: number }): Promise<CoreResult<void>>;
  /** DestroyGrant as HOST: the host takes the memory back (refused while the guest maps it). */
  destroyGrant(a: { readonly grantId: number }): Promise<CoreResult<void>>;
}
