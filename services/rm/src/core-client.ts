/**
 * The RM's CoreGrantPort over the core's gRPC API (hypmesh.core.v1.CoreService): the RM → core
 * boundary as a network call, as the real RM's hypercalls are calls into EL2.
 *
 * Each port call is one CoreService RPC made as the acting VM (owner or borrower) in metadata
 * `x-hypmesh-caller-vmid`, so the core applies the same caller rules as to anyone. A refusal comes
 * back as the core's ErrorDetail (errno name and rule); anything else that fails (the core is down,
 * the deadline passed, a status without a detail) is also a refusal, never a throw, with errno EIO
 * and rule `grpc_<status>` (e.g. grpc_unavailable), so the RM answers its client with an RM error
 * and changes nothing.
 *
 * With a fault engine, every call passes its RM_TO_CORE client interceptor (@hypmesh/rpc
 * faultClientInterceptor): an injected refusal or lost reply is read by refusalOf exactly like the
 * core's own (an errno domain error is the core's refusal; UNAVAILABLE, DEADLINE_EXCEEDED are EIO).
 */

import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, GrantMemoryType, GrantType, VmProtection, type FrameRange } from '@hypmesh/proto';
import type { FaultEngine } from '@hypmesh/fault';
import { CALLER_VMID_KEY, DEPENDENCY_TIMEOUT_MS, decodeStatusDetails, dependencyNoter, faultClientInterceptor, SERVICE_CLIENT_OPTIONS, unreachedOf } from '@hypmesh/rpc';
import { VMID_RM, type CoreGrantPort, type CoreRefusal, type CoreResult, type FrameRun, type GrantKind, type GrantMemoryKind } from '@hypmesh/rm';

/** Deadline of one core call (--core-timeout-ms). */
export const CORE_CALL_TIMEOUT_MS = DEPENDENCY_TIMEOUT_MS.core;

const GRANT_TYPES = {
  SHARE: GrantType.GRANT_TYPE_SHARE,
  LEND: GrantType.GRANT_TYPE_LEND,
  DONATE: GrantType.GRANT_TYPE_DONATE,
} as const satisfies Record<GrantKind, GrantType>;

const MEMORY_TYPES = {
  NORMAL: GrantMemoryType.GRANT_MEMORY_TYPE_NORMAL,
  DEVICE: GrantMemoryType.GRANT_MEMORY_TYPE_DEVICE,
} as const satisfies Record<GrantMemoryKind, GrantMemoryType>;

/** The core's PA frame runs as the port's (frame numbers fit a double: < 2^40). */
const runsIn = (runs: readonly FrameRange[]): FrameRun[] => runs.map((r) => ({ base: Number(r.base), count: Number(r.count) }));

const frames = (ranges: readonly FrameRun[]): FrameRange[] => ranges.map((r) => ({ base: BigInt(r.base), count: BigInt(r.count) }));

/** A failed core call as the port's refusal. */
export function refusalOf(e: unknown): CoreRefusal {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof (e as grpc.ServiceError).code === 'number') {
    const se = e as grpc.ServiceError;
    const d = decodeStatusDetails({ code: se.code, details: se.details ?? se.message, metadata: se.metadata });
    if (d.errorDetail?.domain === 'errno') {
      // The status message opens with "ERRNO (rule): "; the refusal carries both as fields already.
      const { codeName, rule } = d.errorDetail;
      const prefix = `${codeName} (${rule}): `;
      return { errno: codeName, rule, message: d.message.startsWith(prefix) ? d.message.slice(prefix.length) : d.message };
    }
    const name = (grpc.status[se.code] ?? String(se.code)).toLowerCase();
    return { errno: 'EIO', rule: `grpc_${name}`, message: `core call failed: ${d.message}` };
  }
  return { errno: 'EIO', rule: 'grpc_internal', message: `core call failed: ${e instanceof Error ? e.message : String(e)}` };
}

