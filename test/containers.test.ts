/**
 * The services as containers (docker-compose.yml): both answer grpc.health.v1 SERVING through the
 * image's own probe, reflection lists their services, and one parcel flow crosses every container
 * boundary — the RM (its container) shares host memory with a guest, the guest accepts, and the
 * mapping is then visible in the core (its own container), i.e. the RM reached the core at
 * HYPMESH_CORE_ADDR.
 *
 * It needs a running stack, so it runs only with HYPMESH_CONTAINER_TEST=1; scripts/container-test.sh
 * starts the engine, builds the images, brings the stack up, runs this file and tears it all down.
 * Addresses: HYPMESH_TEST_CORE_ADDR and HYPMESH_TEST_RM_ADDR (default 127.0.0.1:50051 / :50052).
 */

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import {
  MemAcceptRequest,
  MemNotifyKind,
  MemNotifyRequest,
  MemReclaimRequest,
  MemReleaseRequest,
  MemShareRequest,
  MemType,
  RmServiceClient,
  TransType,
  VmAllocateRequest,
  type MemShareResponse,
  type VmAllocateResponse,
} from '@hypmesh/proto/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const enabled = process.env.HYPMESH_CONTAINER_TEST === '1';
const CORE = process.env.HYPMESH_TEST_CORE_ADDR ?? '127.0.0.1:50051';
const RM = process.env.HYPMESH_TEST_RM_ADDR ?? '127.0.0.1:50052';
const PROBE = fileURLToPath(new URL('../scripts/health-probe.mjs', import.meta.url));

const GiB = 2 ** 30;
const PAGE = 0x1000;
const HOST = 3;
const RW = 6;
const RWX = 7;
/** The core's default memory (services/core main.ts): RAM from 2 GiB. */
const ram = (offset: number): bigint => BigInt(2 * GiB + offset);

const md = (caller: number): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set(CALLER_VMID_KEY, String(caller));
  return m;
};

/** A unary call on a ts-proto grpc-js client, as a promise. */
function unary<Req, Res>(fn: (req: Req, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown, req: Req, caller = HOST): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md(caller), (e, r) => (e ? reject(e) : resolve(r))));
}

describe.skipIf(!enabled)('containers: the compose stack (set HYPMESH_CONTAINER_TEST=1 and run scripts/container-test.sh; needs a Docker engine)', () => {
  let core: CoreServiceClient;
  let rm: RmServiceClient;

  beforeAll(() => {
    core = new CoreServiceClient(CORE, grpc.credentials.createInsecure());
    rm = new RmServiceClient(RM, grpc.credentials.createInsecure());
  });
  afterAll(() => {
    core?.close();
    rm?.close();
  });

  test.each([
    ['core', CORE, 'hypmesh.core.v1.CoreService'],
    ['rm', RM, 'hypmesh.rm.v1.RmService'],
    ['core (whole server)', CORE, ''],
    ['rm (whole server)', RM, ''],
  ])('%s answers grpc.health.v1 SERVING through the image health probe', async (_name, addr, service) => {
    const { stdout } = await promisify(execFile)(process.execPath, [PROBE, `--addr=${addr}`, `--service=${service}`]);
    expect(stdout).toContain('status SERVING');
  });

  test('the probe fails (exit 3, as grpc_health_probe) for a service the server does not know', async () => {
    const run = promisify(execFile)(process.execPath, [PROBE, `--addr=${CORE}`, '--service=hypmesh.nope.v1.Nope']);
    await expect(run).rejects.toMatchObject({ code: 3 });
  });

  test('a parcel shared through the RM container is mapped in the core container', async () => {
    const { vmid: guest } = await unary<VmAllocateRequest, VmAllocateResponse>(rm.vmAllocate.bind(rm), VmAllocateRequest.fromPartial({ vmid: 0 }));
    // What the VM manager does first: give the guest a core address space (64 host pages of tables).
    const tables = BigInt((2 * GiB) / PAGE + 0x30000);
    await unary(core.createAddressSpace.bind(core), { vmid: guest, ipaBits: 40, donated: [{ base: tables, count: 64n }] });

    const base = ram(0x400000);
    const { handle } = await unary<MemShareRequest, MemShareResponse>(
      rm.memShare.bind(rm),
      MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 0x1234, acl: [{ vmid: guest, rights: RW }, { vmid: HOST, rights: RWX }], sgl: [{ base, size: 0x4000n }] }),
    );
    await unary(rm.memNotify.bind(rm), MemNotifyRequest.fromPartial({ handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_SHARED, memInfoTag: 9, vmids: [guest] }));

    const ipa = 0x4000_0000n;
    const accept = MemAcceptRequest.fromPartial({ handle, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_SHARE, done: true, sgl: [{ base: ipa, size: 0x4000n }] });
    await unary(rm.memAccept.bind(rm), accept, guest);
    expect(await translate(guest, ipa + 0x1000n)).toBe(base + 0x1000n);

    await unary(rm.memRelease.bind(rm), MemReleaseRequest.fromPartial({ handle }), guest);
    expect(await translate(guest, ipa)).toBeUndefined();
    await unary(rm.memReclaim.bind(rm), MemReclaimRequest.fromPartial({ handle }));
    await unary(core.destroyAddressSpace.bind(core), { vmid: guest });
  });

  /** The core's translation of `ipa` in `vmid`'s stage-2 table, or undefined where nothing is mapped. */
  function translate(vmid: number, ipa: bigint): Promise<bigint | undefined> {
    return new Promise((resolve) => core.translate({ vmid, ipa }, md(HOST), (e, r) => resolve(e ? undefined : r?.pa)));
  }
});
