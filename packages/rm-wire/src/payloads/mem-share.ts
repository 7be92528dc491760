/**
 * MEM_SHARE / MEM_LEND / MEM_DONATE, gunyah-rm.md §3.2: one layout for all three (RM
 * `memparcel_construct`; Linux `gunyah_rm_mem_lend_common`). 8 bytes of fields, then the ACL, SGL
 * and attr lists: the spec's "20-byte fixed part" counts the three list headers. Linux always sends an
 * attr list with count 0. All three list headers must be there, so a message under 20 bytes is
 * MSG_INVALID (open RM `memparcel_read_lists` with the attr list required). Reply `[err][handle u32]`.
 */
import { layout, list, pad, u32, u8, type Infer } from '../layout.js';
import { aclEntry, attrEntry, handleReply, sglEntry } from './entries.js';

/** §3.2 flags. */
export const SHARE_FLAGS = { SANITIZE: 0x1, APPEND: 0x2 } as const;

const parcelCreateRequest = (label: string) =>
  layout(label, [
    u8('memType'),
    pad(1),
    u8('flags'),
    pad(1),
    u32('label'),
    list('acl', aclEntry, { required: true }),
    list('sgl', sglEntry, { required: true }),
    list('attrs', attrEntry, { required: true }),
  ]);

export const memShareRequest = parcelCreateRequest('MEM_SHARE request');
export const memLendRequest = parcelCreateRequest('MEM_LEND request');
export const memDonateRequest = parcelCreateRequest('MEM_DONATE request');
export type ParcelCreateRequest = Infer<typeof memShareRequest>;

export const memShareReply = handleReply('MEM_SHARE reply');
export const memLendReply = handleReply('MEM_LEND reply');
export const memDonateReply = handleReply('MEM_DONATE reply');
