/**
 * The RM's admission control (issue 10; services/rm/src/admission.ts) over real gRPC on 127.0.0.1
 * with an in-process core: a rogue HLOS tool (`x-hypmesh-client: tool`) allocating VMIDs or making
 * parcels until its quota is refused on the typed face (RESOURCE_EXHAUSTED quota_<rule> with
 * ErrorInfo) and on the byte face (the RM's own NORESOURCE / DENIED, counted as quota_<rule>),
 * nothing changed by a refusal, the VMM (`vmm`) still served, quotas released when the objects go,
 * --quota overrides honoured, streams counted, and the ledger kept across a `--data-dir` restart.
 * The VMM's create+start after a rogue is test/admission-rm.e2e.test.ts.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MemType, RmServiceClient, type ExchangeResponse, type GetStatsResponse } from '@hypmesh/proto/rm';
import { ADMISSION_DOMAIN, CALLER_VMID_KEY, CLIENT_KEY, decodeStatusDetails } from '@hypmesh/rpc';
import { inProcessCore } from '@hypmesh/rm';
import { startRmServer, durableRmOptions, type RmServer } from '@hypmesh/rm-service';
import { RM_CODECS, Reassembler, codecMessageId, decodeReply, fragmentMessage, type CallName, type Codec, type RequestOf } from '@hypmesh/rm-wire';
import { createStage2, DEFAULT_STAGE2_CONFIG, type Stage2 } from '@hypmesh/stage2';
import { afterAll, describe, expect, test } from 'vitest';

const HLOS = 3;
const RW = 6;
const RWX = 7;
/** HLOS RAM the parcels share (the default core RAM is 2..18 GiB). */
const RAM = BigInt(3 * 2 ** 30);

function newStage2(): Stage2 {
  const built = createStage2(DEFAULT_STAGE2_CONFIG);
  if (!built.ok) throw new Error(built.error.join('; '));
  return built.value;
}

const servers: RmServer[] = [];
const clients: grpc.Client[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.shutdown(200);
});

async function rmWith(quota: readonly string[] = [], stage2 = newStage2(), extra: object = {}): Promise<{ server: RmServer; client: RmServiceClient }> {
  const server = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(stage2), log: { error: (obj, msg) => expect.fail(`${msg} ${JSON.stringify(obj)}`) }, quota, ...extra });
  servers.push(server);
  const client = new RmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  clients.push(client);
  return { server, client };
}

async function stopped(server: RmServer): Promise<void> {
  servers.splice(servers.indexOf(server), 1);
  await server.shutdown(100);
}

const md = (client?: string, vmid = HLOS): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set(CALLER_VMID_KEY, String(vmid));
  if (client !== undefined) m.set(CLIENT_KEY, client);
  return m;
};

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
function ask<Res>(c: RmServiceClient, method: unknown, req: object, who?: string): Promise<Res> {
  return new Promise((resolve, reject) => (method as Unary).call(c, req, md(who), { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r as Res))));
}
const refused = (p: Promise<unknown>): Promise<grpc.ServiceError> =>
  p.then(
    () => expect.fail('expected a refusal, got OK'),
    (e: grpc.ServiceError) => e,
  );

const allocate = (c: RmServiceClient, who?: string): Promise<{ vmid: number }> => ask(c, c.vmAllocate, { vmid: 0 }, who);
let page = 0;
const share = (c: RmServiceClient, to: number, who?: string): Promise<{ handle: number }> =>
  ask(c, c.memShare, { memType: MemType.MEM_TYPE_NORMAL, sanitize: false, append: false, label: 1, acl: [{ vmid: to, rights: RW }, { vmid: HLOS, rights: RWX }], sgl: [{ base: RAM + BigInt(page++ * 0x1000), size: 0x1000n }], attrs: [] }, who);
