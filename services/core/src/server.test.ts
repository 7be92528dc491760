/**
 * CoreService over real gRPC on 127.0.0.1 (port 0): a few representative calls per family, domain
 * errors arriving with their gRPC code and decoded ErrorDetail, malformed requests refused naming
 * the field, caller identity, and a sweep of every RPC with empty and random bytes. No call may
 * ever come back UNKNOWN, and the server must keep serving.
 */

import * as grpc from '@grpc/grpc-js';
import * as api from '@hypmesh/proto';
import { CoreServiceClient, CoreServiceService, PageState, GrantMemoryType, GrantType, Right, Ripas, RttEntryState, type DeepPartial } from '@hypmesh/proto';
import { CALLER_VMID_KEY, decodeStatusDetails, type DecodedStatus } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startCoreServer, type CoreServer } from './server.js';

type Def = typeof CoreServiceService;
type Method = keyof Def;
type Req<K extends Method> = Parameters<Def[K]['requestSerialize']>[0];
type Res<K extends Method> = ReturnType<Def[K]['responseDeserialize']>;
type Outcome<T> = { ok: true; value: T } | { ok: false; error: DecodedStatus };

const GiB = 2 ** 30;
const RAM_BASE_PFN = (2 * GiB) / 4096;
const HOST = '3';
const GUEST = 0x80;

let core: CoreServer;
let client: grpc.Client;
const codesSeen: grpc.status[] = [];
/** Bugs the server logged: INTERNAL errors and invariant violations after mutations. */
const bugs: unknown[] = [];

