/**
 * MEM_NOTIFY, gunyah-rm.md §3.6: handle u32, flags u8, reserved[3], mem_info_tag u32, then for
 * SHARED/RECALL a VMID list (u16 count, u16 reserved, {vmid u16, reserved u16} entries).
 * The codec does not look at the flags: the list is read when present and an absent list is empty
 * (§3.1), so RELEASED/ACCEPTED notifies are 12 bytes and an empty `vmids` is encoded by omitting the
 * list. Whether the flags are exactly one bit, and whether SHARED has ≥ 1 VMID, are RM checks
 * (ARGUMENT_INVALID), not wire errors. Standard reply.
 */
import { layout, list, pad, u32, u8, type Infer } from '../layout.js';
import { emptyPayload, vmidEntry } from './entries.js';

/** §3.6 flags: exactly one must be set. */
export const NOTIFY_FLAGS = { SHARED: 0x1, RELEASED: 0x2, ACCEPTED: 0x4, RECALL: 0x8 } as const;

export const memNotifyRequest = layout('MEM_NOTIFY request', [
  u32('handle'),
  u8('flags'),
  pad(3),
  u32('memInfoTag'),
  list('vmids', vmidEntry, { omitWhenEmpty: true }),
]);
export type MemNotifyRequest = Infer<typeof memNotifyRequest>;
export const memNotifyReply = emptyPayload('MEM_NOTIFY reply');
