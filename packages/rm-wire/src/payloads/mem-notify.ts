/**
 * MEM_NOTIFY, gunyah-rm.md §3.6: handle u32, flags u8, reserved[3], mem_info_tag u32, then for
 * SHARED/RECALL a VMID list (u16 count, u16 reserved, {vmid u16, reserved u16} entries).
 * The list is read when present and an absent list is empty (§3.1), so RELEASED/ACCEPTED notifies
 * are 12 bytes. For SHARED and RECALL, which need the list, its absence is kept (`vmidListAbsent`), and
 * the RM answers its absence MSG_INVALID (open RM `memparcel_notify_shared`), while a present list
 * with 0 entries is ARGUMENT_INVALID. The encoder writes the list for SHARED/RECALL (even empty)
 * unless `vmidListAbsent`, and for other flags only when it has entries. Whether the flags are
 * exactly one bit is an RM check (ARGUMENT_INVALID), not a wire error. Standard reply.
 */
import { err, ok } from '../result.js';
import { layout, list, pad, u32, u8, type Codec, type Infer } from '../layout.js';
import { emptyPayload, vmidEntry } from './entries.js';

/** §3.6 flags: exactly one must be set. */
export const NOTIFY_FLAGS = { SHARED: 0x1, RELEASED: 0x2, ACCEPTED: 0x4, RECALL: 0x8 } as const;

/** The field table (without the absent-list marker), for tests that draw values from it. */
export const memNotifyLayout = layout('MEM_NOTIFY request', [u32('handle'), u8('flags'), pad(3), u32('memInfoTag'), list('vmids', vmidEntry)]);
/** The 12 bytes before the VMID list. */
const NOTIFY_FIXED_BYTES = 12;

export type MemNotifyRequest = Infer<typeof memNotifyLayout> & {
  /** The message ended before the VMID list header (decoded only; SHARED/RECALL need the list). */
  readonly vmidListAbsent?: boolean;
};

const needsList = (flags: number): boolean => flags === NOTIFY_FLAGS.SHARED || flags === NOTIFY_FLAGS.RECALL;

export const memNotifyRequest: Codec<MemNotifyRequest> = {
  label: memNotifyLayout.label,
  encode(v) {
    const full = memNotifyLayout.encode({ handle: v.handle, flags: v.flags, memInfoTag: v.memInfoTag, vmids: v.vmids });
    const omit = v.vmids.length === 0 && (v.vmidListAbsent === true || !needsList(v.flags));
    return omit ? full.subarray(0, NOTIFY_FIXED_BYTES) : full;
  },
  decode(bytes) {
    const d = memNotifyLayout.decode(bytes);
    if (!d.ok) return err(d.error);
    return ok(bytes.length <= NOTIFY_FIXED_BYTES && needsList(d.value.flags) ? { ...d.value, vmidListAbsent: true } : d.value);
  },
};
export const memNotifyReply = emptyPayload('MEM_NOTIFY reply');
