/**
 * MEM_ACCEPT, gunyah-rm.md §3.4 (RM `memparcel_do_accept`; QCV `gh_rm_mem_accept`).
 * Request: 12 bytes of fields, ACL list, SGL list whose second half-word is map_vmid (must be 0,
 * checked by the RM, not here), attr list: the "24-byte fixed part" counts the list headers, and
 * all three must be present (shorter ⇒ MSG_INVALID list_header_missing, §3.1).
 * Reply: standard (no data) when the request named its IPAs; when its SGL count was 0 the RM chose
 * them and replies `[sgl_count u16][flags u8: bit0 INCOMPLETE][reserved u8][sgl entries]`, ≤ 512 per
 * reply; INCOMPLETE means call again for more. The two reply shapes are told apart by length: the
 * RM-chosen form is never empty (it has at least its 4-byte list header).
 */
import { err, ok } from '../result.js';
import { Reader, Writer } from '../cursor.js';
import { layout, list, listWithSecond, pad, u32, u8, type Codec, type Infer } from '../layout.js';
import { aclEntry, attrEntry, sglEntry, type SglEntry } from './entries.js';

/** §3.4 request flags. */
export const ACCEPT_FLAGS = {
  VALIDATE_SANITIZED: 0x01,
  VALIDATE_ACL_ATTR: 0x02,
  VALIDATE_LABEL: 0x04,
  MAP_OTHER: 0x08,
  MAP_CONTIGUOUS: 0x10,
  SANITIZE: 0x20,
  DONE: 0x80,
} as const;

/** §3.4 reply flags (low byte of the reply list's second half-word). */
export const ACCEPT_REPLY_FLAGS = { INCOMPLETE: 0x01 } as const;

export const memAcceptRequest = layout('MEM_ACCEPT request', [
  u32('handle'),
  u8('memType'),
  u8('transType'),
  u8('flags'),
  pad(1),
  u32('label'),
  list('acl', aclEntry, { required: true }),
  listWithSecond('sgl', 'mapVmid', sglEntry, { required: true }),
  list('attrs', attrEntry, { required: true }),
]);
export type MemAcceptRequest = Infer<typeof memAcceptRequest>;

export type MemAcceptReply =
  /** The request supplied IPAs: no data after the error word. */
  | { readonly kind: 'standard' }
  /** The request's SGL count was 0: the IPAs the RM chose, and whether more remain. */
  | { readonly kind: 'rm_chosen_ipas'; readonly sgl: readonly SglEntry[]; readonly incomplete: boolean };

const LABEL = 'MEM_ACCEPT reply';

export const memAcceptReply: Codec<MemAcceptReply> = {
  label: LABEL,
  encode(v) {
    const w = new Writer(LABEL);
    if (v.kind === 'rm_chosen_ipas') {
      const flags = v.incomplete ? ACCEPT_REPLY_FLAGS.INCOMPLETE : 0;
      w.list(v.sgl, sglEntry.sizeBytes!, (ew, e) => sglEntry.write(ew, e), 'sgl', flags);
    }
    return w.finish();
  },
  decode(bytes) {
    if (bytes.length === 0) return ok({ kind: 'standard' });
    const r = new Reader(bytes, LABEL);
    const l = r.list(sglEntry.sizeBytes!, (er) => sglEntry.read(er), 'sgl');
    const decoded = r.finish({ kind: 'rm_chosen_ipas', sgl: l.entries, incomplete: (l.second & ACCEPT_REPLY_FLAGS.INCOMPLETE) !== 0 } as const);
    return decoded.ok ? ok(decoded.value) : err(decoded.error);
  },
};
