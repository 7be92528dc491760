/**
 * The core's admission control (admission.ts, issue 10 item 5) over real gRPC on 127.0.0.1:0: each
 * finding of the issue reproduced by a rogue client (caller HOST, `x-hypmesh-client: rogue`) and
 * now refused with RESOURCE_EXHAUSTED naming the rule, the core unchanged (its snapshot digest);
 * quotas released when the objects go, whoever ends them; --quota overrides; the ledger across a
 * durable restart, from the journal and from a core image.
 */

import * as grpc from '@grpc/grpc-js';
import * as api from '@hypmesh/proto';
import { CoreServiceService, GrantType, type DeepPartial } from '@hypmesh/proto';
import { ADMISSION_DOMAIN, CALLER_VMID_KEY, CLIENT_KEY, decodeStatusDetails, principal, type DecodedStatus } from '@hypmesh/rpc';
import { snapshot } from '@hypmesh/stage2';
import { afterEach, describe, expect, test } from 'vitest';
import { CORE_ADMISSION, CoreAdmission, quotaSpecs } from './admission.js';
import type { CoreServer } from './server.js';
import { GUEST, RAM_PFN, TestCores } from './test-cores.js';

type Def = typeof CoreServiceService;
type Method = keyof Def;
type Req<K extends Method> = Parameters<Def[K]['requestSerialize']>[0];
type Res<K extends Method> = ReturnType<Def[K]['responseDeserialize']>;
type Outcome<T> = { ok: true; value: T } | { ok: false; error: DecodedStatus };

const HOST = 3;
const RM = 0xff;
const bugs: unknown[] = [];
const cores = new TestCores({ error: (obj, msg) => bugs.push({ msg, obj }) });
afterEach(async () => {
  await cores.closeAll();
  expect(bugs).toEqual([]);
});

/** One RPC with a partial request, as `caller` with client name `client` (none: anonymous). */
function rpc<K extends Method>(c: grpc.Client, name: K, request: DeepPartial<Req<K>>, client?: string, caller = HOST): Promise<Outcome<Res<K>>> {
  const def = CoreServiceService[name];
  const fns = api[`${name.charAt(0).toUpperCase()}${name.slice(1)}Request` as keyof typeof api] as unknown as { fromPartial(o: unknown): Req<K> };
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(caller));
  if (client !== undefined) md.set(CLIENT_KEY, client);
  return new Promise((resolve) =>
    c.makeUnaryRequest(def.path, (b: Buffer) => b, (b: Buffer) => b, def.requestSerialize(fns.fromPartial(request) as never), md, (e, v) =>
      resolve(e ? { ok: false, error: decodeStatusDetails(e) } : { ok: true, value: def.responseDeserialize(v!) as Res<K> }),
    ),
  );
}
const rogue = <K extends Method>(c: grpc.Client, name: K, request: DeepPartial<Req<K>>, caller = HOST) => rpc(c, name, request, 'rogue', caller);

function ok<T>(o: Outcome<T>): T {
  if (!o.ok) throw new Error(`expected OK, got ${grpc.status[o.error.code]}: ${o.error.message}`);
  return o.value;
}

/** A refusal by admission: RESOURCE_EXHAUSTED, ErrorInfo reason = the rule. */
function refusedBy(o: Outcome<unknown>, reason: string): DecodedStatus {
  if (o.ok) throw new Error(`expected ${reason}, got OK`);
  expect(grpc.status[o.error.code], o.error.message).toBe('RESOURCE_EXHAUSTED');
  expect(o.error.errorInfo).toMatchObject({ reason, domain: ADMISSION_DOMAIN });
  return o.error;
}

/** Runs `refused` and checks the core is exactly as before (its full snapshot). */
async function unchanged(core: CoreServer, refused: () => Promise<void>): Promise<void> {
  const before = snapshot(core.stage2);
  await refused();
  expect(snapshot(core.stage2)).toEqual(before);
}

