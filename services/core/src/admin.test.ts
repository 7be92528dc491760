/**
 * CoreService admin RPCs over real gRPC: GetMemoryMap reports the configured map (any number of RAM
 * and MMIO regions) and HYP's carve-out; Reset returns the core to its boot state, optionally on a
 * new map, and a bad map or a caller other than HOST is refused with nothing changed; the VM kind of
 * CreateAddressSpace refuses the other host→guest transition (stage2-models.md §A5).
 */

import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, MemoryKind, VmProtection, type MemoryMap } from '@hypmesh/proto';
import { CALLER_VMID_KEY, decodeStatusDetails, type DecodedStatus } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startCoreServer, type CoreServer } from './server.js';

const GiB = 2n ** 30n;
const MiB = 2n ** 20n;
const PAGE = 4096n;
const RAM_A = 0x8000_0000n;
const RAM_B = 0x8_8000_0000n;
const MMIO = 0x1000_0000n;

let core: CoreServer;
let client: CoreServiceClient;
const bugs: unknown[] = [];

beforeAll(async () => {
  core = await startCoreServer({
    address: '127.0.0.1:0',
    // Two RAM banks and a device window: nothing about the default map is assumed.
    stage2Config: { memory: { paBits: 40, ram: [{ base: Number(RAM_A), sizeBytes: Number(GiB) }, { base: Number(RAM_B), sizeBytes: Number(GiB) }], mmio: [{ base: Number(MMIO), sizeBytes: Number(256n * MiB) }] } },
    log: { error: (obj, msg) => bugs.push({ msg, obj }) },
    checkInvariants: true,
  });
  client = new CoreServiceClient(`127.0.0.1:${core.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await core?.shutdown(1_000);
  expect(bugs).toEqual([]);
});

type Outcome<T> = { ok: true; value: T } | { ok: false; error: DecodedStatus };
// The generated client's last overload (request, metadata, options, callback), so that Req and Res infer.
type Unary<Req, Res> = (req: Req, md: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown;

function call<Req, Res>(fn: Unary<Req, Res>, req: Req, caller = '3'): Promise<Outcome<Res>> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, caller);
  return new Promise((resolve) => fn.call(client, req, md, {}, (e, r) => resolve(e ? { ok: false, error: decodeStatusDetails(e) } : { ok: true, value: r })));
}
const ok = <T>(o: Outcome<T>): T => {
  if (!o.ok) throw new Error(`expected OK, got ${grpc.status[o.error.code]}: ${o.error.message}`);
  return o.value;
};
const refused = (o: Outcome<unknown>): DecodedStatus => {
  if (o.ok) throw new Error('expected a refusal, got OK');
  return o.error;
};

const memoryMap = async (): Promise<MemoryMap> => ok(await call(client.getMemoryMap, {})).memoryMap!;
const counts = async () => ok(await call(client.ownershipCounts, {}));
const spaces = async () => ok(await call(client.tablePageCounts, {})).spaces.map((s) => s.vmid);

const region = (kind: MemoryKind, base: bigint, sizeBytes: bigint) => ({ kind, base, sizeBytes });

describe('GetMemoryMap', () => {
  test('reports the configured regions sorted by base, the PA width and HYP’s carve-out at the top of the highest RAM bank', async () => {
    const r = ok(await call(client.getMemoryMap, {}, '128'));
    expect(r.memoryMap).toEqual({
      paBits: 40,
      regions: [region(MemoryKind.MEMORY_KIND_MMIO, MMIO, 256n * MiB), region(MemoryKind.MEMORY_KIND_RAM, RAM_A, GiB), region(MemoryKind.MEMORY_KIND_RAM, RAM_B, GiB)],
    });
    const c = r.hypCarveout!;
    expect((c.base + c.count) * PAGE).toBe(RAM_B + GiB);
  });
});

describe('Reset', () => {
  const guestPfn = RAM_A / PAGE + 0x100n;

  test('mutate, Reset: the state equals boot (no guest space, all memory back with the host)', async () => {
    const boot = await counts();
    ok(await call(client.createAddressSpace, { vmid: 0x80, ipaBits: 40, donated: [{ base: guestPfn, count: 8n }], protection: VmProtection.VM_PROTECTION_UNSPECIFIED }));
    ok(await call(client.hostShareHyp, { pfn: guestPfn + 100n }));
    expect(await counts()).not.toEqual(boot);
    expect(await spaces()).toContain(0x80);

    const r = ok(await call(client.reset, {}));
    expect(r.memoryMap).toEqual(await memoryMap());
    expect(await counts()).toEqual(boot);
    expect(await spaces()).toEqual([3]);
    expect(ok(await call(client.checkInvariants, {})).violations).toEqual([]);
  });

  test('Reset with a new map: the core reports and runs on it', async () => {
    const next = { paBits: 36, regions: [region(MemoryKind.MEMORY_KIND_RAM, 0x4000_0000n, 512n * MiB), region(MemoryKind.MEMORY_KIND_MMIO, 0n, 16n * MiB)] };
    const r = ok(await call(client.reset, { memoryMap: next }));
    const sorted = { paBits: 36, regions: [next.regions[1]!, next.regions[0]!] };
    expect(r.memoryMap).toEqual(sorted);
    expect(await memoryMap()).toEqual(sorted);
    expect((await counts()).totalFrames).toBe((512n * MiB + 16n * MiB) / PAGE);
    expect(ok(await call(client.checkInvariants, {})).violations).toEqual([]);
    // Back to the first map for the tests after this one.
    ok(await call(client.reset, { memoryMap: { paBits: 40, regions: [region(MemoryKind.MEMORY_KIND_RAM, RAM_A, GiB), region(MemoryKind.MEMORY_KIND_RAM, RAM_B, GiB), region(MemoryKind.MEMORY_KIND_MMIO, MMIO, 256n * MiB)] } }));
  });

  test.each([
    ['overlap', { paBits: 40, regions: [region(MemoryKind.MEMORY_KIND_RAM, RAM_A, GiB), region(MemoryKind.MEMORY_KIND_MMIO, RAM_A + MiB, MiB)] }, /overlaps/],
    ['misalignment', { paBits: 40, regions: [region(MemoryKind.MEMORY_KIND_RAM, RAM_A + 1n, GiB)] }, /not 4 KiB aligned/],
    ['beyond the PA width', { paBits: 32, regions: [region(MemoryKind.MEMORY_KIND_RAM, RAM_A, 4n * GiB)] }, /beyond the 32-bit PA space/],
    ['zero size', { paBits: 40, regions: [region(MemoryKind.MEMORY_KIND_RAM, RAM_A, 0n)] }, /zero size/],
    ['no kind', { paBits: 40, regions: [region(MemoryKind.MEMORY_KIND_UNSPECIFIED, RAM_A, GiB)] }, /kind must be RAM or MMIO/],
  ])('a map with %s is INVALID_ARGUMENT naming memory_map; nothing changed', async (_name, map, problem) => {
    ok(await call(client.hostShareHyp, { pfn: guestPfn }));
    const before = await counts();
    const e = refused(await call(client.reset, { memoryMap: map }));
    expect(grpc.status[e.code]).toBe('INVALID_ARGUMENT');
    expect(e.badRequest?.fieldViolations[0]?.field).toBe('memory_map');
    expect(e.badRequest?.fieldViolations[0]?.description).toMatch(problem);
    expect(await counts()).toEqual(before);
    ok(await call(client.reset, {}));
  });

  test('a caller other than HOST is PERMISSION_DENIED; nothing changed', async () => {
    ok(await call(client.hostShareHyp, { pfn: guestPfn }));
    const before = await counts();
    expect(grpc.status[refused(await call(client.reset, {}, '128')).code]).toBe('PERMISSION_DENIED');
    expect(await counts()).toEqual(before);
    ok(await call(client.reset, {}));
  });
});

describe('§A5 VM kind over gRPC', () => {
  const donor = RAM_A / PAGE + 0x1000n;
  test.each([
    ['HostShareGuest to a protected VM', VmProtection.VM_PROTECTION_PROTECTED, 'vm_protected'],
    ['HostDonateGuest to a non-protected VM', VmProtection.VM_PROTECTION_NON_PROTECTED, 'vm_not_protected'],
  ])('%s → EPERM (FAILED_PRECONDITION); nothing changed', async (name, protection, rule) => {
    ok(await call(client.reset, {}));
    ok(await call(client.createAddressSpace, { vmid: 0x80, ipaBits: 40, donated: [{ base: donor, count: 8n }], protection }));
    const before = await counts();
    const page = RAM_A / PAGE + 0x2000n;
    const o = name.startsWith('HostShare')
      ? await call(client.hostShareGuest, { vmid: 0x80, pfn: page, gfn: 0x10n, nrPages: 1n, prot: 6 })
      : await call(client.hostDonateGuest, { vmid: 0x80, pfn: page, gfn: 0x10n });
    const e = refused(o);
    expect(grpc.status[e.code]).toBe('FAILED_PRECONDITION');
    expect(e.errorDetail).toMatchObject({ domain: 'errno', codeName: 'EPERM', rule });
    expect(await counts()).toEqual(before);
    // The right call for the kind goes through.
    const right = name.startsWith('HostShare')
      ? await call(client.hostDonateGuest, { vmid: 0x80, pfn: page, gfn: 0x10n })
      : await call(client.hostShareGuest, { vmid: 0x80, pfn: page, gfn: 0x10n, nrPages: 1n, prot: 6 });
    ok(right);
  });
});
