/**
 * Guest memory bindings, the L24 guest_memfd model (gunyah-rm.md §5.3, GUNYAH_VM_MAP_MEM): host
 * memory bound at a guest address, lent (the default: "RM requires all VMs to be protected") or
 * shared, with R/W/X rights. Host memory is named by its physical address (standing in for a
 * guest_memfd and offset). Also the DTB config (GUNYAH_VM_SET_DTB_CONFIG) and boot context
 * (GUNYAH_VM_SET_BOOT_CONTEXT) checks. Pure: each check returns the first failure, in this order:
 *
 *   bind:   rights_missing, rights_invalid (EINVAL) → size_zero, unaligned (EINVAL) →
 *           guest_overflow (EOVERFLOW) → guest_out_of_range, host_reserved (EINVAL) →
 *           host_bound (EEXIST: a guest_memfd range binds once) → guest_overlap (EEXIST)
 *   unmap:  unaligned (EINVAL) → no_binding (ENOENT: no binding with these flags and offset holds
 *           the range) → middle_split (EINVAL: only head or tail trimming)
 */
import { PAGE_BYTES } from './host-pages.js';
import { vmmFail, vmmOk, type VmmResult } from './vmm-error.js';

export type BindMode = 'LEND' | 'SHARE';
/** Gunyah ACL rights bits (§3.1): X=1, W=2, R=4. */
export const RIGHTS = { X: 1, W: 2, R: 4 } as const;
const RIGHTS_ALL = RIGHTS.R | RIGHTS.W | RIGHTS.X;
const PAGE = BigInt(PAGE_BYTES);
const U64_LIMIT = 1n << 64n;

export interface Binding {
  readonly guestAddr: bigint;
  readonly hostAddr: bigint;
  readonly sizeBytes: bigint;
  readonly mode: BindMode;
  readonly rights: number;
}

const overlaps = (a: bigint, as: bigint, b: bigint, bs: bigint): boolean => a < b + bs && b < a + as;

export interface BindContext {
  readonly ipaBits: number;
  /** Host ranges the VMM keeps for itself (its donation region). */
  readonly hostReserved: (addr: bigint, size: bigint) => boolean;
  /** Whether a binding of any VM holds host range [addr, addr + size) (a guest_memfd range binds once). */
  readonly hostBound: (addr: bigint, size: bigint) => boolean;
}

/** Whether a binding in `bindings` holds host range [addr, addr + size). */
export const holdsHost = (bindings: Iterable<Binding>, addr: bigint, size: bigint): boolean => {
  for (const o of bindings) if (overlaps(o.hostAddr, o.sizeBytes, addr, size)) return true;
  return false;
};

/** GUNYAH_VM_MAP_MEM without UNMAP: the new binding, or the first rule it breaks. */
export function checkBind(vmBindings: readonly Binding[], b: Binding, ctx: BindContext): VmmResult<Binding> {
  if ((b.rights & RIGHTS_ALL) === 0) return vmmFail('EINVAL', 'rights_missing', 'at least one of ALLOW_READ/WRITE/EXEC is required');
  if ((b.rights & ~RIGHTS_ALL) !== 0) return vmmFail('EINVAL', 'rights_invalid', `rights 0x${b.rights.toString(16)} has bits beyond R/W/X`);
  if (b.sizeBytes === 0n) return vmmFail('EINVAL', 'size_zero', 'size must not be 0');
  if (b.guestAddr % PAGE !== 0n || b.hostAddr % PAGE !== 0n || b.sizeBytes % PAGE !== 0n) return vmmFail('EINVAL', 'unaligned', 'guest address, host address and size must be 4 KiB aligned');
  if (b.guestAddr + b.sizeBytes > U64_LIMIT || b.hostAddr + b.sizeBytes > U64_LIMIT) return vmmFail('EOVERFLOW', 'guest_overflow', 'address + size overflows 64 bits');
  if (b.guestAddr + b.sizeBytes > 1n << BigInt(ctx.ipaBits)) return vmmFail('EINVAL', 'guest_out_of_range', `the range leaves the VM's ${ctx.ipaBits}-bit IPA space`);
  if (ctx.hostReserved(b.hostAddr, b.sizeBytes)) return vmmFail('EINVAL', 'host_reserved', "the host range lies in the VMM's donation region");
  if (ctx.hostBound(b.hostAddr, b.sizeBytes)) return vmmFail('EEXIST', 'host_bound', 'the host range is already bound');
  if (vmBindings.some((o) => overlaps(o.guestAddr, o.sizeBytes, b.guestAddr, b.sizeBytes))) return vmmFail('EEXIST', 'guest_overlap', 'the guest range overlaps a binding');
  return vmmOk(b);
}

