/**
 * One table from message name to its codecs, for a table-driven dispatcher (the RM's typed and byte
 * faces share one, STYLE "Thin services"): every request the RM handles in gunyah-rm.md §3 and §4.2
 * has `{ request, reply }` (reply = the data after the §1.4 error word), every notification of §2.2
 * it sends for memory and VMs has `{ notification }`. IDs come from message-id.ts; a message missing
 * here has no payload codec yet and the dispatcher answers UNIMPLEMENTED.
 */
import { err, ok } from './result.js';
import type { Decoded } from './cursor.js';
import type { Codec } from './layout.js';
import { MESSAGE_IDS, messageName, type MessageName } from './message-id.js';
import { decodeReply } from './reply.js';
import type { RmErrorName } from './rm-error.js';
import { memAcceptReply, memAcceptRequest } from './payloads/mem-accept.js';
import { memAppendReply, memAppendRequest } from './payloads/mem-append.js';
import { memLookupSglReply, memLookupSglRequest } from './payloads/mem-lookup-sgl.js';
import {
  memAcceptedNotification,
  memRecallNotification,
  memReleasedNotification,
  memSharedNotification,
} from './payloads/mem-notifications.js';
import { memNotifyReply, memNotifyRequest } from './payloads/mem-notify.js';
import { memReclaimReply, memReclaimRequest, memReleaseReply, memReleaseRequest } from './payloads/mem-release.js';
import {
  memDonateReply,
  memDonateRequest,
  memLendReply,
  memLendRequest,
  memShareReply,
  memShareRequest,
} from './payloads/mem-share.js';
import * as cfg from './payloads/vm-config.js';
import * as life from './payloads/vm-lifecycle.js';
import { vmExitedNotification, vmShutdownNotification, vmStatusNotification } from './payloads/vm-notifications.js';
import { vmGetHypResourcesReply, vmGetHypResourcesRequest } from './payloads/vm-resources.js';

export interface CallCodecs<Req, Rep> {
  readonly kind: 'request';
  readonly request: Codec<Req>;
  readonly reply: Codec<Rep>;
}

export interface NotificationCodecs<N> {
  readonly kind: 'notification';
  readonly notification: Codec<N>;
}

