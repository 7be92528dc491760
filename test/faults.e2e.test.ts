/**
 * Issue 8 §1–§2 against separate processes (test/support/processes.ts): a plan armed through
 * hypmesh.fault.v1.FaultService over gRPC, as a test in any language would, and each action's effect
 * seen from outside at each kind of boundary:
 *
 *   CLIENT_TO_CORE     delay, pause, fail_before (gRPC status; errno encoded as the core answers),
 *                      fail_after (UNAVAILABLE, yet the share happened), duplicate (the pin applied
 *                      twice), crash before and after commit (the process exits 137)
 *   CLIENT_TO_VMM      fail_before with a gRPC status (nothing reached the RM; the session stream,
 *                      not numbered at the front door, is untouched)
 *   VMM_TO_RM          fail_before with an RM error (the VMM's answer names it), fail_after (the RM
 *                      dispatched it; the VMM settles it by query and succeeds), drop (nothing reached
 *                      the RM; --rm-timeout-ms)
 *   VMM_TO_RM_FRAGMENT drop, corrupt, reorder (between two messages, and inside one message of two
 *                      fragments: the RM drops the early continuation and never dispatches it, §1.3)
 *   VMM_TO_CORE        fail_after on TopUpTablePool (the VMM's retry with the same request id hears
 *                      OK: the pages are topped up once, CreateVm succeeds)
 *   CLIENT_TO_RM       fail_before with an RM error, on the typed face and on the byte face
 *   RM_TO_CORE         fail_before with an errno on CreateGrant (the RM answers the mapped RM error)
 *   RM_NOTIFICATION    drop, delay
 *
 * and FaultService's Events (rule, boundary, op index, seed), the JSON log line of each fault, the
 * same op indices for the same plan and seed, and a bad plan refusing startup with every problem.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, type CheckInvariantsResponse, type OwnershipCountsResponse } from '@hypmesh/proto';
import { FaultEvent, FaultPlan, FaultServiceClient, type EventsResponse } from '@hypmesh/proto/fault';
import { MemNotifyKind, MemShareRequest, MemType, RmServiceClient, type GetStatsResponse, type ListParcelsResponse, type SubscribeResponse } from '@hypmesh/proto/rm';
import { BindMode, VmType, VmmServiceClient, type ListVmsResponse, type OpenSessionResponse, type Vm } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY, decodeStatusDetails } from '@hypmesh/rpc';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Processes, ROOT, serving, type LogLine } from './support/processes.js';

const HOST = 3;
const GiB = 2 ** 30;
const PAGE = 4096;
/** Host frames for the core cases: default RAM starts at 2 GiB; well clear of the VMM's donation region. */
const PFN = BigInt((2 * GiB) / PAGE + 0x1000);
/** The VMM's deadline for one RM message: short, so a dropped message fails the call quickly. */
const RM_TIMEOUT_MS = 1_500;
const SEED = 7;

const processes = new Processes();
let addr: { core: string; rm: string; vmm: string };
const clients: grpc.Client[] = [];

type Outcome<T> = { ok: true; value: T; ms: number } | { ok: false; error: grpc.ServiceError; ms: number };
type Unary = (req: unknown, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, res?: unknown) => void) => unknown;

function unary<T>(client: grpc.Client, method: unknown, req: unknown, caller = HOST, timeoutMs = 20_000): Promise<Outcome<T>> {
  const started = Date.now();
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, String(caller));
    (method as Unary).call(client, req, md, { deadline: Date.now() + timeoutMs }, (e, res) =>
      resolve(e ? { ok: false, error: e, ms: Date.now() - started } : { ok: true, value: res as T, ms: Date.now() - started }),
    );
  });
}

function ok<T>(o: Outcome<T>): T {
  if (!o.ok) throw new Error(`expected OK, got ${grpc.status[o.error.code]}: ${o.error.details}`);
  return o.value;
}

