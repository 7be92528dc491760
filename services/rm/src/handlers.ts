/**
 * RmService handlers (rm_service.proto). The typed RPCs are built from one table (codec.ts
 * CALL_RPCS / TYPED_CODECS), each the same three steps (STYLE "Thin services"): take the caller
 * from metadata and the request's shape (INVALID_ARGUMENT naming the field), hand the wire value to
 * the dispatcher, encode the reply. RM errors become gRPC in @hypmesh/rpc's status.ts only;
 * anything thrown is a bug and becomes INTERNAL (unary()). No handler looks at RM state.
 */

import { Metadata, type ServerWritableStream } from '@grpc/grpc-js';
import { ParcelState, type ParcelSummary, type RmServiceServer, type SubscribeRequest, type SubscribeResponse, type WatchNotificationsRequest, type WatchNotificationsResponse } from '@hypmesh/proto/rm';
import { callerVmid, fromThrown, principalOf, requireCaller, unaryWith, type AnyDomainError, type BugLog, type Result } from '@hypmesh/rpc';
import type { Parcel, ResourceManager } from '@hypmesh/rm';
import { TRANS_TYPE, type CallName, type RequestOf } from '@hypmesh/rm-wire';
import { exchangeHandler, type ByteFace } from './byte-face.js';
import { CALL_RPCS, TYPED_CODECS, enumFromWire, toSubscribeResponse, type CallRpc, type TypedCodec } from './codec.js';
import { checkedRequest, wireRefusal } from './dispatch.js';

type AnyTyped = TypedCodec<CallName, CallRpc>;

/** HLOS, the only caller of the RM's admin introspection (ListVms, ListParcels all_vms; rm_service.proto). */
const VMID_HLOS = 3;

const PARCEL_STATES = { INIT: ParcelState.PARCEL_STATE_INIT, SHARING: ParcelState.PARCEL_STATE_SHARING, SHARED: ParcelState.PARCEL_STATE_SHARED } as const;

/** One parcel as ListParcels describes it (msgq.proto ParcelSummary). */
function parcelOut(p: Parcel): ParcelSummary {
  return {
    handle: p.handle,
    ownerVmid: p.owner,
    memType: enumFromWire(p.memType),
    transType: enumFromWire(TRANS_TYPE[p.transType]),
    state: PARCEL_STATES[p.state],
    label: p.label,
    acl: p.acl.map((e) => ({ vmid: e.vmid, rights: e.rights })),
    regions: p.regions.map((r) => ({ base: r.base, size: r.size })),
    acceptedBy: [...p.accepted.keys()].sort((a, b) => a - b),
    grantId: BigInt(p.grantId),
  };
}

/** The object a typed call's wire reply names: a parcel handle, or the VMID (VM_ALLOCATE's, else the one asked for). */
function madeByTyped(reply: unknown, request: unknown): number | null {
  const r = reply as { handle?: number; vmid?: number | null };
  if (typeof r.handle === 'number') return r.handle;
  if (typeof r.vmid === 'number') return r.vmid;
  const q = request as { vmid?: number };
  return typeof q.vmid === 'number' ? q.vmid : null;
}

