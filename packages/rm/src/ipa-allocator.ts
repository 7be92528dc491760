/**
 * Per-VM IPA allocation (open RM `vm_ipa.c` / `address_range_allocator`; gunyah-rm.md §3.4 "IPA
 * allocation failure [NORESOURCE]"). Every range of a VM's IPA space that is in use is recorded,
 * with who holds it, so an RM-chosen IPA never lands on memory the guest already has and a
 * caller-given IPA in use is refused before any core call.
 *
 * Holders (`IpaHolder`) and when their ranges are freed:
 *   accepted  a parcel the VM accepted (or recorded IPAs for, without DONE): freed on MEM_RELEASE,
 *             on MEM_RECLAIM of a parcel it only recorded IPAs for, and on VM reset.
 *   donated   a DONATE parcel the VM accepted: the parcel is gone but the memory stays the VM's, so
 *             the range stays in use (until the VM is reset).
 *   layout    VM_SET_ADDRESS_LAYOUT / VM_SET_DEMAND_PAGING ranges: the VMM maps its bindings there
 *             without the RM, so the RM must never place a parcel on them. Kept until replaced.
 * HLOS has no allocator: its stage-2 is an identity map and it accepts at IPA = PA (§4.1).
 *
 * Ranges are bytes, 4 KiB aligned, below the VM's IPA limit. First fit from the bottom of the
 * space; a range of 2 MiB or more is 2 MiB aligned, as the open RM's allocator aligns it.
 */

export type IpaHolder = { readonly kind: 'accepted' | 'donated'; readonly handle: number } | { readonly kind: 'layout'; readonly id: string };

export interface IpaRange {
  readonly base: bigint;
  readonly size: bigint;
}

interface Held extends IpaRange {
  readonly holder: IpaHolder;
}

const SIZE_2M = 2n << 20n;
const PAGE = 4096n;
const sameHolder = (a: IpaHolder, b: IpaHolder): boolean =>
  a.kind === b.kind && (a.kind === 'layout' ? a.id === (b as { id: string }).id : a.handle === (b as { handle: number }).handle);

export class IpaAllocator {
  /** In-use ranges, sorted by base, never overlapping. */
  private held: Held[] = [];

  constructor(
    /** The VM's IPA space: [base, base + size). */
    readonly space: IpaRange,
  ) {}

  /**
   * Whether [base, base + size) lies in the space and overlaps nothing in use. With `within` of kind
   * layout, the VMM's layout ranges do not count: they may overlap each other (the DTB parcel is in
   * a demand-paged binding and the IMAGE layout alike, §4.4), and a boot parcel goes inside the
   * layout range reserved for it (§4.2); only parcels' ranges then conflict.
   */
  isFree(base: bigint, size: bigint, within?: IpaHolder): boolean {
    if (base < this.space.base || base + size > this.space.base + this.space.size) return false;
    const ignored = (h: Held): boolean => within !== undefined && (sameHolder(h.holder, within) || (within.kind === 'layout' && h.holder.kind === 'layout'));
    return !this.held.some((h) => h.base < base + size && base < h.base + h.size && !ignored(h));
  }

  /** Records [base, base + size) for `holder`; the caller proved it free (isFree). */
  take(base: bigint, size: bigint, holder: IpaHolder, within?: IpaHolder): void {
    if (!this.isFree(base, size, within)) throw new Error(`bug: IPA 0x${base.toString(16)}+0x${size.toString(16)} is not free`);
    this.held.push({ base, size, holder });
    this.held.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
  }

  /** First free range of `size` bytes (2 MiB aligned from 2 MiB up), or undefined when none is left. */
  find(size: bigint): bigint | undefined {
    const align = size >= SIZE_2M ? SIZE_2M : PAGE;
    const up = (a: bigint): bigint => ((a + align - 1n) / align) * align;
    let at = up(this.space.base);
    for (const h of this.held) {
      if (h.base >= at + size) break;
      if (h.base + h.size > at) at = up(h.base + h.size);
    }
    return at + size <= this.space.base + this.space.size ? at : undefined;
  }

  /** Frees every range `holder` holds. */
  free(holder: IpaHolder): void {
    this.held = this.held.filter((h) => !sameHolder(h.holder, holder));
  }

  /** Frees every range held for parcels (accepted and donated): the VM's memory is gone (reset). */
  freeParcels(): void {
    this.held = this.held.filter((h) => h.holder.kind === 'layout');
  }

  /** The ranges in use, to put back with `restore` if a later step is refused. */
  save(): readonly Held[] {
    return [...this.held];
  }

  restore(saved: readonly Held[]): void {
    this.held = [...saved];
  }

  /** Ranges in use, in address order (snapshots, tests). */
  ranges(): readonly Held[] {
    return this.held;
  }
}