function failed(o: Outcome<unknown>): grpc.ServiceError {
  if (o.ok) throw new Error('expected a failure, got OK');
  return o.error;
}

const client = <C extends grpc.Client>(C: new (a: string, c: grpc.ChannelCredentials) => C, at: string): C => {
  const c = new C(at, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
};

let core: CoreServiceClient;
let rm: RmServiceClient;
let vmm: VmmServiceClient;
const faults: Record<'core' | 'rm' | 'vmm', FaultServiceClient> = {} as never;

/** Arm `rules` (proto3 JSON) on `svc` with `seed`, through FaultService.Arm. */
async function arm(svc: keyof typeof faults, rules: unknown[], seed = SEED): Promise<void> {
  const f = faults[svc];
  ok(await unary(f, f.arm, { plan: FaultPlan.fromJSON({ rules }), seed }));
}

/** FaultService.Events on `svc`: every event from now on, as proto3 JSON. */
async function watch(svc: keyof typeof faults): Promise<{ got: Record<string, unknown>[]; stop(): void }> {
  const stream = faults[svc].events({});
  const got: Record<string, unknown>[] = [];
  stream.on('data', (r: EventsResponse) => got.push(FaultEvent.toJSON(r.event!) as Record<string, unknown>));
  stream.on('error', () => {});
  // The server subscribes when the call starts, which nothing acknowledges: give it a moment.
  await new Promise((r) => setTimeout(r, 100));
  return { got, stop: () => stream.cancel() };
}

async function waitFor<T>(f: () => T | undefined, ms = 5_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const counts = async (): Promise<OwnershipCountsResponse> => ok(await unary<OwnershipCountsResponse>(core, core.ownershipCounts, {}));
const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
const rmStats = async (): Promise<GetStatsResponse> => ok(await unary<GetStatsResponse>(rm, rm.getStats, {}));

beforeAll(async () => {
  const at = (line: LogLine): string => `127.0.0.1:${line['port'] as number}`;
  const c = await processes.spawnNode('core', 'services/core/dist/main.js', ['--address', '127.0.0.1:0', '--fault-seed', String(SEED)], serving('hypmesh core serving'));
  const r = await processes.spawnNode('rm', 'services/rm/dist/main.js', ['--address', '127.0.0.1:0', '--core', at(c.line)], serving('hypmesh rm serving'));
  const v = await processes.spawnNode('vmm', 'services/vmm/dist/main.js', ['--address', '127.0.0.1:0', '--rm', at(r.line), '--core', at(c.line), '--rm-timeout-ms', String(RM_TIMEOUT_MS)], serving('hypmesh vmm serving'));
  addr = { core: at(c.line), rm: at(r.line), vmm: at(v.line) };
  core = client(CoreServiceClient, addr.core);
  rm = client(RmServiceClient, addr.rm);
  vmm = client(VmmServiceClient, addr.vmm);
  for (const svc of ['core', 'rm', 'vmm'] as const) faults[svc] = client(FaultServiceClient, addr[svc]);
}, 60_000);

afterEach(async () => {
  for (const svc of ['core', 'rm', 'vmm'] as const) await unary(faults[svc], faults[svc].disarm, { all: true });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

describe('CLIENT_TO_CORE, armed over FaultService', () => {
  test('delay: the call is answered no sooner than the delay', async () => {
    await arm('core', [{ id: 'slow', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'OwnershipCounts', nth: 1 }, delay: { fixedMs: 300 } }]);
    const slow = await unary(core, core.ownershipCounts, {});
    expect(slow.ok).toBe(true);
    expect(slow.ms).toBeGreaterThanOrEqual(290);
  });

  test('pause: the server stops serving; a call arriving during the pause waits it out', async () => {
    await arm('core', [{ id: 'pause', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'OwnershipCounts', nth: 1 }, pause: { durationMs: 400 } }]);
    const first = unary(core, core.ownershipCounts, {});
    await new Promise((r) => setTimeout(r, 50));
    const other = await unary(core, core.tablePageCounts, {});
    expect(other.ok).toBe(true);
    expect(other.ms).toBeGreaterThanOrEqual(250);
    expect((await first).ms).toBeGreaterThanOrEqual(390);
  });

  test('fail_before with a gRPC status: refused, nothing applied', async () => {
    await arm('core', [{ id: 'down', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'HostShareHyp' }, failBefore: { grpc: { code: 'UNAVAILABLE' } } }]);
    const before = await counts();
    expect(failed(await unary(core, core.hostShareHyp, { pfn: PFN }))).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(text(await counts())).toBe(text(before));
  });

  test('fail_before with an errno: encoded exactly as the core answers one (status, ErrorDetail), nothing applied', async () => {
    await arm('core', [{ id: 'eperm', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'HostShareHyp' }, failBefore: { domainError: { errno: 'EPERM' } } }]);
    const before = await counts();
    const e = failed(await unary(core, core.hostShareHyp, { pfn: PFN }));
    expect(e.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(decodeStatusDetails(e).errorDetail).toMatchObject({ domain: 'errno', codeName: 'EPERM', code: 1, rule: 'fault_injected' });
    expect(text(await counts())).toBe(text(before));
  });

  test('fail_after: the caller sees UNAVAILABLE, but the share happened (the ambiguous outcome)', async () => {
    await arm('core', [{ id: 'lost', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'HostShareHyp', nth: 1 }, failAfter: { code: 'UNAVAILABLE' } }]);
    const before = await counts();
    expect(failed(await unary(core, core.hostShareHyp, { pfn: PFN }))).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(text(await counts())).not.toBe(text(before));
    // Applied once: a retry is the domain's "already shared", and the unshare restores boot.
    expect(failed(await unary(core, core.hostShareHyp, { pfn: PFN }))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    ok(await unary(core, core.hostUnshareHyp, { pfn: PFN }));
    expect(text(await counts())).toBe(text(before));
  });

  test('duplicate: the request is applied twice (a pin counted twice needs two unpins)', async () => {
    ok(await unary(core, core.hostShareHyp, { pfn: PFN }));
    await arm('core', [{ id: 'twice', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'HypPinSharedMem' }, duplicate: {} }]);
    ok(await unary(core, core.hypPinSharedMem, { pfn: PFN, nrPages: 1n }));
    await unary(faults.core, faults.core.disarm, { all: true });
    ok(await unary(core, core.hypUnpinSharedMem, { pfn: PFN, nrPages: 1n }));
    // Still pinned once: unsharing is EBUSY until the second unpin.
    expect(decodeStatusDetails(failed(await unary(core, core.hostUnshareHyp, { pfn: PFN }))).errorDetail?.codeName).toBe('EBUSY');
    ok(await unary(core, core.hypUnpinSharedMem, { pfn: PFN, nrPages: 1n }));
    ok(await unary(core, core.hostUnshareHyp, { pfn: PFN }));
  });

  test('Events names rule, boundary, op index and seed; the log has the same fault as one JSON line', async () => {
    const events = await watch('core');
    await arm('core', [{ id: 'third', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'TablePageCounts', nth: 3 }, failBefore: { grpc: { code: 'ABORTED' } } }], 99);
    for (let i = 0; i < 2; i++) ok(await unary(core, core.tablePageCounts, {}));
    expect(failed(await unary(core, core.tablePageCounts, {})).code).toBe(grpc.status.ABORTED);
    const e = await waitFor(() => events.got.find((x) => x['ruleId'] === 'third'));
    events.stop();
    expect(e).toMatchObject({ ruleId: 'third', boundary: 'BOUNDARY_CLIENT_TO_CORE', method: 'TablePageCounts', opIndex: '3', seed: 99, callerVmid: HOST });
    const line = await waitFor(() => processes.logsOf('core').find((l) => (l['fault'] as { ruleId?: string } | undefined)?.ruleId === 'third'));
    expect(line['fault']).toMatchObject({ ruleId: 'third', boundary: 'BOUNDARY_CLIENT_TO_CORE', opIndex: '3', seed: 99 });
  });

  test('the same plan and seed inject the same faults at the same op indices', async () => {
    const rules = [{ id: 'coin', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'TablePageCounts', probability: 0.3 }, failBefore: { grpc: { code: 'ABORTED' } } }];
    const run = async (): Promise<number[]> => {
      await arm('core', rules, 1234);
      const hit: number[] = [];
      for (let i = 1; i <= 40; i++) if (!(await unary(core, core.tablePageCounts, {})).ok) hit.push(i);
      return hit;
    };
    const first = await run();
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(40);
    expect(await run()).toEqual(first);
  });
});

