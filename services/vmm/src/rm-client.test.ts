/**
 * The msgq client's faults (rm-client.ts header) against a real RM server on 127.0.0.1 (embedded
 * core): each VMM_TO_RM action and the fragment ones, as what the VM manager gets back and what the
 * RM saw (its VMs and byte-face counters). The crash port is a spy, so the test process lives.
 */

import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { FaultEngine, type FaultAction, type FaultEvent, type FaultRule } from '@hypmesh/fault';
import { inProcessCore } from '@hypmesh/rm';
import { startRmServer, type RmServer } from '@hypmesh/rm-service';
import { createStage2, DEFAULT_STAGE2_CONFIG } from '@hypmesh/stage2';
import { grpcRm, type GrpcRmPort } from './rm-client.js';

const TIMEOUT_MS = 300;

let rmSrv: RmServer;
let port: GrpcRmPort;
const engine = new FaultEngine({ nowMs: Date.now });
const crashes: FaultEvent[] = [];

beforeAll(async () => {
  const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
  if (!stage2.ok) throw new Error(stage2.error.join('; '));
  rmSrv = await startRmServer({ address: '127.0.0.1:0', core: inProcessCore(stage2.value), log: { error: () => {} } });
  port = grpcRm(`127.0.0.1:${rmSrv.port}`, TIMEOUT_MS, engine, { crash: (e) => void crashes.push(e) });
  for (let i = 0; i < 200 && !port.connected(); i++) await new Promise((r) => setTimeout(r, 10));
});

afterEach(() => {
  engine.disarm('all');
  crashes.length = 0;
});

afterAll(async () => {
  port?.close();
  await rmSrv?.shutdown(500);
});

function armOne(boundary: FaultRule['boundary'], action: FaultAction): void {
  const armed = engine.arm({ rules: [{ id: 'r', boundary, match: { rmMessage: 'VM_ALLOCATE', nth: 1 }, action }] }, 5);
  if (!armed.ok) throw new Error(JSON.stringify(armed.error));
}

const vms = (): number => rmSrv.rm.vms.size;
const allocate = () => port.vmAllocate({ vmid: 0 });

describe('VMM_TO_RM: one RM message', () => {
  test('fail_before with an RM error: read as a real RM reply with that code; the RM saw nothing', async () => {
    armOne('VMM_TO_RM', { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'rm', rmError: 'NOMEM' } } });
    const before = rmSrv.stats.fragmentsReceived;
    expect(await allocate()).toMatchObject({ ok: false, error: { family: 'rm', rmError: 'NOMEM', rule: 'rm_reply' } });
    expect(rmSrv.stats.fragmentsReceived).toBe(before);
  });

  test.each([
    ['UNAVAILABLE', 'msgq_unavailable'],
    ['DEADLINE_EXCEEDED', 'msgq_timeout'],
  ] as const)('fail_before with gRPC %s: as the stream failing (rule %s)', async (code, rule) => {
    armOne('VMM_TO_RM', { kind: 'fail_before', failure: { kind: 'grpc', code } });
    expect(await allocate()).toMatchObject({ ok: false, error: { rmError: 'BUSY', rule } });
  });

  test('fail_after: the RM allocated the VM; the caller sees a lost reply', async () => {
    armOne('VMM_TO_RM', { kind: 'fail_after', code: 'UNAVAILABLE' });
    const before = vms();
    expect(await allocate()).toMatchObject({ ok: false, error: { rule: 'msgq_unavailable' } });
    expect(vms()).toBe(before + 1);
  });

  test('duplicate: the RM allocates twice; the caller gets the first answer after both', async () => {
    armOne('VMM_TO_RM', { kind: 'duplicate' });
    const before = vms();
    const r = await allocate();
    expect(r.ok).toBe(true);
    expect(vms()).toBe(before + 2);
  });

  test('drop: nothing is sent; the call times out', async () => {
    armOne('VMM_TO_RM', { kind: 'drop' });
    const before = rmSrv.stats.fragmentsReceived;
    const started = Date.now();
    expect(await allocate()).toMatchObject({ ok: false, error: { rule: 'msgq_timeout' } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 20);
    expect(rmSrv.stats.fragmentsReceived).toBe(before);
  });

  test('delay: the message goes late, and is answered', async () => {
    armOne('VMM_TO_RM', { kind: 'delay', fixedMs: 120, jitterMs: 0 });
    const started = Date.now();
    expect((await allocate()).ok).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
  });

  test('crash before commit: the crash port is called and nothing is sent', async () => {
    armOne('VMM_TO_RM', { kind: 'crash', point: 'BEFORE_COMMIT' });
    const before = vms();
    expect((await allocate()).ok).toBe(false);
    expect(crashes.map((e) => e.ruleId)).toEqual(['r']);
    expect(vms()).toBe(before);
  });

  test('crash after commit: applied, then the crash port, before the caller sees the reply', async () => {
    armOne('VMM_TO_RM', { kind: 'crash', point: 'AFTER_COMMIT' });
    const before = vms();
    expect((await allocate()).ok).toBe(false);
    expect(crashes).toHaveLength(1);
    expect(vms()).toBe(before + 1);
  });
});

describe('VMM_TO_RM_FRAGMENT: one fragment', () => {
  test('corrupt: the RM drops or refuses what arrives; the call fails', async () => {
    armOne('VMM_TO_RM_FRAGMENT', { kind: 'corrupt', byteCount: 8 });
    const before = vms();
    expect((await allocate()).ok).toBe(false);
    expect(vms()).toBe(before);
  });

  test('duplicate: the fragment arrives twice; the first is answered', async () => {
    armOne('VMM_TO_RM_FRAGMENT', { kind: 'duplicate' });
    expect((await allocate()).ok).toBe(true);
  });

  test('reorder with nothing behind it: released when the queue idles, and answered', async () => {
    armOne('VMM_TO_RM_FRAGMENT', { kind: 'reorder' });
    expect((await allocate()).ok).toBe(true);
  });

  test('no plan: every call numbered at both boundaries, nothing injected', async () => {
    engine.arm({ rules: [] }, 1);
    expect((await allocate()).ok).toBe(true);
    expect(engine.list().rules).toEqual([]);
  });
});
