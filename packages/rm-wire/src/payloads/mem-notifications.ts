/**
 * Memory notifications, RM → client, gunyah-rm.md §2.2 and §3.7.
 * MEM_SHARED (RM `memparcel_notify_shared`): 20 bytes of fields, ACL list, region list of u64 sizes
 * only — no addresses, truncated to 512 by the RM (§3.7, §8.4) — and attr list.
 * MEM_RELEASED / MEM_ACCEPTED (to the owner): handle u32, vmid u16 (the borrower), pad u16,
 * mem_info_tag u32 — 12 bytes. MEM_RECALL (to borrowers): handle u32, mem_info_tag u32 — 8 bytes.
 */
import { layout, list, pad, u16, u32, u8, type Infer } from '../layout.js';
import { aclEntry, attrEntry, regionSizeEntry } from './entries.js';

/** §3.7 flags. */
export const MEM_SHARED_FLAGS = { SANITIZED: 0x1 } as const;

export const memSharedNotification = layout('MEM_SHARED notification', [
  u32('handle'),
  u8('memType'),
  u8('transType'),
  u8('flags'),
  pad(1),
  u16('ownerVmid'),
  pad(2),
  u32('label'),
  u32('memInfoTag'),
  list('acl', aclEntry),
  list('regions', regionSizeEntry),
  list('attrs', attrEntry),
]);
export type MemSharedNotification = Infer<typeof memSharedNotification>;

const borrowerNotification = (label: string) => layout(label, [u32('handle'), u16('vmid'), pad(2), u32('memInfoTag')]);
export const memReleasedNotification = borrowerNotification('MEM_RELEASED notification');
export const memAcceptedNotification = borrowerNotification('MEM_ACCEPTED notification');
export type MemBorrowerNotification = Infer<typeof memReleasedNotification>;

export const memRecallNotification = layout('MEM_RECALL notification', [u32('handle'), u32('memInfoTag')]);
export type MemRecallNotification = Infer<typeof memRecallNotification>;