const runs = (base: number, n: number, count = 1, gap = 1) => Array.from({ length: n }, (_, i) => ({ base: BigInt(base + i * (count + gap)), count: BigInt(count) }));
/** A host-created guest space: its root pages and a pool from the 8 frames at `at`. */
const space = (c: grpc.Client, vmid: number, at: number, client = 'rogue') => rpc(c, 'createAddressSpace', { vmid, ipaBits: 40, donated: [{ base: BigInt(at), count: 8n }] }, client);

describe('the findings of issue 10, now refused before the domain', () => {
  test('one HostDonateHyp of every free page: cap_pages_per_call; cap-sized donations then meet quota_donated_pages; HypDonateHost gives it back', async () => {
    const { core, client } = await cores.start();
    await unchanged(core, async () => {
      const e = refusedBy(await rogue(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN), nrPages: 200_000n }), 'cap_pages_per_call');
      expect(e.errorInfo!.metadata).toMatchObject({ principal: '3/rogue', asked: '200000', limit: String(CORE_ADMISSION.pages_per_call.limit) });
    });
    const cap = CORE_ADMISSION.pages_per_call.limit;
    const limit = CORE_ADMISSION.donated_pages.limit;
    const rogueHolds = () => core.admission.ledger.holding('donated_pages', principal(HOST, 'rogue'));
    for (let at = 0; at < limit; at += cap) ok(await rogue(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + at), nrPages: BigInt(cap) }));
    await unchanged(core, async () => void refusedBy(await rogue(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + limit), nrPages: 1n }), 'quota_donated_pages'));
    // Another client is not the rogue: its own quota.
    ok(await rpc(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + limit), nrPages: 1n }, 'vmm'));
    // 512 back (by HYP, from the middle of a run: it splits), then room for exactly that much.
    ok(await rpc(client, 'hypDonateHost', { pfn: BigInt(RAM_PFN + 256), nrPages: 512n }, undefined, 0));
    expect(rogueHolds()).toBe(limit - 512);
    ok(await rogue(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + 256), nrPages: 512n }));
    refusedBy(await rogue(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + limit + 1), nrPages: 1n }), 'quota_donated_pages');
    for (let at = 0; at < limit; at += cap) ok(await rogue(client, 'hypDonateHost', { pfn: BigInt(RAM_PFN + at), nrPages: BigInt(cap) }));
    expect(rogueHolds()).toBe(0);
    expect(core.admission.ledger.holding('donated_pages', principal(HOST, 'vmm'))).toBe(1);
  });

  test('one CreateGrant of 131,072 ranges: cap_ranges_per_call, no grant made; the cap itself is admitted, and the RM has its own', async () => {
    const { core, client } = await cores.start();
    ok(await space(client, GUEST, RAM_PFN));
    const acl = [{ vmid: GUEST, rights: 6 }];
    await unchanged(core, async () => {
      const e = refusedBy(await rogue(client, 'createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: runs(RAM_PFN + 0x1000, 131_072), acl }), 'cap_ranges_per_call');
      expect(e.message).toContain('131072 ranges');
    });
    const { pages_per_call: pages, ranges_per_call: ranges } = CORE_ADMISSION;
    refusedBy(await rogue(client, 'createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: [{ base: BigInt(RAM_PFN + 0x1000), count: BigInt(pages.limit + 1) }], acl }), 'cap_pages_per_call');
    const g = ok(await rogue(client, 'createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: runs(RAM_PFN + 0x1000, ranges.limit), acl }));
    refusedBy(await rogue(client, 'appendGrant', { grantId: g.grantId, ranges: runs(RAM_PFN + 0x2000, ranges.limit + 1) }), 'cap_ranges_per_call');
    refusedBy(await rogue(client, 'mapGrant', { grantId: g.grantId, rights: 6, ipaRanges: runs(0x100, ranges.limit + 1) }, GUEST), 'cap_ranges_per_call');
    // The RM passes one message's SGL (512 entries, 4,096 pages) in one call (CORE_BUILTIN_SPECS).
    ok(await rpc(client, 'createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: runs(RAM_PFN + 0x3000, 512, 8, 1), acl }, 'rm'));
  });

  test('one TopUpTablePool of 200k frames: cap_frames_per_call, pool unchanged; the cap itself is admitted', async () => {
    const { core, client } = await cores.start();
    const pool = ok(await space(client, GUEST, RAM_PFN)).poolPages;
    await unchanged(core, async () => void refusedBy(await rogue(client, 'topUpTablePool', { vmid: GUEST, frames: [{ base: BigInt(RAM_PFN + 0x100), count: 200_000n }] }), 'cap_frames_per_call'));
    await unchanged(core, async () => void refusedBy(await rogue(client, 'createAddressSpace', { vmid: GUEST + 1, ipaBits: 40, donated: [{ base: BigInt(RAM_PFN + 0x100), count: 200_000n }] }), 'cap_frames_per_call'));
    const cap = CORE_ADMISSION.frames_per_call.limit;
    expect(ok(await rogue(client, 'topUpTablePool', { vmid: GUEST, frames: [{ base: BigInt(RAM_PFN + 0x100), count: BigInt(cap) }] })).poolPages).toBe(pool + BigInt(cap));
  });

  test('3,000 address spaces from one client: quota_address_spaces at the 17th; a destroy frees one; other clients and the RM are not counted against it', async () => {
    const { core, client } = await cores.start();
    const limit = CORE_ADMISSION.address_spaces.limit;
    for (let i = 0; i < limit; i++) ok(await space(client, 0x100 + i, RAM_PFN + 8 * i));
    await unchanged(core, async () => {
      const e = refusedBy(await space(client, 0x100 + limit, RAM_PFN + 8 * limit), 'quota_address_spaces');
      expect(e.errorInfo!.metadata).toMatchObject({ principal: '3/rogue', held: String(limit), limit: String(limit) });
    });
    ok(await space(client, 0x200, RAM_PFN + 0x1000, 'vmm'));
    ok(await rpc(client, 'createAddressSpace', { vmid: 0x300, ipaBits: 40 }, 'rm', RM));
    ok(await rogue(client, 'destroyAddressSpace', { vmid: 0x100 }));
    ok(await space(client, 0x100 + limit, RAM_PFN + 8 * limit));
    // The RM's space, destroyed by the RM: its principal holds none.
    ok(await rpc(client, 'destroyAddressSpace', { vmid: 0x300 }, 'rm', RM));
    expect(core.admission.ledger.holding('address_spaces', principal(RM, 'rm'))).toBe(0);
    expect(core.admission.ledger.holding('address_spaces', principal(HOST, 'rogue'))).toBe(limit);
  });
});

describe('quotas count what a principal made and are released when it goes', () => {
  test('grants: a DestroyGrant by the owner and a DONATE mapped by its borrower both release; --quota CLIENT:grants=2', async () => {
    const { core, client } = await cores.start({ quotas: ['rogue:grants=2'] });
    ok(await space(client, GUEST, RAM_PFN, 'vmm'));
    const acl = [{ vmid: GUEST, rights: 6 }];
    const share = (at: number) => rogue(client, 'createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: [{ base: BigInt(at), count: 1n }], acl });
    const a = ok(await share(RAM_PFN + 0x100));
    const d = ok(await rogue(client, 'createGrant', { type: GrantType.GRANT_TYPE_DONATE, ranges: [{ base: BigInt(RAM_PFN + 0x200), count: 1n }], acl }));
    await unchanged(core, async () => void refusedBy(await share(RAM_PFN + 0x300), 'quota_grants'));
    // Anonymous callers keep the default.
    ok(await rpc(client, 'createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: [{ base: BigInt(RAM_PFN + 0x400), count: 1n }], acl }));
    // The borrower maps the DONATE: the grant is gone, the rogue holds one.
    ok(await rpc(client, 'mapGrant', { grantId: d.grantId, rights: 6, ipaRanges: [{ base: 0x10n, count: 1n }] }, 'vmm', GUEST));
    expect(core.admission.ledger.holding('grants', principal(HOST, 'rogue'))).toBe(1);
    ok(await share(RAM_PFN + 0x300));
    ok(await rogue(client, 'destroyGrant', { grantId: a.grantId }));
    expect(core.admission.ledger.holding('grants', principal(HOST, 'rogue'))).toBe(1);
  });

  test('pool pages count as donated: TopUpTablePool up to the quota, DrainTablePool and DestroyAddressSpace give them back', async () => {
    const { core, client } = await cores.start({ quotas: ['rogue:donated_pages=1000'] });
    const holds = (client: string) => core.admission.ledger.holding('donated_pages', principal(HOST, client));
    ok(await space(client, GUEST, RAM_PFN));
    expect(holds('rogue')).toBe(8);
    ok(await rogue(client, 'topUpTablePool', { vmid: GUEST, frames: [{ base: BigInt(RAM_PFN + 0x100), count: 992n }] }));
    await unchanged(core, async () => void refusedBy(await rogue(client, 'topUpTablePool', { vmid: GUEST, frames: [{ base: BigInt(RAM_PFN + 0x1000), count: 1n }] }), 'quota_donated_pages'));
    // The VMM tops the same space up on its own account.
    ok(await rpc(client, 'topUpTablePool', { vmid: GUEST, frames: [{ base: BigInt(RAM_PFN + 0x1000), count: 100n }] }, 'vmm'));
    expect([holds('rogue'), holds('vmm')]).toEqual([1000, 100]);
    // A drain by the VMM returns its own charge first, then the others'.
    expect(ok(await rpc(client, 'drainTablePool', { vmid: GUEST, maxPages: 150n }, 'vmm')).returnedPages).toBe(150n);
    expect([holds('rogue'), holds('vmm')]).toEqual([950, 0]);
    ok(await rogue(client, 'destroyAddressSpace', { vmid: GUEST }));
    expect([holds('rogue'), holds('vmm')]).toEqual([0, 0]);
  });

  test('--quota NAME=N for every client; a Reset forgets every charge', async () => {
    const { core, client } = await cores.start({ quotas: ['address_spaces=1', 'vmm:address_spaces=unlimited'] });
    ok(await space(client, GUEST, RAM_PFN));
    refusedBy(await space(client, GUEST + 1, RAM_PFN + 8), 'quota_address_spaces');
    ok(await space(client, GUEST + 1, RAM_PFN + 8, 'other'));
    refusedBy(await space(client, GUEST + 2, RAM_PFN + 16, 'other'), 'quota_address_spaces');
    for (let i = 3; i <= 5; i++) ok(await space(client, GUEST + i, RAM_PFN + 8 * i, 'vmm'));
    ok(await rpc(client, 'reset', {}));
    expect(core.admission.ledger.charges()).toEqual([]);
    ok(await space(client, GUEST, RAM_PFN));
  });

  test('a refusal by admission is not remembered under its request id: the same id is admitted once there is room', async () => {
    const { client } = await cores.start({ quotas: ['address_spaces=1'] });
    ok(await space(client, GUEST, RAM_PFN));
    const keyed = (): Promise<Outcome<unknown>> =>
      new Promise((resolve) => {
        const md = new grpc.Metadata();
        md.set(CALLER_VMID_KEY, '3');
        md.set(CLIENT_KEY, 'rogue');
        md.set('x-hypmesh-request-id', 'admission-test-1');
        const def = CoreServiceService.createAddressSpace;
        const req = api.CreateAddressSpaceRequest.fromPartial({ vmid: GUEST + 1, ipaBits: 40, donated: [{ base: BigInt(RAM_PFN + 8), count: 8n }] });
        client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, md, (e, v) =>
          resolve(e ? { ok: false, error: decodeStatusDetails(e) } : { ok: true, value: v }),
        );
      });
    refusedBy(await keyed(), 'quota_address_spaces');
    ok(await rogue(client, 'destroyAddressSpace', { vmid: GUEST }));
    ok(await keyed());
  });

  test('a caller the RPC does not accept hears PERMISSION_DENIED, and an ask beyond the PA space the shape check or errno, not a cap', async () => {
    const { client } = await cores.start();
    const denied = await rogue(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN), nrPages: 200_000n }, GUEST);
    expect(!denied.ok && grpc.status[denied.error.code]).toBe('PERMISSION_DENIED');
    const wide = await rogue(client, 'topUpTablePool', { vmid: GUEST, frames: [{ base: 1n, count: 1n << 45n }] });
    expect(!wide.ok && grpc.status[wide.error.code]).toBe('INVALID_ARGUMENT');
    const bad = await rpc(client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN), nrPages: 1n }, 'Not A Name');
    expect(!bad.ok && bad.error.message).toContain(CLIENT_KEY);
  });
});

describe('the ledger survives a durable restart', () => {
  for (const snapshotEvery of [0, 3]) {
    test(`from the journal${snapshotEvery > 0 ? ' and a core image' : ''}: a quota held before the restart is held after it, by the same principal`, async () => {
      const dir = cores.dataDir();
      const first = await cores.startDurable(dir, undefined, snapshotEvery);
      for (let i = 0; i < CORE_ADMISSION.address_spaces.limit; i++) ok(await space(first.client, 0x100 + i, RAM_PFN + 8 * i));
      ok(await rogue(first.client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + 0x1000), nrPages: 1000n }));
      ok(await rpc(first.client, 'hypDonateHost', { pfn: BigInt(RAM_PFN + 0x1000), nrPages: 10n }, 'vmm'));
      ok(await space(first.client, 0x200, RAM_PFN + 0x2000, 'vmm'));
      const held = first.core.admission.ledger.charges();
      await cores.stopLast();

      const again = await cores.startDurable(dir, undefined, snapshotEvery);
      expect(again.core.admission.ledger.charges().sort((a, b) => a.object.localeCompare(b.object))).toEqual(held.sort((a, b) => a.object.localeCompare(b.object)));
      refusedBy(await space(again.client, 0x180, RAM_PFN + 0x3000), 'quota_address_spaces');
      // The rogue holds its spaces' pools (8 frames each) and 990 donated pages: room for the rest, not one more.
      const room = CORE_ADMISSION.donated_pages.limit - 8 * CORE_ADMISSION.address_spaces.limit - 990;
      for (let at = 0, n = 0; at < room; at += n) {
        n = Math.min(room - at, CORE_ADMISSION.pages_per_call.limit);
        ok(await rogue(again.client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + 0x4000 + at), nrPages: BigInt(n) }));
      }
      refusedBy(await rogue(again.client, 'hostDonateHyp', { pfn: BigInt(RAM_PFN + 0x4000 + room), nrPages: 1n }), 'quota_donated_pages');
      ok(await space(again.client, 0x201, RAM_PFN + 0x2100, 'vmm'));
    });
  }
});

