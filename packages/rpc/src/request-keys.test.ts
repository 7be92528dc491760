import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { REQUEST_ID_KEY, REQUEST_ID_MAX_CHARS, RequestKeys, requestDigest, requestIdOf } from './request-keys.js';
import { StatusError } from './status-details.js';

const md = (...values: string[]): Metadata => {
  const m = new Metadata();
  for (const v of values) m.add(REQUEST_ID_KEY, v);
  return m;
};

describe('requestIdOf', () => {
  test('absent: none; one well-formed value: it', () => {
    expect(requestIdOf(new Metadata())).toBeUndefined();
    expect(requestIdOf(md('rm-1f2e-7'))).toBe('rm-1f2e-7');
    expect(requestIdOf(md('x'.repeat(REQUEST_ID_MAX_CHARS)))).toHaveLength(REQUEST_ID_MAX_CHARS);
  });

  test.each([['two values', md('a', 'b')], ['a space', md('a b')], ['too long', md('x'.repeat(REQUEST_ID_MAX_CHARS + 1))], ['empty', md('')]])('%s: INVALID_ARGUMENT naming the key', (_, m) => {
    let thrown: unknown;
    try {
      requestIdOf(m);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(StatusError);
    expect((thrown as StatusError).code).toBe(status.INVALID_ARGUMENT);
    expect((thrown as StatusError).details).toContain(REQUEST_ID_KEY);
  });
});

describe('RequestKeys', () => {
  const d1 = requestDigest(Buffer.from([1]));
  const d2 = requestDigest(Buffer.from([2]));

  test('new, repeat (same RPC and bytes), reused (another RPC or other bytes); per caller', () => {
    const k = new RequestKeys<string, string>();
    expect(k.lookup('3', 'a', 'destroyGrant', d1)).toEqual({ kind: 'new' });
    k.remember({ caller: '3', key: 'a', rpc: 'destroyGrant', digest: d1, outcome: { ok: true, value: 'done' } });
    expect(k.lookup('3', 'a', 'destroyGrant', d1)).toEqual({ kind: 'repeat', outcome: { ok: true, value: 'done' } });
    expect(k.lookup('3', 'a', 'destroyGrant', d2)).toEqual({ kind: 'reused', rpc: 'destroyGrant' });
    expect(k.lookup('3', 'a', 'unmapGrant', d1)).toEqual({ kind: 'reused', rpc: 'destroyGrant' });
    expect(k.lookup('128', 'a', 'destroyGrant', d1)).toEqual({ kind: 'new' });
  });

  test('bounded, the oldest first out', () => {
    const k = new RequestKeys<string, string>(2);
    for (const key of ['a', 'b', 'c']) k.remember({ caller: '3', key, rpc: 'r', digest: d1, outcome: { ok: false, error: key } });
    expect(k.size).toBe(2);
    expect(k.lookup('3', 'a', 'r', d1)).toEqual({ kind: 'new' });
    expect(k.list().map((e) => e.key)).toEqual(['b', 'c']);
  });
});
