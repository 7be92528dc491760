/**
 * The seed-002 port, call by call: what goes on the wire (message IDs, flags, chunking, the packed
 * layouts, which the RM's own codecs must read back), the EINVAL checks, the error path, and the
 * handle read from the reply without a size check.
 */
import { describe, expect, test } from 'vitest';
import { memAppendRequest, memReclaimRequest, memShareRequest } from '@hypmesh/rm-wire';
import { ERRNO, ReplyBuffer, type GhRmCallResult, type GhRmPort } from './gh-rm-call.js';
import {
  GH_MEM_HANDLE_INVAL,
  GH_RM_ACL_R,
  GH_RM_RPC_MEM_APPEND,
  GH_RM_RPC_MEM_LEND,
  GH_RM_RPC_MEM_RECLAIM,
  GH_RM_RPC_MEM_SHARE,
  gh_rm_mem_lend,
  gh_rm_mem_share,
  newTrace,
  type gh_rm_mem_entry,
  type gh_rm_mem_parcel,
} from './rsc-mgr-rpc.js';

const HANDLE = 0x1234;
const handleReply = (h: number): GhRmCallResult => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, h, true);
  return { ret: 0, resp: new ReplyBuffer(b) };
};

/** Records every gh_rm_call; answers from `answers` by message ID (default: OK, and a handle for creates). */
function recorder(answers: Partial<Record<number, GhRmCallResult[]>> = {}) {
  const sent: { id: number; req: Uint8Array }[] = [];
  const rm: GhRmPort = {
    async call(id, req) {
      sent.push({ id, req });
      const queued = answers[id]?.shift();
      if (queued !== undefined) return queued;
      return id === GH_RM_RPC_MEM_SHARE || id === GH_RM_RPC_MEM_LEND ? handleReply(HANDLE) : { ret: 0, resp: null };
    },
  };
  return { rm, sent };
}

const entries = (n: number): gh_rm_mem_entry[] => Array.from({ length: n }, (_, i) => ({ phys_addr: BigInt(0x8000_0000 + i * 0x2000), size: 0x1000n }));
const parcel = (n: number, over: Partial<gh_rm_mem_parcel> = {}): gh_rm_mem_parcel => ({
  mem_type: 0,
  label: 0xabcd,
  acl_entries: [{ vmid: 3, perms: 7 }, { vmid: 0x2d, perms: GH_RM_ACL_R }],
  mem_entries: entries(n),
  mem_handle: GH_MEM_HANDLE_INVAL,
  ...over,
});
const decoded = <T>(r: { ok: boolean; value?: T }): T => {
  expect(r.ok).toBe(true);
  return r.value!;
};

describe('gh_rm_mem_lend_common: chunking (first ≤ 512 with APPEND, then MEM_APPEND chunks, END on the last)', () => {
  test('1100 entries: SHARE(512, APPEND), APPEND(512), APPEND(76, END)', async () => {
    const { rm, sent } = recorder();
    const p = parcel(1100);
    expect(await gh_rm_mem_share(rm, p)).toBe(0);
    expect(sent.map((s) => s.id)).toEqual([GH_RM_RPC_MEM_SHARE, GH_RM_RPC_MEM_APPEND, GH_RM_RPC_MEM_APPEND]);
    const share = decoded(memShareRequest.decode(sent[0]!.req));
    expect(share).toMatchObject({ memType: 0, flags: 0x2, label: 0xabcd, acl: [{ vmid: 3, rights: 7 }, { vmid: 0x2d, rights: 4 }], attrs: [] });
    expect(share.sgl).toEqual(entries(512).map((e) => ({ base: e.phys_addr, size: e.size })));
    const a1 = decoded(memAppendRequest.decode(sent[1]!.req));
    const a2 = decoded(memAppendRequest.decode(sent[2]!.req));
    expect([a1.handle, a1.flags, a1.sgl.length]).toEqual([HANDLE, 0, 512]);
    expect([a2.handle, a2.flags, a2.sgl.length]).toEqual([HANDLE, 1, 76]);
    expect(a2.sgl[75]).toEqual({ base: entries(1100)[1099]!.phys_addr, size: 0x1000n });
    expect(p.mem_handle).toBe(HANDLE);
  });
  test('512 entries: one message, no APPEND flag', async () => {
    const { rm, sent } = recorder();
    expect(await gh_rm_mem_lend(rm, parcel(512))).toBe(0);
    expect(sent.map((s) => s.id)).toEqual([GH_RM_RPC_MEM_LEND]);
    expect(sent[0]!.req[2]).toBe(0);
  });
  test('the acl section count is the seed’s __le32; the mem section count __le16 plus padding', async () => {
    const { rm, sent } = recorder();
    await gh_rm_mem_share(rm, parcel(1));
    const v = new DataView(sent[0]!.req.buffer);
    expect(v.getUint32(8, true)).toBe(2);
    expect(v.getUint16(8 + 4 + 2 * 4, true)).toBe(1);
    expect(sent[0]!.req.length).toBe(8 + (4 + 2 * 4) + (4 + 16) + 4);
  });
});

