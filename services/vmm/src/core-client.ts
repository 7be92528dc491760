/**
 * The VMM's CorePort over the core's gRPC API (hypmesh.core.v1.CoreService): seed 003's address-space
 * calls (the host's donations to HYP), the RMI commands of a realm's life (seed 004) and the grants
 * of a GUNYAH VM's demand-paged memory (gunyah-rm.md §4.4), each one CoreService RPC made as HOST
 * (`x-hypmesh-caller-vmid: 3`), as the host kernel's hypercalls and SMCs are. MapGrant and
 * UnmapGrant are made as the guest (the borrower, whose VMID the core reads from the same key):
 * the host kernel maps into the address space of a VM it created (ports.ts, CorePort).
 *
 * Errors come back as the domain's values, never throws:
 * - address-space calls: a CoreRefusal with the core's errno and rule (ErrorDetail domain errno);
 * - RMI calls: an RmiError rebuilt from the ErrorDetail (status, index, rule, and the output
 *   registers the command returns on failure, which the KVM host walks branch on: `top`);
 * - a failure that is not the core's verdict: errno EIO, or RMI_ERROR_INPUT for an RMI call, with
 *   rule `outcome_unknown` when the core was down, the deadline passed or the reply was lost on
 *   every try (each call carries a request id and is retried with it within --core-timeout-ms:
 *   @hypmesh/rpc keyedCall, so the core applies it at most once), else `grpc_<status>`.
 *   The host walks give up on it (ENXIO) and the VM manager retries or reports it; nothing throws.
 *
 * With a fault engine, every call passes its VMM_TO_CORE client interceptor (@hypmesh/rpc
 * faultClientInterceptor): an injected domain error is read exactly like the core's own.
 */

import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, CoreServiceService, GrantMemoryType, GrantType, MemoryKind, type ErrorDetail, type FrameRange, type GetMemoryMapResponse } from '@hypmesh/proto';
import type { FaultEngine } from '@hypmesh/fault';
import { DEPENDENCY_TIMEOUT_MS, decodeStatusDetails, dependencyNoter, faultClientInterceptor, keyedCall, OperationKeys, OUTCOME_UNKNOWN_RULE, outcomeUnknownMessage, serviceClientOptions, unreachedOf, type ClientUnaryFn, type KeyedCall } from '@hypmesh/rpc';
import type { CoreRefusal, CoreResult } from '@hypmesh/rm';
import { RMI_STATUS, type Outputs, type Result, type RmiError, type RmiStatusName } from '@hypmesh/stage2';
import type { CorePort, DemandPagedGrantType, FrameRun } from '@hypmesh/vmm';

/** Deadline of one core call (--core-timeout-ms). */
export const CORE_CALL_TIMEOUT_MS = DEPENDENCY_TIMEOUT_MS.core;
/** The name the core's quotas count this service's calls under (x-hypmesh-client, @hypmesh/rpc admission.ts). */
export const CORE_CLIENT_NAME = 'vmm';
/** The host's VMID: every VMM call to the core is the host's. */
const HOST_VMID = 3;
const GRANT_TYPES = { SHARE: GrantType.GRANT_TYPE_SHARE, LEND: GrantType.GRANT_TYPE_LEND } as const satisfies Record<DemandPagedGrantType, GrantType>;

/** A failed call: the core's ErrorDetail if it sent one, else why the transport failed. */
type Failure = { readonly detail: ErrorDetail; readonly message: string } | { readonly transport: string; readonly message: string };

const frames = (runs: readonly FrameRun[]): FrameRange[] => runs.map((r) => ({ base: BigInt(r.base), count: BigInt(r.count) }));
const num = (v: bigint): number => Number(v);

function failureOf(e: unknown): Failure {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof (e as grpc.ServiceError).code === 'number') {
    const se = e as grpc.ServiceError;
    const d = decodeStatusDetails({ code: se.code, details: se.details ?? se.message, metadata: se.metadata });
    if (d.errorDetail !== undefined) return { detail: d.errorDetail, message: d.message };
    return { transport: `grpc_${(grpc.status[se.code] ?? String(se.code)).toLowerCase()}`, message: `core call failed: ${d.message}` };
  }
  return { transport: 'grpc_internal', message: `core call failed: ${e instanceof Error ? e.message : String(e)}` };
}

