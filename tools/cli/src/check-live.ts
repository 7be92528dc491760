/**
 * `hypmesh check --live` (issue 9 item 5): asks the running VMM, RM and core what each believes,
 * judges the three snapshots with @hypmesh/consistency's rules, adds the core's own CheckInvariants,
 * and prints one line per disagreement.
 *
 *   exit 0  they agree, and the core's invariants hold
 *   exit 1  at least one disagreement or violation (each printed)
 *   exit 2  a service could not be asked (unreachable, deadline passed, or it refused the call)
 *
 * Every call has a deadline (`deadlineMs`), so a stopped service is reported, never waited for.
 * The snapshots are taken one service after the other: run the check on a quiet system, or expect
 * a mutation in flight to show as a disagreement the next run no longer has.
 *
 * Callers: HOST (3) for the core and the VMM (ListAllVms is HOST-only), HLOS (3) for the RM
 * (ListVms and ListParcels all_vms are HLOS-only).
 */
import * as grpc from '@grpc/grpc-js';
import { compareViews, donatedRuns, formatDisagreement, type CoreSnapshot, type Disagreement, type OwnershipRunView, type RmSnapshot, type VmmSnapshot } from '@hypmesh/consistency';
import { CoreServiceClient, GrantType } from '@hypmesh/proto';
import { RmServiceClient, TransType } from '@hypmesh/proto/rm';
import { VmmServiceClient, VmState, VmType } from '@hypmesh/proto/vmm';
import { decodeStatusDetails } from '@hypmesh/rpc';
import { meta, cliCredentials } from './call.js';

const HOST = 3;
/** How long each call may take before the service counts as unreachable. */
export const CHECK_DEADLINE_MS_DEFAULT = 5_000;

export interface LiveAddresses {
  readonly core: string;
  readonly rm: string;
  readonly vmm: string;
}

export interface LiveReport {
  /** Cross-service disagreements, rule by rule. */
  readonly disagreements: readonly Disagreement[];
  /** The core's CheckInvariants lines. */
  readonly coreViolations: readonly string[];
}

/** A service that could not answer: which one, which call, and why. */
export class ServiceUnreachable extends Error {
  constructor(
    readonly service: 'core' | 'rm' | 'vmm',
    readonly rpc: string,
    readonly address: string,
    why: string,
  ) {
    super(`hypmesh check --live: the ${service} at ${address} did not answer ${rpc}: ${why}`);
  }
}

type Callback<Res> = (e: grpc.ServiceError | null, r: Res) => void;
type UnaryFn<Req, Res> = (req: Req, md: grpc.Metadata, options: grpc.CallOptions, cb: Callback<Res>) => unknown;

function ask<Req, Res>(service: 'core' | 'rm' | 'vmm', address: string, client: grpc.Client, rpc: string, fn: UnaryFn<Req, Res>, req: Req, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn.call(client, req, meta(HOST), { deadline: Date.now() + deadlineMs }, (e, r) => {
      if (e === null) return resolve(r);
      const d = decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata });
      const rule = d.errorDetail === undefined ? '' : ` (${d.errorDetail.codeName}, rule ${d.errorDetail.rule})`;
      reject(new ServiceUnreachable(service, rpc, address, `${grpc.status[d.code]}: ${d.message}${rule}`));
    }),
  );
}

const VM_TYPES: Partial<Record<VmType, 'GUNYAH' | 'REALM'>> = { [VmType.VM_TYPE_GUNYAH]: 'GUNYAH', [VmType.VM_TYPE_REALM]: 'REALM' };
const TRANS_TYPES: Partial<Record<TransType, 'SHARE' | 'LEND' | 'DONATE'>> = {
  [TransType.TRANS_TYPE_SHARE]: 'SHARE',
  [TransType.TRANS_TYPE_LEND]: 'LEND',
  [TransType.TRANS_TYPE_DONATE]: 'DONATE',
};
const GRANT_TYPES: Partial<Record<GrantType, 'SHARE' | 'LEND' | 'DONATE'>> = {
  [GrantType.GRANT_TYPE_SHARE]: 'SHARE',
  [GrantType.GRANT_TYPE_LEND]: 'LEND',
  [GrantType.GRANT_TYPE_DONATE]: 'DONATE',
};
/** An enum value the CLI does not know (a newer service) is judged as a mismatch, never dropped. */
const named = <K extends number, V>(table: Partial<Record<K, V>>, k: K, fallback: string): V => table[k] ?? (fallback as V);