describe('gh_rm_mem_lend_common: -EINVAL before anything is sent, in the seed’s order', () => {
  test.each([
    { rule: 'acl_entries NULL', p: parcel(1, { acl_entries: null }) },
    { rule: 'n_acl_entries 0', p: parcel(1, { acl_entries: [] }) },
    { rule: 'mem_entries NULL', p: parcel(1, { mem_entries: null }) },
    { rule: 'n_mem_entries 0', p: parcel(0) },
    { rule: 'n_acl_entries > U8_MAX', p: parcel(1, { acl_entries: Array.from({ length: 256 }, (_, i) => ({ vmid: i, perms: 4 })) }) },
    { rule: 'mem_handle already set', p: parcel(1, { mem_handle: 7 }) },
  ])('$rule', async ({ p }) => {
    const { rm, sent } = recorder();
    expect(await gh_rm_mem_share(rm, p)).toBe(-ERRNO.EINVAL);
    expect(sent).toEqual([]);
  });
});

describe('gh_rm_mem_lend_common: an append fails', () => {
  test.each([
    { reclaim: { ret: 0, resp: null }, what: 'the reclaim succeeds' },
    { reclaim: { ret: -16, resp: null }, what: 'the reclaim fails (-EBUSY)' },
  ])('sends MEM_RECLAIM for the handle, returns the append’s error and forgets the handle when $what', async ({ reclaim }) => {
    const { rm, sent } = recorder({ [GH_RM_RPC_MEM_APPEND]: [{ ret: -ERRNO.ENOMEM, resp: null }], [GH_RM_RPC_MEM_RECLAIM]: [reclaim] });
    const p = parcel(600);
    const trace = newTrace();
    expect(await gh_rm_mem_share(rm, p, trace)).toBe(-ERRNO.ENOMEM);
    expect(sent.map((s) => s.id)).toEqual([GH_RM_RPC_MEM_SHARE, GH_RM_RPC_MEM_APPEND, GH_RM_RPC_MEM_RECLAIM]);
    expect(decoded(memReclaimRequest.decode(sent[2]!.req))).toEqual({ handle: HANDLE, flags: 0 });
    expect(p.mem_handle).toBe(GH_MEM_HANDLE_INVAL);
    expect(trace.ignoredReclaims).toEqual([reclaim.ret]);
  });
  test('a failed first chunk stops the appends (no second MEM_APPEND)', async () => {
    const { rm, sent } = recorder({ [GH_RM_RPC_MEM_APPEND]: [{ ret: -ERRNO.ENOMEM, resp: null }] });
    await gh_rm_mem_share(rm, parcel(1100));
    expect(sent.filter((s) => s.id === GH_RM_RPC_MEM_APPEND)).toHaveLength(1);
  });
});

describe('p->mem_handle = le32_to_cpu(*resp): resp_size is never checked', () => {
  test('a 2-byte reply reads two stale heap bytes (0x6b, POISON_FREE)', async () => {
    const { rm } = recorder({ [GH_RM_RPC_MEM_SHARE]: [{ ret: 0, resp: new ReplyBuffer(Uint8Array.of(0x34, 0x12)) }] });
    const p = parcel(1);
    const trace = newTrace();
    expect(await gh_rm_mem_share(rm, p, trace)).toBe(0);
    expect(p.mem_handle).toBe(0x6b6b1234);
    expect(trace.handleReads).toEqual([{ value: 0x6b6b1234, respSize: 2, bytesBeyondReply: 2 }]);
  });
  test('an OK reply without data: the kernel would oops on the NULL buffer', async () => {
    const { rm } = recorder({ [GH_RM_RPC_MEM_SHARE]: [{ ret: 0, resp: null }] });
    const trace = newTrace();
    await gh_rm_mem_share(rm, parcel(1), trace);
    expect(trace.oops).toMatch(/NULL pointer dereference/);
  });
  test('a full reply reads the handle and nothing beyond it', async () => {
    const { rm } = recorder();
    const trace = newTrace();
    await gh_rm_mem_share(rm, parcel(1), trace);
    expect(trace.handleReads).toEqual([{ value: HANDLE, respSize: 4, bytesBeyondReply: 0 }]);
  });
});
