/**
 * MEM_RELEASE (borrower) and MEM_RECLAIM (owner), gunyah-rm.md §3.5: handle u32, flags u8
 * (bit0 SANITIZE, "clear"), reserved[3] — exactly 8 bytes. Standard reply. Linux L24 sends RECLAIM
 * in this layout with flags 0.
 */
import { layout, pad, u32, u8, type Infer } from '../layout.js';
import { emptyPayload } from './entries.js';

/** §3.5 flags. */
export const RELEASE_FLAGS = { SANITIZE: 0x1 } as const;

export const memReleaseRequest = layout('MEM_RELEASE request', [u32('handle'), u8('flags'), pad(3)]);
export const memReclaimRequest = layout('MEM_RECLAIM request', [u32('handle'), u8('flags'), pad(3)]);
export type MemReleaseRequest = Infer<typeof memReleaseRequest>;
export const memReleaseReply = emptyPayload('MEM_RELEASE reply');
export const memReclaimReply = emptyPayload('MEM_RECLAIM reply');