describe('process-level faults: crash exits the process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hypmesh-faults-'));

  test.each(['BEFORE_COMMIT', 'AFTER_COMMIT'])('crash %s: the caller sees UNAVAILABLE and the core exits 137 after logging the fault', async (point) => {
    const { proc, line } = await processes.spawnNode(`core-crash-${point}`, 'services/core/dist/main.js', ['--address', '127.0.0.1:0'], serving('hypmesh core serving'));
    const at = `127.0.0.1:${line['port'] as number}`;
    const f = client(FaultServiceClient, at);
    const c = client(CoreServiceClient, at);
    ok(await unary(f, f.arm, { plan: FaultPlan.fromJSON({ rules: [{ id: 'die', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'HostShareHyp' }, crash: { point: `CRASH_POINT_${point}` } }] }), seed: 1 }));
    const exited = new Promise<number | null>((resolve) => proc.child.once('exit', (code) => resolve(code)));
    expect(failed(await unary(c, c.hostShareHyp, { pfn: PFN }, HOST, 5_000)).code).toBe(grpc.status.UNAVAILABLE);
    expect(await exited).toBe(137);
    expect(proc.logs.some((l) => (l['fault'] as { ruleId?: string } | undefined)?.ruleId === 'die')).toBe(true);
  });

  test('a bad plan refuses startup, naming every problem', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        rules: [
          { id: 'a', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { probability: 2 }, duplicate: {} },
          { id: 'b', boundary: 'BOUNDARY_VMM_TO_RM', match: {}, failBefore: { domainError: { errno: 'EPERM' } } },
        ],
      }),
    );
    const r = spawnSync(process.execPath, ['services/core/dist/main.js', '--address', '127.0.0.1:0', '--faults', file], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('rules[0].match.probability');
    expect(r.stdout).toContain('rules[1].failBefore.domainError');
  });
});

