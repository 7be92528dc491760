/**
 * Units and identities of the stage-2 core.
 *
 * Frame numbers are branded numbers, not bigints: a 52-bit physical address has a 40-bit PFN, exact
 * in a double, and number arithmetic is far cheaper on the hot paths. Byte addresses below 2^53 are
 * also exact; the gRPC boundary converts from uint64 and rejects anything wider.
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Physical frame number: physical address >> 12. */
export type Pfn = Brand<number, 'Pfn'>;
/** Guest frame number: intermediate physical address >> 12, in one address space. */
export type Gfn = Brand<number, 'Gfn'>;
/** Physical byte address. */
export type Pa = Brand<number, 'Pa'>;
/** Intermediate physical (guest) byte address. */
export type Ipa = Brand<number, 'Ipa'>;
/** VM identifier as the Resource Manager allocates it (gunyah-rm.md §4.1). */
export type Vmid = Brand<number, 'Vmid'>;

export const pfn = (n: number): Pfn => n as Pfn;
export const gfn = (n: number): Gfn => n as Gfn;
export const vmid = (n: number): Vmid => n as Vmid;

export const GRANULE_SHIFT = 12;
/** The 4 KiB translation granule, the unit of ownership (stage2-models.md §A2, §B4). */
export const GRANULE_SIZE = 1 << GRANULE_SHIFT;

/** Fixed VMIDs of the split hypervisor (DESIGN.md §2, gunyah-rm.md §4.1). */
export const VMID_HYP = vmid(0);
export const VMID_HOST = vmid(3);
export const VMID_RM = vmid(0xff);
/** First and last VMID the RM hands out dynamically. */
export const VMID_DYNAMIC_FIRST = vmid(0x80);
export const VMID_DYNAMIC_LAST = vmid(0xbe);
export const VMID_MAX = 0xffff;

export const vmidName = (v: Vmid): string =>
  v === VMID_HYP ? 'HYP' : v === VMID_HOST ? 'HOST' : v === VMID_RM ? 'RM' : `VM${v.toString(16).padStart(2, '0')}`;

/**
 * Access rights as bit flags, in the real encodings: Linux `enum kvm_pgtable_prot` (X = BIT(0),
 * W = BIT(1), R = BIT(2)) and the Gunyah ACL rights byte (gunyah-rm.md §3.1: X=1, W=2, R=4).
 */
export const PERM_X = 1;
export const PERM_W = 2;
export const PERM_R = 4;
export const PERM_RWX = PERM_R | PERM_W | PERM_X;
export const PERM_RW = PERM_R | PERM_W;
export type Perms = number;

export const permsWithin = (p: Perms, limit: Perms): boolean => (p & ~limit) === 0;
export const permsString = (p: Perms): string =>
  `${p & PERM_R ? 'R' : '-'}${p & PERM_W ? 'W' : '-'}${p & PERM_X ? 'X' : '-'}`;

/** A run of granules: [base, base + count). */
export interface FrameRange<F extends number = Pfn> {
  readonly base: F;
  readonly count: number;
}

export const isGranuleAligned = (addr: number): boolean => addr % GRANULE_SIZE === 0;
export const addrToFrame = (addr: number): number => Math.floor(addr / GRANULE_SIZE);
export const frameToAddr = (frame: number): number => frame * GRANULE_SIZE;