function refusal(f: Failure): CoreRefusal {
  if ('detail' in f && f.detail.domain === 'errno') return { errno: f.detail.codeName, rule: f.detail.rule, message: f.message };
  return { errno: 'EIO', rule: 'detail' in f ? f.detail.rule : f.transport, message: f.message };
}

function rmiRefusal(f: Failure): RmiError {
  if ('detail' in f && f.detail.domain === 'rmi' && f.detail.codeName in RMI_STATUS && f.detail.codeName !== 'RMI_SUCCESS') {
    const outputs: Record<string, number> = {};
    for (const o of f.detail.outputs) outputs[o.name] = Number(o.value);
    // The index travels as one byte of x0: an LPA2 level -1 comes back as 255.
    const index = f.detail.rmiIndex > 127 ? f.detail.rmiIndex - 256 : f.detail.rmiIndex;
    return { family: 'rmi', status: f.detail.codeName as Exclude<RmiStatusName, 'RMI_SUCCESS'>, index, rule: f.detail.rule, message: f.message, outputs };
  }
  return { family: 'rmi', status: 'RMI_ERROR_INPUT', index: 0, rule: 'detail' in f ? f.detail.rule : f.transport, message: f.message, outputs: {} };
}

export interface GrpcCorePort extends CorePort {
  close(): void;
}

