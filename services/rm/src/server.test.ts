/**
 * RmService over real gRPC on 127.0.0.1 (port 0), with the core as a second gRPC server (typed face)
 * or in-process (byte face): the message-ID option, a VM life cycle and a parcel share → accept →
 * release → reclaim whose stage-2 effects land in the core, RM errors with their gRPC code and
 * ErrorDetail, Subscribe, and the byte face byte for byte (§1.2–§1.4) including the Linux driver's
 * >512-entry lend, unknown IDs, undecodable payloads and garbage fragments.
 */

import * as grpc from '@grpc/grpc-js';
import { startCoreServer, type CoreServer } from '@hypmesh/core-service';
import { CoreServiceClient, PROTO_ROOT, type TablePageCountsResponse } from '@hypmesh/proto';
import * as rmApi from '@hypmesh/proto/rm';
import {
  MemNotifyKind,
  MemType,
  ParcelState,
  RmServiceClient,
  RmServiceService,
  StopReason,
  TransType,
  VmStatus,
  AddressRangeId,
  AuthMech,
  type DeepPartial,
  type ExchangeResponse,
  type SubscribeResponse,
} from '@hypmesh/proto/rm';
import { CALLER_VMID_KEY, decodeStatusDetails, type DecodedStatus } from '@hypmesh/rpc';
import { inProcessCore } from '@hypmesh/rm';
import {
  APPEND_FLAGS,
  CODEC_NAMES,
  RM_CODECS,
  SHARE_FLAGS,
  VM_STATUS,
  codecMessageId,
  encodeHeader,
  encodeReply,
  fragmentMessage,
  linuxSglChunks,
  memAppendRequest,
  memLendReply,
  memLendRequest,
  type CallName,
  type SglEntry,
} from '@hypmesh/rm-wire';
import { createStage2, pfn, topUpTablePool, vmid as vmidOf, type MemoryConfig, type Stage2 } from '@hypmesh/stage2';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DROPS_TRAILER_KEY, REFUSALS_TRAILER_KEY } from './byte-face.js';
import { CALL_RPCS } from './codec.js';
import { grpcCore, startRmServer, type GrpcCorePort, type RmServer } from './server.js';

const GiB = 2 ** 30;
const PAGE = 0x1000;
const MEMORY: MemoryConfig = { paBits: 40, ram: [{ base: 2 * GiB, sizeBytes: 1 * GiB }], mmio: [{ base: 0, sizeBytes: 16 * 2 ** 20 }] };
const HOST = 3;
const RWX = 7;
const RW = 6;
/** HLOS RAM byte address `offset` bytes into RAM. */
const ram = (offset: number): bigint => BigInt(2 * GiB + offset);

type Def = typeof RmServiceService;
type Unary = Exclude<keyof Def, 'subscribe' | 'exchange'>;
type Req<K extends Unary> = Parameters<Def[K]['requestSerialize']>[0];
type Res<K extends Unary> = ReturnType<Def[K]['responseDeserialize']>;
type Outcome<T> = { ok: true; value: T } | { ok: false; error: DecodedStatus };

let core: CoreServer;
let corePort: GrpcCorePort;
let coreClient: CoreServiceClient;
let rmSrv: RmServer;
let client: RmServiceClient;
const codesSeen: grpc.status[] = [];
let donor = 0;

