/**
 * Fixtures for RM tests (not part of the package build): an RM over an in-process core with HLOS's
 * RAM, VMs allocated through the RM (which makes their stage-2) with pools topped up as the VM manager does, request
 * builders, and `attempt`, which proves that a refused call changed nothing.
 */
import { ACL_RIGHTS, MEM_TYPE, TRANS_TYPE, type AclEntry, type MemAcceptRequest, type ParcelCreateRequest, type SglEntry } from '@hypmesh/rm-wire';
import { Stage2, checkInvariants, topUpTablePool, vmid, type MemoryConfig } from '@hypmesh/stage2';
import { expect } from 'vitest';
import type { RmOutcome } from './rm-outcome.js';
import { inProcessCore } from './in-process-core.js';
import { ResourceManager } from './resource-manager.js';
import { snapshotRm } from './snapshot.js';
import { VMID_HLOS } from './vmid.js';

const GiB = 2 ** 30;
export const RM_TEST_MEMORY: MemoryConfig = { paBits: 40, ram: [{ base: 2 * GiB, sizeBytes: 1 * GiB }], mmio: [{ base: 0, sizeBytes: 16 * 2 ** 20 }] };
/** HLOS RAM byte address `offset` bytes into RAM. */
export const hlosAddr = (offset: number): bigint => BigInt(2 * GiB + offset);

export const RWX = ACL_RIGHTS.R | ACL_RIGHTS.W | ACL_RIGHTS.X;
export const RW = ACL_RIGHTS.R | ACL_RIGHTS.W;
export const R = ACL_RIGHTS.R;

export interface RmFixture {
  readonly s: Stage2;
  readonly rm: ResourceManager;
  /** Allocates a VM through the RM (the core makes its stage-2) and tops its table pool up from HLOS. */
  vm(): Promise<number>;
  /** RM and core state together, for "a refusal changed nothing". */
  snapshot(): unknown;
  /** Runs a call (and the background work it queues); a refusal must leave RM and core untouched. */
  attempt<T>(call: () => Promise<RmOutcome<T>>): Promise<RmOutcome<T>>;
}

/** 'OK' or '<RM error> <rule>': what the rule tables compare. */
export const outcome = (r: RmOutcome<unknown>): string => (r.ok ? 'OK' : `${r.error.rmError} ${r.error.rule}`);

let donor = 0;

export function rmFixture(): RmFixture {
  const s = new Stage2({ memory: RM_TEST_MEMORY });
  const rm = new ResourceManager(inProcessCore(s));
  donor = 0;
  return {
    s,
    rm,
    async vm() {
      const r = await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
      if (!r.ok || r.value.vmid === null) throw new Error('fixture: VM_ALLOCATE failed');
      const id = r.value.vmid;
      // VM_ALLOCATE made the stage-2 (§4.2); the host tops its pool up as the VMM does: 64 host
      // pages near the top of the test RAM.
      const base = 2 * GiB / 4096 + 0x30000 + donor++ * 64;
      const topped = topUpTablePool(s, vmid(id), [{ base, count: 64 } as never]);
      if (!topped.ok) throw new Error(`fixture: ${topped.error.message}`);
      return id;
    },
    snapshot: () => snapshotRm(rm, s),
    async attempt(call) {
      const before = snapshotRm(rm, s);
      const r = await call();
      await rm.idle();
      if (!r.ok) expect(snapshotRm(rm, s)).toEqual(before);
      expect(checkInvariants(s)).toEqual([]);
      return r;
    },
  };
}

export const sgl = (offset: number, size: number): SglEntry => ({ base: hlosAddr(offset), size: BigInt(size) });

export function createReq(acl: AclEntry[], entries: SglEntry[], extra: Partial<ParcelCreateRequest> = {}): ParcelCreateRequest {
  return { memType: MEM_TYPE.NORMAL, flags: 0, label: 0, acl, sgl: entries, attrs: [], ...extra };
}

export function acceptReq(handle: number, trans: keyof typeof TRANS_TYPE, extra: Partial<MemAcceptRequest> = {}): MemAcceptRequest {
  return { handle, memType: MEM_TYPE.NORMAL, transType: TRANS_TYPE[trans], flags: 0x80, label: 0, acl: [], mapVmid: 0, sgl: [], attrs: [], ...extra };
}

/** The notifications queued for `vmid`, without their sequence numbers (tests compare payloads). */
export const drained = (rm: ResourceManager, vmid: number): { name: string; payload: unknown }[] =>
  rm.queue(vmid).drain().map(({ name, payload }) => ({ name, payload }));