const vmCount = async (c: RmServiceClient): Promise<number> => (await ask<{ vms: unknown[] }>(c, c.listVms, {})).vms.length;
const parcelCount = async (c: RmServiceClient): Promise<number> => (await ask<{ parcels: unknown[] }>(c, c.listParcels, { allVms: true })).parcels.length;

/** The refusal is RESOURCE_EXHAUSTED quota_<rule> with ErrorInfo naming the principal and the limit. */
function expectQuota(e: grpc.ServiceError, rule: string, principal: string, limit: number): void {
  const d = decodeStatusDetails(e);
  expect(grpc.status[d.code]).toBe('RESOURCE_EXHAUSTED');
  expect(d.errorInfo).toEqual({ reason: `quota_${rule}`, domain: ADMISSION_DOMAIN, metadata: expect.objectContaining({ principal, limit: String(limit), held: String(limit) }) });
}

/** HLOS's msgq over one Exchange stream, as client `who`: each call resolves with its reply's RM error and decoded data. */
class ByteClient {
  private seq = 1;
  private readonly rx = new Reassembler();
  private readonly waiting = new Map<number, (payload: Uint8Array) => void>();
  readonly stream: grpc.ClientDuplexStream<{ fragment: Buffer }, ExchangeResponse>;
  readonly failed: Promise<grpc.ServiceError>;

  constructor(c: RmServiceClient, who: string) {
    this.stream = c.exchange(md(who)) as never;
    this.failed = new Promise((resolve) => this.stream.on('error', resolve));
    this.stream.on('data', (r: ExchangeResponse) => {
      for (const ev of this.rx.push(new Uint8Array(r.fragment))) if (ev.kind === 'message' && ev.message.type === 'REPLY') this.waiting.get(ev.message.seq)?.(ev.message.payload);
    });
  }

  async call<N extends CallName>(name: N, request: RequestOf<N>): Promise<{ rmError: string; value?: unknown }> {
    const seq = this.seq++;
    const payload = (RM_CODECS[name] as unknown as { request: Codec<RequestOf<N>> }).request.encode(request);
    const frags = fragmentMessage({ type: 'REQUEST', msgId: codecMessageId(name), seq, payload });
    if (!frags.ok) throw new Error(frags.error.reason);
    const reply = new Promise<Uint8Array>((resolve) => this.waiting.set(seq, resolve));
    for (const f of frags.value) this.stream.write({ fragment: Buffer.from(f) });
    const frame = decodeReply(await reply);
    if (!frame.ok) throw new Error('undecodable reply');
    if (frame.value.rmError !== 'OK') return { rmError: frame.value.rmError ?? `0x${frame.value.errorCode.toString(16)}` };
    const data = (RM_CODECS[name] as unknown as { reply: Codec<unknown> }).reply.decode(frame.value.data);
    return { rmError: 'OK', value: data.ok ? data.value : undefined };
  }

  end(): void {
    this.stream.cancel();
  }
}

const stats = (c: RmServiceClient): Promise<GetStatsResponse> => ask(c, c.getStats, {});

