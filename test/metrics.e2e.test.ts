/**
 * Metrics and per-RPC debug logs on the three services as separate processes (issue 11 item 6):
 * each serves GET /metrics at its `--metrics-address` (here HYPMESH_<SVC>_METRICS=127.0.0.1:0, the
 * port from its log), with RPCs by method and code and its domain gauges; at debug level each call
 * is one log line.
 */
import * as grpc from '@grpc/grpc-js';
import { VmType, VmmServiceClient } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ask, openSession } from './support/calls.js';
import { Processes, type Addresses } from './support/processes.js';

const processes = new Processes();
let addresses: Addresses;
let vmm: VmmServiceClient;

const env = (svc: 'CORE' | 'RM' | 'VMM') => ({ [`HYPMESH_${svc}_METRICS`]: '127.0.0.1:0', HYPMESH_LOG_LEVEL: 'debug' });

beforeAll(async () => {
  addresses = await processes.startServices([], { core: env('CORE'), rm: env('RM'), vmm: env('VMM') });
  vmm = new VmmServiceClient(addresses.vmm, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  vmm?.close();
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

/** GET /metrics of the service's process, at the port it logged. */
async function scrape(name: 'core' | 'rm' | 'vmm'): Promise<string> {
  const line = processes.logsOf(name).find((l) => l['msg'] === 'metrics on GET /metrics');
  expect(line, `${name} logged its metrics port`).toBeDefined();
  const r = await fetch(`http://127.0.0.1:${line!['port'] as number}/metrics`);
  expect(r.status).toBe(200);
  return r.text();
}

describe('GET /metrics on each service', () => {
  test('a VM created through the VMM shows in every service: its RPCs, its RM status, its address space', async () => {
    const s = await openSession(vmm);
    await ask(vmm, vmm.createVm, { sessionId: s.sessionId, type: VmType.VM_TYPE_GUNYAH, ipaBits: 40 });

    const v = await scrape('vmm');
    expect(v).toContain('hypmesh_rpc_requests_total{service="vmm",method="/hypmesh.vmm.v1.VmmService/CreateVm",code="OK"} 1');
    expect(v).toContain('hypmesh_vmm_vms{service="vmm",type="GUNYAH",state="CREATED"} 1');
    expect(v).toMatch(/^hypmesh_vmm_sessions\{service="vmm"\} 1$/m);
    expect(v).toMatch(/^process_resident_memory_bytes \d+/m);

    const r = await scrape('rm');
    // The VMM allocated the VMID and configured the VM over its msgq (LOAD, gunyah-rm.md §4.3).
    expect(r).toContain(`hypmesh_rm_vms{service="rm",status="LOAD"} 1`);
    expect(r).toMatch(/^hypmesh_rm_msgq_requests\{service="rm"\} [1-9]/m);
    expect(r).toMatch(/^hypmesh_rm_msgq_replies\{service="rm",message_id="0x56000001",message="VM_ALLOCATE",rm_error="OK"\} 1$/m);

    const c = await scrape('core');
    // VM_ALLOCATE made the guest's stage-2 in the core, from HYP's reservation.
    expect(c).toMatch(/^hypmesh_core_address_spaces\{service="core"\} [2-9]/m);
    expect(c).toMatch(/^hypmesh_core_frames\{service="core",owner="HOST"\} \d+/m);
    expect(c).toMatch(/^hypmesh_rpc_requests_total\{service="core",method="\/hypmesh\.core\.v1\.CoreService\/CreateAddressSpace",code="OK"\} 1$/m);
    s.stream.cancel();
  });

  test('at debug level every call is one log line: method, code, ms, caller', () => {
    const lines = processes.logsOf('vmm').filter((l) => l['msg'] === 'rpc');
    expect(lines).toContainEqual(expect.objectContaining({ rpc: '/hypmesh.vmm.v1.VmmService/CreateVm', code: 'OK', caller: '3', ms: expect.any(Number) }));
  });
});
