/**
 * Seed 002 (shared/seeds/002_998730fef1f8385a.txt: "[v13,09/24] gunyah: rsc_mgr: Add RPC for sharing
 * memory", Elliot Berman, drivers/virt/gunyah/rsc_mgr_rpc.c), ported line for line: gh_rm_mem_lend,
 * gh_rm_mem_share, gh_rm_mem_reclaim and their helpers gh_rm_mem_lend_common, gh_rm_mem_append and
 * _gh_rm_mem_append. C names are kept (snake_case) so that a reader can hold this next to the seed.
 *
 * What the driver does (and hypmesh's scenarios find):
 *   - the create message carries the first GH_RM_MAX_MEM_ENTRIES (512) entries, with
 *     GH_MEM_SHARE_REQ_FLAGS_APPEND when more follow; then MEM_APPEND chunks of ≤ 512, END on the last;
 *   - `p->mem_handle = le32_to_cpu(*resp)` reads four bytes without checking `resp_size`
 *     (scenario linux-unchecked-reply-size);
 *   - when an append fails it sends MEM_RECLAIM, ignores its result, and sets the handle to
 *     GH_MEM_HANDLE_INVAL whether or not the reclaim worked (scenario linux-append-orphan).
 * Wire layouts are the seed's packed structs, written byte by byte, little-endian.
 */
import { ERRNO, type GhRmPort } from './gh-rm-call.js';

/* Message IDs: Memory Management */
export const GH_RM_RPC_MEM_LEND = 0x51000012;
export const GH_RM_RPC_MEM_SHARE = 0x51000013;
export const GH_RM_RPC_MEM_RECLAIM = 0x51000015;
export const GH_RM_RPC_MEM_APPEND = 0x51000018;

/* Call: MEM_LEND, MEM_SHARE */
export const GH_MEM_SHARE_REQ_FLAGS_APPEND = 1 << 1;
/* Call: MEM_APPEND */
export const GH_MEM_APPEND_REQ_FLAGS_END = 1 << 0;

export const GH_RM_MAX_MEM_ENTRIES = 512;
export const GH_MEM_HANDLE_INVAL = 0xffff_ffff;
const U8_MAX = 0xff;

export const GH_RM_ACL_X = 1 << 0;
export const GH_RM_ACL_W = 1 << 1;
export const GH_RM_ACL_R = 1 << 2;

export const GH_RM_MEM_TYPE_NORMAL = 0;
export const GH_RM_MEM_TYPE_IO = 1;

/** struct gh_rm_mem_acl_entry { __le16 vmid; u8 perms; u8 reserved; } __packed */
export interface gh_rm_mem_acl_entry {
  readonly vmid: number;
  readonly perms: number;
}
/** struct gh_rm_mem_entry { __le64 phys_addr; __le64 size; } __packed */
export interface gh_rm_mem_entry {
  readonly phys_addr: bigint;
  readonly size: bigint;
}
const ACL_ENTRY_SIZE = 4;
const MEM_ENTRY_SIZE = 16;
/** sizeof(struct gh_rm_mem_share_req_header): mem_type, _padding0, flags, _padding1, __le32 label. */
const SHARE_REQ_HEADER_SIZE = 8;
/** sizeof(struct gh_rm_mem_append_req_header): __le32 mem_handle, u8 flags, u8, __le16. */
const APPEND_REQ_HEADER_SIZE = 8;
/** The section headers: acl `__le32 n_entries`; mem `__le16 n_entries; __le16 _padding`. */
const SECTION_HEADER_SIZE = 4;

/** struct gh_rm_mem_parcel (include/linux/gunyah_rsc_mgr.h); n_*_entries are the arrays' lengths. */
export interface gh_rm_mem_parcel {
  mem_type: number;
  label: number;
  acl_entries: readonly gh_rm_mem_acl_entry[] | null;
  mem_entries: readonly gh_rm_mem_entry[] | null;
  mem_handle: number;
}