/** Takes the three snapshots and judges them. Throws ServiceUnreachable when a service cannot answer. */
export async function checkLive(addrs: LiveAddresses, deadlineMs = CHECK_DEADLINE_MS_DEFAULT): Promise<LiveReport> {
  const creds = cliCredentials();
  const core = new CoreServiceClient(addrs.core, creds);
  const rm = new RmServiceClient(addrs.rm, creds);
  const vmm = new VmmServiceClient(addrs.vmm, creds);
  try {
    const c = <Req, Res>(rpc: string, fn: UnaryFn<Req, Res>, req: Req): Promise<Res> => ask('core', addrs.core, core, rpc, fn, req, deadlineMs);
    const r = <Req, Res>(rpc: string, fn: UnaryFn<Req, Res>, req: Req): Promise<Res> => ask('rm', addrs.rm, rm, rpc, fn, req, deadlineMs);
    const v = <Req, Res>(rpc: string, fn: UnaryFn<Req, Res>, req: Req): Promise<Res> => ask('vmm', addrs.vmm, vmm, rpc, fn, req, deadlineMs);

    // Outermost first (VMM, RM, core), as a teardown moves inward: a VM torn down meanwhile is then
    // more likely gone from the later views too than to look half-there.
    const vmmVms = await v('ListAllVms', vmm.listAllVms, {});
    const vmmSnap: VmmSnapshot = {
      vms: vmmVms.vms.flatMap((rec) =>
        rec.vm === undefined
          ? []
          : [
              {
                handle: Number(rec.vm.handle),
                vmid: rec.vm.vmid,
                type: named(VM_TYPES, rec.vm.type, VmType[rec.vm.type] ?? String(rec.vm.type)),
                state: (VmState[rec.vm.state] ?? String(rec.vm.state)).replace(/^VM_STATE_/, ''),
                donatedRuns: rec.donatedRuns.map((run) => ({ base: Number(run.base), count: Number(run.count) })),
              },
            ],
      ),
    };
    const rmVms = await r('ListVms', rm.listVms, {});
    const parcels = await r('ListParcels', rm.listParcels, { allVms: true });
    const rmSnap: RmSnapshot = {
      vms: rmVms.vms.map((vm) => ({ vmid: vm.vmid, owner: vm.ownerVmid, state: vm.status })),
      parcels: parcels.parcels.map((p) => ({
        handle: p.handle,
        owner: p.ownerVmid,
        transType: named(TRANS_TYPES, p.transType, TransType[p.transType] ?? String(p.transType)),
        grantId: Number(p.grantId),
        acceptors: [...p.acceptedBy],
      })),
    };
    const spaces = await c('ListAddressSpaces', core.listAddressSpaces, {});
    const grants = await c('ListGrants', core.listGrants, {});
    const ownership: OwnershipRunView[] = [];
    for (const run of donatedRuns(vmmSnap)) {
      let base = BigInt(run.base);
      const end = BigInt(run.base + run.count);
      while (base < end) {
        const m = await c('OwnershipMap', core.ownershipMap, { base, count: end - base, runsMax: 0 });
        for (const o of m.runs) ownership.push({ base: Number(o.base), count: Number(o.count), owner: o.ownerVmid });
        if (m.nextBase === undefined) break;
        base = m.nextBase;
      }
    }
    const coreSnap: CoreSnapshot = {
      spaces: spaces.spaces.map((s) => s.vmid),
      grants: grants.grants.map((g) => ({ id: Number(g.grantId), owner: g.ownerVmid, type: named(GRANT_TYPES, g.type, GrantType[g.type] ?? String(g.type)), borrowers: [...g.borrowerVmids] })),
      ownership,
    };
    const invariants = await c('CheckInvariants', core.checkInvariants, {});
    return { disagreements: compareViews({ vmm: vmmSnap, rm: rmSnap, core: coreSnap }), coreViolations: invariants.violations };
  } finally {
    core.close();
    rm.close();
    vmm.close();
  }
}

/** The printed report: one line per finding, then a summary line. */
export function formatLiveReport(r: LiveReport): string {
  const lines = [...r.disagreements.map(formatDisagreement), ...r.coreViolations.map((v) => `core_invariant: ${v}`)];
  const n = lines.length;
  lines.push(n === 0 ? 'consistent: the VMM, the RM and the core agree, and the core\'s invariants hold' : `${n} disagreement${n === 1 ? '' : 's'}`);
  return `${lines.join('\n')}\n`;
}