/** Codec is invariant in its value type, so the table's constraint has to say `any`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCodecs = CallCodecs<any, any> | NotificationCodecs<any>;

const call = <Req, Rep>(request: Codec<Req>, reply: Codec<Rep>): CallCodecs<Req, Rep> => ({ kind: 'request', request, reply });
const notification = <N>(c: Codec<N>): NotificationCodecs<N> => ({ kind: 'notification', notification: c });

export const RM_CODECS = {
  // §3 memory parcels
  MEM_DONATE: call(memDonateRequest, memDonateReply),
  MEM_ACCEPT: call(memAcceptRequest, memAcceptReply),
  MEM_LEND: call(memLendRequest, memLendReply),
  MEM_SHARE: call(memShareRequest, memShareReply),
  MEM_RELEASE: call(memReleaseRequest, memReleaseReply),
  MEM_RECLAIM: call(memReclaimRequest, memReclaimReply),
  MEM_NOTIFY: call(memNotifyRequest, memNotifyReply),
  MEM_APPEND: call(memAppendRequest, memAppendReply),
  MEM_QCOM_LOOKUP_SGL: call(memLookupSglRequest, memLookupSglReply),
  // §4.2 VM management
  VM_ALLOCATE: call(life.vmAllocateRequest, life.vmAllocateReply),
  VM_DEALLOCATE: call(life.vmDeallocateRequest, life.vmDeallocateReply),
  VM_START: call(life.vmStartRequest, life.vmStartReply),
  VM_STOP: call(life.vmStopRequest, life.vmStopReply),
  VM_RESET: call(life.vmResetRequest, life.vmResetReply),
  VM_CONFIG_IMAGE: call(cfg.vmConfigImageRequest, cfg.vmConfigImageReply),
  VM_AUTH_IMAGE: call(cfg.vmAuthImageRequest, cfg.vmAuthImageReply),
  VM_INIT: call(life.vmInitRequest, life.vmInitReply),
  VM_GET_STATE: call(life.vmGetStateRequest, life.vmGetStateReply),
  VM_GET_HYP_RESOURCES: call(vmGetHypResourcesRequest, vmGetHypResourcesReply),
  VM_GET_VMID: call(life.vmGetVmidRequest, life.vmGetVmidReply),
  VM_HOST_GET_TYPE: call(life.vmHostGetTypeRequest, life.vmHostGetTypeReply),
  VM_SET_TIME_BASE: call(cfg.vmSetTimeBaseRequest, cfg.vmSetTimeBaseReply),
  VM_SET_CONTEXT: call(cfg.vmSetBootContextRequest, cfg.vmSetBootContextReply),
  VM_SET_FIRMWARE_MEM: call(cfg.vmSetFirmwareMemRequest, cfg.vmSetFirmwareMemReply),
  VM_SET_DEMAND_PAGING: call(cfg.vmSetDemandPagingRequest, cfg.vmSetDemandPagingReply),
  VM_SET_ADDRESS_LAYOUT: call(cfg.vmSetAddressLayoutRequest, cfg.vmSetAddressLayoutReply),
  VM_SET_STATUS: call(life.vmSetStatusRequest, life.vmSetStatusReply),
  VM_EXIT: call(life.vmExitRequest, life.vmExitReply),
  // §2.2 notifications
  MEM_SHARED: notification(memSharedNotification),
  MEM_RELEASED: notification(memReleasedNotification),
  MEM_ACCEPTED: notification(memAcceptedNotification),
  MEM_RECALL: notification(memRecallNotification),
  VM_EXITED: notification(vmExitedNotification),
  VM_SHUTDOWN: notification(vmShutdownNotification),
  VM_STATUS: notification(vmStatusNotification),
} as const satisfies Partial<Record<MessageName, AnyCodecs>>;

export type CodecName = keyof typeof RM_CODECS;
export type CallName = { [N in CodecName]: (typeof RM_CODECS)[N] extends CallCodecs<unknown, unknown> ? N : never }[CodecName];
export type NotificationName = Exclude<CodecName, CallName>;
export type RequestOf<N extends CallName> = (typeof RM_CODECS)[N] extends CallCodecs<infer Req, unknown> ? Req : never;
export type ReplyOf<N extends CallName> = (typeof RM_CODECS)[N] extends CallCodecs<unknown, infer Rep> ? Rep : never;
export type NotificationOf<N extends NotificationName> = (typeof RM_CODECS)[N] extends NotificationCodecs<infer T> ? T : never;

export const CODEC_NAMES = Object.keys(RM_CODECS) as readonly CodecName[];

/** The codecs for a wire message ID, with its catalogue name; undefined when none exist (⇒ UNIMPLEMENTED). */
export function codecsForId(msgId: number): { readonly name: CodecName; readonly codecs: (typeof RM_CODECS)[CodecName] } | undefined {
  const name = messageName(msgId);
  if (name === undefined || !(name in RM_CODECS)) return undefined;
  return { name: name as CodecName, codecs: RM_CODECS[name as CodecName] };
}

export const codecMessageId = (name: CodecName): number => MESSAGE_IDS[name].id;

export type CallReply<Rep> =
  | { readonly rmError: 'OK'; readonly value: Rep }
  | { readonly rmError: Exclude<RmErrorName, 'OK'> | undefined; readonly errorCode: number; readonly data: Uint8Array };

/**
 * A whole reply payload of call `name`: the §1.4 error word, then — only when it is OK — the data
 * decoded by the call's reply codec. A non-OK reply keeps its raw data (Linux discards it).
 */
export function decodeCallReply<N extends CallName>(name: N, payload: Uint8Array): Decoded<CallReply<ReplyOf<N>>> {
  const frame = decodeReply(payload);
  if (!frame.ok) return frame;
  const { errorCode, rmError, data } = frame.value;
  if (rmError !== 'OK') return ok({ rmError, errorCode, data });
  const codec = RM_CODECS[name].reply as Codec<ReplyOf<N>>;
  const value = codec.decode(data);
  return value.ok ? ok({ rmError: 'OK', value: value.value }) : err(value.error);
}