/** A VMM session and CreateVm of a GUNYAH VM (its first RM message is VM_ALLOCATE). */
async function createVm(): Promise<{ outcome: Outcome<unknown>; close(): void }> {
  const stream = vmm.openSession({});
  stream.on('error', () => {});
  const sessionId = await new Promise<string>((resolve, reject) => {
    stream.once('data', (m: OpenSessionResponse) => resolve(m.sessionId ?? ''));
    stream.once('error', reject);
  });
  const outcome = await unary(vmm, vmm.createVm, { sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 });
  return { outcome, close: () => stream.cancel() };
}

describe('VMM_TO_RM and its fragments, armed on the VMM', () => {
  test('fail_before with an RM error: answered as the RM would (the VMM names NOMEM); the RM saw nothing', async () => {
    await arm('vmm', [{ id: 'nomem', boundary: 'BOUNDARY_VMM_TO_RM', match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, failBefore: { domainError: { rmError: 'NOMEM' } } }]);
    const before = await rmStats();
    const vm = await createVm();
    vm.close();
    expect(failed(vm.outcome).details).toContain('NOMEM');
    expect((await rmStats()).requestsDispatched).toBe(before.requestsDispatched);
  });

  test('fail_after: the RM applied VM_ALLOCATE, the VMM saw a lost reply, asked the RM what it holds, and the create succeeded', async () => {
    await arm('vmm', [{ id: 'lost', boundary: 'BOUNDARY_VMM_TO_RM', match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, failAfter: { code: 'UNAVAILABLE' } }]);
    const before = await rmStats();
    const vm = await createVm();
    vm.close();
    // The msgq has no request id; the VMM settles the unknown outcome by query (@hypmesh/vmm reconcile.ts).
    expect(vm.outcome.ok).toBe(true);
    expect((await rmStats()).requestsDispatched).toBeGreaterThan(before.requestsDispatched);
  });

  test('drop (message): nothing reaches the RM; the call fails after --rm-timeout-ms', async () => {
    await arm('vmm', [{ id: 'gone', boundary: 'BOUNDARY_VMM_TO_RM', match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, drop: {} }]);
    const before = await rmStats();
    const vm = await createVm();
    vm.close();
    expect(vm.outcome.ok).toBe(false);
    expect(vm.outcome.ms).toBeGreaterThanOrEqual(RM_TIMEOUT_MS - 50);
    expect((await rmStats()).fragmentsReceived).toBe(before.fragmentsReceived);
  });

  test.each([
    { action: 'drop', json: { drop: {} } },
    { action: 'corrupt', json: { corrupt: { byteCount: 4 } } },
  ])('fragment $action: the RM never dispatches a good VM_ALLOCATE; the call fails; Events shows it', async ({ action, json }) => {
    const events = await watch('vmm');
    await arm('vmm', [{ id: `frag-${action}`, boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, ...json }]);
    const vm = await createVm();
    vm.close();
    expect(vm.outcome.ok).toBe(false);
    const e = await waitFor(() => events.got.find((x) => x['ruleId'] === `frag-${action}`));
    events.stop();
    expect(e).toMatchObject({ boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', rmMessage: 'VM_ALLOCATE', opIndex: expect.any(String), seed: SEED });
  });

  test('fragment reorder: the fragment is held until the next one goes or the queue idles; both calls still answered (by seq)', async () => {
    const events = await watch('vmm');
    await arm('vmm', [{ id: 'swap', boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, reorder: {} }]);
    const [a, b] = await Promise.all([createVm(), createVm()]);
    a.close();
    b.close();
    expect(await waitFor(() => events.got.find((x) => x['ruleId'] === 'swap'))).toMatchObject({ action: { reorder: {} } });
    events.stop();
    expect([a.outcome.ok, b.outcome.ok]).toEqual([true, true]);
  });
});

describe('CLIENT_TO_RM, armed on the RM: one rule covers the typed RPC and the msgq message', () => {
  const rules = [{ id: 'denied', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, failBefore: { domainError: { rmError: 'DENIED' } } }];

  test('typed face: the RM error as the RM encodes it (status and ErrorDetail), nothing allocated', async () => {
    await arm('rm', rules);
    const e = failed(await unary(rm, rm.vmAllocate, { vmid: 0 }));
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(decodeStatusDetails(e).errorDetail).toMatchObject({ domain: 'rm', codeName: 'DENIED', rule: 'fault_injected' });
  });

  test('byte face (the VMM\'s msgq): the reply carries the RM error code; the VMM names it', async () => {
    await arm('rm', rules);
    const vm = await createVm();
    vm.close();
    expect(failed(vm.outcome).details).toContain('DENIED');
  });
});

describe('RM_NOTIFICATION, armed on the RM', () => {
  /** A guest VM (VM_ALLOCATE made its core space), a Subscribe stream as it, and a parcel shared with it to notify about. */
  async function notified(): Promise<{ got: SubscribeResponse[]; notify(): Promise<void>; close(): Promise<void> }> {
    const { vmid } = ok(await unary<{ vmid: number }>(rm, rm.vmAllocate, { vmid: 0 }));
    const stream = rm.subscribe({}, (() => {
      const md = new grpc.Metadata();
      md.set(CALLER_VMID_KEY, String(vmid));
      return md;
    })());
    const got: SubscribeResponse[] = [];
    stream.on('data', (n: SubscribeResponse) => got.push(n));
    stream.on('error', () => {});
    const base = BigInt(2 * GiB + 0x2000 * PAGE);
    const { handle } = ok(
      await unary<{ handle: number }>(rm, rm.memShare, MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 1, acl: [{ vmid, rights: 6 }, { vmid: HOST, rights: 7 }], sgl: [{ base, size: BigInt(PAGE) }] })),
    );
    return {
      got,
      notify: async () => void ok(await unary(rm, rm.memNotify, { handle, kind: MemNotifyKind.MEM_NOTIFY_KIND_SHARED, memInfoTag: 1, vmids: [vmid] })),
      close: async () => {
        stream.cancel();
        ok(await unary(rm, rm.memReclaim, { handle }));
        ok(await unary(rm, rm.vmDeallocate, { vmid })); // and with it the VM's core space
      },
    };
  }

  test('drop: the first MEM_SHARED notification never arrives; the next one does', async () => {
    await arm('rm', [{ id: 'lost-note', boundary: 'BOUNDARY_RM_NOTIFICATION', match: { rmMessage: 'MEM_SHARED', nth: 1 }, drop: {} }]);
    const n = await notified();
    try {
      await n.notify();
      await new Promise((r) => setTimeout(r, 300));
      expect(n.got).toEqual([]);
      await n.notify();
      await waitFor(() => (n.got.length > 0 ? true : undefined));
      expect(n.got).toHaveLength(1);
    } finally {
      await n.close();
    }
  });

  test('delay: the notification arrives no sooner than the delay', async () => {
    await arm('rm', [{ id: 'late-note', boundary: 'BOUNDARY_RM_NOTIFICATION', match: { rmMessage: 'MEM_SHARED', nth: 1 }, delay: { fixedMs: 400 } }]);
    const n = await notified();
    try {
      const sent = Date.now();
      await n.notify();
      await new Promise((r) => setTimeout(r, 200));
      expect(n.got).toEqual([]);
      await waitFor(() => (n.got.length > 0 ? true : undefined));
      expect(Date.now() - sent).toBeGreaterThanOrEqual(390);
    } finally {
      await n.close();
    }
  });
});