beforeAll(async () => {
  core = await startCoreServer({
    address: '127.0.0.1:0',
    stage2Config: { memory: { paBits: 40, ram: [{ base: 2 * GiB, sizeBytes: 1 * GiB }], mmio: [{ base: 0, sizeBytes: 1 * GiB }] } },
    log: { error: (obj, msg) => bugs.push({ msg, obj }) },
    checkInvariants: true,
  });
  client = new CoreServiceClient(`127.0.0.1:${core.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await core?.shutdown(1_000);
  expect(codesSeen).not.toContain(grpc.status.UNKNOWN);
  expect(bugs).toEqual([]);
});

const metadataFor = (caller: string | null): grpc.Metadata => {
  const md = new grpc.Metadata();
  if (caller !== null) md.set(CALLER_VMID_KEY, caller);
  return md;
};

/** One RPC with a partial request (defaults filled in), as `caller` (null: no metadata). */
function rpc<K extends Method>(name: K, request: DeepPartial<Req<K>>, caller: string | null = HOST): Promise<Outcome<Res<K>>> {
  const def = CoreServiceService[name];
  const typeName = `${name.charAt(0).toUpperCase()}${name.slice(1)}Request` as keyof typeof api;
  const fns = api[typeName] as unknown as { fromPartial(o: unknown): Req<K> };
  return raw(def.path, def.requestSerialize(fns.fromPartial(request) as never), caller).then((r) =>
    r.ok ? { ok: true, value: def.responseDeserialize(r.value) as Res<K> } : r,
  );
}

/** One RPC with request bytes as they are. */
function raw(path: string, body: Buffer, caller: string | null): Promise<Outcome<Buffer>> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, metadataFor(caller), (e, value) => {
      codesSeen.push(e ? e.code : grpc.status.OK);
      resolve(e ? { ok: false, error: decodeStatusDetails(e) } : { ok: true, value: value! });
    });
  });
}

function expectOk<T>(o: Outcome<T>): T {
  if (!o.ok) throw new Error(`expected OK, got ${grpc.status[o.error.code]}: ${o.error.message}`);
  return o.value;
}

function expectError(o: Outcome<unknown>, code: grpc.status): DecodedStatus {
  if (o.ok) throw new Error(`expected ${grpc.status[code]}, got OK`);
  expect(grpc.status[o.error.code], o.error.message).toBe(grpc.status[code]);
  return o.error;
}

const expectInvalidField = (o: Outcome<unknown>, field: string): void => {
  const e = expectError(o, grpc.status.INVALID_ARGUMENT);
  expect(e.badRequest?.fieldViolations.map((v) => v.field)).toContain(field);
};

async function expectConsistent(): Promise<void> {
  expect(expectOk(await rpc('checkInvariants', {})).violations).toEqual([]);
}

/** What the API shows of the whole core: every ownership run (granule states included) and the counts. */
async function coreState(): Promise<unknown> {
  const runs: unknown[] = [];
  for (let base: bigint | undefined = 0n; base !== undefined; ) {
    const m: api.OwnershipMapResponse = expectOk(await rpc('ownershipMap', { base, count: (1n << 28n) - base }));
    runs.push(...m.runs);
    base = m.nextBase;
  }
  return { runs, tables: expectOk(await rpc('tablePageCounts', {})), counts: expectOk(await rpc('ownershipCounts', {})) };
}

/** A refused call, as the domain refuses it: its gRPC code and ErrorDetail; nothing changed. */
async function expectDomainRefusal(call: () => Promise<Outcome<unknown>>, code: grpc.status, detail: Record<string, unknown>): Promise<void> {
  const before = await coreState();
  const e = expectError(await call(), code);
  expect(e.badRequest).toBeUndefined();
  expect(e.errorDetail).toMatchObject(detail);
  expect(await coreState()).toEqual(before);
  await expectConsistent();
}

describe('day-2 services', () => {
  test('grpc.health.v1 Check reports SERVING', async () => {
    const r = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e, v) =>
        e ? reject(e) : resolve(v!),
      ),
    );
    expect([...r]).toEqual([0x08, 0x01]); // HealthCheckResponse { status: SERVING (1) }
  });

  test('reflection lists CoreService', async () => {
    const stream = client.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b);
    const reply = new Promise<Buffer>((resolve, reject) => {
      stream.on('data', resolve);
      stream.on('error', reject);
    });
    stream.write(Buffer.from([0x3a, 0x00])); // ServerReflectionRequest { list_services: "" }
    const body = await reply;
    stream.end();
    expect(body.toString('latin1')).toContain('hypmesh.core.v1.CoreService');
  });
});

describe('caller identity', () => {
  test('missing metadata → INVALID_ARGUMENT naming the key', async () => {
    expectInvalidField(await rpc('hostShareHyp', { pfn: BigInt(RAM_BASE_PFN) }, null), CALLER_VMID_KEY);
    expectInvalidField(await rpc('checkInvariants', {}, null), CALLER_VMID_KEY);
  });

  test('unparsable metadata → INVALID_ARGUMENT naming the key', async () => {
    expectInvalidField(await rpc('hostShareHyp', { pfn: BigInt(RAM_BASE_PFN) }, 'host'), CALLER_VMID_KEY);
  });

  test('a guest may not make host calls → PERMISSION_DENIED', async () => {
    expectError(await rpc('hostShareHyp', { pfn: BigInt(RAM_BASE_PFN) }, '128'), grpc.status.PERMISSION_DENIED);
  });

  test('one spelling per caller: decimal without leading zeros; `0x3`, `00003`, `0X3` are refused (issue 10)', async () => {
    expectOk(await rpc('tablePageCounts', {}, '3'));
    for (const other of ['0x3', '00003', '0X3']) expectInvalidField(await rpc('tablePageCounts', {}, other), CALLER_VMID_KEY);
  });
});

describe('pKVM host ↔ hyp (§A5)', () => {
  const pfn = BigInt(RAM_BASE_PFN + 16);

  test('share, refuse a second share with EPERM, pin blocks unshare with EBUSY, unshare', async () => {
    expectOk(await rpc('hostShareHyp', { pfn }));
    const run = expectOk(await rpc('ownershipMap', { base: pfn, count: 1n })).runs[0];
    expect(run).toMatchObject({ base: pfn, count: 1n, ownerVmid: 3, hostState: PageState.PAGE_STATE_SHARED_OWNED, hypState: PageState.PAGE_STATE_SHARED_BORROWED });

    const again = expectError(await rpc('hostShareHyp', { pfn }), grpc.status.FAILED_PRECONDITION);
    expect(again.errorDetail).toMatchObject({ domain: 'errno', codeName: 'EPERM', code: 1 });
    expect(again.errorDetail?.rule).not.toBe('');
    expect(again.errorInfo).toMatchObject({ reason: 'EPERM', domain: 'errno.hypmesh' });

    expectOk(await rpc('hypPinSharedMem', { pfn, nrPages: 1n }));
    expect(expectError(await rpc('hostUnshareHyp', { pfn }), grpc.status.FAILED_PRECONDITION).errorDetail?.codeName).toBe('EBUSY');
    expectOk(await rpc('hypUnpinSharedMem', { pfn, nrPages: 1n }));
    expectOk(await rpc('hostUnshareHyp', { pfn }));
    await expectConsistent();
  });

  test('donate to hyp and back', async () => {
    expectOk(await rpc('hostDonateHyp', { pfn, nrPages: 4n }));
    expect(expectOk(await rpc('ownershipMap', { base: pfn, count: 4n })).runs).toMatchObject([{ count: 4n, ownerVmid: 0 }]);
    expectOk(await rpc('hypDonateHost', { pfn, nrPages: 4n }));
    await expectConsistent();
  });

  test('§A5 host_share_hyp, host_unshare_hyp, hyp_pin_shared_mem: a pfn beyond the PA range → EPERM range_not_memory (no pfn-range check)', async () => {
    const beyond = 1n << 28n; // the first frame beyond the 40-bit PA range, still a 40-bit frame number
    const detail = { domain: 'errno', codeName: 'EPERM', code: 1, rule: 'range_not_memory' };
    await expectDomainRefusal(() => rpc('hostShareHyp', { pfn: beyond }), grpc.status.FAILED_PRECONDITION, detail);
    await expectDomainRefusal(() => rpc('hostUnshareHyp', { pfn: beyond }), grpc.status.FAILED_PRECONDITION, detail);
    await expectDomainRefusal(() => rpc('hypPinSharedMem', { pfn: beyond, nrPages: 1n }), grpc.status.FAILED_PRECONDITION, detail);
  });

  test('§A5 hyp_donate_host checks Y=OWNED before the straddle: [non-memory | HYP page] → EPERM hyp_not_owned', async () => {
    // RAM starts after a hole: [last hole frame | a HYP page of RAM] straddles a region boundary.
    const firstRam = BigInt(RAM_BASE_PFN);
    expectOk(await rpc('hostDonateHyp', { pfn: firstRam, nrPages: 1n }));
    await expectDomainRefusal(() => rpc('hypDonateHost', { pfn: firstRam - 1n, nrPages: 2n }), grpc.status.FAILED_PRECONDITION, {
      domain: 'errno',
      codeName: 'EPERM',
      rule: 'hyp_not_owned',
    });
    expectOk(await rpc('hypDonateHost', { pfn: firstRam, nrPages: 1n }));
    await expectConsistent();
  });

  test('§A3/§A5 hypercall registers take any uint64: pfn and nr_pages beyond 40 bits get the hypercall errno, nothing changed', async () => {
    const eperm = { domain: 'errno', codeName: 'EPERM', rule: 'range_not_memory' };
    const einval = { domain: 'errno', codeName: 'EINVAL', rule: 'pfn_range_invalid' };
    await expectDomainRefusal(() => rpc('hostShareHyp', { pfn: 1n << 40n }), grpc.status.FAILED_PRECONDITION, eperm);
    await expectDomainRefusal(() => rpc('hostShareHyp', { pfn: (1n << 64n) - 1n }), grpc.status.FAILED_PRECONDITION, eperm);
    await expectDomainRefusal(() => rpc('hostDonateHyp', { pfn, nrPages: 1n << 63n }), grpc.status.INVALID_ARGUMENT, einval);
    await expectDomainRefusal(() => rpc('hypDonateHost', { pfn: (1n << 64n) - 1n, nrPages: 1n }), grpc.status.INVALID_ARGUMENT, einval);
  });
});

describe('address spaces and guests (seed 003)', () => {
  const donated = BigInt(RAM_BASE_PFN + 1024);

  test('create, ENOMEM with an empty pool, top up, share into the guest, translate', async () => {
    const created = expectOk(await rpc('createAddressSpace', { vmid: GUEST, ipaBits: 40, donated: [{ base: donated, count: 2n }] }));
    expect(created.rootTables).toBe(2);
    expect(created.poolPages).toBe(0n);

    const hostPage = BigInt(RAM_BASE_PFN + 2048);
    const share = { vmid: GUEST, pfn: hostPage, gfn: 0x100n, nrPages: 1n, prot: Right.RIGHT_R | Right.RIGHT_W };
    const noMem = expectError(await rpc('hostShareGuest', share), grpc.status.RESOURCE_EXHAUSTED);
    expect(noMem.errorDetail).toMatchObject({ domain: 'errno', codeName: 'ENOMEM', code: 12 });

    const topped = expectOk(await rpc('topUpTablePool', { vmid: GUEST, frames: [{ base: donated + 2n, count: 8n }] }));
    expect(topped.poolPages).toBe(8n);
    expectOk(await rpc('hostShareGuest', share));

    const t = expectOk(await rpc('translate', { vmid: GUEST, ipa: 0x100n * 4096n + 0x10n }));
    expect(t).toMatchObject({ pa: hostPage * 4096n + 0x10n, level: 3, perms: Right.RIGHT_R | Right.RIGHT_W, state: PageState.PAGE_STATE_SHARED_BORROWED });
    const counts = expectOk(await rpc('tablePageCounts', {})).spaces.find((sp) => sp.vmid === GUEST);
    expect(counts).toMatchObject({ rootPages: 2n });

    expectOk(await rpc('hostUnshareGuest', { vmid: GUEST, gfn: 0x100n, nrPages: 1n }));
    expectError(await rpc('translate', { vmid: GUEST, ipa: 0x100n * 4096n }), grpc.status.NOT_FOUND);
    await expectConsistent();
  });

  test('a second space with the same VMID → ALREADY_EXISTS (EEXIST)', async () => {
    const e = expectError(await rpc('createAddressSpace', { vmid: GUEST, ipaBits: 40, donated: [{ base: donated + 100n, count: 2n }] }), grpc.status.ALREADY_EXISTS);
    expect(e.errorDetail?.codeName).toBe('EEXIST');
  });

  test('§A5 host_share_guest prot outside RWX reaches the domain → EINVAL prot_invalid with its ErrorDetail, nothing changed', async () => {
    for (const prot of [8, 0x10, Right.RIGHT_R | 8, 0xffffffff]) {
      await expectDomainRefusal(() => rpc('hostShareGuest', { vmid: GUEST, pfn: BigInt(RAM_BASE_PFN + 64), gfn: 0x200n, nrPages: 1n, prot }), grpc.status.INVALID_ARGUMENT, {
        domain: 'errno',
        codeName: 'EINVAL',
        code: 22,
        rule: 'prot_invalid',
      });
    }
  });

  test('malformed: ranges too wide, VMIDs beyond 16 bits', async () => {
    expectInvalidField(await rpc('topUpTablePool', { vmid: GUEST, frames: [{ base: 1n, count: 1n << 45n }] }), 'frames[0].count');
    expectInvalidField(await rpc('createAddressSpace', { vmid: 0x10000, ipaBits: 40 }), 'vmid');
  });
});

describe('§4.2 who creates a guest stage-2 (CALLERS, SPACE_CREATORS)', () => {
  const RM = '255';
  const G = 0x90;

  test('§4.2 caller rule: the RM creates and destroys a guest space from HYP\'s reservation; HOST may not destroy it; pages go back to the reservation', async () => {
    const before = expectOk(await rpc('tablePageCounts', {})).hypReservationPages;
    expect(before).toBe(630n);
    const created = expectOk(await rpc('createAddressSpace', { vmid: G, ipaBits: 40 }, RM));
    expect(created).toEqual({ rootTables: 2, poolPages: 8n });
    const counts = expectOk(await rpc('tablePageCounts', {}));
    expect(counts.hypReservationPages).toBe(before - 10n);
    expect(counts.spaces.find((sp) => sp.vmid === G)).toMatchObject({ rootPages: 2n, poolPages: 8n });
    await expectDomainRefusal(() => rpc('destroyAddressSpace', { vmid: G }, HOST), grpc.status.FAILED_PRECONDITION, { codeName: 'EPERM', rule: 'not_creator' });
    expect(expectOk(await rpc('destroyAddressSpace', { vmid: G }, RM)).returnedPages).toBe(10n);
    expect(expectOk(await rpc('tablePageCounts', {})).hypReservationPages).toBe(before);
    await expectConsistent();
  });

  test('§4.2 caller rule: the RM may not donate; a guest may not create; pool top-ups stay HOST\'s', async () => {
    await expectDomainRefusal(
      () => rpc('createAddressSpace', { vmid: G, ipaBits: 40, donated: [{ base: BigInt(RAM_BASE_PFN + 4096), count: 2n }] }, RM),
      grpc.status.INVALID_ARGUMENT,
      { codeName: 'EINVAL', rule: 'donation_not_expected' },
    );
    expectError(await rpc('createAddressSpace', { vmid: G, ipaBits: 40 }, '129'), grpc.status.PERMISSION_DENIED);
    expectError(await rpc('topUpTablePool', { vmid: G, frames: [{ base: BigInt(RAM_BASE_PFN + 4096), count: 1n }] }, RM), grpc.status.PERMISSION_DENIED);
  });
});

describe('grants', () => {
  const ownerGfn = BigInt(RAM_BASE_PFN + 4096);

  test('lend to the guest, guest maps, destroy refused while mapped, unmap, destroy', async () => {
    const { grantId } = expectOk(
      await rpc('createGrant', {
        type: GrantType.GRANT_TYPE_LEND,
        ranges: [{ base: ownerGfn, count: 4n }],
        acl: [{ vmid: GUEST, rights: Right.RIGHT_R | Right.RIGHT_W }],
      }),
    );
    expect(grantId).toBeGreaterThan(0n);
    expect(expectOk(await rpc('ownershipMap', { base: ownerGfn, count: 4n })).runs[0]).toMatchObject({ hostState: PageState.PAGE_STATE_LENT, grantId });

    const guest = String(GUEST);
    expectOk(await rpc('mapGrant', { grantId, rights: Right.RIGHT_R, ipaRanges: [{ base: 0x200n, count: 4n }] }, guest));
    expect(expectOk(await rpc('addressSpaceMap', { vmid: GUEST, base: 0n, count: 1n << 28n })).runs).toEqual([
      { base: 0x200n, count: 4n, state: PageState.PAGE_STATE_SHARED_BORROWED, outputFrame: ownerGfn, perms: Right.RIGHT_R, device: false, level: 3 },
    ]);
    expectError(await rpc('addressSpaceMap', { vmid: GUEST, base: 1n << 28n, count: 1n }), grpc.status.OUT_OF_RANGE);
    const busy = expectError(await rpc('destroyGrant', { grantId }), grpc.status.FAILED_PRECONDITION);
    expect(busy.errorDetail?.domain).toBe('errno');
    expectOk(await rpc('unmapGrant', { grantId }, guest));
    expectOk(await rpc('destroyGrant', { grantId }));
    expectError(await rpc('destroyGrant', { grantId }), grpc.status.NOT_FOUND);
    await expectConsistent();
  });

  test('gunyah-rm §3.2 memory_type: a NORMAL grant over MMIO is EINVAL grant_memory_type; replies carry the physical runs', async () => {
    const acl = [{ vmid: GUEST, rights: Right.RIGHT_R | Right.RIGHT_W }];
    const refused = expectError(await rpc('createGrant', { type: GrantType.GRANT_TYPE_LEND, memoryType: GrantMemoryType.GRANT_MEMORY_TYPE_NORMAL, ranges: [{ base: 0x10n, count: 1n }], acl }), grpc.status.INVALID_ARGUMENT);
    expect(refused.errorDetail).toMatchObject({ domain: 'errno', codeName: 'EINVAL', rule: 'grant_memory_type' });
    const base = ownerGfn + 96n;
    const created = expectOk(await rpc('createGrant', { type: GrantType.GRANT_TYPE_LEND, memoryType: GrantMemoryType.GRANT_MEMORY_TYPE_NORMAL, ranges: [{ base, count: 1n }, { base: base + 1n, count: 1n }], acl }));
    expect(created.physRuns).toEqual([{ base, count: 2n }]);
    expect(expectOk(await rpc('appendGrant', { grantId: created.grantId, ranges: [{ base: base + 4n, count: 1n }] })).physRuns).toEqual([{ base, count: 2n }, { base: base + 4n, count: 1n }]);
    expectOk(await rpc('destroyGrant', { grantId: created.grantId }));
  });

  test('ListGrants and ListAddressSpaces (introspection for `hypmesh check --live`): every live grant and space, any caller', async () => {
    const base = ownerGfn + 256n;
    const acl = [{ vmid: GUEST, rights: Right.RIGHT_R }];
    const { grantId } = expectOk(await rpc('createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges: [{ base, count: 3n }], acl }));
    expect(expectOk(await rpc('listGrants', {}, String(GUEST))).grants).toContainEqual({
      grantId,
      type: GrantType.GRANT_TYPE_SHARE,
      ownerVmid: 3,
      aclVmids: [GUEST],
      borrowerVmids: [],
      frames: 3n,
    });
    expect(expectOk(await rpc('listAddressSpaces', {}, String(GUEST))).spaces.map((a) => a.vmid)).toEqual(expect.arrayContaining([3, GUEST]));
    expectOk(await rpc('destroyGrant', { grantId }));
    expect(expectOk(await rpc('listGrants', {})).grants.map((g) => g.grantId)).not.toContain(grantId);
    expectInvalidField(await rpc('listGrants', {}, null), CALLER_VMID_KEY);
  });

  test('append (MEM_APPEND): ranges added until the first map, then EBUSY; ENOENT, EPERM, overlap refused', async () => {
    const base = ownerGfn + 64n;
    const acl = [{ vmid: GUEST, rights: Right.RIGHT_R | Right.RIGHT_W }];
    const { grantId } = expectOk(await rpc('createGrant', { type: GrantType.GRANT_TYPE_LEND, ranges: [{ base, count: 2n }], acl }));
    expect(expectOk(await rpc('appendGrant', { grantId, ranges: [{ base: base + 4n, count: 2n }] })).frames).toBe(4n);
    expect(expectOk(await rpc('ownershipMap', { base: base + 4n, count: 2n })).runs[0]).toMatchObject({ hostState: PageState.PAGE_STATE_LENT, grantId });

    expect(expectError(await rpc('appendGrant', { grantId: 999_999n, ranges: [{ base: base + 8n, count: 1n }] }), grpc.status.NOT_FOUND).errorDetail).toMatchObject({
      codeName: 'ENOENT',
      rule: 'no_such_grant',
    });
    expect(expectError(await rpc('appendGrant', { grantId, ranges: [{ base: base + 8n, count: 1n }] }, String(GUEST)), grpc.status.FAILED_PRECONDITION).errorDetail?.rule).toBe('not_owner');
    // A frame already in the grant is no longer exclusively OWNED by the host.
    expect(expectError(await rpc('appendGrant', { grantId, ranges: [{ base, count: 1n }] }), grpc.status.FAILED_PRECONDITION).errorDetail?.rule).toBe('owner_not_exclusive');
    expectInvalidField(await rpc('appendGrant', { grantId, ranges: [{ base: 1n << 41n, count: 1n }] }), 'ranges[0].base');

    const guest = String(GUEST);
    expectOk(await rpc('mapGrant', { grantId, rights: Right.RIGHT_R, ipaRanges: [{ base: 0x400n, count: 4n }] }, guest));
    const mapped = expectError(await rpc('appendGrant', { grantId, ranges: [{ base: base + 8n, count: 1n }] }), grpc.status.FAILED_PRECONDITION);
    expect(mapped.errorDetail).toMatchObject({ domain: 'errno', codeName: 'EBUSY', rule: 'grant_mapped' });
    expectOk(await rpc('unmapGrant', { grantId }, guest));
    expectOk(await rpc('destroyGrant', { grantId }));
    expect(expectOk(await rpc('ownershipMap', { base, count: 8n })).runs).toEqual([
      expect.objectContaining({ hostState: PageState.PAGE_STATE_OWNED, count: 8n }),
    ]);
    await expectConsistent();
  });

  test('grant rights with unknown bits reach the domain → EINVAL acl_rights_invalid / rights_invalid, nothing changed', async () => {
    const ranges = [{ base: BigInt(RAM_BASE_PFN + 0x100), count: 1n }];
    await expectDomainRefusal(
      () => rpc('createGrant', { type: GrantType.GRANT_TYPE_SHARE, ranges, acl: [{ vmid: GUEST, rights: 0x10 }] }),
      grpc.status.INVALID_ARGUMENT,
      { domain: 'errno', codeName: 'EINVAL', rule: 'acl_rights_invalid' },
    );
  });

  test('malformed: grant type UNSPECIFIED or unknown', async () => {
    const acl = [{ vmid: GUEST, rights: Right.RIGHT_R }];
    expectInvalidField(await rpc('createGrant', { ranges: [{ base: ownerGfn, count: 1n }], acl }), 'type');
    expectInvalidField(await rpc('createGrant', { type: 42 as GrantType, ranges: [{ base: ownerGfn, count: 1n }], acl }), 'type');
  });
});

describe('Arm CCA RMI (§B)', () => {
  const granule = (i: number): bigint => BigInt(RAM_BASE_PFN + 8192 + i) * 4096n;
  const [rd, root, rtt2, rtt3, data, rec] = [0, 1, 2, 3, 4, 5].map(granule) as [bigint, bigint, bigint, bigint, bigint, bigint];
  const rttOutputs = (e: DecodedStatus) => Object.fromEntries((e.errorDetail?.outputs ?? []).map((o) => [o.name, o.value]));

  test('GRANULE_DELEGATE of an unaligned address → RMI_ERROR_INPUT index 0 (gran_align)', async () => {
    const e = expectError(await rpc('granuleDelegate', { addr: rd + 1n }), grpc.status.INVALID_ARGUMENT);
    expect(e.errorDetail).toMatchObject({ domain: 'rmi', codeName: 'RMI_ERROR_INPUT', code: 1, rmiIndex: 0, rmiX0: 1n, rule: 'gran_align' });
    expect(e.errorInfo).toMatchObject({ reason: 'RMI_ERROR_INPUT', domain: 'rmi.hypmesh' });
  });

  test('realm life cycle: create, RTTs, missing and live RTT errors with top, data, teardown', async () => {
    for (const g of [rd, root, rtt2, rtt3, data, rec]) expectOk(await rpc('granuleDelegate', { addr: g }));
    // s2sz 39: start level 1, one root RTT (§B4).
    expectOk(await rpc('realmCreate', { rd, params: { s2sz: 39, rttLevelStart: 1, rttNumStart: 1, rttBase: root } }));
    expect(expectOk(await rpc('ownershipMap', { base: rd / 4096n, count: 1n })).runs[0]).toMatchObject({ ownerVmid: 0 });
    // ListRealms (introspection for a restarted VMM's sweep): any caller.
    expect(expectOk(await rpc('listRealms', {}, String(GUEST))).realms).toEqual([{ rd, state: 'NEW', ipaBits: 39, rttLevelStart: 1, rootRtts: [root], recs: [], vmid: expect.any(Number) as number }]);

    // "Missing RTT": the walk to level 1 finds no table; index = 1, top > ipa (KVM skips).
    const missing = expectError(await rpc('rttDestroy', { rd, ipa: 0n, level: 2 }), grpc.status.FAILED_PRECONDITION);
    expect(missing.errorDetail).toMatchObject({ domain: 'rmi', codeName: 'RMI_ERROR_RTT', code: 4, rmiIndex: 1, rmiX0: 0x104n, rule: 'rtt_missing' });
    expect(rttOutputs(missing).top).toBeGreaterThan(0n);

    expectOk(await rpc('rttCreate', { rd, rtt: rtt2, ipa: 0n, level: 2 }));
    expectOk(await rpc('rttCreate', { rd, rtt: rtt3, ipa: 0n, level: 3 }));
    expect(expectOk(await rpc('rttReadEntry', { rd, ipa: 0n, level: 3 }))).toMatchObject({
      walkLevel: 3,
      state: RttEntryState.RTT_ENTRY_STATE_UNASSIGNED,
      ripas: Ripas.RIPAS_EMPTY,
      desc: 0n,
    });
    expectOk(await rpc('dataCreateUnknown', { rd, data, ipa: 0n }));
    expect(expectOk(await rpc('rttReadEntry', { rd, ipa: 0n, level: 3 }))).toMatchObject({ state: RttEntryState.RTT_ENTRY_STATE_ASSIGNED, desc: data });

    // "Live entries": the level-3 RTT still maps the data granule; index = 3, top = ipa.
    const live = expectError(await rpc('rttDestroy', { rd, ipa: 0n, level: 3 }), grpc.status.FAILED_PRECONDITION);
    expect(live.errorDetail).toMatchObject({ codeName: 'RMI_ERROR_RTT', rmiIndex: 3, rmiX0: 0x304n, rule: 'rtt_live' });
    expect(rttOutputs(live).top).toBe(0n);

    expect(expectOk(await rpc('dataDestroy', { rd, ipa: 0n }))).toMatchObject({ data });
    expect(expectOk(await rpc('rttDestroy', { rd, ipa: 0n, level: 3 }))).toMatchObject({ rtt: rtt3 });
    expect(expectOk(await rpc('rttDestroy', { rd, ipa: 0n, level: 2 }))).toMatchObject({ rtt: rtt2 });
    expectOk(await rpc('realmDestroy', { rd }));
    expect(expectOk(await rpc('listRealms', {})).realms).toEqual([]);
    for (const g of [rd, root, rtt2, rtt3, data, rec]) expectOk(await rpc('granuleUndelegate', { addr: g }));
    await expectConsistent();
  });

  test('RMI calls come from HOST only', async () => {
    expectError(await rpc('granuleDelegate', { addr: rd }, '128'), grpc.status.PERMISSION_DENIED);
  });

  // Open values (issue 7 #16): whatever the RMM validates reaches the domain, which answers with the
  // exact status, index and x0; the service checks only presence and width.
  describe('values the RMM validates reach the domain', () => {
    const [rd2, root2, rec2, rtt4] = [6, 7, 8, 10].map(granule) as [bigint, bigint, bigint, bigint];
    const params = { s2sz: 39, rttLevelStart: 1, rttNumStart: 1, rttBase: root2 };
    const input = (rule: string) => ({ domain: 'rmi', codeName: 'RMI_ERROR_INPUT', code: 1, rmiIndex: 0, rmiX0: 1n, rule });

    test('§B3 REALM_CREATE with an unknown hash algorithm → RMI_ERROR_INPUT params_hash_algorithm, nothing changed', async () => {
      for (const g of [rd2, root2, rec2, rtt4]) expectOk(await rpc('granuleDelegate', { addr: g }));
      for (const hashAlgorithm of [3, 0x7fffffff])
        await expectDomainRefusal(() => rpc('realmCreate', { rd: rd2, params: { ...params, hashAlgorithm } }), grpc.status.INVALID_ARGUMENT, input('params_hash_algorithm'));
    });

    test('§B3 REALM_CREATE with an out-of-range VMID → RMI_ERROR_INPUT params_vmid, nothing changed', async () => {
      for (const vmid of [0x10000, 0xffffffff])
        await expectDomainRefusal(() => rpc('realmCreate', { rd: rd2, params: { ...params, vmid } }), grpc.status.INVALID_ARGUMENT, input('params_vmid'));
    });

    test('§B4 RTT levels and §B6 flags, desc and RIPAS out of range → RMI_ERROR_INPUT from the domain, nothing changed', async () => {
      expectOk(await rpc('realmCreate', { rd: rd2, params }));
      expectOk(await rpc('recCreate', { rd: rd2, rec: rec2 }));
      const unprotected = 1n << 38n; // above the PAR of a 39-bit realm
      const refusals: [string, () => Promise<Outcome<unknown>>][] = [
        ['level_bound', () => rpc('rttCreate', { rd: rd2, rtt: rtt4, ipa: 0n, level: 7 })],
        ['level_bound', () => rpc('rttReadEntry', { rd: rd2, ipa: 0n, level: -5 })],
        ['level_bound', () => rpc('rttMapUnprotected', { rd: rd2, ipa: unprotected, level: 4, desc: 0n })],
        ['flags_valid', () => rpc('dataCreate', { rd: rd2, data, ipa: 0n, src: granule(9), flags: 2n })],
        ['flags_valid', () => rpc('dataCreate', { rd: rd2, data, ipa: 0n, src: granule(9), flags: 1n << 60n })],
        ['desc_valid', () => rpc('rttMapUnprotected', { rd: rd2, ipa: unprotected, level: 1, desc: (1n << 63n) | (1n << 30n) })],
        ['rsi_ripas', () => rpc('recRequestRipasChange', { rec: rec2, base: 0n, top: 4096n, ripas: 7 as Ripas })],
      ];
      for (const [rule, call] of refusals) await expectDomainRefusal(call, grpc.status.INVALID_ARGUMENT, input(rule));
      expectOk(await rpc('recDestroy', { rec: rec2 }));
      expectOk(await rpc('realmDestroy', { rd: rd2 }));
      for (const g of [rd2, root2, rec2, rtt4]) expectOk(await rpc('granuleUndelegate', { addr: g }));
      await expectConsistent();
    });
  });

  test('§B2 RMI addresses take any uint64: beyond 52 bits the granule checks answer in order (gran_align, then gran_bound), nothing changed', async () => {
    const input = (rule: string) => ({ domain: 'rmi', codeName: 'RMI_ERROR_INPUT', rmiIndex: 0, rmiX0: 1n, rule });
    for (const [addr, rule] of [
      [1n << 52n, 'gran_bound'],
      [1n << 60n, 'gran_bound'],
      [1n << 63n, 'gran_bound'],
      [(1n << 60n) + 4096n, 'gran_bound'],
      [(1n << 60n) + 8n, 'gran_align'],
      [(1n << 64n) - 1n, 'gran_align'],
    ] as const)
      await expectDomainRefusal(() => rpc('granuleDelegate', { addr }), grpc.status.INVALID_ARGUMENT, input(rule));
  });

  test('malformed: params are required, RIPAS UNSPECIFIED is absent', async () => {
    expectInvalidField(await rpc('realmCreate', { rd }), 'params');
    expectInvalidField(await rpc('recRequestRipasChange', { rec, base: 0n, top: 4096n }), 'ripas');
  });
});

describe('queries', () => {
  test('ownership counts cover all memory', async () => {
    const c = expectOk(await rpc('ownershipCounts', {}));
    expect(c.totalFrames).toBe(BigInt((2 * GiB) / 4096));
    expect(c.byOwner.reduce((n, o) => n + o.frames, 0n)).toBe(c.totalFrames);
  });

  test('ownership map is run-length and pages with runs_max', async () => {
    const all = expectOk(await rpc('ownershipMap', { base: 0n, count: 1n << 28n }));
    expect(all.runs.length).toBeLessThan(100);
    expect(all.nextBase).toBeUndefined();
    const first = expectOk(await rpc('ownershipMap', { base: 0n, count: 1n << 28n, runsMax: 1 }));
    expect(first.runs).toHaveLength(1);
    expect(first.nextBase).toBeDefined();
  });

  test('read entry of the host identity map', async () => {
    const e = expectOk(await rpc('readEntry', { vmid: 3, ipa: BigInt(RAM_BASE_PFN) * 4096n }));
    expect(e).toMatchObject({ valid: true, state: PageState.PAGE_STATE_OWNED, perms: Right.RIGHT_R | Right.RIGHT_W | Right.RIGHT_X });
  });
});

describe('no input crashes the service, and nothing is UNKNOWN', () => {
  const methods = Object.keys(CoreServiceService) as Method[];
  let seed = 0x5eed;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => random() & 0xff));

  test.each(methods)('%s: empty request, with and without a caller; random bytes', async (name) => {
    const path = CoreServiceService[name].path;
    for (const caller of [null, HOST, '128', '0']) {
      const r = await raw(path, Buffer.alloc(0), caller);
      if (!r.ok) expect([grpc.status.UNKNOWN, grpc.status.INTERNAL]).not.toContain(r.error.code);
    }
    for (let i = 0; i < 8; i++) {
      const r = await raw(path, randomBytes(1 + (random() % 64)), HOST);
      if (!r.ok) expect(r.error.code).not.toBe(grpc.status.UNKNOWN);
    }
  });

  test('still serving and consistent afterwards', async () => {
    await expectConsistent();
  });
});