/** `reset` is the service's (server.ts): it replaces the RM these handlers act on. */
export function createRmHandlers(face: ByteFace, log: BugLog, reset: RmServiceServer['reset']): RmServiceServer {
  const unary = unaryWith(log);
  const rm: ResourceManager = face.rm;

  const typed = {} as Record<CallRpc, RmServiceServer[CallRpc]>;
  for (const name of Object.keys(CALL_RPCS) as CallName[]) {
    const codec = TYPED_CODECS[name] as unknown as AnyTyped;
    typed[CALL_RPCS[name]] = unary(async (req: never, call): Promise<Result<unknown, AnyDomainError>> => {
      const who = principalOf(call);
      const wire = checkedRequest(name, codec.toWire(req) as RequestOf<CallName>);
      if (!wire.ok) return { ok: false, error: wireRefusal(wire.error) };
      // Admitted as the byte face is (admission.ts): a refusal is decided before the RM is called.
      const admitted = await face.admission.around(
        who,
        name,
        () => rm.call(who.vmid, name, wire.value),
        (o) => (o.ok ? madeByTyped(o.value, wire.value) : undefined),
      );
      if (!admitted.ok) throw admitted.refusal.status;
      const outcome = admitted.value;
      return outcome.ok ? { ok: true, value: codec.fromWire(outcome.value as never, req) } : outcome;
    }) as RmServiceServer[CallRpc];
  }

  return {
    ...(typed as Pick<RmServiceServer, CallRpc>),
    reset,
    subscribe: (call: ServerWritableStream<SubscribeRequest, SubscribeResponse>) => {
      let caller: number;
      let release: () => void;
      try {
        const who = principalOf(call);
        caller = who.vmid;
        const admitted = face.admission.openStream(who);
        if (!admitted.ok) throw admitted.status;
        release = admitted.release;
      } catch (e) {
        call.emit('error', fromThrown(e, log, 'Subscribe'));
        return;
      }
      const handle = { end: () => (stop(), call.end()) };
      const notify = face.notifier.attach(caller, (n, messageId, seq, dropped) => {
        try {
          return call.write(toSubscribeResponse(n, messageId, seq, dropped));
        } catch (e) {
          log.error({ err: e, name: n.name }, 'bug: notification did not encode');
          return true;
        }
      });
      let stopped = false;
      const stop = (): void => {
        notify.stop();
        face.open.delete(handle);
        if (!stopped) release();
        stopped = true;
      };
      face.open.add(handle);
      call.on('drain', () => notify.resume());
      call.on('cancelled', stop);
      call.on('error', stop);
      call.on('close', stop);
    },
    // An observer's tap for HLOS's tools (rm_service.proto WatchNotifications; notifier.ts watch):
    // takes nothing off any queue; admitted as a stream, as Subscribe is.
    watchNotifications: (call: ServerWritableStream<WatchNotificationsRequest, WatchNotificationsResponse>) => {
      let release: () => void;
      try {
        requireCaller(call, [VMID_HLOS], 'WatchNotifications');
        const admitted = face.admission.openStream(principalOf(call));
        if (!admitted.ok) throw admitted.status;
        release = admitted.release;
      } catch (e) {
        call.emit('error', fromThrown(e, log, 'WatchNotifications'));
        return;
      }
      const watch = face.notifier.watch(call.request.vmid ?? undefined, (vmid, n, messageId, dropped, missed) => {
        try {
          return call.write({ vmid, notification: toSubscribeResponse(n, messageId, n.seq, dropped), missed: BigInt(missed) });
        } catch (e) {
          log.error({ err: e, name: n.name }, 'bug: notification did not encode');
          return true;
        }
      });
      const handle = { end: () => (stop(), call.end()) };
      let stopped = false;
      const stop = (): void => {
        if (stopped) return;
        stopped = true;
        watch.stop();
        face.open.delete(handle);
        release();
      };
      face.open.add(handle);
      call.on('drain', () => watch.resume());
      // Headers now, not with the first notification: a client knows the tap is attached.
      call.sendMetadata(new Metadata());
      call.on('cancelled', stop);
      call.on('error', stop);
      call.on('close', stop);
    },
    exchange: exchangeHandler(face),
    listParcels: unary((req, call) => {
      const parcels = req.allVms ? (requireCaller(call, [VMID_HLOS], 'ListParcels all_vms'), rm.allParcels()) : rm.parcelsVisibleTo(callerVmid(call));
      return { ok: true, value: { parcels: parcels.map(parcelOut) } };
    }),
    listVms: unary((_req, call) => {
      requireCaller(call, [VMID_HLOS], 'ListVms');
      const vms = [...rm.vms.values()].sort((a, b) => a.vmid - b.vmid).map((vm) => ({ vmid: vm.vmid, ownerVmid: vm.owner, status: vm.status }));
      return { ok: true, value: { vms } };
    }),
    getStats: unary((_req, call) => {
      const caller = callerVmid(call);
      const q = rm.queue(caller);
      return {
        ok: true,
        value: {
          ...face.stats.snapshot(),
          ...face.stats.forCaller(caller),
          notificationsPending: BigInt(q.length),
          notificationsQueued: BigInt(q.pushed),
          notificationsDropped: BigInt(q.dropped),
        },
      };
    }),
  };
}