/** GUNYAH_VM_MAP_MEM with UNMAP: the VM's bindings after trimming, or the first rule it breaks. */
export function applyUnmap(vmBindings: readonly Binding[], u: Binding): VmmResult<Binding[]> {
  if (u.sizeBytes === 0n || u.guestAddr % PAGE !== 0n || u.hostAddr % PAGE !== 0n || u.sizeBytes % PAGE !== 0n)
    return vmmFail('EINVAL', 'unaligned', 'guest address, host address and size must be 4 KiB aligned and non-zero');
  const end = u.guestAddr + u.sizeBytes;
  const i = vmBindings.findIndex(
    (b) => b.mode === u.mode && b.rights === u.rights && b.guestAddr <= u.guestAddr && end <= b.guestAddr + b.sizeBytes && u.hostAddr - b.hostAddr === u.guestAddr - b.guestAddr,
  );
  if (i < 0) return vmmFail('ENOENT', 'no_binding', 'no binding with these flags and offset holds the range');
  const b = vmBindings[i]!;
  const head = u.guestAddr === b.guestAddr;
  const tail = end === b.guestAddr + b.sizeBytes;
  if (!head && !tail) return vmmFail('EINVAL', 'middle_split', 'only the head or the tail of a binding can be unmapped');
  const rest = [...vmBindings];
  if (head && tail) rest.splice(i, 1);
  else if (head) rest[i] = { ...b, guestAddr: end, hostAddr: b.hostAddr + u.sizeBytes, sizeBytes: b.sizeBytes - u.sizeBytes };
  else rest[i] = { ...b, sizeBytes: b.sizeBytes - u.sizeBytes };
  return vmmOk(rest);
}

/** GUNYAH_VM_SET_DTB_CONFIG: guest_phys_addr + size must not overflow (-EOVERFLOW). */
export function checkDtb(guestAddr: bigint, sizeBytes: bigint): VmmResult<{ guestAddr: bigint; sizeBytes: bigint }> {
  if (guestAddr + sizeBytes >= U64_LIMIT) return vmmFail('EOVERFLOW', 'dtb_overflow', 'guest_phys_addr + size overflows 64 bits');
  return vmmOk({ guestAddr, sizeBytes });
}

export type RegSet = 'X' | 'PC' | 'SP';
/** reg_set numbers (§4.2 VM_SET_BOOT_CONTEXT) and the highest index Linux accepts (§5.3). */
export const REG_SETS: Readonly<Record<RegSet, { readonly wire: number; readonly indexMax: number }>> = {
  X: { wire: 0, indexMax: 31 },
  PC: { wire: 1, indexMax: 0 },
  SP: { wire: 2, indexMax: 2 },
};

/** GUNYAH_VM_SET_BOOT_CONTEXT: before start only, X ≤ 31, PC 0, SP ≤ 2 (else -EINVAL). */
export function checkBootContext(started: boolean, set: RegSet, index: number): VmmResult<string> {
  if (started) return vmmFail('EINVAL', 'vm_started', 'the boot context is set before start only');
  const r = REG_SETS[set];
  if (!Number.isInteger(index) || index < 0 || index > r.indexMax) return vmmFail('EINVAL', 'reg_index_invalid', `${set} index ${index} (0..${r.indexMax})`);
  return vmmOk(`${set}:${index}`);
}
