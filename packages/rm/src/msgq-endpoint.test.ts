/**
 * The byte-exact face (gunyah-rm.md §1.2–§1.4, §3): raw fragments in, byte-exact replies out — hand
 * written bytes for a small call, the Linux driver's >512-entry lend and its reclaim after a failed
 * append, UNIMPLEMENTED and MSG_INVALID answers, notifications on the wire.
 */
import {
  MESSAGE_IDS,
  RM_CODECS,
  SHARE_FLAGS,
  decodeCallReply,
  decodeHeader,
  fragmentMessage,
  linuxSglChunks,
  Reassembler,
  type CallName,
  type RequestOf,
} from '@hypmesh/rm-wire';
import { checkInvariants, translate, VMID_HOST } from '@hypmesh/stage2';
import { beforeEach, describe, expect, test } from 'vitest';
import { MsgqEndpoint } from './msgq-endpoint.js';
import { RW, acceptReq, createReq, hlosAddr, rmFixture, sgl, type RmFixture } from './test-support.js';
import { VMID_HLOS } from './vmid.js';

let f: RmFixture;
let A = 0;
let host: MsgqEndpoint;
beforeEach(async () => {
  f = rmFixture();
  A = await f.vm();
  host = new MsgqEndpoint(f.rm, VMID_HLOS);
});

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** Encodes a request of call `name` as the fragments a client driver would send. */
function request<N extends CallName>(name: N, seq: number, req: RequestOf<N>): Uint8Array[] {
  const codec = RM_CODECS[name].request as { encode(v: RequestOf<N>): Uint8Array };
  const frags = fragmentMessage({ type: 'REQUEST', msgId: MESSAGE_IDS[name].id, seq, payload: codec.encode(req) });
  if (!frags.ok) throw new Error(frags.error.reason);
  return frags.value;
}

/** Sends fragments, reassembles what comes back into reply messages. */
async function exchange(ep: MsgqEndpoint, frags: Uint8Array[]) {
  const back = new Reassembler();
  const out = [];
  for (const frag of frags) for (const r of await ep.receive(frag)) for (const ev of back.push(r)) if (ev.kind === 'message') out.push(ev.message);
  return out;
}

describe('byte-exact replies', () => {
  test('VM_GET_VMID: header 0x21, REPLY, seq echoed, error word 0, then the VMID', async () => {
    const ep = new MsgqEndpoint(f.rm, A);
    const reply = await ep.receive(fromHex('21 01 3412 24000056'));
    expect(reply.map(hex)).toEqual([`2102341224000056 00000000 ${A.toString(16).padStart(2, '0')}000000`.replace(/ /g, '')]);
  });

  test('an unknown message ID is answered UNIMPLEMENTED (0xFFFFFFFF)', async () => {
    expect((await host.receive(fromHex('21 01 0100 99000051'))).map(hex)).toEqual(['2102010099000051ffffffff']);
  });

  test('a truncated payload is MSG_INVALID and changes nothing', async () => {
    const before = f.snapshot();
    // VM_ALLOCATE needs exactly 4 bytes; 2 given.
    expect((await host.receive(fromHex('21 01 0200 01000056 0000'))).map(hex)).toEqual(['210202000100005604000000']);
    expect(f.snapshot()).toEqual(before);
  });

  test('a notification is not a request: dropped and counted', async () => {
    expect(await host.receive(fromHex('21 03 0000 08001056 80000000 03000000'))).toEqual([]);
    expect(host.stats().drops.get('not_a_request')).toBe(1);
  });
});

