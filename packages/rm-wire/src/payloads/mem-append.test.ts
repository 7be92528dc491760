/**
 * §3.2/§3.3: the Linux driver's lend of more than 512 SGL entries, end to end on the wire: MEM_LEND
 * with the APPEND flag and the first 512 entries, then MEM_APPEND chunks of ≤ 512, END on the last;
 * each message fragmented within Linux's 14 384-byte limit, reassembled by the RM receiver and decoded.
 */
import { describe, expect, test } from 'vitest';
import { fragmentMessage, LINUX_RM_SEND_PAYLOAD_MAX, RM_RPC_FRAGMENT_PAYLOAD_MAX, type RmMessage } from '../fragment.js';
import { decodeHeader } from '../header.js';
import { messageId } from '../message-id.js';
import { Reassembler } from '../reassembly.js';
import type { SglEntry } from './entries.js';
import { ACL_RIGHTS, MEM_TYPE } from './entries.js';
import { APPEND_FLAGS, linuxSglChunks, memAppendRequest } from './mem-append.js';
import { memLendRequest, SHARE_FLAGS } from './mem-share.js';

const PAGE = 0x1000n;
/** 1100 discontiguous pages, as pinned user memory often is (L23). */
const sgl: SglEntry[] = Array.from({ length: 1100 }, (_, i) => ({ base: 0x8000_0000n + BigInt(i) * 2n * PAGE, size: PAGE }));

describe('Linux lend of more than 512 SGL entries', () => {
  const chunks = linuxSglChunks(sgl);

  test('chunks: 512 in MEM_LEND with APPEND, then 512 and 76 in MEM_APPEND, DONE on the last', () => {
    expect(chunks.first).toHaveLength(512);
    expect(chunks.append).toBe(true);
    expect(chunks.appends.map((a) => [a.sgl.length, a.done])).toEqual([
      [512, false],
      [76, true],
    ]);
  });

  test('exactly 512 entries need no MEM_APPEND', () => {
    const c = linuxSglChunks(sgl.slice(0, 512));
    expect([c.first.length, c.append, c.appends.length]).toEqual([512, false, 0]);
  });

  test('on the wire: fragments reassemble into the same three messages, decoded back to the SGL', () => {
    const handle = 7;
    const messages: RmMessage[] = [
      {
        type: 'REQUEST',
        msgId: messageId('MEM_LEND'),
        seq: 1,
        payload: memLendRequest.encode({
          memType: MEM_TYPE.NORMAL,
          flags: chunks.append ? SHARE_FLAGS.APPEND : 0,
          label: 0,
          acl: [{ vmid: 0x80, rights: ACL_RIGHTS.R | ACL_RIGHTS.W | ACL_RIGHTS.X }],
          sgl: chunks.first,
          attrs: [],
        }),
      },
      ...chunks.appends.map((a, i) => ({
        type: 'REQUEST' as const,
        msgId: messageId('MEM_APPEND'),
        seq: 2 + i,
        payload: memAppendRequest.encode({ handle, flags: a.done ? APPEND_FLAGS.DONE : 0, sgl: a.sgl }),
      })),
    ];
    // MEM_LEND with 1 ACL entry and 512 SGL entries: 20 + 4 + 8192 = 8216 bytes → 36 fragments.
    expect(messages[0]!.payload.length).toBe(8216);

    const rx = new Reassembler();
    const received: RmMessage[] = [];
    for (const m of messages) {
      const frags = fragmentMessage(m, LINUX_RM_SEND_PAYLOAD_MAX);
      if (!frags.ok) throw new Error(frags.error.reason);
      expect(frags.value).toHaveLength(Math.ceil(m.payload.length / RM_RPC_FRAGMENT_PAYLOAD_MAX));
      const h = decodeHeader(frags.value[0]!);
      expect(h.ok && h.value.fragmentCount).toBe(frags.value.length - 1);
      for (const f of frags.value) for (const e of rx.push(f)) if (e.kind === 'message') received.push(e.message);
    }
    expect(received).toEqual(messages);
    expect(rx.dropCounts().size).toBe(0);

    const lend = memLendRequest.decode(received[0]!.payload);
    const appends = received.slice(1).map((m) => memAppendRequest.decode(m.payload));
    if (!lend.ok || !appends.every((a) => a.ok)) throw new Error('decode failed');
    expect(lend.value.flags & SHARE_FLAGS.APPEND).toBe(SHARE_FLAGS.APPEND);
    const appended = appends.flatMap((a) => (a.ok ? [a.value] : []));
    expect(appended.map((a) => a.flags & APPEND_FLAGS.DONE)).toEqual([0, 1]);
    expect([...lend.value.sgl, ...appended.flatMap((a) => a.sgl)]).toEqual(sgl);
  });

  test('513 entries in one list is refused with NORESOURCE (§3.1), which is why Linux chunks', () => {
    const bytes = memAppendRequest.encode({ handle: 1, flags: 0, sgl: sgl.slice(0, 513) });
    expect(memAppendRequest.decode(bytes)).toMatchObject({ ok: false, error: { rmError: 'NORESOURCE', rule: 'list_entries_over_max' } });
  });
});