describe('vmids: the issue\'s 63 VM_ALLOCATEs from one client', () => {
  test('with the defaults a rogue tool gets 31 VMIDs, then RESOURCE_EXHAUSTED quota_vmids with nothing changed; the VMM still allocates; a deallocation gives one back', async () => {
    const { client } = await rmWith();
    const mine: number[] = [];
    for (let i = 0; i < 31; i++) mine.push((await allocate(client, 'tool')).vmid);
    const e = await refused(allocate(client, 'tool'));
    expectQuota(e, 'vmids', '3/tool', 31);
    expect(await vmCount(client)).toBe(31);
    // Anonymous is another client with its own 31; the VMM may take the rest of the 63.
    expect((await allocate(client)).vmid).toBeGreaterThan(0);
    for (let i = 0; i < 31; i++) await allocate(client, 'vmm');
    expect(await vmCount(client)).toBe(63);
    // The VMIDs are all taken now: the RM's own answer (NORESOURCE no_free_vmid), not a quota.
    expect(decodeStatusDetails(await refused(allocate(client, 'vmm'))).errorInfo?.reason).not.toBe('quota_vmids');

    const first = mine[0]!;
    await ask(client, client.vmDeallocate, { vmid: first }, 'tool');
    expect((await allocate(client, 'tool')).vmid).toBe(first);
  }, 60_000);

  test('the byte face: the refused VM_ALLOCATE answers NORESOURCE (as with no free VMID) and is counted as quota_vmids', async () => {
    const { client } = await rmWith(['vmids=2']);
    const bytes = new ByteClient(client, 'tool');
    expect((await bytes.call('VM_ALLOCATE', { vmid: 0 })).rmError).toBe('OK');
    expect((await bytes.call('VM_ALLOCATE', { vmid: 0 })).rmError).toBe('OK');
    expect(await bytes.call('VM_ALLOCATE', { vmid: 0 })).toEqual({ rmError: 'NORESOURCE' });
    expect(await vmCount(client)).toBe(2);
    expect((await stats(client)).callerRefusals).toContainEqual({ rmError: 'NORESOURCE', rule: 'quota_vmids', count: 1n });
    // The typed face counts the same holdings: the tool is at its quota there too.
    expectQuota(await refused(allocate(client, 'tool')), 'vmids', '3/tool', 2);
    bytes.end();
  });
});

describe('concurrent calls', () => {
  test('ten VM_ALLOCATEs at once on both faces cannot overshoot a quota of 3: a call in flight holds its place', async () => {
    const { client } = await rmWith(['vmids=3']);
    const bytes = new ByteClient(client, 'tool');
    const typed = Array.from({ length: 5 }, () => allocate(client, 'tool').then(() => 'OK', (e: grpc.ServiceError) => decodeStatusDetails(e).errorInfo?.reason));
    const raw = Array.from({ length: 5 }, () => bytes.call('VM_ALLOCATE', { vmid: 0 }).then((r) => (r.rmError === 'OK' ? 'OK' : r.rmError)));
    const all = await Promise.all([...typed, ...raw]);
    expect(all.filter((r) => r === 'OK')).toHaveLength(3);
    expect(all.filter((r) => r !== 'OK').every((r) => r === 'quota_vmids' || r === 'NORESOURCE')).toBe(true);
    expect(await vmCount(client)).toBe(3);
    bytes.end();
  });
});

describe('parcels: the issue\'s 64 MEM_SHAREs', () => {
  test('default: a rogue tool makes 32 of HLOS\'s 64 parcels, then quota_parcels; the VMM can still make the other 32; a reclaim gives one back', async () => {
    const { client } = await rmWith();
    const { vmid } = await allocate(client, 'vmm');
    const handles: number[] = [];
    for (let i = 0; i < 32; i++) handles.push((await share(client, vmid, 'tool')).handle);
    expectQuota(await refused(share(client, vmid, 'tool')), 'parcels', '3/tool', 32);
    expect(await parcelCount(client)).toBe(32);
    for (let i = 0; i < 32; i++) await share(client, vmid, 'vmm');
    expect(await parcelCount(client)).toBe(64);

    await ask(client, client.memReclaim, { handle: handles[0], sanitize: false }, 'tool');
    await ask(client, client.memReclaim, { handle: handles[1], sanitize: false }, 'tool');
    expect(await parcelCount(client)).toBe(62);
    await share(client, vmid, 'tool');
  }, 60_000);

  test('the byte face: the refused MEM_SHARE answers DENIED (as the 65th parcel of one owner) and is counted as quota_parcels', async () => {
    const { client } = await rmWith(['parcels=1']);
    const { vmid } = await allocate(client, 'vmm');
    const bytes = new ByteClient(client, 'tool');
    const req = (): RequestOf<'MEM_SHARE'> => ({ memType: 0, flags: 0, label: 2, acl: [{ vmid, rights: RW }, { vmid: HLOS, rights: RWX }], sgl: [{ base: RAM + BigInt(page++ * 0x1000), size: 0x1000n }], attrs: [] });
    expect((await bytes.call('MEM_SHARE', req())).rmError).toBe('OK');
    expect(await bytes.call('MEM_SHARE', req())).toEqual({ rmError: 'DENIED' });
    expect(await parcelCount(client)).toBe(1);
    expect((await stats(client)).callerRefusals).toContainEqual({ rmError: 'DENIED', rule: 'quota_parcels', count: 1n });
    bytes.end();
  });
});

