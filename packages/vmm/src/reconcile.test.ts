/**
 * The settle table of reconcile.ts in process: an RM port whose replies are lost after the RM
 * applied the call (rule msgq_timeout), over an in-process RM. What the RM holds decides: one new
 * VMID is the call's; two are ambiguous, so the call stays failed and nothing is recorded; a call
 * the RM refused is not settled at all (its refusal is definite).
 */
import { describe, expect, test } from 'vitest';
import { VMID_HLOS, type RmOutcome } from '@hypmesh/rm';
import { inProcessHoldings, inProcessRm } from './in-process.js';
import { RM_PORT_CALLS, type RmPort } from './ports.js';
import { ReconcilingRm } from './reconcile.js';
import { timerClock, vmmFixture } from './test-support.js';

/** `inner` with the replies of `lost` message names replaced by a msgq timeout (the RM applied them). */
function losingReplies(inner: RmPort, lost: ReadonlySet<string>): RmPort {
  const port: Record<string, unknown> = { onNotice: inner.onNotice.bind(inner) };
  for (const [method, name] of Object.entries(RM_PORT_CALLS)) {
    port[method] = async (req: unknown): Promise<RmOutcome<unknown>> => {
      const r = await (inner as unknown as Record<string, (x: unknown) => Promise<RmOutcome<unknown>>>)[method]!(req);
      return lost.has(name) ? { ok: false, error: { family: 'rm', rmError: 'BUSY', rule: 'msgq_timeout', message: `${name}: no reply` } as never } : r;
    };
  }
  return port as unknown as RmPort;
}

describe('reconcile.ts: what the RM holds settles a lost reply', () => {
  test('one VMID nobody knows: the allocate applied, with that VMID; its deallocate with a lost reply is settled too', async () => {
    const f = vmmFixture();
    const r = new ReconcilingRm(losingReplies(inProcessRm(f.rm), new Set(['VM_ALLOCATE', 'VM_DEALLOCATE'])), inProcessHoldings(f.rm, f.s), timerClock, 4, 0);
    const a = await r.port.vmAllocate({ vmid: 0 });
    expect(a.ok && a.value.vmid).toBe([...f.rm.vms.keys()].find((v) => v !== VMID_HLOS));
    expect(r.sizes()).toEqual({ vmids: 1, parcels: 0 });
    const d = await r.port.vmDeallocate({ vmid: (a as { value: { vmid: number } }).value.vmid });
    expect(d.ok).toBe(true);
    expect(r.sizes()).toEqual({ vmids: 0, parcels: 0 });
    expect(r.settled).toEqual([
      { call: 'VM_ALLOCATE', applied: true },
      { call: 'VM_DEALLOCATE', applied: true },
    ]);
  });

  test('two VMIDs nobody knows (another HLOS client allocated one): ambiguous, the call stays failed and nothing is recorded', async () => {
    const f = vmmFixture();
    const foreign = await f.rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
    expect(foreign.ok).toBe(true);
    const r = new ReconcilingRm(losingReplies(inProcessRm(f.rm), new Set(['VM_ALLOCATE'])), inProcessHoldings(f.rm, f.s), timerClock, 4, 0);
    const a = await r.port.vmAllocate({ vmid: 0 });
    expect(a).toMatchObject({ ok: false, error: { rule: 'msgq_timeout' } });
    expect(a.ok ? '' : a.error.message).toContain('the RM shows it not applied');
    expect(r.sizes()).toEqual({ vmids: 0, parcels: 0 });
  });

  test('a definite refusal is not settled: the RM answered, nothing is asked', async () => {
    const f = vmmFixture();
    const r = new ReconcilingRm(inProcessRm(f.rm), inProcessHoldings(f.rm, f.s), timerClock, 4, 0);
    const d = await r.port.vmDeallocate({ vmid: 0x9f });
    expect(d.ok).toBe(false);
    expect(r.settled).toEqual([]);
  });
});