beforeAll(async () => {
  core = await startCoreServer({ address: '127.0.0.1:0', stage2Config: { memory: MEMORY }, log: { error: () => {} } });
  corePort = grpcCore(`127.0.0.1:${core.port}`);
  coreClient = new CoreServiceClient(`127.0.0.1:${core.port}`, grpc.credentials.createInsecure());
  rmSrv = await startRmServer({ address: '127.0.0.1:0', core: corePort, log: { error: () => {} } });
  client = new RmServiceClient(`127.0.0.1:${rmSrv.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  coreClient?.close();
  corePort?.close();
  await rmSrv?.shutdown(1_000);
  await core?.shutdown(1_000);
  expect(codesSeen).not.toContain(grpc.status.UNKNOWN);
});

const md = (caller: number | null): grpc.Metadata => {
  const m = new grpc.Metadata();
  if (caller !== null) m.set(CALLER_VMID_KEY, String(caller));
  return m;
};

/** One unary RPC with a partial request (defaults filled in), as `caller`. */
function rpc<K extends Unary>(c: grpc.Client, name: K, request: DeepPartial<Req<K>>, caller: number | null = HOST): Promise<Outcome<Res<K>>> {
  const def = RmServiceService[name];
  const typeName = `${name.charAt(0).toUpperCase()}${name.slice(1)}Request` as keyof typeof rmApi;
  const fns = rmApi[typeName] as unknown as { fromPartial(o: unknown): Req<K> };
  return new Promise((resolve) => {
    c.makeUnaryRequest(def.path, def.requestSerialize as (r: unknown) => Buffer, def.responseDeserialize, fns.fromPartial(request), md(caller), (e, value) => {
      codesSeen.push(e ? e.code : grpc.status.OK);
      resolve(e ? { ok: false, error: decodeStatusDetails(e) } : { ok: true, value: value as Res<K> });
    });
  });
}
const call = <K extends Unary>(name: K, request: DeepPartial<Req<K>>, caller: number | null = HOST) => rpc(client, name, request, caller);

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
  expect(expectError(o, grpc.status.INVALID_ARGUMENT).badRequest?.fieldViolations.map((v) => v.field)).toContain(field);
};

/** Tops up the table pool of the stage-2 VM_ALLOCATE made, as the VM manager does: 64 host pages. */
function coreSpace(vmid: number): Promise<void> {
  const base = BigInt((2 * GiB) / PAGE + 0x30000 + donor++ * 64);
  return new Promise((resolve, reject) => coreClient.topUpTablePool({ vmid, frames: [{ base, count: 64n }] }, md(HOST), (e) => (e ? reject(e) : resolve())));
}

function tableCounts(): Promise<TablePageCountsResponse> {
  return new Promise((resolve, reject) => coreClient.tablePageCounts({}, md(HOST), (e, r) => (e || r === undefined ? reject(e) : resolve(r))));
}

function translate(vmid: number, ipa: bigint): Promise<bigint | undefined> {
  return new Promise((resolve) => coreClient.translate({ vmid, ipa }, md(HOST), (e, r) => resolve(e ? undefined : r?.pa)));
}

/** A Subscribe stream as `caller`, collecting what arrives. */
function subscribe(caller: number) {
  const stream = client.subscribe({}, md(caller));
  const got: SubscribeResponse[] = [];
  stream.on('data', (n: SubscribeResponse) => got.push(n));
  stream.on('error', () => {});
  return {
    got,
    until: (pred: (n: SubscribeResponse) => boolean) => waitFor(() => got.find(pred)),
    cancel: () => stream.cancel(),
  };
}

async function waitFor<T>(f: () => T | undefined, ms = 5_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('day-2 services and the message-ID option', () => {
  test('grpc.health.v1 Check reports SERVING; reflection lists RmService', async () => {
    const health = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e, v) => (e ? reject(e) : resolve(v!))),
    );
    expect([...health]).toEqual([0x08, 0x01]);
    const stream = client.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b);
    const reply = new Promise<Buffer>((resolve, reject) => {
      stream.on('data', resolve);
      stream.on('error', reject);
    });
    stream.write(Buffer.from([0x3a, 0x00]));
    expect((await reply).toString('latin1')).toContain('hypmesh.rm.v1.RmService');
    stream.end();
  });

  test('one typed RPC per RM call of RM_CODECS, each tagged with its §2.1 message ID', () => {
    const calls = CODEC_NAMES.filter((n) => RM_CODECS[n].kind === 'request') as CallName[];
    expect(Object.keys(CALL_RPCS).sort()).toEqual([...calls].sort());
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => PROTO_ROOT + target;
    root.loadSync('hypmesh/rm/v1/rm_service.proto');
    const service = root.lookupService('hypmesh.rm.v1.RmService');
    for (const name of calls) {
      const rpcName = CALL_RPCS[name].charAt(0).toUpperCase() + CALL_RPCS[name].slice(1);
      expect(service.methods[rpcName]?.options?.['(hypmesh.rm.v1.message_id)'], rpcName).toBe(codecMessageId(name));
    }
  });
});

describe('typed face, with the core over gRPC', () => {
  test('§4.4 VM life cycle: allocate, lend the DTB, configure, init, start, forced stop, reset, reclaim, deallocate; VM_STATUS to the owner', async () => {
    const host = subscribe(HOST);
    const { vmid } = expectOk(await call('vmAllocate', { vmid: 0 }));
    expect(vmid).toBeGreaterThanOrEqual(0x80);
    await coreSpace(vmid);
    const { handle } = expectOk(
      await call('memLend', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid, rights: RWX }], sgl: [{ base: ram(0x100000), size: 0x10000n }] }),
    );
    expectOk(await call('vmConfigImage', { vmid, authMech: AuthMech.AUTH_MECH_NONE, memHandle: handle, dtbOffset: 0n, dtbSize: 0x1000n }));
    expectOk(await call('vmSetDemandPaging', { vmid, ranges: [] }));
    expectOk(await call('vmSetAddressLayout', { vmid, rangeId: AddressRangeId.ADDRESS_RANGE_ID_IMAGE, base: 0x8000_0000n, size: 0x10000n }));
    expectOk(await call('vmInit', { vmid }));
    expect(expectOk(await call('vmGetState', { vmid }))).toMatchObject({ vmStatus: VmStatus.VM_STATUS_READY });
    expectOk(await call('vmStart', { vmid }));
    expect(expectOk(await call('vmGetState', { vmid }))).toMatchObject({ vmStatus: VmStatus.VM_STATUS_RUNNING });
    // VM_START accepted the DTB parcel at the IMAGE layout: the core maps it in the guest.
    expect(await translate(vmid, 0x8000_0000n)).toBe(ram(0x100000));
    await host.until((n) => n.vmStatus?.vmid === vmid && n.vmStatus.vmStatus === VmStatus.VM_STATUS_RUNNING);
    expect(expectOk(await call('vmGetVmid', {}, vmid)).vmid).toBe(vmid);

    expectOk(await call('vmStop', { vmid, force: true, stopReason: StopReason.STOP_REASON_FORCE_STOP }));
    await host.until((n) => n.vmExited?.vmid === vmid);
    expectOk(await call('vmReset', { vmid }));
    await waitFor(() => (rmSrv.rm.vms.get(vmid)?.status === 'RESET' ? true : undefined));
    expectOk(await call('memReclaim', { handle }));
    expectOk(await call('vmDeallocate', { vmid }));
    expect(rmSrv.rm.vmids.isAllocated(vmid)).toBe(false);
    // VM_DEALLOCATE destroyed the VM's stage-2 in the core (§4.2): no space is left to destroy.
    expect(await tableCounts().then((c) => c.spaces.some((sp) => sp.vmid === vmid))).toBe(false);
    host.cancel();
  });

  test('§4.2 VM_ALLOCATE creates the VM\'s stage-2 in the core: an RM-only client can name the guest in an ACL (over gRPC)', async () => {
    const before = (await tableCounts()).hypReservationPages;
    const { vmid } = expectOk(await call('vmAllocate', { vmid: 0 }));
    // Nobody called the core for this VM: the RM had HYP make its stage-2 from the reservation.
    const after = await tableCounts();
    expect(after.spaces.find((sp) => sp.vmid === vmid)).toMatchObject({ rootPages: 2n, poolPages: 8n });
    expect(after.hypReservationPages).toBe(before - 10n);
    const { handle } = expectOk(await call('memLend', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid, rights: RWX }], sgl: [{ base: ram(0x900000), size: 0x1000n }] }));
    expectOk(await call('memAccept', { handle, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_LEND, done: true }, vmid));
    // Dealloc while the VM (in LOAD) accepted the parcel: the RM releases it (gunyah-rm.md §4.2, as a
    // reset would), then the core refuses while the parcel still names the VM: BUSY, the VM stays.
    const busy = expectError(await call('vmDeallocate', { vmid }), grpc.status.FAILED_PRECONDITION);
    expect(busy.message).toMatch(/core_space_in_grant/);
    expect(rmSrv.rm.vmids.isAllocated(vmid)).toBe(true);
    expect(rmSrv.rm.parcels.get(handle)?.accepted.has(vmid)).toBe(false);
    expectOk(await call('memReclaim', { handle }));
    expectOk(await call('vmDeallocate', { vmid }));
    expect((await tableCounts()).hypReservationPages).toBe(before);
  });

  test('§3 parcel: share → notify SHARED (Subscribe) → accept (mapped in the core) → release → reclaim', async () => {
    const { vmid: guest } = expectOk(await call('vmAllocate', { vmid: 0 }));
    await coreSpace(guest);
    const inbox = subscribe(guest);
    const base = ram(0x400000);
    const { handle } = expectOk(
      await call('memShare', {
        memType: MemType.MEM_TYPE_NORMAL,
        label: 0x1234,
        acl: [{ vmid: guest, rights: RW }, { vmid: HOST, rights: RWX }],
        sgl: [{ base, size: 0x4000n }],
      }),
    );
    expectOk(await call('memNotify', { handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_SHARED, memInfoTag: 9, vmids: [guest] }));
    const shared = await inbox.until((n) => n.memShared !== undefined);
    expect(shared.messageId).toBe(0x51100011);
    expect(shared.memShared).toMatchObject({ handle, ownerVmid: HOST, label: 0x1234, memInfoTag: 9, transType: TransType.TRANS_TYPE_SHARE, regionSizes: [0x4000n] });

    const ipa = 0x4000_0000n;
    const accepted = expectOk(
      await call('memAccept', { handle, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_SHARE, done: true, sgl: [{ base: ipa, size: 0x4000n }] }, guest),
    );
    expect(accepted.ipasChosenByRm).toBe(false);
    expect(await translate(guest, ipa + 0x1000n)).toBe(base + 0x1000n);
    expect(expectOk(await call('listParcels', {}, guest)).parcels).toMatchObject([
      { handle, ownerVmid: HOST, state: ParcelState.PARCEL_STATE_SHARED, acceptedBy: [guest], regions: [{ size: 0x4000n }] },
    ]);

    const inuse = expectError(await call('memReclaim', { handle }), grpc.status.FAILED_PRECONDITION);
    expect(inuse.errorDetail).toMatchObject({ domain: 'rm', codeName: 'MEM_INUSE', code: 0xb, linuxErrnoName: 'EINVAL', linuxErrno: 22 });

    expectOk(await call('memRelease', { handle }, guest));
    expect(await translate(guest, ipa)).toBeUndefined();
    expectOk(await call('memReclaim', { handle }));
    inbox.cancel();
  });

  test('RM errors carry their gRPC code and ErrorDetail (RM name and code, Linux errno, rule)', async () => {
    const e = expectError(await call('memReclaim', { handle: 0xabcd }), grpc.status.NOT_FOUND);
    expect(e.errorDetail).toMatchObject({ domain: 'rm', codeName: 'HANDLE_INVALID', code: 7, linuxErrnoName: 'EINVAL', linuxErrno: 22 });
    expect(e.errorDetail?.rule).not.toBe('');
    expect(e.errorInfo).toMatchObject({ reason: 'HANDLE_INVALID', domain: 'rm.hypmesh' });

    const denied = expectError(await call('vmAllocate', { vmid: 0 }, 0x90), grpc.status.PERMISSION_DENIED);
    expect(denied.errorDetail).toMatchObject({ codeName: 'DENIED', code: 3, linuxErrnoName: 'EPERM', linuxErrno: 1 });

    const state = expectError(await call('vmStart', { vmid: expectOk(await call('vmAllocate', { vmid: 0 })).vmid }), grpc.status.FAILED_PRECONDITION);
    expect(state.errorDetail).toMatchObject({ codeName: 'VM_STATE', code: 0x14, linuxErrnoName: 'EBADMSG', linuxErrno: 74 });
  });

  test('a typed list over 512 entries meets the wire decoder: NORESOURCE (RESOURCE_EXHAUSTED)', async () => {
    const sgl = Array.from({ length: 513 }, (_, i) => ({ base: ram(0x800000 + i * 2 * PAGE), size: BigInt(PAGE) }));
    const e = expectError(await call('memLend', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid: 0x80, rights: RWX }], sgl }), grpc.status.RESOURCE_EXHAUSTED);
    expect(e.errorDetail).toMatchObject({ codeName: 'NORESOURCE', rule: 'list_entries_over_max', linuxErrnoName: 'ENODEV' });
  });

  test('malformed typed requests are INVALID_ARGUMENT naming the field, before the RM', async () => {
    expectInvalidField(await call('memShare', { acl: [{ vmid: HOST, rights: RWX }], sgl: [{ base: ram(0), size: 0x1000n }] }), 'mem_type');
    expectInvalidField(await call('memShare', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid: 0x10000, rights: RWX }] }), 'acl[0].vmid');
    expectInvalidField(await call('memShare', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid: 3, rights: 0x100 }] }), 'acl[0].rights');
    expectInvalidField(await call('vmStop', { vmid: 0x80, force: true }), 'stop_reason');
    expectInvalidField(await call('memNotify', { handle: 1 }), 'kind');
    expectInvalidField(await call('vmGetVmid', {}, null), CALLER_VMID_KEY);
  });

  test('ListVms and ListParcels all_vms (introspection for `hypmesh check --live`): every VM and parcel with its grant, HLOS only', async () => {
    const guest = expectOk(await call('vmAllocate', { vmid: 0 })).vmid;
    const { handle } = expectOk(await call('memShare', { memType: MemType.MEM_TYPE_NORMAL, label: 0x77, acl: [{ vmid: guest, rights: RW }, { vmid: HOST, rights: RWX }], sgl: [{ base: ram(0x900000), size: 0x2000n }] }));
    expect(expectOk(await call('listVms', {})).vms).toContainEqual({ vmid: guest, ownerVmid: HOST, status: 'LOAD' });
    const all = expectOk(await call('listParcels', { allVms: true })).parcels.find((p) => p.handle === handle);
    expect(all).toMatchObject({ ownerVmid: HOST, state: ParcelState.PARCEL_STATE_SHARING, acceptedBy: [] });
    expect(all!.grantId).toBeGreaterThan(0n);
    expectError(await call('listVms', {}, guest), grpc.status.PERMISSION_DENIED);
    expectError(await call('listParcels', { allVms: true }, guest), grpc.status.PERMISSION_DENIED);
    expectOk(await call('memReclaim', { handle }));
    expectOk(await call('vmDeallocate', { vmid: guest }));
  });

  test('a core that is down is an RM error, not a crash', async () => {
    const dead = grpcCore('127.0.0.1:1', 500);
    const rm = await startRmServer({ address: '127.0.0.1:0', core: dead, log: { error: () => {} } });
    const c = new RmServiceClient(`127.0.0.1:${rm.port}`, grpc.credentials.createInsecure());
    const o = await rpc(c, 'memLend', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid: HOST + 1, rights: RWX }], sgl: [{ base: ram(0x900000), size: 0x1000n }] });
    // The ACL names VMID 4, which this RM does not know: refused before the core is asked.
    expect(o.ok).toBe(false);
    // VM_ALLOCATE asks the core for the VM's stage-2 (§4.2): with the core down it is an RM error
    // naming the transport failure, and no VMID is taken.
    const alloc = await rpc(c, 'vmAllocate', { vmid: 0 });
    if (alloc.ok) throw new Error('expected VM_ALLOCATE to fail with the core down');
    expect(alloc.error.errorDetail?.domain).toBe('rm');
    expect(alloc.error.errorDetail?.rule).toBe('core_outcome_unknown');
    expect([grpc.status.UNKNOWN, grpc.status.INTERNAL]).not.toContain(alloc.error.code);
    expect(rm.rm.vmids.isAllocated(0x80)).toBe(false);
    // A core that made the VM's stage-2 and then went down: the parcel call is the RM error.
    const half = await startRmServer({ address: '127.0.0.1:0', core: { ...dead, createVmSpace: () => Promise.resolve({ ok: true, value: undefined }) }, log: { error: () => {} } });
    const hc = new RmServiceClient(`127.0.0.1:${half.port}`, grpc.credentials.createInsecure());
    const { vmid } = expectOk(await rpc(hc, 'vmAllocate', { vmid: 0 }));
    const lend = await rpc(hc, 'memLend', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid, rights: RWX }], sgl: [{ base: ram(0x900000), size: 0x1000n }] });
    if (lend.ok) throw new Error('expected the lend to fail with the core down');
    expect(lend.error.errorDetail?.domain).toBe('rm');
    expect(lend.error.errorDetail?.rule).toBe('core_outcome_unknown');
    expect([grpc.status.UNKNOWN, grpc.status.INTERNAL]).not.toContain(lend.error.code);
    hc.close();
    await half.shutdown(500);
    c.close();
    dead.close();
    await rm.shutdown(500);
  });
});

describe('byte face (Exchange), with an in-process core', () => {
  let embedded: RmServer;
  let bc: RmServiceClient;
  let stage2: Stage2;

  beforeAll(async () => {
    const s = createStage2({ memory: MEMORY });
    if (!s.ok) throw new Error(s.error.join('; '));
    stage2 = s.value;
    embedded = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(stage2), log: { error: () => {} } });
    bc = new RmServiceClient(`127.0.0.1:${embedded.port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    bc?.close();
    await embedded?.shutdown(1_000);
  });

  let spaces = 0;
  /** A VM allocated through the RM (which made its stage-2), its pool topped up as the VM manager does. */
  async function guestVm(): Promise<number> {
    const { vmid } = expectOk(await rpc(bc, 'vmAllocate', { vmid: 0 }));
    const topped = topUpTablePool(stage2, vmidOf(vmid), [{ base: pfn((2 * GiB) / PAGE + 0x3f000 - spaces++ * 64), count: 64 }]);
    if (!topped.ok) throw new Error(topped.error.message);
    return vmid;
  }

  /** An Exchange stream as `caller`: send raw fragments, take fragments as they come back. */
  function exchange(caller: number) {
    const stream = bc.exchange(md(caller));
    // Replies and notifications (type 3, §1.2) are kept apart: the caller's queue may hold some.
    const got: Buffer[] = [];
    const notifications: Buffer[] = [];
    let taken = 0;
    stream.on('data', (r: ExchangeResponse) => ((r.fragment[1]! & 0x3) === 3 ? notifications : got).push(r.fragment));
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('error', () => {});
    return {
      send: (...fragments: Uint8Array[]) => fragments.forEach((f) => stream.write({ fragment: Buffer.from(f) })),
      take: async (n: number): Promise<Buffer[]> => {
        await waitFor(() => (got.length >= taken + n ? true : undefined));
        const out = got.slice(taken, taken + n);
        taken += n;
        return out;
      },
      notifications,
      end: () => (stream.end(), status),
    };
  }

  const request = (msgId: number, seq: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array[] => {
    const f = fragmentMessage({ type: 'REQUEST', msgId, seq, payload }, 62 * 232);
    if (!f.ok) throw new Error(f.error.reason);
    return f.value;
  };
  const reply = (msgId: number, seq: number, payload: Uint8Array): Buffer[] => {
    const f = fragmentMessage({ type: 'REPLY', msgId, seq, payload });
    if (!f.ok) throw new Error(f.error.reason);
    return f.value.map((b) => Buffer.from(b));
  };

  test('VM_GET_VMID: hand-written request bytes → the reply, seq and msg_id echoed (§1.2, §1.4)', async () => {
    const x = exchange(0x3);
    x.send(Uint8Array.of(0x21, 0x01, 0x34, 0x12, 0x24, 0x00, 0x00, 0x56));
    expect([...(await x.take(1))[0]!]).toEqual([0x21, 0x02, 0x34, 0x12, 0x24, 0x00, 0x00, 0x56, 0, 0, 0, 0, 0x03, 0, 0, 0]);
    const status = await x.end();
    expect(status.code).toBe(grpc.status.OK);
  });

  test('an unknown message ID → UNIMPLEMENTED (0xFFFFFFFF); an undecodable payload → MSG_INVALID', async () => {
    const x = exchange(HOST);
    x.send(...request(0x5600_0099, 7));
    expect(await x.take(1)).toEqual(reply(0x5600_0099, 7, encodeReply('UNIMPLEMENTED')));
    x.send(...request(codecMessageId('VM_START'), 8, Uint8Array.of(1, 2, 3)));
    expect(await x.take(1)).toEqual(reply(codecMessageId('VM_START'), 8, encodeReply('MSG_INVALID')));
    await x.end();
  });

  test('§2.1 VM_HOST_GET_TYPE on both faces: empty request, reply u32 0x01000164', async () => {
    const x = exchange(HOST);
    const id = codecMessageId('VM_HOST_GET_TYPE');
    expect(id).toBe(0x5600_00a0);
    x.send(...request(id, 21));
    expect(await x.take(1)).toEqual(reply(id, 21, encodeReply('OK', Uint8Array.of(0x64, 0x01, 0x00, 0x01))));
    await x.end();
    expect(expectOk(await call('vmHostGetType', {}))).toEqual({ hostType: 0x0100_0164 });
  });

  test('byte-face refusals say why: the rule that fired, per caller VMID (GetStats caller_refusals, trailer)', async () => {
    const caller = 0x20; // a caller of its own, so the counts are this test's
    const x = exchange(caller);
    x.send(...request(codecMessageId('VM_ALLOCATE'), 1, Uint8Array.of(0, 0, 0, 0))); // not HLOS: DENIED
    x.send(...request(codecMessageId('MEM_LEND'), 2, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0))); // < 20 B: MSG_INVALID
    x.send(...request(0x5600_0099, 3)); // unknown ID: UNIMPLEMENTED
    await x.take(3);
    const status = await x.end();
    const trailer = String(status.metadata.get(REFUSALS_TRAILER_KEY)[0] ?? '');
    for (const key of ['DENIED:caller_not_hlos=1', 'MSG_INVALID:list_header_missing=1', 'UNIMPLEMENTED:message_unhandled=1']) expect(trailer).toContain(key);
    const mine = expectOk(await rpc(bc, 'getStats', {}, caller));
    expect(mine.callerRefusals).toEqual([
      { rmError: 'DENIED', rule: 'caller_not_hlos', count: 1n },
      { rmError: 'MSG_INVALID', rule: 'list_header_missing', count: 1n },
      { rmError: 'UNIMPLEMENTED', rule: 'message_unhandled', count: 1n },
    ]);
    // Another caller does not see them.
    expect(expectOk(await rpc(bc, 'getStats', {}, 0x21)).callerRefusals).toEqual([]);
  });

  test("the Linux driver's lend of 1100 entries: MEM_LEND with APPEND, MEM_APPEND chunks, END on the last; byte-exact replies", async () => {
    const vmid = await guestVm();
    const entries: SglEntry[] = Array.from({ length: 1100 }, (_, i) => ({ base: ram(0x1000000 + i * 2 * PAGE), size: BigInt(PAGE) }));
    const chunks = linuxSglChunks(entries);
    const x = exchange(HOST);
    const lendId = codecMessageId('MEM_LEND');
    x.send(...request(lendId, 100, memLendRequest.encode({ memType: 0, flags: SHARE_FLAGS.APPEND, label: 0, acl: [{ vmid, rights: RWX }], sgl: chunks.first, attrs: [] })));
    const [first] = await x.take(1);
    expect(first!.readUInt32LE(8), 'RM error of the MEM_LEND reply').toBe(0);
    const handle = first!.readUInt32LE(12);
    expect([first]).toEqual(reply(lendId, 100, encodeReply('OK', memLendReply.encode({ handle }))));
    const appendId = codecMessageId('MEM_APPEND');
    for (const [i, a] of chunks.appends.entries()) {
      x.send(...request(appendId, 101 + i, memAppendRequest.encode({ handle, flags: a.done ? APPEND_FLAGS.DONE : 0, sgl: a.sgl })));
      expect(await x.take(1)).toEqual(reply(appendId, 101 + i, encodeReply('OK')));
    }
    expect(chunks.appends.at(-1)?.done).toBe(true);
    const parcel = embedded.rm.parcels.get(handle);
    expect(parcel?.regions).toHaveLength(1100);
    expect(parcel?.state).toBe('SHARING');
    await x.end();
  });

  test('pipelined requests are counted once each: 200 MEM_LEND sent at once are 200 requests_dispatched (issue 10)', async () => {
    // A core that answers a little later, as one over gRPC does: the fragments behind the first
    // request arrive while it waits (this is what made 200 lends count as 19,398).
    const s2 = createStage2({ memory: MEMORY });
    if (!s2.ok) throw new Error(s2.error.join('; '));
    const fast = inProcessCore(s2.value);
    const slow = Object.fromEntries(
      Object.entries(fast).map(([k, f]) => [k, async (a: never) => (await new Promise((r) => setTimeout(r, 2)), (f as (a: never) => unknown)(a))]),
    ) as unknown as typeof fast;
    const server = await startRmServer({ address: '127.0.0.1:0', core: slow, log: { error: () => {} } });
    const client = new RmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const { vmid } = expectOk(await rpc(client, 'vmAllocate', { vmid: 0 }));
      const stream = client.exchange(md(HOST));
      let replies = 0;
      const all = new Promise<void>((resolve) => stream.on('data', () => ++replies === 200 && resolve()));
      stream.on('error', () => {});
      const lendId = codecMessageId('MEM_LEND');
      // The same page each time: the first lend takes it (one slow core call), the other 199 are refused.
      const lend = memLendRequest.encode({ memType: 0, flags: 0, label: 0, acl: [{ vmid, rights: RWX }], sgl: [{ base: ram(0x3000000), size: BigInt(PAGE) }], attrs: [] });
      for (let i = 0; i < 200; i++) for (const f of request(lendId, 1000 + i, lend)) stream.write({ fragment: Buffer.from(f) });
      await all;
      stream.end();
      expect(expectOk(await rpc(client, 'getStats', {})).requestsDispatched).toBe(200n);
    } finally {
      client.close();
      await server.shutdown(1_000);
    }
  });

  test('garbage fragments are dropped and counted, never answered, never a crash', async () => {
    const before = expectOk(await rpc(bc, 'getStats', {}));
    const x = exchange(HOST);
    const getVmid = codecMessageId('VM_GET_VMID');
    x.send(
      Uint8Array.of(0x21, 0x01, 0x00), // < 8 bytes
      Uint8Array.of(0x22, 0x01, 0, 0, 0x24, 0, 0, 0x56), // API version 2
      encodeHeader({ type: 'CONTINUATION', fragmentCount: 1, seq: 5, msgId: getVmid }), // nothing pending
      new Uint8Array(241).fill(0x21), // over 240 bytes
      encodeHeader({ type: 'REPLY', fragmentCount: 0, seq: 6, msgId: getVmid }), // not a request
      ...Array.from({ length: 50 }, (_, i) => Uint8Array.from({ length: (i * 37) % 240 }, (_v, j) => (i * 31 + j * 7) & 0xff)),
    );
    // The stream still works: the next request is answered.
    x.send(...request(getVmid, 9));
    const [r] = await x.take(1);
    expect(r!.readUInt16LE(2)).toBe(9);
    const status = await x.end();
    expect(status.code).toBe(grpc.status.OK);
    const trailer = String(status.metadata.get(DROPS_TRAILER_KEY)[0] ?? '');
    for (const rule of ['header_too_short', 'api_version_invalid', 'continuation_without_partial', 'fragment_too_large', 'not_a_request']) expect(trailer).toContain(rule);
    const after = expectOk(await rpc(bc, 'getStats', {}));
    const dropsOf = (s: typeof after) => s.drops.reduce((n, d) => n + d.count, 0n);
    expect(dropsOf(after) - dropsOf(before)).toBeGreaterThanOrEqual(5n);
    expect(after.fragmentsReceived - before.fragmentsReceived).toBe(56n);
  });

  test('a MEM_SHARED notification arrives on the borrower\'s Exchange stream as a type-3 message', async () => {
    const guest = await guestVm();
    const x = exchange(guest);
    const { handle } = expectOk(
      await rpc(bc, 'memShare', { memType: MemType.MEM_TYPE_NORMAL, acl: [{ vmid: guest, rights: RW }, { vmid: HOST, rights: RWX }], sgl: [{ base: ram(0x2000000), size: 0x2000n }] }),
    );
    expectOk(await rpc(bc, 'memNotify', { handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_SHARED, memInfoTag: 1, vmids: [guest] }));
    const n = await waitFor(() => x.notifications.find((f) => f.readUInt32LE(4) === codecMessageId('MEM_SHARED')));
    expect(n![0]).toBe(0x21);
    expect(n![1]! & 0x3).toBe(3);
    expect(n!.readUInt32LE(4)).toBe(codecMessageId('MEM_SHARED'));
    expect(RM_CODECS.MEM_SHARED.notification.decode(n!.subarray(8))).toMatchObject({ ok: true, value: { handle, ownerVmid: HOST, memInfoTag: 1 } });
    await x.end();
  });

  test("hlos_queue_bounded: a Subscribe client that stops reading leaves HLOS's notifications in the 256-deep queue, drops counted; reading again delivers them with the drop count", async () => {
    const stream = bc.subscribe({}, md(HOST));
    stream.on('error', () => {});
    const got: SubscribeResponse[] = [];
    stream.on('data', (n: SubscribeResponse) => got.push(n));
    await waitFor(() => (embedded.rm.pendingFor(HOST) === 0 ? true : undefined));
    stream.pause();
    const rm = embedded.rm;
    const before = rm.queue(HOST).dropped;
    for (let i = 0; i < 50_000; i++) rm.notify(HOST, 'VM_STATUS', { vmid: 0x80, vmStatus: VM_STATUS.RUNNING, osStatus: 0, appStatus: 0 });
    // The stream's buffer and the client's flow-control window hold some; the rest wait, bounded.
    const stats = expectOk(await rpc(bc, 'getStats', {}));
    expect(Number(stats.notificationsPending)).toBeGreaterThan(0);
    expect(Number(stats.notificationsPending)).toBeLessThanOrEqual(256);
    expect(Number(stats.notificationsDropped) - before).toBeGreaterThan(40_000);
    stream.resume();
    await waitFor(() => (rm.pendingFor(HOST) === 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(got.length).toBeLessThan(10_000);
    expect(got.at(-1)!.dropped).toBe(BigInt(rm.queue(HOST).dropped));
    stream.cancel();
  });

  test('Exchange: a message that is no ExchangeRequest ends the stream INVALID_ARGUMENT, not INTERNAL (issue 10)', async () => {
    const identity = (b: Buffer): Buffer => b;
    const stream = bc.makeBidiStreamRequest(RmServiceService.exchange.path, identity, identity, md(HOST));
    const status = new Promise<grpc.StatusObject>((resolve) => {
      stream.on('status', resolve);
      stream.on('error', () => {});
      stream.on('data', () => {});
    });
    stream.write(Buffer.from([0x0a, 0x7f, 0x01])); // field 1 claims 127 bytes; 1 follows
    const s = await status;
    expect(grpc.status[s.code]).toBe('INVALID_ARGUMENT');
    expect(s.details).toContain('do not decode as its request message');
  });

  test('Exchange without a caller VMID fails INVALID_ARGUMENT', async () => {
    const stream = bc.exchange(md(null));
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      stream.on('status', resolve);
      stream.on('error', () => {});
    });
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});