describe('overrides and streams', () => {
  test('CLIENT:NAME=N is honoured for that client only; NAME=unlimited lifts a default', async () => {
    const { client } = await rmWith(['vmids=1', 'tool:vmids=3', 'big:vmids=unlimited']);
    for (let i = 0; i < 5; i++) await allocate(client, 'big');
    for (let i = 0; i < 3; i++) await allocate(client, 'tool');
    expectQuota(await refused(allocate(client, 'tool')), 'vmids', '3/tool', 3);
    await allocate(client, 'other');
    expectQuota(await refused(allocate(client, 'other')), 'vmids', '3/other', 1);
  });

  test('streams: Exchange and Subscribe count together; the next is RESOURCE_EXHAUSTED quota_streams; one ending frees a place', async () => {
    const { client } = await rmWith(['streams=2']);
    const a = new ByteClient(client, 'tool');
    const sub = client.subscribe({}, md('tool'));
    sub.on('error', () => {});
    await a.call('VM_GET_VMID', {} as never);
    const c = new ByteClient(client, 'tool');
    expectQuota(await c.failed, 'streams', '3/tool', 2);
    // Another client is not affected.
    const other = new ByteClient(client, 'other');
    expect((await other.call('VM_GET_VMID', {} as never)).rmError).toBe('OK');
    a.end();
    for (let i = 0; i < 100; i++) {
      const d = new ByteClient(client, 'tool');
      const ok = await Promise.race([d.call('VM_GET_VMID', {} as never).then(() => true), d.failed.then(() => false)]);
      d.end();
      if (ok) break;
      if (i === 99) expect.fail('the ended stream was never released');
      await new Promise((r) => setTimeout(r, 20));
    }
    sub.cancel();
    other.end();
  });

  test('a malformed client name is INVALID_ARGUMENT and changes nothing', async () => {
    const { client } = await rmWith();
    const e = await refused(allocate(client, 'Not A Name'));
    expect(grpc.status[e.code]).toBe('INVALID_ARGUMENT');
    expect(await vmCount(client)).toBe(0);
  });
});

describe('durable (--data-dir)', () => {
  test('what each client holds survives a restart on the data dir: the tool is still at its quota, and a deallocation still gives one back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hypmesh-admission-rm-'));
    const stage2 = newStage2();
    const fatal = { fatal: (obj: object, msg: string) => expect.fail(`${msg} ${JSON.stringify(obj)}`) };
    try {
      const open = async (): Promise<{ server: RmServer; client: RmServiceClient }> => {
        const durable = durableRmOptions(dir, undefined, 'normal', fatal);
        if (!durable.ok) throw new Error(durable.error);
        return rmWith(['vmids=2'], stage2, durable.value);
      };
      const first = await open();
      const held = [(await allocate(first.client, 'tool')).vmid, (await allocate(first.client, 'tool')).vmid];
      await allocate(first.client, 'vmm');
      await stopped(first.server);
      const second = await open();
      expect(second.server.restored).toBe(true);
      expect(second.server.admission.ledger.holding('vmids', { vmid: HLOS, client: 'tool', key: '3/tool' })).toBe(2);
      expectQuota(await refused(allocate(second.client, 'tool')), 'vmids', '3/tool', 2);
      await ask(second.client, second.client.vmDeallocate, { vmid: held[1] }, 'tool');
      expect((await allocate(second.client, 'tool')).vmid).toBe(held[1]);
      await stopped(second.server);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