describe('CoreAdmission', () => {
  test('--quota specs: env first, flags win; a bad spec names itself', () => {
    expect(quotaSpecs(['grants=5'], ' grants=3 , rogue:grants=1,')).toEqual(['grants=3', 'rogue:grants=1', 'grants=5']);
    const a = new CoreAdmission(quotaSpecs(['grants=5'], 'grants=3'));
    expect(a.limits.limit('grants', principal(3, 'x'))).toBe(5);
    expect(a.limits.limit('address_spaces', principal(0xff, 'rm'))).toBe(256);
    expect(() => new CoreAdmission(['grants=lots'])).toThrow(/--quota "grants=lots"/);
    expect(() => new CoreAdmission(['pages=1'])).toThrow(/no rule pages/);
  });

  test('an image restores the same charges and donated runs', () => {
    const a = new CoreAdmission();
    a.ledger.charge('grants', principal(3, 'vmm'), 'grant:7');
    a.donated(principal(3, 'rogue'), 100, 50);
    a.returned(110, 10);
    const b = new CoreAdmission();
    b.restore(a.image());
    expect(b.image()).toBe(a.image());
    expect(b.ledger.holding('donated_pages', principal(3, 'rogue'))).toBe(40);
    b.returned(0, 1000);
    expect(b.ledger.holding('donated_pages', principal(3, 'rogue'))).toBe(0);
  });
});
