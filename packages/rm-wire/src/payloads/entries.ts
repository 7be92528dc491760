/**
 * The list entries and small structs shared by many payloads (gunyah-rm.md §3.1, §4.2), and the
 * spec's enumerations for their fields. Field values are carried as numbers: checking them
 * (valid rights, known attrs) is the RM's job, with the RM's error codes, not the codec's.
 */
import { layout, pad, u16, u32, u64, u8, type Infer } from '../layout.js';

/** ACL entry, 4 bytes (§3.1): vmid u16, rights u8, reserved u8. */
export const aclEntry = layout('ACL entry', [u16('vmid'), u8('rights'), pad(1)]);
export type AclEntry = Infer<typeof aclEntry>;

/** SGL entry, 16 bytes (§3.1): base u64 (owner's IPA; Linux passes the host PA), size u64. */
export const sglEntry = layout('SGL entry', [u64('base'), u64('size')]);
export type SglEntry = Infer<typeof sglEntry>;

/** Attr entry, 4 bytes (§3.1): attr u16, vmid u16. */
export const attrEntry = layout('attr entry', [u16('attr'), u16('vmid')]);
export type AttrEntry = Infer<typeof attrEntry>;

/** VMID list entry of MEM_NOTIFY, 4 bytes (§3.6): vmid u16, reserved u16. */
export const vmidEntry = layout('VMID entry', [u16('vmid'), pad(2)]);
export type VmidEntry = Infer<typeof vmidEntry>;

/** Region entry of the MEM_SHARED notification (§3.7): a size only, no address. */
export const regionSizeEntry = layout('region size', [u64('size')]);
export type RegionSizeEntry = Infer<typeof regionSizeEntry>;

/** "vmid req" (§4.2): vmid u16 + reserved u16, exactly 4 bytes. */
export const vmidReq = (label: string) => layout(label, [u16('vmid'), pad(2)]);
export type VmidReq = Infer<ReturnType<typeof vmidReq>>;

/** A reply with no data after the error word (§1.4 "standard reply"). */
export const emptyPayload = (label: string) => layout(label, []);
export type Empty = Infer<ReturnType<typeof emptyPayload>>;

/** A reply carrying a parcel handle, `[err][handle u32]` (§3.2, §3.8). */
export const handleReply = (label: string) => layout(label, [u32('handle')]);
export type HandleReply = Infer<ReturnType<typeof handleReply>>;

/** ACL rights bits (§3.1; Linux GUNYAH_RM_ACL_X/W/R = bits 0/1/2). Valid sets: R, RX, RW, RWX. */
export const ACL_RIGHTS = { X: 0x1, W: 0x2, R: 0x4 } as const;
/** mem_type (§3.1). */
export const MEM_TYPE = { NORMAL: 0, IO: 1 } as const;
/** trans_type (§3.1). */
export const TRANS_TYPE = { DONATE: 0, LEND: 1, SHARE: 2 } as const;
/** Attr values (§3.1). */
export const MEM_ATTR = { NORMAL: 0, DEVICE: 1, UNCACHED: 2, CACHED: 3 } as const;
/** The invalid parcel handle (§3.1, RM `MEMPARCEL_INVALID_HANDLE`, Linux `GUNYAH_MEM_HANDLE_INVAL`). */
export const MEM_HANDLE_INVALID = 0xffff_ffff;
/** Page size for parcel addresses and sizes (§3.1, `build.conf PAGE_BITS=12`). */
export const PAGE_SIZE_BYTES = 4096;
