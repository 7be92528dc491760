/**
 * VmmService messages ↔ @hypmesh/vmm values (vmm_service.proto): the enum tables, request shape
 * checks that name the field, and the encoders of a VM and its events. No VM manager state here.
 */

import { BindMode, RegSet, VmState, VmType, type Binding as PbBinding, type Lease as PbLease, type Vm as PbVm, type VmEvent as PbVmEvent, type VmRecord as PbVmRecord } from '@hypmesh/proto/vmm';
import { enumField, invalidArgument, numberToU64, required, u64ToNumber } from '@hypmesh/rpc';
import { RIGHTS, type Binding, type LeaseView, type BindMode as DomainBindMode, type RegSet as DomainRegSet, type VmEvent, type VmState as DomainVmState, type VmType as DomainVmType, type VmView } from '@hypmesh/vmm';

/** Handles are small positive integers; 32 bits is more than a session ever makes. */
const HANDLE_BITS = 32;

export const VM_TYPES = new Map<number, DomainVmType>([
  [VmType.VM_TYPE_GUNYAH, 'GUNYAH'],
  [VmType.VM_TYPE_REALM, 'REALM'],
]);
const VM_TYPE_OUT = { GUNYAH: VmType.VM_TYPE_GUNYAH, REALM: VmType.VM_TYPE_REALM } as const satisfies Record<DomainVmType, VmType>;

export const BIND_MODES = new Map<number, DomainBindMode>([
  [BindMode.BIND_MODE_LEND, 'LEND'],
  [BindMode.BIND_MODE_SHARE, 'SHARE'],
]);
const BIND_MODE_OUT = { LEND: BindMode.BIND_MODE_LEND, SHARE: BindMode.BIND_MODE_SHARE } as const satisfies Record<DomainBindMode, BindMode>;

export const REG_SETS = new Map<number, DomainRegSet>([
  [RegSet.REG_SET_X, 'X'],
  [RegSet.REG_SET_PC, 'PC'],
  [RegSet.REG_SET_SP, 'SP'],
]);

const VM_STATE_OUT = {
  CREATED: VmState.VM_STATE_CREATED,
  RUNNING: VmState.VM_STATE_RUNNING,
  START_FAILED: VmState.VM_STATE_START_FAILED,
  STOPPED: VmState.VM_STATE_STOPPED,
  DESTROYING: VmState.VM_STATE_DESTROYING,
  DESTROYED: VmState.VM_STATE_DESTROYED,
} as const satisfies Record<DomainVmState, VmState>;

/** A session id field: present, as OpenSession or OpenLease gave it. */
export function sessionField(id: string, field = 'session_id'): string {
  if (typeof id !== 'string' || id.length === 0) throw invalidArgument(field, 'required: the id OpenSession sent first or OpenLease returned');
  return id;
}

export const handleField = (v: bigint, field = 'handle'): number => {
  const h = u64ToNumber(v, field, HANDLE_BITS);
  if (h === 0) throw invalidArgument(field, 'required (handles start at 1)');
  return h;
};

/** A Binding message as the domain's binding (rights as Gunyah ACL bits, §3.1). */
export function bindingIn(b: PbBinding | undefined, field = 'binding'): Binding {
  const pb = required(b, field);
  return {
    guestAddr: u64Field(pb.guestAddr, `${field}.guest_addr`),
    hostAddr: u64Field(pb.hostAddr, `${field}.host_addr`),
    sizeBytes: u64Field(pb.size, `${field}.size`),
    mode: enumField(pb.mode, BIND_MODES, `${field}.mode`),
    rights: (pb.allowRead ? RIGHTS.R : 0) | (pb.allowWrite ? RIGHTS.W : 0) | (pb.allowExec ? RIGHTS.X : 0),
  };
}

/** A uint64 the domain keeps as bigint: only the type is checked (alignment and ranges are the domain's rules). */
export function u64Field(v: bigint, field: string): bigint {
  if (typeof v !== 'bigint' || v < 0n) throw invalidArgument(field, `expected a uint64, got ${String(v)}`);
  return v;
}

const bindingOut = (b: Binding): PbBinding => ({
  guestAddr: b.guestAddr,
  hostAddr: b.hostAddr,
  size: b.sizeBytes,
  mode: BIND_MODE_OUT[b.mode],
  allowRead: (b.rights & RIGHTS.R) !== 0,
  allowWrite: (b.rights & RIGHTS.W) !== 0,
  allowExec: (b.rights & RIGHTS.X) !== 0,
});

export function vmOut(v: VmView): PbVm {
  return {
    handle: numberToU64(v.handle, 'handle'),
    type: VM_TYPE_OUT[v.type],
    vmid: v.vmid,
    ipaBits: v.ipaBits,
    state: VM_STATE_OUT[v.state],
    rmStatus: v.rmStatus,
    bindings: v.bindings.map(bindingOut),
    dtbAddr: v.dtb?.guestAddr ?? 0n,
    dtbSize: v.dtb?.sizeBytes ?? 0n,
    hostPages: numberToU64(v.hostPages, 'host_pages'),
    teardown: v.teardown.map((t) => ({ step: t.step, attempts: t.attempts, ok: t.ok, error: t.error ?? '' })),
    leaked: [...v.leaked],
  };
}

/** One VM handle of ListAllVms: the VM, its session and its donated frame runs. */
export const vmRecordOut = (v: VmView): PbVmRecord => ({
  vm: vmOut(v),
  sessionId: v.session,
  donatedRuns: v.donatedRuns.map((r) => ({ base: numberToU64(r.base, 'donated_runs.base'), count: numberToU64(r.count, 'donated_runs.count') })),
});

/** A lease; milliseconds are whole and within uint32 (the TTL is at most an hour). */
export const leaseOut = (l: LeaseView): PbLease => ({ sessionId: l.sessionId, ttlMs: l.ttlMs, expiresInMs: Math.max(0, Math.round(l.expiresInMs)) });

export function eventOut(e: VmEvent): PbVmEvent {
  const handle = numberToU64(e.handle, 'handle');
  switch (e.kind) {
    case 'STATE':
      return { handle, state: VM_STATE_OUT[e.state] };
    case 'RM_STATUS':
      return { handle, rmStatus: e.rmStatus };
    case 'EXITED':
      return { handle, exitType: e.exitType };
  }
}