type Callback<Res> = (e: grpc.ServiceError | null, res?: Res) => void;
type Method<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: Callback<Res>) => grpc.ClientUnaryCall;

export interface GrpcCorePort extends CoreGrantPort {
  close(): void;
}

/** A CoreGrantPort talking to the core at `address` (host:port). */
export function grpcCore(address: string, timeoutMs = CORE_CALL_TIMEOUT_MS, faults?: FaultEngine): GrpcCorePort {
  const client = new CoreServiceClient(address, grpc.credentials.createInsecure(), faults === undefined ? SERVICE_CLIENT_OPTIONS : { ...SERVICE_CLIENT_OPTIONS, interceptors: [faultClientInterceptor(faults, 'RM_TO_CORE')] });

  function call<Req, Res, T>(method: Method<Req, Res>, caller: number, req: Req, value: (res: Res) => T): Promise<CoreResult<T>> {
    const unreached = dependencyNoter('core');
    return new Promise((resolve) => {
      const md = new grpc.Metadata();
      md.set(CALLER_VMID_KEY, String(caller));
      try {
        method.call(client, req, md, { deadline: Date.now() + timeoutMs }, (e, res) => {
          const refusal = e ? refusalOf(e) : undefined;
          // Not the core's verdict (no errno detail) and a code that means it was not reached.
          const u = e && refusal?.errno === 'EIO' && refusal.rule.startsWith('grpc_') ? unreachedOf(e.code) : undefined;
          if (u !== undefined) unreached(u, `${address}: ${e!.details}`);
          if (refusal !== undefined || res === undefined) resolve({ ok: false, error: refusal ?? refusalOf(new Error('no response')) });
          else {
            try {
              resolve({ ok: true, value: value(res) });
            } catch (err) {
              resolve({ ok: false, error: refusalOf(err) });
            }
          }
        });
      } catch (e) {
        resolve({ ok: false, error: refusalOf(e) });
      }
    });
  }

  return {
    createGrant: (a) =>
      call(
        client.createGrant as Method<unknown, { grantId: bigint; physRuns: FrameRange[] }>,
        a.owner,
        { type: GRANT_TYPES[a.type], memoryType: MEMORY_TYPES[a.memoryType], ranges: frames(a.ranges), acl: a.acl.map((e) => ({ vmid: e.vmid, rights: e.perms })) },
        (r) => ({ grantId: Number(r.grantId), physRuns: runsIn(r.physRuns) }),
      ),
    appendGrant: (a) =>
      call(client.appendGrant as Method<unknown, { physRuns: FrameRange[] }>, a.owner, { grantId: BigInt(a.grantId), ranges: frames(a.ranges) }, (r) => ({
        physRuns: runsIn(r.physRuns),
      })),
    mapGrant: (a) =>
      call(client.mapGrant as Method<unknown, unknown>, a.borrower, { grantId: BigInt(a.grantId), rights: a.perms, ipaRanges: frames(a.ranges) }, () => undefined),
    unmapGrant: (a) => call(client.unmapGrant as Method<unknown, unknown>, a.borrower, { grantId: BigInt(a.grantId) }, () => undefined),
    destroyGrant: (a) => call(client.destroyGrant as Method<unknown, unknown>, a.owner, { grantId: BigInt(a.grantId) }, () => undefined),
    // As the RM itself (0xFF): the core builds the space from HYP's reservation (core_service.proto).
    createVmSpace: (a) => call(client.createAddressSpace as Method<unknown, unknown>, VMID_RM, { vmid: a.vmid, ipaBits: a.ipaBits, donated: [], protection: VmProtection.VM_PROTECTION_UNSPECIFIED }, () => undefined),
    destroyVmSpace: (a) => call(client.destroyAddressSpace as Method<unknown, unknown>, VMID_RM, { vmid: a.vmid }, () => undefined),
    close: () => client.close(),
  };
}