/** What a call did besides its return value, for the scenarios' reports (not in the C). */
export interface DriverTrace {
  /** Each `p->mem_handle = le32_to_cpu(*resp)`: the value read and how many of its bytes came from beyond the reply. */
  readonly handleReads: { readonly value: number; readonly respSize: number; readonly bytesBeyondReply: number }[];
  /** The return value of the MEM_RECLAIM the error path sent, which the C ignores. */
  readonly ignoredReclaims: number[];
  /** A dereference of a NULL reply buffer (resp_size 0 on an OK reply): the kernel would oops here. */
  oops?: string;
}

export const newTrace = (): DriverTrace => ({ handleReads: [], ignoredReclaims: [] });

function writeMemEntries(view: DataView, at: number, entries: readonly gh_rm_mem_entry[]): void {
  entries.forEach((e, i) => {
    view.setBigUint64(at + i * MEM_ENTRY_SIZE, e.phys_addr, true);
    view.setBigUint64(at + i * MEM_ENTRY_SIZE + 8, e.size, true);
  });
}

async function _gh_rm_mem_append(rm: GhRmPort, mem_handle: number, end_append: boolean, mem_entries: readonly gh_rm_mem_entry[]): Promise<number> {
  const n_mem_entries = mem_entries.length;
  let msg_size = 0;
  msg_size += APPEND_REQ_HEADER_SIZE;
  msg_size += SECTION_HEADER_SIZE + MEM_ENTRY_SIZE * n_mem_entries; // struct_size(mem_section, entries, n)

  const msg = new Uint8Array(msg_size); // kzalloc
  const v = new DataView(msg.buffer);
  v.setUint32(0, mem_handle, true); // req_header->mem_handle = cpu_to_le32(mem_handle)
  if (end_append) msg[4] = msg[4]! | GH_MEM_APPEND_REQ_FLAGS_END;

  const mem_section = APPEND_REQ_HEADER_SIZE;
  v.setUint16(mem_section, n_mem_entries, true);
  writeMemEntries(v, mem_section + SECTION_HEADER_SIZE, mem_entries);

  return (await rm.call(GH_RM_RPC_MEM_APPEND, msg)).ret;
}

async function gh_rm_mem_append(rm: GhRmPort, mem_handle: number, mem_entries: readonly gh_rm_mem_entry[]): Promise<number> {
  let end_append: boolean;
  let ret = 0;
  let n: number;
  let at = 0;
  let n_mem_entries = mem_entries.length;

  while (n_mem_entries) {
    if (n_mem_entries > GH_RM_MAX_MEM_ENTRIES) {
      end_append = false;
      n = GH_RM_MAX_MEM_ENTRIES;
    } else {
      end_append = true;
      n = n_mem_entries;
    }

    ret = await _gh_rm_mem_append(rm, mem_handle, end_append, mem_entries.slice(at, at + n));
    if (ret) break;

    at += n;
    n_mem_entries -= n;
  }

  return ret;
}

