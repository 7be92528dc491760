/**
 * §3, §4.2, §2.2 payload vectors (vectors/payloads.ts), both ways, through the codec table; and the
 * bytes every decoder must refuse, one row per rule.
 */
import { describe, expect, test } from 'vitest';
import { badPayloadVectors, payloadVectors } from '../../vectors/payloads.js';
import { RM_CODECS, decodeCallReply, type CallName, type CodecName } from '../codecs.js';
import type { Codec } from '../layout.js';
import { encodeReply } from '../reply.js';

type AnyCodec = Codec<unknown>;
function codecOf(message: CodecName, part: 'request' | 'reply' | 'notification'): AnyCodec {
  const c = RM_CODECS[message] as unknown as Record<string, AnyCodec>;
  const codec = c[part];
  if (!codec) throw new Error(`${message} has no ${part} codec`);
  return codec;
}

describe('payload vectors', () => {
  const valued = payloadVectors.filter((v) => 'value' in v);
  const replies = (v: (typeof payloadVectors)[number]) => v.part === 'reply';

  test.each(valued.filter((v) => !replies(v)))('decodes $name', ({ message, part, bytes, value }) => {
    expect(codecOf(message, part).decode(bytes)).toEqual({ ok: true, value });
  });

  test.each(valued.filter((v) => !replies(v) && !('decodeOnly' in v)))('encodes $name', ({ message, part, bytes, value }) => {
    expect(codecOf(message, part).encode(value)).toEqual(bytes);
  });

  test.each(valued.filter(replies))('decodes reply $name', ({ message, bytes, value }) => {
    expect(decodeCallReply(message as CallName, bytes)).toEqual({ ok: true, value: { rmError: 'OK', value } });
  });

  test.each(valued.filter(replies))('encodes reply $name', ({ message, bytes, value }) => {
    expect(encodeReply('OK', codecOf(message, 'reply').encode(value))).toEqual(bytes);
  });

  test.each(payloadVectors.filter((v) => 'error' in v))('decodes error reply $name', (v) => {
    if (!('error' in v)) return;
    const { rmError, errorCode } = v.error;
    const data = 'data' in v.error ? Uint8Array.from(v.error.data) : new Uint8Array(0);
    expect(decodeCallReply(v.message as CallName, v.bytes)).toEqual({ ok: true, value: { rmError, errorCode, data } });
    expect(encodeReply(rmError, data)).toEqual(v.bytes);
  });

  test('MEM_LEND 2 ACL + 3 SGL is the 20-byte fixed part + 4n + 16m = 76 bytes (§3.2)', () => {
    const v = payloadVectors.find((p) => p.message === 'MEM_LEND' && p.part === 'request');
    expect(v?.bytes.length).toBe(20 + 4 * 2 + 16 * 3);
  });

  test('MEM_ACCEPT with no SGL entries is the 24-byte fixed part + 4n (§3.4)', () => {
    const v = payloadVectors.find((p) => p.message === 'MEM_ACCEPT' && p.part === 'request');
    expect(v?.bytes.length).toBe(24 + 4 * 1);
  });

  test('an unknown RM error code decodes with no name, not as a failure (§1.5)', () => {
    expect(decodeCallReply('VM_START', Uint8Array.of(0x99, 0, 0, 0))).toEqual({
      ok: true,
      value: { rmError: undefined, errorCode: 0x99, data: new Uint8Array(0) },
    });
  });
});

describe('decode rules', () => {
  test.each(badPayloadVectors)('$rule → $rmError: $name', ({ message, part, bytes, rule, rmError }) => {
    const r = part === 'reply' ? decodeCallReply(message as CallName, bytes) : codecOf(message, part).decode(bytes);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ rule, rmError });
  });
});