describe("the Linux driver's >512-entry lend (§3.2, §3.3)", () => {
  const entries = Array.from({ length: 1100 }, (_, i) => sgl(i * 0x2000, 0x1000));

  test('MEM_LEND with APPEND and 512 entries, MEM_APPEND chunks, END on the last: every reply OK, seq echoed', async () => {
    const chunks = linuxSglChunks(entries);
    const first = await exchange(host, request('MEM_LEND', 1, createReq([{ vmid: A, rights: RW }], [...chunks.first], { flags: SHARE_FLAGS.APPEND })));
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ type: 'REPLY', seq: 1, msgId: MESSAGE_IDS.MEM_LEND.id });
    const lent = decodeCallReply('MEM_LEND', first[0]!.payload);
    expect(lent).toEqual({ ok: true, value: { rmError: 'OK', value: { handle: 0 } } });
    for (const [i, a] of chunks.appends.entries()) {
      const replies = await exchange(host, request('MEM_APPEND', 2 + i, { handle: 0, flags: a.done ? 1 : 0, sgl: a.sgl }));
      expect(replies.map((r) => [r.seq, hex(r.payload)])).toEqual([[2 + i, '00000000']]);
    }
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(1099 * 0x2000)))).toMatchObject({ ok: false, error: { errno: 'ENOENT' } });
    expect(f.rm.parcels.get(0)).toMatchObject({ state: 'SHARING' });
    expect(checkInvariants(f.s)).toEqual([]);
  });

  test('an append the RM refuses is rolled back; the reclaim Linux then sends returns everything', async () => {
    const chunks = linuxSglChunks([...entries.slice(0, 600), { base: 0x4000_0000n, size: 0x1000n }]);
    await exchange(host, request('MEM_LEND', 1, createReq([{ vmid: A, rights: RW }], [...chunks.first], { flags: SHARE_FLAGS.APPEND })));
    const failed = await exchange(host, request('MEM_APPEND', 2, { handle: 0, flags: 1, sgl: chunks.appends[0]!.sgl }));
    expect(decodeCallReply('MEM_APPEND', failed[0]!.payload)).toMatchObject({ ok: true, value: { rmError: 'MEM_INVALID' } });
    // The appended chunk's first entries were not taken from the host.
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(512 * 0x2000)))).toMatchObject({ ok: true, value: { state: 'OWNED' } });
    const reclaimed = await exchange(host, request('MEM_RECLAIM', 3, { handle: 0, flags: 0 }));
    expect(hex(reclaimed[0]!.payload)).toBe('00000000');
    expect(translate(f.s, VMID_HOST, Number(hlosAddr(0)))).toMatchObject({ ok: true, value: { state: 'OWNED' } });
    expect(f.rm.parcels.size).toBe(0);
    expect(checkInvariants(f.s)).toEqual([]);
  });
});

describe('notifications on the wire', () => {
  test('MEM_SHARED reaches the borrower as NOTIFICATION fragments with the RM sequence counter', async () => {
    await exchange(host, request('MEM_LEND', 1, createReq([{ vmid: A, rights: RW }], [sgl(0x10000, 0x1000)], { label: 9 })));
    await exchange(host, request('MEM_NOTIFY', 2, { handle: 0, flags: 1, memInfoTag: 5, vmids: [{ vmid: A }] }));
    const guest = new MsgqEndpoint(f.rm, A);
    const frags = guest.drainNotifications();
    const header = decodeHeader(frags[0]!);
    expect(header).toMatchObject({ ok: true, value: { type: 'NOTIFICATION', msgId: MESSAGE_IDS.MEM_SHARED.id } });
    const msgs = new Reassembler().push(frags[0]!);
    expect(msgs[0]).toMatchObject({ kind: 'message' });
    const payload = msgs[0]!.kind === 'message' ? msgs[0]!.message.payload : new Uint8Array();
    expect(RM_CODECS.MEM_SHARED.notification.decode(payload)).toMatchObject({ ok: true, value: { handle: 0, label: 9, memInfoTag: 5, ownerVmid: VMID_HLOS } });
    // The borrower accepts through its own queue pair.
    const accepted = await exchange(guest, request('MEM_ACCEPT', 40, acceptReq(0, 'LEND', { flags: 0x90 })));
    expect(decodeCallReply('MEM_ACCEPT', accepted[0]!.payload)).toMatchObject({ ok: true, value: { rmError: 'OK', value: { kind: 'rm_chosen_ipas' } } });
  });
});
