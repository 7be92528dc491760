/**
 * MEM_APPEND, gunyah-rm.md §3.3: handle u32, flags u8 (bit0 DONE, Linux "END"), reserved[3], SGL list.
 * The SGL list header must be there (a message under 12 bytes is MSG_INVALID, §3.1). Standard reply. Also the Linux sender's chunking of a parcel with more than 512 SGL entries (§3.2,
 * L23/L24 `gh_rm_mem_lend_common`/`gh_rm_mem_append`): the first 512 go in the create message with
 * the APPEND flag, the rest in MEM_APPEND chunks of ≤ 512 with END on the last.
 */
import { LIST_ENTRIES_MAX } from '../cursor.js';
import { layout, list, pad, u32, u8, type Infer } from '../layout.js';
import { emptyPayload, sglEntry, type SglEntry } from './entries.js';

/** §3.3 flags. */
export const APPEND_FLAGS = { DONE: 0x1 } as const;

export const memAppendRequest = layout('MEM_APPEND request', [u32('handle'), u8('flags'), pad(3), list('sgl', sglEntry, { required: true })]);
export type MemAppendRequest = Infer<typeof memAppendRequest>;
export const memAppendReply = emptyPayload('MEM_APPEND reply');

export interface SglChunks {
  /** The SGL entries of the create message (MEM_SHARE/LEND/DONATE). */
  readonly first: readonly SglEntry[];
  /** Whether the create message carries SHARE_FLAGS.APPEND (more entries follow). */
  readonly append: boolean;
  /** The MEM_APPEND messages that follow, in order; `done` only on the last. */
  readonly appends: readonly { readonly sgl: readonly SglEntry[]; readonly done: boolean }[];
}

/** How the Linux driver splits an SGL across a create message and MEM_APPENDs (§3.2). */
export function linuxSglChunks(sgl: readonly SglEntry[], entriesPerMessageMax: number = LIST_ENTRIES_MAX): SglChunks {
  const first = sgl.slice(0, entriesPerMessageMax);
  const appends: { sgl: SglEntry[]; done: boolean }[] = [];
  for (let at = entriesPerMessageMax; at < sgl.length; at += entriesPerMessageMax) {
    appends.push({ sgl: sgl.slice(at, at + entriesPerMessageMax), done: at + entriesPerMessageMax >= sgl.length });
  }
  return { first, append: appends.length > 0, appends };
}
