/**
 * The port wrappers: every method of a port goes through the engine at its boundary, under its
 * gRPC method name, a method the port gains later included (CoreGrantPort.createVmSpace), and a
 * refused or lost call is shaped as the transport would answer it.
 */
import { FaultEngine, type FaultPlan } from '@hypmesh/fault';
import type { RmOutcome } from '@hypmesh/rm';
import { describe, expect, test } from 'vitest';
import { coreOutcome, rmOutcome, wrapPort, type FaultContext } from './faulty-ports.js';

function ctx(plan: FaultPlan): { ctx: FaultContext; engine: FaultEngine } {
  const engine = new FaultEngine({ nowMs: () => 0 });
  const armed = engine.arm(plan, 1);
  if (!armed.ok) throw new Error('plan');
  return { engine, ctx: { engine, apply: { sleep: () => Promise.resolve(), crash: () => undefined } } };
}

describe('wrapPort', () => {
  test('new_port_method_is_wrapped: a method added to CoreGrantPort is faulted under its RPC name', async () => {
    let applied = 0;
    const inner = { createVmSpace: (_: { vmid: number }) => Promise.resolve({ ok: true as const, value: (applied++, undefined) }) };
    // createVmSpace is CreateAddressSpace over gRPC (services/rm core-client.ts): one plan fits both modes.
    const { ctx: c } = ctx({ rules: [{ id: 'no-space', boundary: 'RM_TO_CORE', match: { method: 'CreateAddressSpace' }, action: { kind: 'fail_before', failure: { kind: 'domain', error: { family: 'errno', errno: 'ENOMEM' } } } }] });
    const port = wrapPort(inner, 'RM_TO_CORE', c, () => coreOutcome);
    expect(await port.createVmSpace({ vmid: 0x80 })).toEqual({ ok: false, error: { errno: 'ENOMEM', rule: 'fault_no-space', message: 'injected: no-space' } });
    expect(applied).toBe(0);
  });

  test('lost_reply_applies_the_call: fail_after runs the call, then the caller sees a msgq timeout', async () => {
    let applied = 0;
    const inner: { vmStop: () => Promise<RmOutcome<object>> } = { vmStop: () => Promise.resolve({ ok: true as const, value: (applied++, {}) }) };
    const { ctx: c, engine } = ctx({ rules: [{ id: 'lose', boundary: 'VMM_TO_RM', match: { rmMessage: 'VM_STOP' }, action: { kind: 'fail_after', code: 'DEADLINE_EXCEEDED' } }] });
    const port = wrapPort(inner, 'VMM_TO_RM', c, () => rmOutcome, { rmMessageOf: () => 'VM_STOP' });
    const r = await port.vmStop();
    expect(applied).toBe(1);
    expect(r.ok ? 'OK' : `${r.error.rmError} ${r.error.rule}`).toBe('BUSY msgq_deadline_exceeded_fault_lose');
    expect(engine.list().rules[0]!.fired).toBe(1);
  });
});
