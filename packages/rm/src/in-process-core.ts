/**
 * A CoreGrantPort over an in-process stage-2 core: the embedded mode and the domain tests. The
 * service's gRPC client implements the same port over the network.
 */
import {
  VMID_RM,
  appendGrant,
  createAddressSpace,
  createGrant,
  destroyAddressSpace,
  destroyGrant,
  mapGrant,
  unmapGrant,
  vmid,
  type ErrnoError,
  type Result,
  type Stage2,
} from '@hypmesh/stage2';
import type { CoreGrantPort, CoreResult } from './core-port.js';

const port = <T>(r: Result<T, ErrnoError>): Promise<CoreResult<T>> =>
  Promise.resolve(r.ok ? { ok: true, value: r.value } : { ok: false, error: { errno: r.error.errno, rule: r.error.rule, message: r.error.message } });

export const inProcessCore = (s: Stage2): CoreGrantPort => ({
  createGrant: (a) =>
    port(createGrant(s, { owner: vmid(a.owner), type: a.type, memoryType: a.memoryType, ranges: a.ranges, acl: a.acl.map((e) => ({ vmid: vmid(e.vmid), perms: e.perms })) })),
  appendGrant: (a) => port(appendGrant(s, a.grantId, vmid(a.owner), a.ranges)).then((r) => (r.ok ? { ok: true, value: { physRuns: r.value.physRuns } } : r)),
  mapGrant: (a) => port(mapGrant(s, { grantId: a.grantId, borrower: vmid(a.borrower), perms: a.perms, ranges: a.ranges })),
  unmapGrant: (a) => port(unmapGrant(s, a.grantId, vmid(a.borrower))),
  destroyGrant: (a) => port(destroyGrant(s, a.grantId, vmid(a.owner))),
  createVmSpace: (a) => port(createAddressSpace(s, vmid(a.vmid), a.ipaBits, [], 'ANY', VMID_RM)).then((r) => (r.ok ? { ok: true, value: undefined } : r)),
  destroyVmSpace: (a) => port(destroyAddressSpace(s, vmid(a.vmid), VMID_RM)).then((r) => (r.ok ? { ok: true, value: undefined } : r)),
});