/** A CorePort talking to the core at `address` (host:port) as HOST. */
export function grpcCorePort(address: string, timeoutMs = CORE_CALL_TIMEOUT_MS, faults?: FaultEngine, credentials = grpc.credentials.createInsecure()): GrpcCorePort {
  const client = new CoreServiceClient(address, credentials, serviceClientOptions(...(faults === undefined ? [] : [faultClientInterceptor(faults, 'VMM_TO_CORE')])));
  // Ids differ between the VMM's lives: the core remembers them across its own restarts.
  const keys = new OperationKeys(`vmm-${randomUUID()}`);

  async function call<Req, Res, T, E>(rpc: string, req: Req, value: (res: Res) => T, fail: (f: Failure) => E, as = HOST_VMID): Promise<Result<T, E>> {
    const unreached = dependencyNoter('core');
    const fn = (client as unknown as Record<string, ClientUnaryFn<Req, Res>>)[rpc]!;
    const definition = (CoreServiceService as unknown as Record<string, KeyedCall<Req, Res>['definition']>)[rpc]!;
    const r = await keyedCall({ client, fn, definition, req, caller: as, clientName: CORE_CLIENT_NAME, keys, budgetMs: timeoutMs });
    const f = r.error ? failureOf(r.error) : undefined;
    // Not the core's verdict (no detail) and a code that means it was not reached.
    const u = r.error && f !== undefined && 'transport' in f ? unreachedOf(r.error.code) : undefined;
    if (u !== undefined) unreached(u, `${address}: ${r.error!.details}`);
    if (r.unknown) {
      return { ok: false, error: fail({ transport: OUTCOME_UNKNOWN_RULE, message: outcomeUnknownMessage(rpc, r, timeoutMs, f?.message ?? 'no response') }) };
    }
    if (f !== undefined || r.response === undefined) return { ok: false, error: fail(f ?? failureOf(new Error('no response'))) };
    try {
      return { ok: true, value: value(r.response) };
    } catch (err) {
      return { ok: false, error: fail(failureOf(err)) };
    }
  }
  const space = <Req, Res, T>(rpc: string, req: Req, value: (res: Res) => T, as = HOST_VMID): Promise<CoreResult<T>> => call(rpc, req, value, refusal, as);
  const rmi = <Req, Res, T extends Outputs>(rpc: string, req: Req, value: (res: Res) => T): Promise<Result<T, RmiError>> => call(rpc, req, value, rmiRefusal);
  const none = (): Record<string, never> => ({});

  return {
    memoryMap: () =>
      space('getMemoryMap', {}, (r: GetMemoryMapResponse) => ({
        ram: (r.memoryMap?.regions ?? []).filter((x) => x.kind === MemoryKind.MEMORY_KIND_RAM).map((x) => ({ base: num(x.base / 4096n), count: num(x.sizeBytes / 4096n) })),
        hypCarveout: { base: num(r.hypCarveout?.base ?? 0n), count: num(r.hypCarveout?.count ?? 0n) },
      })),
    topUpTablePool: (vmid, runs) => space('topUpTablePool', { vmid, frames: frames(runs) }, (r: { poolPages: bigint }) => ({ poolPages: num(r.poolPages) })),
    drainTablePool: (vmid, maxPages) =>
      space('drainTablePool', { vmid, maxPages: BigInt(maxPages) }, (r: { returnedPages: bigint; poolPages: bigint }) => ({ returnedPages: num(r.returnedPages), poolPages: num(r.poolPages) })),

    granuleDelegate: (addr) => rmi('granuleDelegate', { addr: BigInt(addr) }, none),
    granuleUndelegate: (addr) => rmi('granuleUndelegate', { addr: BigInt(addr) }, none),
    realmCreate: (rd, p) =>
      rmi('realmCreate',
        {
          rd: BigInt(rd),
          params: { s2sz: p.s2sz, rttLevelStart: p.rttLevelStart, rttNumStart: p.rttNumStart, rttBase: BigInt(p.rttBase), vmid: p.vmid ?? 0, hashAlgorithm: p.hashAlgorithm === 'SHA_512' ? 2 : p.hashAlgorithm === 'SHA_256' ? 1 : 0 },
        },
        none,
      ),
    realmActivate: (rd) => rmi('realmActivate', { rd: BigInt(rd) }, none),
    realmDestroy: (rd) => rmi('realmDestroy', { rd: BigInt(rd) }, none),
    recDestroy: (rec) => rmi('recDestroy', { rec: BigInt(rec) }, none),
    rttCreate: (rd, rtt, ipa, level) => rmi('rttCreate', { rd: BigInt(rd), rtt: BigInt(rtt), ipa: BigInt(ipa), level }, none),
    rttDestroy: (rd, ipa, level) => rmi('rttDestroy', { rd: BigInt(rd), ipa: BigInt(ipa), level }, (r: { rtt: bigint; top: bigint }) => ({ rtt: num(r.rtt), top: num(r.top) })),
    rttFold: (rd, ipa, level) => rmi('rttFold', { rd: BigInt(rd), ipa: BigInt(ipa), level }, (r: { rtt: bigint }) => ({ rtt: num(r.rtt) })),
    dataCreate: (rd, data, ipa, src, flags) => rmi('dataCreate', { rd: BigInt(rd), data: BigInt(data), ipa: BigInt(ipa), src: BigInt(src), flags: BigInt(flags) }, none),
    dataDestroy: (rd, ipa) => rmi('dataDestroy', { rd: BigInt(rd), ipa: BigInt(ipa) }, (r: { data: bigint; top: bigint }) => ({ data: num(r.data), top: num(r.top) })),
    // x1 is the progress; the domain names the output `top` (services/core maps it to `progress`).
    rttInitRipas: (rd, base, top) => rmi('rttInitRipas', { rd: BigInt(rd), base: BigInt(base), top: BigInt(top) }, (r: { progress: bigint }) => ({ top: num(r.progress) })),
    rttUnmapUnprotected: (rd, ipa, level) => rmi('rttUnmapUnprotected', { rd: BigInt(rd), ipa: BigInt(ipa), level }, (r: { top: bigint }) => ({ top: num(r.top) })),
    createGrant: (a) =>
      space('createGrant', { type: GRANT_TYPES[a.type], memoryType: GrantMemoryType.GRANT_MEMORY_TYPE_NORMAL, ranges: frames(a.ranges), acl: a.acl.map((e) => ({ vmid: e.vmid, rights: e.perms })) }, (r: { grantId: bigint }) => ({
        grantId: num(r.grantId),
      })),
    mapGrant: (a) => space('mapGrant', { grantId: BigInt(a.grantId), rights: a.perms, ipaRanges: frames(a.ranges) }, () => undefined, a.borrower),
    unmapGrant: (a) => space('unmapGrant', { grantId: BigInt(a.grantId) }, () => undefined, a.borrower),
    destroyGrant: (a) => space('destroyGrant', { grantId: BigInt(a.grantId) }, () => undefined),
    close: () => client.close(),
  };
}
