/**
 * The core's idempotency keys (keys.ts, issue 9 item 2) over gRPC in process: a repeated
 * (caller, key) is answered with the first outcome and not applied again, success or refusal; a key
 * reused for another call or other arguments is INVALID_ARGUMENT; a malformed key is refused; the
 * table is bounded; and in durable mode a restart (from records, and from an image) still answers a
 * repeat with the first success.
 */

import * as grpc from '@grpc/grpc-js';
import { GrantType, Right, type CoreServiceClient } from '@hypmesh/proto';
import { afterEach, describe, expect, test } from 'vitest';
import { call as callAs, GUEST, RAM_PFN, TestCores, type Outcome, type Unary } from './test-cores.js';

const cores = new TestCores();
afterEach(() => cores.closeAll());
const start = (options: Parameters<TestCores['start']>[0] = {}) => cores.start(options);
/** One call with request id `key` (none if undefined), as `caller` (HOST by default). */
const call = <Req, Res>(client: CoreServiceClient, fn: Unary<Req, Res>, req: Req, key?: string, caller = '3'): Promise<Outcome<Res>> => callAs(client, fn, req, caller, key);

const lend = (frame: number) => ({ type: GrantType.GRANT_TYPE_LEND, memoryType: 0, ranges: [{ base: BigInt(RAM_PFN + frame), count: 2n }], acl: [{ vmid: GUEST, rights: Right.RIGHT_R | Right.RIGHT_W }] });

async function withGuest(client: CoreServiceClient): Promise<void> {
  expect(await call(client, client.createAddressSpace, { vmid: GUEST, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 4096), count: 8n }] })).toMatchObject({ ok: true });
}

const grantCount = async (client: CoreServiceClient): Promise<number> => {
  const r = await call(client, client.listGrants as Unary<object, { grants: unknown[] }>, {});
  if (!r.ok) throw new Error('listGrants refused');
  return r.value.grants.length;
};

describe('request ids (x-hypmesh-request-id)', () => {
  test('a repeat answers the first outcome and is not applied again: a success, then a refusal', async () => {
    const { client } = await start();
    await withGuest(client);
    const first = await call(client, client.createGrant, lend(8192), 'k-1');
    const again = await call(client, client.createGrant, lend(8192), 'k-1');
    expect(first.ok && again.ok).toBe(true);
    expect(again).toEqual(first);
    expect(await grantCount(client)).toBe(1);
    const id = (first as { value: { grantId: bigint } }).value.grantId;
    // DestroyGrant twice under one key: the second hears OK, where an unkeyed repeat is refused.
    expect(await call(client, client.destroyGrant, { grantId: id }, 'k-2')).toMatchObject({ ok: true });
    expect(await call(client, client.destroyGrant, { grantId: id }, 'k-2')).toMatchObject({ ok: true });
    expect(await call(client, client.destroyGrant, { grantId: id })).toMatchObject({ ok: false, code: grpc.status.NOT_FOUND });
    // A refusal is remembered too: the same key answers it again even once the call would succeed.
    const refused = await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'k-3');
    expect(refused.ok).toBe(false);
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) })).toMatchObject({ ok: true });
    expect(await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'k-3')).toEqual(refused);
  });

  test('one key, another caller: a different key (keys are per caller)', async () => {
    const { client } = await start();
    await withGuest(client);
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'same')).toMatchObject({ ok: true });
    // The guest's "same" is its own key: evaluated afresh (the guest may not share host memory).
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'same', String(GUEST))).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
  });

  test('a key reused for another RPC or other arguments is INVALID_ARGUMENT and applies nothing; a malformed key is refused', async () => {
    const { client } = await start();
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'k')).toMatchObject({ ok: true });
    const other = await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 17) }, 'k');
    expect(other).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((other as { details: string }).details).toContain('hostShareHyp with other arguments');
    expect(await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'k')).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    // Nothing applied: frame 17 is still the host's alone, frame 16 still shared.
    expect(await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 17) })).toMatchObject({ ok: false });
    expect(await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 16) })).toMatchObject({ ok: true });
    for (const bad of ['has space', 'x'.repeat(129), '']) expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 18) }, bad)).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
  });

  test('bounded: beyond the capacity the oldest key is forgotten', async () => {
    const { client } = await start({ requestKeys: 2 });
    for (const [i, k] of ['a', 'b', 'c'].entries()) expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16 + i) }, k)).toMatchObject({ ok: true });
    // "a" is forgotten: its repeat is applied afresh (refused: the frame is shared already).
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) }, 'a')).toMatchObject({ ok: false });
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 18) }, 'c')).toMatchObject({ ok: true });
  });

  test.each([
    { how: 'from records', snapshotEvery: 0 },
    { how: 'from an image', snapshotEvery: 2 },
  ])('durable: a restarted core ($how) answers a repeat with the first success, not applying it again', async ({ snapshotEvery }) => {
    const dir = cores.dataDir();
    const a = await cores.startDurable(dir, undefined, snapshotEvery);
    await withGuest(a.client);
    const first = await call(a.client, a.client.createGrant, lend(8192), 'k-create');
    expect(first.ok).toBe(true);
    expect(await call(a.client, a.client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) })).toMatchObject({ ok: true });
    await cores.stopLast();
    const b = await cores.startDurable(dir, undefined, snapshotEvery);
    expect(b.core.recovered?.fromImage).toBe(snapshotEvery > 0);
    expect(await call(b.client, b.client.createGrant, lend(8192), 'k-create')).toEqual(first);
    expect(await grantCount(b.client)).toBe(1);
    expect(await call(b.client, b.client.createGrant, lend(8200), 'k-create')).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
  });
});
