/**
 * The RM's CoreGrantPort over the core's gRPC API (hypmesh.core.v1.CoreService): the RM → core
 * boundary as a network call, as the real RM's hypercalls are calls into EL2.
 *
 * Each port call is one CoreService RPC made as the acting VM (owner or borrower) in metadata
 * `x-hypmesh-caller-vmid`, so the core applies the same caller rules as to anyone. A refusal comes
 * back as the core's ErrorDetail (errno name and rule); anything else that fails is also a refusal,
 * never a throw, with errno EIO, so the RM answers its client with an RM error and changes nothing:
 * rule `outcome_unknown` when the core was down, the deadline passed or the reply was lost on every
 * try (the core may have applied the call: retried with its request id, grpcCore below), else
 * `grpc_<status>` (a status without a detail).
 *
 * With a fault engine, every call passes its RM_TO_CORE client interceptor (@hypmesh/rpc
 * faultClientInterceptor): an injected refusal or lost reply is read by refusalOf exactly like the
 * core's own (an errno domain error is the core's refusal; UNAVAILABLE, DEADLINE_EXCEEDED are EIO,
 * and retried with the call's request id: grpcCore below).
 */

import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, CoreServiceService, GrantMemoryType, GrantType, VmProtection, type FrameRange } from '@hypmesh/proto';
import type { FaultEngine } from '@hypmesh/fault';
import { DEPENDENCY_TIMEOUT_MS, decodeStatusDetails, dependencyNoter, faultClientInterceptor, keyedCall, OperationKeys, OUTCOME_UNKNOWN_RULE, outcomeUnknownMessage, requestDigest, serviceClientOptions, unreachedOf, type ClientUnaryFn, type KeyedCall, type KeyedReply } from '@hypmesh/rpc';
import { VMID_RM, type CoreGrantPort, type CoreRefusal, type CoreResult, type FrameRun, type GrantKind, type GrantMemoryKind } from '@hypmesh/rm';

/** Deadline of one core call (--core-timeout-ms). */
export const CORE_CALL_TIMEOUT_MS = DEPENDENCY_TIMEOUT_MS.core;
/** The name the core's quotas count this service's calls under (x-hypmesh-client, @hypmesh/rpc admission.ts). */
export const CORE_CLIENT_NAME = 'rm';

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

export interface GrpcCorePort extends CoreGrantPort {
  close(): void;
}

type Mutation = 'createGrant' | 'appendGrant' | 'mapGrant' | 'unmapGrant' | 'destroyGrant' | 'createAddressSpace' | 'destroyAddressSpace';

/** Back-off between the settling calls of a create whose outcome stayed unknown, and how long it tries. */
export const SETTLE_BACKOFF_MS = { first: 250, max: 5_000 } as const;
export const SETTLE_FOR_MS = 600_000;

/**
 * A CoreGrantPort talking to the core at `address` (host:port). Every call is a mutation and
 * carries a request id (@hypmesh/rpc keyedCall): one whose reply was lost or late is sent again
 * with the same id, within `timeoutMs` in all, and the core answers a repeat with what it did the
 * first time. Still unknown at the end: the refusal OUTCOME_UNKNOWN_RULE, the RM changes nothing,
 * and the id stays open, so the client's next request for the same change (a second MEM_RECLAIM)
 * reuses it and completes, or hears the refusal, exactly once.
 *
 * A CreateGrant is the exception: the RM answered its client that the share, lend or donate
 * failed and records no parcel, and no client asks for the same grant again, so a grant the core
 * did make would be named by nobody (the host's memory lent to a VM for good). Such a create is
 * settled in the background (`settleCreate`): the same call with the same id, with back-off, until
 * the core answers, then a DestroyGrant of what it made. An identical CreateGrant asked for
 * meanwhile waits for the settling, so a grant is either destroyed or handed to the RM, never both.
 */