/** Bound host memory for the VMM cases: 3 GiB up, clear of the core cases' frames and the VMM's donation region. */
const HOST_BINDINGS = BigInt(3 * GiB);
const RWX = { allowRead: true, allowWrite: true, allowExec: true };

/** A VMM session (its stream held open), and the calls a test makes in it. */
async function session(): Promise<{ id: string; close(): void }> {
  const stream = vmm.openSession({});
  stream.on('error', () => {});
  const id = await new Promise<string>((resolve, reject) => {
    stream.once('data', (m: OpenSessionResponse) => resolve(m.sessionId ?? ''));
    stream.once('error', reject);
  });
  return { id, close: () => stream.cancel() };
}

const invariants = async (): Promise<string[]> => ok(await unary<CheckInvariantsResponse>(core, core.checkInvariants, {})).violations;
const parcels = async (): Promise<string> => text(ok(await unary<ListParcelsResponse>(rm, rm.listParcels, {})).parcels);
const dropsOf = (stats: GetStatsResponse, rule: string): number => Number(stats.drops.find((d) => d.rule === rule)?.count ?? 0n);

describe('VMM_TO_RM_FRAGMENT reorder inside one message (gunyah-rm.md §1.3)', () => {
  /** 16 one-page LEND bindings: VM_SET_DEMAND_PAGING carries 8 + 16 × 16 = 264 bytes, two fragments (232 + 32). */
  const BINDINGS = 16;

  test('the continuation overtakes its first fragment: the RM drops it (continuation_without_partial), never dispatches VM_SET_DEMAND_PAGING, and discards the stranded partial at the next message; StartVm fails at that step, and DestroyVm takes the VM out of INIT (VM_INIT), resets and deallocates it', async () => {
    const s = await session();
    try {
      const vm = ok(await unary<{ vm?: Vm }>(vmm, vmm.createVm, { sessionId: s.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm!;
      const at = (req: object): object => ({ sessionId: s.id, handle: vm.handle, ...req });
      for (let i = 0; i < BINDINGS; i++) {
        const binding = { guestAddr: 0x8000_0000n + BigInt(i) * 0x1_0000n, hostAddr: HOST_BINDINGS + BigInt(i) * 0x1_0000n, size: BigInt(PAGE), mode: BindMode.BIND_MODE_LEND, ...RWX };
        ok(await unary(vmm, vmm.mapMem, at({ binding, unmap: false })));
      }
      ok(await unary(vmm, vmm.setDtbConfig, at({ guestAddr: 0x8000_0000n, size: 0x100n })));

      const events = await watch('vmm');
      await arm('vmm', [{ id: 'swap-inside', boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', match: { rmMessage: 'VM_SET_DEMAND_PAGING', nth: 1 }, reorder: {} }]);
      const before = await rmStats();
      const started = failed(await unary(vmm, vmm.startVm, at({})));
      // The VMM waited --rm-timeout-ms for a reply that never came, and names the step.
      expect(started.details).toContain('start_vm_set_demand_paging');
      const e = await waitFor(() => events.got.find((x) => x['ruleId'] === 'swap-inside'));
      events.stop();
      expect(e).toMatchObject({ boundary: 'BOUNDARY_VMM_TO_RM_FRAGMENT', rmMessage: 'VM_SET_DEMAND_PAGING', action: { reorder: {} } });

      const after = await rmStats();
      // StartVm sent MEM_LEND (the DTB), VM_CONFIG_IMAGE, then VM_SET_DEMAND_PAGING's two fragments,
      // continuation first: all four arrived, the continuation was dropped, the first fragment waits as
      // a partial, and only the two whole messages before it were dispatched.
      expect(Number(after.fragmentsReceived - before.fragmentsReceived)).toBe(1 + 1 + 2);
      expect(dropsOf(after, 'continuation_without_partial') - dropsOf(before, 'continuation_without_partial')).toBe(1);
      expect(Number(after.requestsDispatched - before.requestsDispatched)).toBe(2);

      // The next message (DestroyVm's first) discards the stranded partial and is itself taken.
      const destroyed = ok(await unary<{ vm?: Vm }>(vmm, vmm.destroyVm, at({}))).vm!;
      const end = await rmStats();
      expect(dropsOf(end, 'partial_discarded') - dropsOf(before, 'partial_discarded')).toBe(1);
      // The VM was left in INIT (VM_CONFIG_IMAGE done, VM_INIT never sent), which VM_RESET and
      // VM_DEALLOCATE refuse (§4.3). The teardown sends VM_INIT first, then resets and deallocates:
      // the VMID and its pool come back.
      expect(destroyed.teardown.map((t) => [t.step, t.ok])).toEqual([
        ['mem_reclaim dtb', true],
        ['vm_init_before_reset', true],
        ['vm_reset', true],
        ['vm_deallocate', true],
      ]);
      expect(destroyed.leaked).toEqual([]);
      expect(await invariants()).toEqual([]);
    } finally {
      s.close();
    }
  });
});

describe('CLIENT_TO_VMM, armed on the VMM', () => {
  test('fail_before with a gRPC status: CreateVm is refused with it, the RM sees nothing, the session stream is untouched', async () => {
    const s = await session();
    try {
      await arm('vmm', [{ id: 'busy', boundary: 'BOUNDARY_CLIENT_TO_VMM', match: { method: 'CreateVm', nth: 1 }, failBefore: { grpc: { code: 'RESOURCE_EXHAUSTED', message: 'vmm is busy' } } }]);
      const before = await rmStats();
      const e = failed(await unary(vmm, vmm.createVm, { sessionId: s.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
      expect([e.code, e.details]).toEqual([grpc.status.RESOURCE_EXHAUSTED, 'vmm is busy']);
      expect((await rmStats()).requestsDispatched).toBe(before.requestsDispatched);
      expect(ok(await unary<ListVmsResponse>(vmm, vmm.listVms, { sessionId: s.id })).vms).toEqual([]);
      // The session (a stream: never numbered at the front door) still works: the second CreateVm goes through.
      const vm = ok(await unary<{ vm?: Vm }>(vmm, vmm.createVm, { sessionId: s.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 })).vm!;
      ok(await unary(vmm, vmm.destroyVm, { sessionId: s.id, handle: vm.handle }));
    } finally {
      s.close();
    }
  });
});

describe('VMM_TO_CORE, armed on the VMM', () => {
  test('fail_after on TopUpTablePool: the core took the pages but the VMM saw UNAVAILABLE; its retry with the same request id hears OK, so CreateVm succeeds, and after DestroyVm the ownership map is boot again and the invariants hold', async () => {
    const boot = await counts();
    const s = await session();
    const events = await watch('vmm');
    try {
      await arm('vmm', [{ id: 'lost-topup', boundary: 'BOUNDARY_VMM_TO_CORE', match: { method: 'TopUpTablePool', nth: 1 }, failAfter: { code: 'UNAVAILABLE' } }]);
      const { vm } = ok(await unary<{ vm: Vm }>(vmm, vmm.createVm, { sessionId: s.id, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 }));
      expect(await waitFor(() => events.got.find((x) => x['ruleId'] === 'lost-topup'))).toMatchObject({ boundary: 'BOUNDARY_VMM_TO_CORE', method: 'TopUpTablePool', action: { failAfter: { code: 'UNAVAILABLE' } } });
      expect(ok(await unary<ListVmsResponse>(vmm, vmm.listVms, { sessionId: s.id })).vms).toHaveLength(1);
      expect(ok(await unary<{ vm: Vm }>(vmm, vmm.destroyVm, { sessionId: s.id, handle: vm.handle })).vm.leaked).toEqual([]);
      expect(await invariants()).toEqual([]);
      expect(text(await counts())).toBe(text(boot));
    } finally {
      events.stop();
      s.close();
    }
  });
});

describe('RM_TO_CORE, armed on the RM', () => {
  test('fail_before with ENOMEM on CreateGrant: MEM_SHARE answers NOMEM (core_fault_injected) as the RM maps a core ENOMEM; no parcel, no grant, nothing changed', async () => {
    const { vmid } = ok(await unary<{ vmid: number }>(rm, rm.vmAllocate, { vmid: 0 }));
    try {
      await arm('rm', [{ id: 'core-nomem', boundary: 'BOUNDARY_RM_TO_CORE', match: { method: 'CreateGrant', nth: 1 }, failBefore: { domainError: { errno: 'ENOMEM' } } }]);
      const before = { counts: text(await counts()), parcels: await parcels() };
      const base = BigInt(2 * GiB + 0x3000 * PAGE);
      const e = failed(
        await unary(rm, rm.memShare, MemShareRequest.fromPartial({ memType: MemType.MEM_TYPE_NORMAL, label: 1, acl: [{ vmid, rights: 6 }, { vmid: HOST, rights: 7 }], sgl: [{ base, size: BigInt(PAGE) }] })),
      );
      expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(decodeStatusDetails(e).errorDetail).toMatchObject({ domain: 'rm', codeName: 'NOMEM', rule: 'core_fault_injected' });
      expect({ counts: text(await counts()), parcels: await parcels() }).toEqual(before);
      expect(await invariants()).toEqual([]);
    } finally {
      ok(await unary(rm, rm.vmDeallocate, { vmid }));
    }
  });
});
