/**
 * The memory map across processes: the core started with `--memory` serves it (GetMemoryMap), the
 * VMM started after it takes its donation region from it (below HYP's carve-out at the top of the
 * highest RAM region), and a core given a bad map refuses to start, naming the problem.
 */

import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, MemoryKind, type GetMemoryMapResponse } from '@hypmesh/proto';
import { afterAll, expect, test } from 'vitest';
import { Processes, serving } from './support/processes.js';

const procs = new Processes();
afterAll(() => procs.stopAll());

test('core --memory: GetMemoryMap reports it and the VMM donates from the top of its highest RAM bank', async () => {
  const a = await procs.startServices(['--memory', 'ram@0x80000000:2G,ram@0x880000000:1G,mmio@0x10000000:256M,pa=40']);
  const core = new CoreServiceClient(a.core, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('x-hypmesh-caller-vmid', '3');
  const r = await new Promise<GetMemoryMapResponse>((resolve, reject) => core.getMemoryMap({}, md, (e, v) => (e ? reject(e) : resolve(v))));
  core.close();
  expect(r.memoryMap).toEqual({
    paBits: 40,
    regions: [
      { kind: MemoryKind.MEMORY_KIND_MMIO, base: 0x1000_0000n, sizeBytes: 256n << 20n },
      { kind: MemoryKind.MEMORY_KIND_RAM, base: 0x8000_0000n, sizeBytes: 2n << 30n },
      { kind: MemoryKind.MEMORY_KIND_RAM, base: 0x8_8000_0000n, sizeBytes: 1n << 30n },
    ],
  });
  const line = procs.logsOf('vmm').find(serving('hypmesh vmm serving'))!;
  const region = line['donationRegion'] as { base: number; count: number };
  expect(region.count).toBe((64 * 2 ** 20) / 4096);
  expect(region.base + region.count).toBe(Number(r.hypCarveout!.base));
  expect(region.base).toBeGreaterThanOrEqual(0x8_8000_0000 / 4096);
  expect(procs.bugs()).toEqual([]);
}, 60_000);

test('a core given an overlapping map does not start and says why', async () => {
  await expect(procs.spawnNode('bad-core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--memory', 'ram@0x80000000:1G,mmio@0xa0000000:1M'], serving('hypmesh core serving'))).rejects.toThrow(/exited \(2\)/);
  const fatal = procs.logsOf('bad-core').find((l) => l['level'] === 60);
  expect(String(fatal?.['msg'])).toMatch(/RAM region at 0x80000000 overlaps MMIO region at 0xa0000000/);
}, 30_000);