export function grpcCore(address: string, timeoutMs = CORE_CALL_TIMEOUT_MS, faults?: FaultEngine, credentials = grpc.credentials.createInsecure()): GrpcCorePort {
  const client = new CoreServiceClient(address, credentials, serviceClientOptions(...(faults === undefined ? [] : [faultClientInterceptor(faults, 'RM_TO_CORE')])));
  // Ids differ between the RM's lives: the core remembers them across its own restarts.
  const keys = new OperationKeys(`rm-${randomUUID()}`);
  let closed = false;

  /** Creates being settled, by operation (caller and request bytes): an identical create waits for it. */
  const settling = new Map<string, Promise<void>>();
  const operationOf = <Req>(rpc: Mutation, caller: number, req: Req): string =>
    `${rpc} ${caller} ${requestDigest((CoreServiceService[rpc] as unknown as KeyedCall<Req, unknown>['definition']).requestSerialize(req))}`;

  // A request id the RM gives (a durable RM's intent, @hypmesh/rm intents.ts) is the call's key on
  // every try and after a restart: a one-key table whose prefix is the id (its key is `<id>-1`).
  const send = <Req, Res>(rpc: Mutation, caller: number, req: Req, requestId?: string): Promise<KeyedReply<Res>> =>
    keyedCall({ client, fn: client[rpc] as unknown as ClientUnaryFn<Req, Res>, definition: CoreServiceService[rpc] as unknown as KeyedCall<Req, Res>['definition'], req, caller, clientName: CORE_CLIENT_NAME, keys: requestId === undefined ? keys : new OperationKeys(requestId), budgetMs: timeoutMs });

  /** The same CreateGrant (same id) until the core answers; what it made is destroyed (see above). */
  async function settleCreate<Req>(caller: number, req: Req): Promise<void> {
    const end = Date.now() + SETTLE_FOR_MS;
    for (let backoff: number = SETTLE_BACKOFF_MS.first; Date.now() < end; backoff = Math.min(backoff * 2, SETTLE_BACKOFF_MS.max)) {
      await new Promise((resolve) => setTimeout(resolve, backoff).unref());
      if (closed) return;
      const r = await send<Req, { grantId: bigint }>('createGrant', caller, req);
      if (r.unknown) continue;
      if (r.response === undefined) return; // refused: the core made nothing
      for (; Date.now() < end && !closed; await new Promise((resolve) => setTimeout(resolve, backoff).unref())) {
        const d = await send('destroyGrant', caller, { grantId: r.response.grantId });
        if (!d.unknown) return;
      }
      return;
    }
  }

  async function call<Req, Res, T>(rpc: Mutation, caller: number, req: Req, value: (res: Res) => T, requestId?: string): Promise<CoreResult<T>> {
    const unreached = dependencyNoter('core');
    // A create under the RM's own request id is settled by the RM (its intent stays open), not here.
    const operation = rpc === 'createGrant' && requestId === undefined ? operationOf(rpc, caller, req) : undefined;
    const pending = operation === undefined ? undefined : settling.get(operation);
    if (pending !== undefined) await pending;
    const r = await send<Req, Res>(rpc, caller, req, requestId);
    if (r.unknown && operation !== undefined && !settling.has(operation)) {
      const settled = settleCreate(caller, req).finally(() => settling.delete(operation));
      settling.set(operation, settled);
    }
    const refusal = r.error ? refusalOf(r.error) : undefined;
    // Not the core's verdict (no errno detail) and a code that means it was not reached.
    const u = r.error && refusal?.errno === 'EIO' && refusal.rule.startsWith('grpc_') ? unreachedOf(r.error.code) : undefined;
    if (u !== undefined) unreached(u, `${address}: ${r.error!.details}`);
    if (r.unknown) {
      return { ok: false, error: { errno: 'EIO', rule: OUTCOME_UNKNOWN_RULE, message: outcomeUnknownMessage(rpc, r, timeoutMs, refusal?.message ?? 'no response') } };
    }
    if (refusal !== undefined || r.response === undefined) return { ok: false, error: refusal ?? refusalOf(new Error('no response')) };
    try {
      return { ok: true, value: value(r.response) };
    } catch (err) {
      return { ok: false, error: refusalOf(err) };
    }
  }

  return {
    createGrant: (a) =>
      call(
        'createGrant',
        a.owner,
        { type: GRANT_TYPES[a.type], memoryType: MEMORY_TYPES[a.memoryType], ranges: frames(a.ranges), acl: a.acl.map((e) => ({ vmid: e.vmid, rights: e.perms })) },
        (r: { grantId: bigint; physRuns: FrameRange[] }) => ({ grantId: Number(r.grantId), physRuns: runsIn(r.physRuns) }),
        a.requestId,
      ),
    appendGrant: (a) =>
      call('appendGrant', a.owner, { grantId: BigInt(a.grantId), ranges: frames(a.ranges) }, (r: { physRuns: FrameRange[] }) => ({
        physRuns: runsIn(r.physRuns),
      }), a.requestId),
    mapGrant: (a) =>
      call('mapGrant', a.borrower, { grantId: BigInt(a.grantId), rights: a.perms, ipaRanges: frames(a.ranges) }, () => undefined, a.requestId),
    unmapGrant: (a) => call('unmapGrant', a.borrower, { grantId: BigInt(a.grantId) }, () => undefined, a.requestId),
    destroyGrant: (a) => call('destroyGrant', a.owner, { grantId: BigInt(a.grantId) }, () => undefined, a.requestId),
    // As the RM itself (0xFF): the core builds the space from HYP's reservation (core_service.proto).
    createVmSpace: (a) => call('createAddressSpace', VMID_RM, { vmid: a.vmid, ipaBits: a.ipaBits, donated: [], protection: VmProtection.VM_PROTECTION_UNSPECIFIED }, () => undefined, a.requestId),
    destroyVmSpace: (a) => call('destroyAddressSpace', VMID_RM, { vmid: a.vmid }, () => undefined, a.requestId),
    close: () => {
      closed = true;
      client.close();
    },
  };
}
