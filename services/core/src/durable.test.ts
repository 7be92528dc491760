/**
 * The core's durable mode in process (durable.ts): what a client saw acknowledged is what a core
 * rebuilt from the same data dir holds (the whole-core digest equal), grant ids continue, a refused
 * call and a Reset leave nothing to replay, and a data dir of another configuration is refused.
 * Kill -9 of a separate process is test/durable-core.e2e.test.ts.
 */

import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { GrantType, MemoryKind, Right, type CoreServiceClient } from '@hypmesh/proto';
import { snapshot, type Stage2Config } from '@hypmesh/stage2';
import { Journal } from '@hypmesh/journal';
import { afterEach, describe, expect, test } from 'vitest';
import { openCoreJournal } from './server.js';
import { call, CONFIG, GUEST, RAM_PFN, TestCores } from './test-cores.js';

const GiB = 2 ** 30;
const bugs: unknown[] = [];
const cores = new TestCores({ error: (obj, msg) => bugs.push({ msg, obj }) });
afterEach(() => cores.closeAll());
const dataDir = (): string => cores.dataDir();
const start = (dir: string, config: Stage2Config = CONFIG, snapshotEvery = 0) => cores.startDurable(dir, config, snapshotEvery);
const stopLast = (): Promise<void> => cores.stopLast();

/** Shares, a guest space, a LEND mapped by the guest, one refused call, and queries. */
async function workload(client: CoreServiceClient): Promise<bigint> {
  for (let i = 0; i < 8; i++) expect((await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16 + i) }))).toMatchObject({ ok: true });
  expect((await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 16) }))).toMatchObject({ ok: true });
  expect((await call(client, client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 16) })).ok).toBe(false); // refused: not shared any more
  const space = await call(client, client.createAddressSpace, { vmid: GUEST, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 4096), count: 8n }] });
  expect(space).toMatchObject({ ok: true });
  const grant = await call(client, client.createGrant, { type: GrantType.GRANT_TYPE_LEND, memoryType: 0, ranges: [{ base: BigInt(RAM_PFN + 8192), count: 4n }], acl: [{ vmid: GUEST, rights: Right.RIGHT_R | Right.RIGHT_W }] });
  if (!grant.ok) throw new Error('createGrant refused');
  expect((await call(client, client.mapGrant, { grantId: grant.value.grantId, rights: Right.RIGHT_R, ipaRanges: [{ base: 0x200n, count: 4n }] }, String(GUEST)))).toMatchObject({ ok: true });
  // Queries: answered, not journaled.
  for (const query of [client.listGrants, client.listAddressSpaces, client.getMemoryMap]) expect(await call(client, query as never, {})).toMatchObject({ ok: true });
  return grant.value.grantId;
}

