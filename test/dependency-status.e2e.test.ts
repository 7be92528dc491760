/**
 * A dependency that cannot be reached is reported as such (issue 10, DESIGN.md §8 "Honest
 * signals"): the core, the RM and the VMM as separate processes; a dependency stopped (SIGSTOP)
 * makes its caller answer DEADLINE_EXCEEDED, one that is down (killed) UNAVAILABLE, each with a
 * google.rpc.ErrorInfo naming it (reason DEPENDENCY_DEADLINE_EXCEEDED / DEPENDENCY_UNAVAILABLE,
 * metadata.dependency). Before, the RM answered RM NORESOURCE and the VMM INVALID_ARGUMENT, so a
 * client's retry policy keyed on UNAVAILABLE never fired. Domain refusals keep their codes.
 */

import * as grpc from '@grpc/grpc-js';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { VmType, VmmServiceClient } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY, decodeStatusDetails, type DecodedStatus } from '@hypmesh/rpc';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Processes, type Proc } from './support/processes.js';

/** Short service deadlines, so a stopped dependency is found out fast; the VMM's RM deadline is above the RM's core deadline, so the RM answers first. */
const CORE_TIMEOUT_MS = 800;
const RM_TIMEOUT_MS = 1_500;
const CALL_DEADLINE_MS = 8_000;

const processes = new Processes();
let rm: RmServiceClient;
let vmm: VmmServiceClient;
let sessionId = '';

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: unknown) => void) => unknown;

/** A call as HOST that must fail: its decoded status. */
const refused = (client: grpc.Client, method: unknown, req: object): Promise<DecodedStatus> =>
  new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, '3');
    (method as Unary).call(client, req, md, { deadline: Date.now() + CALL_DEADLINE_MS }, (e) =>
      e === null ? reject(new Error('expected a refusal')) : resolve(decodeStatusDetails(e)),
    );
  });

/** The code, ErrorInfo reason and named dependency of a refusal, for one comparison. */
const summary = (d: DecodedStatus): string => `${grpc.status[d.code]} ${d.errorInfo?.reason ?? '-'} ${d.errorInfo?.metadata['dependency'] ?? '-'}`;

const proc = (name: string): Proc => processes.all.find((p) => p.name === name)!;
const signal = (name: string, sig: NodeJS.Signals): void => void proc(name).child.kill(sig);
async function kill(name: string): Promise<void> {
  const p = proc(name);
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await exited;
}

const createVm = (type: VmType, ipaBits = 40): Promise<DecodedStatus> => refused(vmm, vmm.createVm, { sessionId, type, ipaBits });
const vmAllocate = (): Promise<DecodedStatus> => refused(rm, rm.vmAllocate, { vmid: 0 });

beforeAll(async () => {
  const env = { HYPMESH_CORE_TIMEOUT_MS: String(CORE_TIMEOUT_MS), HYPMESH_RM_TIMEOUT_MS: String(RM_TIMEOUT_MS) };
  const a = await processes.startServices([], { rm: env, vmm: env });
  rm = new RmServiceClient(a.rm, grpc.credentials.createInsecure());
  vmm = new VmmServiceClient(a.vmm, grpc.credentials.createInsecure());
  sessionId = await new Promise<string>((resolve, reject) =>
    vmm.openLease({ ttlMs: 600_000 }, (e, r) => (e ? reject(e) : resolve(r.lease!.sessionId))),
  );
}, 60_000);

afterAll(async () => {
  rm?.close();
  vmm?.close();
  for (const p of processes.all) if (p.child.signalCode === null && p.child.exitCode === null) p.child.kill('SIGCONT');
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

// First, while every process still runs: stopped (SIGSTOP), then continued.
describe('a dependency that is stopped: DEADLINE_EXCEEDED naming it, within the service\'s deadline for it', () => {
  test('core stopped: the RM (VM_ALLOCATE) and the VMM (REALM and GUNYAH create) answer DEADLINE_EXCEEDED, dependency core', async () => {
    signal('core', 'SIGSTOP');
    try {
      // The ErrorInfo shows the service's own deadline for the core ended the call, not the client's.
      expect(summary(await vmAllocate())).toBe('DEADLINE_EXCEEDED DEPENDENCY_DEADLINE_EXCEEDED core');
      expect(summary(await createVm(VmType.VM_TYPE_REALM))).toBe('DEADLINE_EXCEEDED DEPENDENCY_DEADLINE_EXCEEDED core');
      // GUNYAH: the RM could not reach the core for VM_ALLOCATE; its msgq reply (NORESOURCE) says
      // so beside the bytes (ExchangeResponse.dependency_unreached), and the VMM names the core.
      const gunyah = await createVm(VmType.VM_TYPE_GUNYAH);
      expect(summary(gunyah)).toBe('DEADLINE_EXCEEDED DEPENDENCY_DEADLINE_EXCEEDED core');
      expect(gunyah.message).toContain('via the RM');
    } finally {
      signal('core', 'SIGCONT');
    }
  });

  test('RM stopped: the VMM answers CreateVm DEADLINE_EXCEEDED, dependency rm, after --rm-timeout-ms', async () => {
    signal('rm', 'SIGSTOP');
    try {
      expect(summary(await createVm(VmType.VM_TYPE_GUNYAH))).toBe('DEADLINE_EXCEEDED DEPENDENCY_DEADLINE_EXCEEDED rm');
    } finally {
      signal('rm', 'SIGCONT');
    }
  });
});

describe('a dependency that is down: UNAVAILABLE naming it', () => {
  test('core killed: the RM (VM_ALLOCATE) and the VMM (REALM and GUNYAH create) answer UNAVAILABLE, dependency core; a bad request is still INVALID_ARGUMENT', async () => {
    await kill('core');
    expect(summary(await vmAllocate())).toBe('UNAVAILABLE DEPENDENCY_UNAVAILABLE core');
    const realm = await createVm(VmType.VM_TYPE_REALM);
    expect(summary(realm)).toBe('UNAVAILABLE DEPENDENCY_UNAVAILABLE core');
    // The domain's own refusal stays beside it.
    expect(realm.errorDetail?.codeName).toBe('EINVAL');
    expect(summary(await createVm(VmType.VM_TYPE_GUNYAH))).toBe('UNAVAILABLE DEPENDENCY_UNAVAILABLE core');
    expect(summary(await createVm(VmType.VM_TYPE_GUNYAH, 12))).toBe('INVALID_ARGUMENT EINVAL -');
  });

  test('RM killed: the VMM answers CreateVm UNAVAILABLE, dependency rm', async () => {
    await kill('rm');
    expect(summary(await createVm(VmType.VM_TYPE_GUNYAH))).toBe('UNAVAILABLE DEPENDENCY_UNAVAILABLE rm');
  });
});
