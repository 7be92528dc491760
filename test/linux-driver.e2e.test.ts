/**
 * The seed-002 driver (@hypmesh/linux-driver) over the wire: its msgq client speaks RmService.Exchange
 * to the RM as a separate process, as HLOS. Without faults, a 1100-entry share (create + two
 * MEM_APPENDs) and its reclaim go through. With the byte face's per-message CLIENT_TO_RM faults
 * (armed through the RM's FaultService), linux-append-orphan happens over gRPC too; with
 * RM_TO_CLIENT_FRAGMENT, so does the short reply.
 */
import * as grpc from '@grpc/grpc-js';
import {
  GH_MEM_HANDLE_INVAL,
  GhRm,
  MsgqClient,
  SCENARIO_PLANS,
  gh_rm_mem_reclaim,
  gh_rm_mem_share,
  grpcTransport,
  newTrace,
  type gh_rm_mem_parcel,
} from '@hypmesh/linux-driver';
import { FaultPlan, FaultServiceClient } from '@hypmesh/proto/fault';
import { RmServiceClient, type ParcelSummary } from '@hypmesh/proto/rm';
import { VmType, VmmServiceClient, type Vm } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, type Addresses } from './support/processes.js';


const HLOS = 3;
const processes = new Processes();
let addrs: Addresses;
let guest: number;
const md = (vmid = HLOS): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set('x-hypmesh-caller-vmid', String(vmid));
  return m;
};
const unary = <Res>(client: grpc.Client, fn: unknown, req: object): Promise<Res> =>
  new Promise((resolve, reject) =>
    (fn as (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: Res) => void) => void).call(client, req, md(), (e, r) => (e ? reject(e) : resolve(r))),
  );

/** 1 page each, two pages apart, 3 GiB into the default RAM (clear of the VMM's donation region). */
const pages = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ phys_addr: BigInt(3 * 2 ** 30 + from + i * 0x2000), size: 0x1000n }));
const parcel = (n: number, label: number, from: number): gh_rm_mem_parcel => ({
  mem_type: 0,
  label,
  acl_entries: [{ vmid: HLOS, perms: 7 }, { vmid: guest, perms: 6 }],
  mem_entries: pages(n, from),
  mem_handle: GH_MEM_HANDLE_INVAL,
});
const driver = (): GhRm => new GhRm(new MsgqClient(grpcTransport(addrs.rm, HLOS), 10_000));
const parcels = async (): Promise<ParcelSummary[]> => {
  const rm = new RmServiceClient(addrs.rm, grpc.credentials.createInsecure());
  const r = await unary<{ parcels: ParcelSummary[] }>(rm, rm.listParcels, {});
  rm.close();
  return r.parcels;
};
async function arm(plan: object): Promise<void> {
  const f = new FaultServiceClient(addrs.rm, grpc.credentials.createInsecure());
  await unary(f, f.arm, { plan: FaultPlan.fromJSON(plan), seed: 1 });
  f.close();
}

beforeAll(async () => {
  addrs = await processes.startServices(['--check-invariants']);
  const vmm = new VmmServiceClient(addrs.vmm, grpc.credentials.createInsecure());
  const lease = await unary<{ lease?: { sessionId: string } }>(vmm, vmm.openLease, { ttlMs: 600_000 });
  guest = (await unary<{ vm?: Vm }>(vmm, vmm.createVm, { sessionId: lease.lease!.sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm!.vmid;
  vmm.close();
}, 60_000);
afterAll(() => processes.stopAll());

describe('seed-002 driver over RmService.Exchange', () => {
  it('a 1100-entry share (SHARE + 2 MEM_APPENDs) and its reclaim', async () => {
    const rm = driver();
    const p = parcel(1100, 0x11, 0);
    expect(await gh_rm_mem_share(rm, p)).toBe(0);
    const held = (await parcels()).find((x) => x.label === 0x11)!;
    expect([held.handle, held.regions.length]).toEqual([p.mem_handle, 1100]);
    expect(await gh_rm_mem_reclaim(rm, p)).toBe(0);
    expect((await parcels()).some((x) => x.label === 0x11)).toBe(false);
    rm.close();
    expect(processes.bugs()).toEqual([]);
  });

  it('linux-append-orphan over gRPC: the RM keeps the parcel the driver forgot', async () => {
    await arm(SCENARIO_PLANS['linux-append-orphan']);
    const rm = driver();
    const p = parcel(600, 0x4f, 16 * 2 ** 20);
    const trace = newTrace();
    expect(await gh_rm_mem_share(rm, p, trace)).toBe(-12);
    expect(trace.ignoredReclaims).toEqual([-16]);
    expect(p.mem_handle).toBe(GH_MEM_HANDLE_INVAL);
    expect((await parcels()).filter((x) => x.label === 0x4f)).toHaveLength(1);
    rm.close();
  });

  it('linux-unchecked-reply-size over gRPC: the driver keeps a handle the RM never issued', async () => {
    await arm(SCENARIO_PLANS['linux-unchecked-reply-size']);
    const rm = driver();
    const p = parcel(1, 0x52, 32 * 2 ** 20);
    const trace = newTrace();
    expect(await gh_rm_mem_share(rm, p, trace)).toBe(0);
    const real = (await parcels()).find((x) => x.label === 0x52)!;
    expect(trace.handleReads[0]!.bytesBeyondReply).toBe(2);
    expect(p.mem_handle).not.toBe(real.handle);
    rm.close();
  });
});
