/**
 * VmmService handlers (vmm_service.proto), each the same three steps (STYLE "Thin services"): the
 * request's shape (INVALID_ARGUMENT naming the field, codec.ts), one VmManager call, the reply
 * encoded. Errno values become gRPC in @hypmesh/rpc's status.ts only; anything thrown is a bug →
 * INTERNAL (unaryWith).
 *
 * The two streams:
 * - OpenSession is the session's lifetime (a /dev/gunyah fd): the first message is the session id,
 *   then the events of the session's VMs. When the stream ends for any reason (the client cancels,
 *   its connection drops, the process dies, the server shuts down) `endSession` tears its VMs down
 *   in the background, as gh_vm_release schedules gh_vm_free.
 * - WatchVm: one VM's events, first its current state, until it is DESTROYED (then the stream ends).
 *
 * Lease sessions (OpenLease, RenewLease, CloseLease) are the domain's (lease.ts): the handlers only
 * decode and encode; expiry runs on the VM manager's clock, not here.
 */

import type { ServerWritableStream } from '@grpc/grpc-js';
import type { OpenSessionRequest, OpenSessionResponse, VmmServiceServer, WatchVmRequest, WatchVmResponse } from '@hypmesh/proto/vmm';
import { domainStatus, enumField, fromThrown, requireCaller, unaryWith, type BugLog, type Result } from '@hypmesh/rpc';
import type { LeaseView, VmEvent, VmManager, VmmError, VmmResult, VmView } from '@hypmesh/vmm';
import { vmmPrincipal, type VmmAdmission } from './admission.js';
import { bindingIn, eventOut, handleField, leaseOut, REG_SETS, sessionField, u64Field, VM_TYPES, vmOut, vmRecordOut } from './codec.js';

/** HOST, the only caller of the VMM's admin introspection (ListAllVms, vmm_service.proto). */
const VMID_HOST = 3;

/** Streams open now, so shutdown can end them (and so their sessions). */
export type OpenStreams = Set<{ end(): void }>;

const vmReply = (r: VmmResult<VmView>): Result<{ vm: ReturnType<typeof vmOut> }, VmmError> => (r.ok ? { ok: true, value: { vm: vmOut(r.value) } } : r);
const vmsReply = (r: VmmResult<readonly VmView[]>): Result<{ vms: ReturnType<typeof vmOut>[] }, VmmError> => (r.ok ? { ok: true, value: { vms: r.value.map(vmOut) } } : r);
const leaseReply = (r: VmmResult<LeaseView>): Result<{ lease: ReturnType<typeof leaseOut> }, VmmError> => (r.ok ? { ok: true, value: { lease: leaseOut(r.value) } } : r);

