/**
 * Durable state (issue 9 item 1, DESIGN.md §8) of the core as its own process: a workload of
 * shares and grants runs 32 calls in flight against `--data-dir`; the core is killed with SIGKILL
 * while calls are in flight and restarted on the same data dir. Then every acknowledged mutation is
 * there, each one in flight is wholly there or wholly absent, nothing never sent is there, the
 * invariants hold, and a new grant's id is above every id of the previous life (no aliasing). The
 * core writes an image every 64 records, so the restart restores one and replays the tail.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, GrantType, PageState, Right, type OwnershipMapResponse } from '@hypmesh/proto';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { afterAll, expect, test } from 'vitest';
import { Processes, serving, type Proc } from './support/processes.js';

const GiB = 2 ** 30;
const RAM_PFN = (2 * GiB) / 4096;
const GUEST = 0x80;
const WORKERS = 32;
/** Per worker, its own frames: no two calls touch the same page. */
const FRAMES_PER_WORKER = 1000;
const WORK_BASE = RAM_PFN + 16_384;
/** The kill comes once this many mutations were acknowledged, from inside a reply (others in flight). */
const KILL_AFTER_ACKS = 400;
/** Core images this often, so the restart is an image plus a journal tail (and the kill may hit one being written). */
const SNAPSHOT_EVERY = 64;

const processes = new Processes();
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-durable-e2e-'));
afterAll(async () => {
  await processes.stopAll();
  rmSync(dir, { recursive: true, force: true });
  expect(processes.bugs()).toEqual([]);
});

async function startCore(): Promise<{ proc: Proc; client: CoreServiceClient; ms: number }> {
  const started = performance.now();
  const { proc, line } = await processes.spawnNode('core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--ram-gib', '1', '--data-dir', dir, '--snapshot-every', String(SNAPSHOT_EVERY)], serving('hypmesh core serving'));
  const ms = performance.now() - started;
  return { proc, client: new CoreServiceClient(`127.0.0.1:${line['port'] as number}`, grpc.credentials.createInsecure()), ms };
}

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
function ask<Res>(client: CoreServiceClient, method: unknown, req: object, vmid = 3): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(vmid));
  return new Promise((resolve, reject) => (method as Unary).call(client, req, md, { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r as Res))));
}

type Op = { readonly kind: 'share' | 'grant'; readonly pfn: number; outcome: 'in-flight' | 'acked'; grantId?: bigint };

test('kill -9 mid-workload, restart: acknowledged kept, in-flight all or nothing, grant ids continue', async () => {
  const first = await startCore();
  await ask(first.client, first.client.createAddressSpace, { vmid: GUEST, ipaBits: 40, protection: 0, donated: [{ base: BigInt(RAM_PFN + 4096), count: 8n }] });

  const ops: Op[] = [];
  let acks = 0;
  let killed = false;
  const exited = new Promise<void>((resolve) => first.proc.child.once('exit', () => resolve()));
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !killed && i < FRAMES_PER_WORKER; i++) {
      const op: Op = { kind: i % 2 === 0 ? 'share' : 'grant', pfn: WORK_BASE + w * FRAMES_PER_WORKER + i, outcome: 'in-flight' };
      ops.push(op);
      try {
        if (op.kind === 'share') await ask(first.client, first.client.hostShareHyp, { pfn: BigInt(op.pfn) });
        else
          op.grantId = (
            await ask<{ grantId: bigint }>(first.client, first.client.createGrant, {
              type: GrantType.GRANT_TYPE_SHARE,
              memoryType: 0,
              ranges: [{ base: BigInt(op.pfn), count: 1n }],
              acl: [{ vmid: GUEST, rights: Right.RIGHT_R }],
            })
          ).grantId;
      } catch (e) {
        if (!killed) throw e; // before the kill nothing may fail
        return;
      }
      op.outcome = 'acked';
      if (++acks === KILL_AFTER_ACKS) {
        killed = true;
        first.proc.child.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  await exited;
  first.client.close();
  const inFlight = ops.filter((o) => o.outcome === 'in-flight');
  expect(killed).toBe(true);
  expect(inFlight.length).toBeGreaterThan(0);

  const second = await startCore();
  const recovery = second.proc.logs.find((l) => l['msg'] === 'recovered from the journal')!;
  console.log(`restart to SERVING ${second.ms.toFixed(0)} ms (recovery ${String(recovery['recoveryMs'])} ms: image + ${String(recovery['records'])} records); ${acks} acknowledged, ${inFlight.length} in flight at the kill`);
  expect(recovery).toMatchObject({ fromImage: true });
  expect(recovery['records']).toBeLessThan(SNAPSHOT_EVERY);

  const map = await ask<OwnershipMapResponse>(second.client, second.client.ownershipMap, { base: BigInt(WORK_BASE), count: BigInt(WORKERS * FRAMES_PER_WORKER), runsMax: 0 });
  const stateOf = (pfn: number): PageState => map.runs.find((r) => BigInt(pfn) >= r.base && BigInt(pfn) < r.base + r.count)!.hostState;
  const { grants } = await ask<{ grants: { grantId: bigint }[] }>(second.client, second.client.listGrants, {});
  const ids = new Set(grants.map((g) => g.grantId));

  for (const op of ops.filter((o) => o.outcome === 'acked')) {
    expect(stateOf(op.pfn), `acknowledged ${op.kind} of ${op.pfn}`).toBe(PageState.PAGE_STATE_SHARED_OWNED);
    if (op.kind === 'grant') expect(ids.has(op.grantId!)).toBe(true);
  }
  // In flight: the page is shared (the call applied whole) or owned as before; an applied grant is listed.
  const inFlightApplied = inFlight.filter((o) => stateOf(o.pfn) === PageState.PAGE_STATE_SHARED_OWNED);
  for (const op of inFlight) expect([PageState.PAGE_STATE_SHARED_OWNED, PageState.PAGE_STATE_OWNED]).toContain(stateOf(op.pfn));
  const ackedGrants = ops.filter((o) => o.kind === 'grant' && o.outcome === 'acked').length;
  expect(grants.length).toBe(ackedGrants + inFlightApplied.filter((o) => o.kind === 'grant').length);
  // Never sent: untouched.
  const sent = new Set(ops.map((o) => o.pfn));
  for (let w = 0; w < WORKERS; w++) {
    const next = WORK_BASE + w * FRAMES_PER_WORKER + ops.filter((o) => o.pfn >= WORK_BASE + w * FRAMES_PER_WORKER && o.pfn < WORK_BASE + (w + 1) * FRAMES_PER_WORKER).length;
    expect(sent.has(next)).toBe(false);
    expect(stateOf(next)).toBe(PageState.PAGE_STATE_OWNED);
  }
  expect((await ask<{ violations: string[] }>(second.client, second.client.checkInvariants, {})).violations).toEqual([]);

  const maxBefore = [...ids].reduce((a, b) => (b > a ? b : a), 0n);
  const fresh = await ask<{ grantId: bigint }>(second.client, second.client.createGrant, {
    type: GrantType.GRANT_TYPE_SHARE,
    memoryType: 0,
    ranges: [{ base: BigInt(WORK_BASE + WORKERS * FRAMES_PER_WORKER), count: 1n }],
    acl: [{ vmid: GUEST, rights: Right.RIGHT_R }],
  });
  const maxAcked = ops.reduce((a, o) => (o.grantId !== undefined && o.grantId > a ? o.grantId : a), 0n);
  expect(fresh.grantId).toBeGreaterThan(maxBefore);
  expect(fresh.grantId).toBeGreaterThan(maxAcked);
  second.client.close();
});