async function gh_rm_mem_lend_common(rm: GhRmPort, message_id: number, p: gh_rm_mem_parcel, trace: DriverTrace): Promise<number> {
  const n_mem_entries = p.mem_entries?.length ?? 0;
  const n_acl_entries = p.acl_entries?.length ?? 0;
  let initial_mem_entries = n_mem_entries;

  if (!p.acl_entries || !n_acl_entries || !p.mem_entries || !n_mem_entries || n_acl_entries > U8_MAX || p.mem_handle !== GH_MEM_HANDLE_INVAL) return -ERRNO.EINVAL;

  if (initial_mem_entries > GH_RM_MAX_MEM_ENTRIES) initial_mem_entries = GH_RM_MAX_MEM_ENTRIES;

  const acl_section_size = SECTION_HEADER_SIZE + ACL_ENTRY_SIZE * n_acl_entries;
  const mem_section_size = SECTION_HEADER_SIZE + MEM_ENTRY_SIZE * initial_mem_entries;
  /* The format of the message goes:
   * request header
   * ACL entries (which VMs get what kind of access to this memory parcel)
   * Memory entries (list of memory regions to share)
   * Memory attributes (currently unused, we'll hard-code the size to 0)
   */
  let msg_size = 0;
  msg_size += SHARE_REQ_HEADER_SIZE;
  msg_size += acl_section_size;
  msg_size += mem_section_size;
  msg_size += 4; /* for memory attributes, currently unused */

  const msg = new Uint8Array(msg_size); // kzalloc
  const v = new DataView(msg.buffer);
  const acl_section = SHARE_REQ_HEADER_SIZE;
  const mem_section = acl_section + acl_section_size;
  const attr_section = mem_section + mem_section_size;

  msg[0] = p.mem_type; // req_header->mem_type
  if (initial_mem_entries !== n_mem_entries) msg[2] = msg[2]! | GH_MEM_SHARE_REQ_FLAGS_APPEND;
  v.setUint32(4, p.label, true);

  v.setUint32(acl_section, n_acl_entries, true);
  p.acl_entries.forEach((e, i) => {
    v.setUint16(acl_section + SECTION_HEADER_SIZE + i * ACL_ENTRY_SIZE, e.vmid, true);
    msg[acl_section + SECTION_HEADER_SIZE + i * ACL_ENTRY_SIZE + 2] = e.perms;
  });

  v.setUint16(mem_section, initial_mem_entries, true);
  writeMemEntries(v, mem_section + SECTION_HEADER_SIZE, p.mem_entries.slice(0, initial_mem_entries));

  /* Set n_entries for memory attribute section to 0 */
  v.setUint32(attr_section, 0, true);

  const { ret, resp } = await rm.call(message_id, msg);

  if (ret) return ret;

  // p->mem_handle = le32_to_cpu(*resp); -- resp_size is never looked at.
  if (resp === null) {
    trace.oops = 'Unable to handle kernel NULL pointer dereference: gh_rm_mem_lend_common read *resp of an OK reply without data';
    return -ERRNO.EIO;
  }
  const read = resp.readLe32();
  trace.handleReads.push({ value: read.value, respSize: resp.size, bytesBeyondReply: read.bytesBeyondReply });
  p.mem_handle = read.value;

  let r = 0;
  if (initial_mem_entries !== n_mem_entries) {
    r = await gh_rm_mem_append(rm, p.mem_handle, p.mem_entries.slice(initial_mem_entries));
    if (r) {
      trace.ignoredReclaims.push(await gh_rm_mem_reclaim(rm, p));
      p.mem_handle = GH_MEM_HANDLE_INVAL;
    }
  }

  return r;
}

/** gh_rm_mem_lend() - Lend memory to other virtual machines. */
export const gh_rm_mem_lend = (rm: GhRmPort, parcel: gh_rm_mem_parcel, trace: DriverTrace = newTrace()): Promise<number> =>
  gh_rm_mem_lend_common(rm, GH_RM_RPC_MEM_LEND, parcel, trace);

/** gh_rm_mem_share() - Share memory with other virtual machines. */
export const gh_rm_mem_share = (rm: GhRmPort, parcel: gh_rm_mem_parcel, trace: DriverTrace = newTrace()): Promise<number> =>
  gh_rm_mem_lend_common(rm, GH_RM_RPC_MEM_SHARE, parcel, trace);

/** gh_rm_mem_reclaim() - Reclaim a memory parcel (struct gh_rm_mem_release_req: __le32 mem_handle, u8 flags, u8, __le16). */
export async function gh_rm_mem_reclaim(rm: GhRmPort, parcel: gh_rm_mem_parcel): Promise<number> {
  const req = new Uint8Array(8);
  new DataView(req.buffer).setUint32(0, parcel.mem_handle, true);
  return (await rm.call(GH_RM_RPC_MEM_RECLAIM, req)).ret;
}