/** `reset` is the service's (server.ts): it replaces the VM manager these handlers act on. */
export function createVmmHandlers(vmm: VmManager, open: OpenStreams, log: BugLog, reset: VmmServiceServer['reset'], admission: VmmAdmission): VmmServiceServer {
  const unary = unaryWith(log);

  return {
    reset,
    openSession: (call: ServerWritableStream<OpenSessionRequest, OpenSessionResponse>) => {
      // Quotas (admission.ts): the stream and the session it holds, refused before either exists.
      let release: () => void;
      let who: ReturnType<typeof vmmPrincipal>;
      try {
        who = vmmPrincipal(call);
        const refused = admission.refusal('sessions', who);
        if (refused !== undefined) throw refused;
        release = admission.stream(who);
      } catch (e) {
        call.emit('error', fromThrown(e, log, 'OpenSession'));
        return;
      }
      const id = vmm.openSession(who.key);
      admission.session(who, id);
      const stopWatch = vmm.watch((e: VmEvent) => {
        if (e.session === id) call.write({ event: eventOut(e) });
      });
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        stopWatch();
        open.delete(stream);
        vmm.endSession(id);
        release();
      };
      const stream = {
        end: () => {
          end();
          call.end();
        },
      };
      open.add(stream);
      call.on('cancelled', end);
      call.on('error', end);
      call.on('close', end);
      call.write({ sessionId: id });
    },

    openLease: unary((req, call) => {
      const who = vmmPrincipal(call);
      const refused = admission.refusal('sessions', who);
      if (refused !== undefined) throw refused;
      const lease = vmm.openLease(req.ttlMs, who.key);
      if (lease.ok) admission.session(who, lease.value.sessionId);
      return leaseReply(lease);
    }),
    renewLease: unary((req) => leaseReply(vmm.renewLease(sessionField(req.sessionId)))),
    closeLease: unary(async (req) => vmsReply(await vmm.closeLease(sessionField(req.sessionId)))),
    listVms: unary((req) => vmsReply(vmm.listVms(sessionField(req.sessionId)))),
    listAllVms: unary((_req, call) => {
      requireCaller(call, [VMID_HOST], 'ListAllVms');
      return { ok: true, value: { vms: vmm.list().sort((a, b) => (a.session < b.session ? -1 : a.session > b.session ? 1 : a.handle - b.handle)).map(vmRecordOut) } };
    }),

    createVm: unary(async (req, call) => {
      const session = sessionField(req.sessionId);
      const type = enumField(req.type, VM_TYPES, 'type');
      const made = await admission.vm(vmmPrincipal(call), () => vmm.create(session, type, req.ipaBits), (r) => (r.ok ? { handle: r.value.handle, session } : undefined));
      return vmReply(made);
    }),
    mapMem: unary((req, call) => {
      const handle = handleField(req.handle);
      const binding = bindingIn(req.binding);
      const session = sessionField(req.sessionId);
      if (!req.unmap) {
        const bound = (vmm.view(handle, session)?.bindings ?? []).reduce((n, b) => n + b.sizeBytes, 0n);
        const refused = admission.memoryRefusal(vmmPrincipal(call), bound, binding.sizeBytes);
        if (refused !== undefined) throw refused;
      }
      return vmReply(vmm.mapMem(handle, binding, req.unmap, session));
    }),
    setDtbConfig: unary((req) => vmReply(vmm.setDtbConfig(handleField(req.handle), u64Field(req.guestAddr, 'guest_addr'), u64Field(req.size, 'size'), sessionField(req.sessionId)))),
    setBootContext: unary((req) =>
      vmReply(vmm.setBootContext(handleField(req.handle), enumField(req.regSet, REG_SETS, 'reg_set'), req.index, u64Field(req.value, 'value'), sessionField(req.sessionId))),
    ),
    startVm: unary(async (req) => vmReply(await vmm.start(handleField(req.handle), sessionField(req.sessionId)))),
    stopVm: unary(async (req) => vmReply(await vmm.stop(handleField(req.handle), sessionField(req.sessionId)))),
    destroyVm: unary(async (req) => vmReply(await vmm.destroy(handleField(req.handle), sessionField(req.sessionId)))),
    getVm: unary((req) => vmReply(vmm.describe(handleField(req.handle), sessionField(req.sessionId)))),

    watchVm: (call: ServerWritableStream<WatchVmRequest, WatchVmResponse>) => {
      let handle: number;
      let session: string;
      let current: VmmResult<VmView>;
      try {
        handle = handleField(call.request.handle);
        session = sessionField(call.request.sessionId);
        current = vmm.describe(handle, session);
      } catch (e) {
        call.emit('error', fromThrown(e, log, 'WatchVm'));
        return;
      }
      if (!current.ok) {
        call.emit('error', domainStatus(current.error));
        return;
      }
      let release: () => void;
      try {
        release = admission.stream(vmmPrincipal(call));
      } catch (e) {
        call.emit('error', fromThrown(e, log, 'WatchVm'));
        return;
      }
      let stopWatch = (): void => {};
      const stream = {
        end: () => {
          stop();
          call.end();
        },
      };
      const stop = (): void => {
        stopWatch();
        open.delete(stream);
        release();
      };
      stopWatch = vmm.watch((e) => {
        if (e.handle !== handle || e.session !== session) return;
        call.write({ event: eventOut(e) });
        if (e.kind === 'STATE' && e.state === 'DESTROYED') stream.end();
      });
      open.add(stream);
      call.on('cancelled', stop);
      call.on('error', stop);
      call.write({ event: eventOut({ kind: 'STATE', handle, state: current.value.state }) });
    },
  };
}
