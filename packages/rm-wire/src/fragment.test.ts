import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  continuationsFor,
  fragmentMessage,
  LINUX_RM_SEND_PAYLOAD_MAX,
  RM_RPC_CONTINUATIONS_MAX,
  RM_RPC_FRAGMENT_PAYLOAD_MAX,
  RM_RPC_MAX_MSG_SIZE,
  RM_RPC_MESSAGE_SIZE,
  type RmMessage,
} from './fragment.js';
import { decodeHeader } from './header.js';
import { Reassembler } from './reassembly.js';

const SEED = Number(process.env.SEED ?? 20261121);
const RUNS = Number(process.env.RUNS ?? 100);

const msg = (len: number, type: RmMessage['type'] = 'REQUEST'): RmMessage => ({
  type,
  msgId: 0x5100_0012,
  seq: 0x0102,
  payload: Uint8Array.from({ length: len }, (_, i) => i & 0xff),
});

describe('§1.3 limits', () => {
  test.each([
    { name: 'RM_RPC_MESSAGE_SIZE', value: RM_RPC_MESSAGE_SIZE, spec: 240 },
    { name: 'payload per fragment = 240 − 8', value: RM_RPC_FRAGMENT_PAYLOAD_MAX, spec: 232 },
    { name: 'continuations max', value: RM_RPC_CONTINUATIONS_MAX, spec: 62 },
    { name: 'RM_RPC_MAX_MSG_SIZE = 232 × 63', value: RM_RPC_MAX_MSG_SIZE, spec: 14_616 },
    { name: 'Linux sender max = 62 × 232', value: LINUX_RM_SEND_PAYLOAD_MAX, spec: 14_384 },
  ])('$name = $spec', ({ value, spec }) => expect(value).toBe(spec));

  test.each([
    { len: 0, count: 0 },
    { len: 1, count: 0 },
    { len: 232, count: 0 },
    { len: 233, count: 1 },
    { len: 464, count: 1 },
    { len: 465, count: 2 },
    { len: 14_384, count: 61 },
    { len: 14_616, count: 62 },
  ])('fragment count field = ceil($len / 232) − 1 = $count', ({ len, count }) => {
    expect(continuationsFor(len)).toBe(count);
    const frags = fragmentMessage(msg(len));
    expect(frags.ok && frags.value.length).toBe(count + 1);
  });
});

describe('§1.3 fragmentation', () => {
  test('an empty payload is one header-only fragment', () => {
    const r = fragmentMessage(msg(0, 'NOTIFICATION'));
    expect(r).toEqual({ ok: true, value: [Uint8Array.of(0x21, 0x03, 0x02, 0x01, 0x12, 0x00, 0x00, 0x51)] });
  });

  test('continuations have type 0 and repeat msg_id, seq and the count; the first has the real type', () => {
    const r = fragmentMessage(msg(600, 'REPLY'));
    if (!r.ok) throw new Error(r.error.reason);
    const headers = r.value.map((f) => decodeHeader(f));
    expect(headers.map((h) => h.ok && h.value)).toEqual([
      { type: 'REPLY', fragmentCount: 2, seq: 0x0102, msgId: 0x5100_0012 },
      { type: 'CONTINUATION', fragmentCount: 2, seq: 0x0102, msgId: 0x5100_0012 },
      { type: 'CONTINUATION', fragmentCount: 2, seq: 0x0102, msgId: 0x5100_0012 },
    ]);
    expect(r.value.map((f) => f.length)).toEqual([240, 240, 8 + 600 - 464]);
  });

  test('message_too_large: more than the RM maximum of 14 616 bytes', () => {
    const r = fragmentMessage(msg(RM_RPC_MAX_MSG_SIZE + 1));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ rule: 'message_too_large', payloadBytes: 14_617, payloadBytesMax: 14_616 });
  });

  test('message_too_large: a Linux sender refuses more than 14 384 bytes (-E2BIG)', () => {
    expect(fragmentMessage(msg(LINUX_RM_SEND_PAYLOAD_MAX), LINUX_RM_SEND_PAYLOAD_MAX).ok).toBe(true);
    expect(fragmentMessage(msg(LINUX_RM_SEND_PAYLOAD_MAX + 1), LINUX_RM_SEND_PAYLOAD_MAX).ok).toBe(false);
  });

  test('a caller limit above what the 6-bit count field can describe is capped', () => {
    expect(fragmentMessage(msg(232 * 64 + 1), 1 << 20).ok).toBe(false);
  });

  test(`fragment then reassemble gives the message back (SEED=${SEED}, ${RUNS} runs)`, () => {
    const message = fc.record({
      type: fc.constantFrom('REQUEST', 'REPLY', 'NOTIFICATION'),
      msgId: fc.integer({ min: 0, max: 0xffff_ffff }),
      seq: fc.integer({ min: 0, max: 0xffff }),
      payload: fc.uint8Array({ maxLength: RM_RPC_MAX_MSG_SIZE, size: 'max' }), // 'max': lengths across all 63 fragments, not just small ones
    });
    fc.assert(
      fc.property(message, (m) => {
        const frags = fragmentMessage(m);
        if (!frags.ok) return false;
        expect(frags.value.every((f) => f.length <= RM_RPC_MESSAGE_SIZE)).toBe(true);
        const rx = new Reassembler();
        const events = frags.value.flatMap((f) => rx.push(f));
        expect(events).toEqual([{ kind: 'message', message: m }]);
        expect(rx.pending).toBeUndefined();
        return true;
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
