import { describe, expect, test } from 'vitest';
import { badHeaderVectors, headerVectors } from '../vectors/header.js';
import { decodeHeader, encodeHeader, RM_RPC_HEADER_BYTE0 } from './header.js';

describe('§1.2 RM RPC header', () => {
  test('byte 0 is 0x21: API version 1, 2 header words', () => {
    expect(RM_RPC_HEADER_BYTE0).toBe(0x21);
  });

  test.each(headerVectors)('decodes $name', ({ bytes, header }) => {
    expect(decodeHeader(bytes)).toEqual({ ok: true, value: header });
  });

  test.each(headerVectors)('encodes $name', ({ bytes, header }) => {
    expect(encodeHeader(header)).toEqual(bytes);
  });

  test('only the first 8 bytes are read', () => {
    const withPayload = Uint8Array.of(...headerVectors[0].bytes, 1, 2, 3);
    expect(decodeHeader(withPayload)).toEqual({ ok: true, value: headerVectors[0].header });
  });

  test.each(badHeaderVectors)('§1.3 $rule: $name', ({ bytes, rule }) => {
    const r = decodeHeader(bytes);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.rule).toBe(rule);
  });

  test.each([
    { field: 'fragmentCount', header: { type: 'REQUEST', fragmentCount: 64, seq: 0, msgId: 0 } },
    { field: 'seq', header: { type: 'REQUEST', fragmentCount: 0, seq: 0x1_0000, msgId: 0 } },
    { field: 'msgId', header: { type: 'REQUEST', fragmentCount: 0, seq: 0, msgId: -1 } },
    { field: 'type', header: { type: 'BOGUS', fragmentCount: 0, seq: 0, msgId: 0 } },
  ] as const)('encoding a $field its field cannot hold is a caller bug (RangeError)', ({ header }) => {
    // @ts-expect-error -- 'BOGUS' is deliberately not a MessageType
    expect(() => encodeHeader(header)).toThrow(RangeError);
  });
});
