/**
 * The VMM's restart sweep (packages/vmm restart-sweep.ts) over gRPC: what HLOS holds, from the RM's
 * and the core's introspection RPCs. The RM answers ListVms and ListParcels(all_vms) to HLOS only;
 * the core answers ListGrants, ListRealms and OwnershipMap to anyone (the VMM asks as HOST, VMID 3 on both).
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, GranuleState, PageState, type ListRealmsResponse, type OwnershipMapResponse } from '@hypmesh/proto';
import { RmServiceClient } from '@hypmesh/proto/rm';
import { callUnary, describeRefusal, SERVICE_CLIENT_OPTIONS, type ClientUnaryFn } from '@hypmesh/rpc';
import { VM_STATUS, type VmStatus } from '@hypmesh/rm';
import type { FrameRun, HoldingsPort } from '@hypmesh/vmm';

/** HOST in the core and HLOS in the RM are both VMID 3. */
const HLOS = 3;

/** ListVms names the §4.3 status; a name this VMM does not know is UNKNOWN (its teardown still runs). */
const statusOf = (name: string): VmStatus | 'UNKNOWN' => (Object.hasOwn(VM_STATUS, name) ? (name as VmStatus) : 'UNKNOWN');

export interface GrpcHoldings extends HoldingsPort {
  close(): void;
}

export function grpcHoldings(coreAddress: string, rmAddress: string, deadlineMs: number, credentials = grpc.credentials.createInsecure()): GrpcHoldings {
  const core = new CoreServiceClient(coreAddress, credentials, SERVICE_CLIENT_OPTIONS);
  const rm = new RmServiceClient(rmAddress, credentials, SERVICE_CLIENT_OPTIONS);
  const ask = async <Req, Res, T>(client: grpc.Client, fn: unknown, rpc: string, req: Req, value: (r: Res) => T) => {
    const r = await callUnary(client, fn as ClientUnaryFn<Req, Res>, req, HLOS, deadlineMs);
    return r.ok ? { ok: true as const, value: value(r.value) } : { ok: false as const, error: `${rpc}: ${describeRefusal(r.error)}` };
  };
  return {
    rmVms: () =>
      ask(rm, rm.listVms, 'RM ListVms', {}, (r: { vms: { vmid: number; ownerVmid: number; status: string }[] }) =>
        r.vms.filter((v) => v.ownerVmid === HLOS && v.vmid !== HLOS).map((v) => ({ vmid: v.vmid, status: statusOf(v.status) })),
      ),
    rmParcels: () =>
      ask(rm, rm.listParcels, 'RM ListParcels', { allVms: true }, (r: { parcels: { handle: number; ownerVmid: number; label: number; acl: { vmid: number }[]; grantId: bigint }[] }) =>
        r.parcels.map((p) => ({ handle: p.handle, ownerVmid: p.ownerVmid, label: p.label, aclVmids: p.acl.map((e) => e.vmid), grantId: Number(p.grantId) })),
      ),
    hostGrants: () =>
      ask(core, core.listGrants, 'core ListGrants', {}, (r: { grants: { grantId: bigint; ownerVmid: number; aclVmids: number[]; borrowerVmids: number[] }[] }) =>
        r.grants.filter((g) => g.ownerVmid === HLOS).map((g) => ({ grantId: Number(g.grantId), aclVmids: g.aclVmids, borrowerVmids: g.borrowerVmids })),
      ),
    realms: () =>
      ask(core, core.listRealms, 'core ListRealms', {}, (r: ListRealmsResponse) =>
        r.realms.map((x) => ({ rd: Number(x.rd), ipaBits: x.ipaBits, startLevel: x.rttLevelStart, roots: x.rootRtts.map(Number), recs: x.recs.map(Number) })),
      ),
    regionRuns: (run: FrameRun) =>
      // The donation region (64 MiB, 16384 frames) is within one call's 65536 runs.
      ask(core, core.ownershipMap, 'core OwnershipMap', { base: BigInt(run.base), count: BigInt(run.count), runsMax: 0 }, (r: OwnershipMapResponse) =>
        r.runs.map((x) => ({
          base: Number(x.base),
          count: Number(x.count),
          hostFree: x.ownerVmid === HLOS && x.hostState === PageState.PAGE_STATE_OWNED && x.granuleState === GranuleState.GRANULE_STATE_NS,
          delegatedUnused: x.granuleState === GranuleState.GRANULE_STATE_DELEGATED,
        })),
      ),
    close: () => {
      core.close();
      rm.close();
    },
  };
}
