/**
 * VMIDs the RM knows (gunyah-rm.md §4.1): HYP 0, HLOS 3, RM 0xFF, the dynamic range 0x80–0xBE it
 * hands out, and platform secondary VMs (< 64) a configuration may name for explicit allocation.
 */

export const VMID_HYP = 0x0;
export const VMID_HLOS = 0x3;
export const VMID_RM = 0xff;
export const VMID_DYNAMIC_FIRST = 0x80;
/** Last dynamic VMID: a 63-bit mask from 0x80, so 0xBF is excluded (§4.1). */
export const VMID_DYNAMIC_LAST = 0xbe;
/** Explicit VMIDs must be below this (§4.2 VM_ALLOCATE). */
export const VMID_EXPLICIT_LIMIT = 64;

export interface RmConfig {
  /** Platform secondary VMIDs (< 64) that VM_ALLOCATE may be asked for explicitly. */
  readonly platformVmids: readonly number[];
  /** Parcels one owner VM may hold (§3.1 MAX_MEMPARCEL_PER_VM). */
  readonly parcelsPerVmMax: number;
  /**
   * A VM's IPA space, bytes: the RM allocates parcel IPAs anywhere in it (open RM `vm_ipa.c`),
   * avoiding what is in use (ipa-allocator.ts). Default 2^40, the VMM's guests' ipa_bits.
   */
  readonly ipaWindow: { readonly base: bigint; readonly size: bigint };
}

export const DEFAULT_RM_CONFIG: RmConfig = {
  platformVmids: [],
  parcelsPerVmMax: 64,
  ipaWindow: { base: 0n, size: 1n << 40n },
};

export class VmidAllocator {
  private readonly used = new Set<number>();

  constructor(private readonly config: RmConfig) {}

  isAllocated(vmid: number): boolean {
    return this.used.has(vmid);
  }

  /** The lowest free dynamic VMID, or undefined when all 63 are in use. */
  nextDynamic(): number | undefined {
    return this.freeDynamic()[0];
  }

  /** Every free dynamic VMID, lowest first. */
  freeDynamic(): number[] {
    const free: number[] = [];
    for (let v = VMID_DYNAMIC_FIRST; v <= VMID_DYNAMIC_LAST; v++) if (!this.used.has(v)) free.push(v);
    return free;
  }

  /** Whether an explicit request for `vmid` can be granted (a free platform secondary VMID). */
  explicitAllowed(vmid: number): boolean {
    return vmid < VMID_EXPLICIT_LIMIT && this.config.platformVmids.includes(vmid) && !this.used.has(vmid);
  }

  take(vmid: number): void {
    this.used.add(vmid);
  }

  release(vmid: number): void {
    this.used.delete(vmid);
  }
}