describe('durable core', () => {
  test('a core restarted from the data dir holds exactly the acknowledged state, and grant ids continue', async () => {
    const dir = dataDir();
    const first = await start(dir);
    const grantId = await workload(first.client);
    const before = snapshot(first.core.stage2);
    expect(first.journal.count()).toBe(12); // 8 shares, 1 unshare, space, grant, map; the refusal and the queries are not journaled
    await stopLast();

    const second = await start(dir);
    expect(second.core.recovered?.records).toBe(12);
    expect(snapshot(second.core.stage2)).toEqual(before);
    const next = await call(second.client, second.client.createGrant, { type: GrantType.GRANT_TYPE_SHARE, memoryType: 0, ranges: [{ base: BigInt(RAM_PFN + 9000), count: 1n }], acl: [{ vmid: GUEST, rights: Right.RIGHT_R }] });
    expect(next.ok && next.value.grantId).toBe(grantId + 1n);
    expect(bugs).toEqual([]);
  });

  test('with core images every 5 records: recovery is the image plus the tail, and equals a full replay', async () => {
    const imaged = dataDir();
    const plain = dataDir();
    const a = await start(imaged, CONFIG, 5);
    await workload(a.client);
    expect(a.journal.count()).toBe(2); // images after records 5 and 10 replaced them
    const b = await start(plain);
    await workload(b.client);
    expect(b.journal.count()).toBe(12);
    const before = snapshot(a.core.stage2);
    await stopLast();
    await stopLast();

    const fromImage = await start(imaged, CONFIG, 5);
    const fromJournal = await start(plain);
    expect(fromImage.core.recovered).toMatchObject({ fromImage: true, records: 2 });
    expect(fromJournal.core.recovered).toMatchObject({ fromImage: false, records: 12 });
    expect(snapshot(fromImage.core.stage2)).toEqual(before);
    expect(snapshot(fromImage.core.stage2)).toEqual(snapshot(fromJournal.core.stage2));
    // And they go on alike: the same calls, the same outcomes, the same core.
    for (const r of [fromImage, fromJournal]) {
      expect(await call(r.client, r.client.hostUnshareHyp, { pfn: BigInt(RAM_PFN + 17) })).toMatchObject({ ok: true });
      expect(await call(r.client, r.client.unmapGrant, { grantId: 7n * 2n ** 32n + 1n }, String(GUEST))).toMatchObject({ ok: true });
    }
    expect(snapshot(fromImage.core.stage2)).toEqual(snapshot(fromJournal.core.stage2));
    expect(bugs).toEqual([]);
  });

  test('Reset wipes the journal and the core image: the restarted core is the booted one', async () => {
    const dir = dataDir();
    const first = await start(dir, CONFIG, 5);
    await workload(first.client);
    expect((await call(first.client, first.client.reset, {}))).toMatchObject({ ok: true });
    expect(first.journal.count()).toBe(0);
    const booted = snapshot(first.core.stage2);
    await stopLast();
    const second = await start(dir);
    expect(second.core.recovered).toMatchObject({ fromImage: false, records: 0 });
    expect(snapshot(second.core.stage2)).toEqual(booted);
  });

  test('a Reset onto another map is the map a restart recovers with the same flags', async () => {
    const dir = dataDir();
    const first = await start(dir);
    const map = { paBits: 40, regions: [{ kind: MemoryKind.MEMORY_KIND_RAM, base: BigInt(4 * GiB), sizeBytes: BigInt(GiB) }] };
    const reset = await call(first.client, first.client.reset, { memoryMap: map });
    expect(reset.ok).toBe(true);
    const after = snapshot(first.core.stage2);
    await stopLast();
    const second = await start(dir);
    expect(second.core.stage2.config.memory.ram).toEqual([{ base: 4 * GiB, sizeBytes: GiB }]);
    expect(snapshot(second.core.stage2)).toEqual(after);
  });

  test('a reply comes only once its record is committed: another connection to the file already sees it', async () => {
    const dir = dataDir();
    const first = await start(dir);
    const reader = new Journal(join(dir, 'core.sqlite'));
    try {
      const seen: number[] = [];
      await Promise.all(
        Array.from({ length: 16 }, (_, i) => call(first.client, first.client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16 + i) }).then((r) => (expect(r).toMatchObject({ ok: true }), seen.push(reader.count())))),
      );
      // Each reply found at least as many committed records as replies before it, itself included.
      expect(seen.every((n, i) => n >= i + 1)).toBe(true);
    } finally {
      reader.close();
    }
  });

  test('a failed commit answers UNAVAILABLE and reports the failure (the main exits on it)', async () => {
    const opened = openCoreJournal(dataDir(), CONFIG);
    if (!opened.ok) throw new Error(opened.error);
    const failures: Error[] = [];
    const { client } = await cores.start({ stage2Config: opened.value.config, journal: opened.value.journal, journalFailed: (e) => failures.push(e) });
    opened.value.journal.close(); // every later commit throws
    expect(await call(client, client.hostShareHyp, { pfn: BigInt(RAM_PFN + 16) })).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(failures).toHaveLength(1);
  });

  test('a data dir of another configuration is refused, naming both', async () => {
    const dir = dataDir();
    await start(dir);
    await stopLast();
    const other = openCoreJournal(dir, { memory: { ...CONFIG.memory, paBits: 44 } });
    expect(other.ok).toBe(false);
    expect(!other.ok && other.error).toMatch(/configured with .*"paBits":40.*this one with .*"paBits":44/);
  });
});
