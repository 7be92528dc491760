/**
 * Typed face ↔ wire payload values (proto/hypmesh/rm/v1 ↔ @hypmesh/rm-wire), one row per RM call.
 * Pure. A typed request becomes exactly the value its wire payload decodes to, so both faces hand
 * the RM the same thing (handlers.ts then checks it against its own wire form, see there).
 *
 * Shape checks (INVALID_ARGUMENT naming the field, @hypmesh/rpc) are only what the wire cannot
 * carry: a number wider than its u8/u16/u32 field, an UNSPECIFIED or unknown enum, a list longer
 * than its u16/u32 count. Whether a value is allowed (valid rights, a VM in the right state) is
 * the RM's rule and comes back as an RM error.
 *
 * Enums: the proto value is the wire value + 1 (types.proto); flags are bools, bit by bit as the
 * wire's flag tables (rm-wire SHARE_FLAGS, ACCEPT_FLAGS, ...).
 */

import type * as pb from '@hypmesh/proto/rm';
import {
  AddressRangeId,
  AuthMech,
  BootRegSet,
  ExitCode,
  MemAttr,
  MemNotifyKind,
  MemType,
  OsStatus,
  StopReason,
  TransType,
  type RmServiceService,
} from '@hypmesh/proto/rm';
import { invalidArgument } from '@hypmesh/rpc';
import {
  ACCEPT_FLAGS,
  APPEND_FLAGS,
  NOTIFY_FLAGS,
  RELEASE_FLAGS,
  SHARE_FLAGS,
  STOP_FLAGS,
  type AclEntry,
  type AttrEntry,
  type CallName,
  type NotificationName,
  type NotificationOf,
  type ReplyOf,
  type RequestOf,
  type SglEntry,
} from '@hypmesh/rm-wire';
import type { RmNotification } from '@hypmesh/rm';

// ---- field shapes ----------------------------------------------------------------------------

const U64_MAX = (1n << 64n) - 1n;

function uint(value: number, max: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw invalidArgument(field, `${value} does not fit its wire field (0..0x${max.toString(16)})`);
  return value;
}

export const u8 = (v: number, field: string): number => uint(v, 0xff, field);
export const u16 = (v: number, field: string): number => uint(v, 0xffff, field);
export const u32 = (v: number, field: string): number => uint(v, 0xffff_ffff, field);

export function u64(v: bigint, field: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw invalidArgument(field, `${String(v)} is not a uint64`);
  return v;
}

/** A proto enum value → its wire value (proto = wire + 1). UNSPECIFIED and unknown numbers: INVALID_ARGUMENT. */
export function enumToWire(e: Record<number, string>, value: number, field: string): number {
  if (value === 0) throw invalidArgument(field, 'required (UNSPECIFIED)');
  if (!Number.isInteger(value) || value < 0 || typeof e[value] !== 'string' || e[value] === 'UNRECOGNIZED')
    throw invalidArgument(field, `unknown enum value ${value}`);
  return value - 1;
}

/** A wire value → its proto enum number (wire + 1); a value the enum lacks stays an unnamed number. */
export const enumFromWire = (wire: number): number => wire + 1;

function listOf<T, U>(list: readonly T[], countMax: number, field: string, f: (e: T, at: string) => U): U[] {
  if (list.length > countMax) throw invalidArgument(field, `${list.length} entries do not fit the wire count (at most ${countMax})`);
  return list.map((e, i) => f(e, `${field}[${i}]`));
}

const flag = (on: boolean, bit: number): number => (on ? bit : 0);

const acl = (l: readonly pb.AclEntry[], field = 'acl'): AclEntry[] =>
  listOf(l, 0xffff, field, (e, at) => ({ vmid: u16(e.vmid, `${at}.vmid`), rights: u8(e.rights, `${at}.rights`) }));
const sgl = (l: readonly pb.SglEntry[], field = 'sgl'): SglEntry[] =>
  listOf(l, 0xffff, field, (e, at) => ({ base: u64(e.base, `${at}.base`), size: u64(e.size, `${at}.size`) }));
const attrs = (l: readonly pb.AttrEntry[], field = 'attrs'): AttrEntry[] =>
  listOf(l, 0xffff, field, (e, at) => ({ attr: enumToWire(MemAttr, e.attr, `${at}.attr`), vmid: u16(e.vmid, `${at}.vmid`) }));

const aclOut = (l: readonly AclEntry[]): pb.AclEntry[] => l.map((e) => ({ vmid: e.vmid, rights: e.rights }));
const sglOut = (l: readonly SglEntry[]): pb.SglEntry[] => l.map((e) => ({ base: e.base, size: e.size }));
const attrsOut = (l: readonly AttrEntry[]): pb.AttrEntry[] => l.map((e) => ({ attr: enumFromWire(e.attr), vmid: e.vmid }));

// ---- the call table --------------------------------------------------------------------------

type Def = typeof RmServiceService;
/** The typed RPCs: every method but the streams and GetStats. */
export type CallRpc = Exclude<keyof Def, 'subscribe' | 'exchange' | 'getStats'>;
export type ReqOf<K extends keyof Def> = ReturnType<Def[K]['requestDeserialize']>;
export type ResOf<K extends keyof Def> = Parameters<Def[K]['responseSerialize']>[0];

/** RM call (wire name, rm-wire RM_CODECS) → its typed RPC (RmServiceService key). */
export const CALL_RPCS = {
  MEM_SHARE: 'memShare',
  MEM_LEND: 'memLend',
  MEM_DONATE: 'memDonate',
  MEM_APPEND: 'memAppend',
  MEM_ACCEPT: 'memAccept',
  MEM_RELEASE: 'memRelease',
  MEM_RECLAIM: 'memReclaim',
  MEM_NOTIFY: 'memNotify',
  MEM_QCOM_LOOKUP_SGL: 'memQcomLookupSgl',
  VM_ALLOCATE: 'vmAllocate',
  VM_DEALLOCATE: 'vmDeallocate',
  VM_START: 'vmStart',
  VM_STOP: 'vmStop',
  VM_RESET: 'vmReset',
  VM_CONFIG_IMAGE: 'vmConfigImage',
  VM_AUTH_IMAGE: 'vmAuthImage',
  VM_INIT: 'vmInit',
  VM_GET_STATE: 'vmGetState',
  VM_GET_HYP_RESOURCES: 'vmGetHypResources',
  VM_GET_VMID: 'vmGetVmid',
  VM_HOST_GET_TYPE: 'vmHostGetType',
  VM_SET_TIME_BASE: 'vmSetTimeBase',
  VM_SET_CONTEXT: 'vmSetBootContext',
  VM_SET_FIRMWARE_MEM: 'vmSetFirmwareMem',
  VM_SET_DEMAND_PAGING: 'vmSetDemandPaging',
  VM_SET_ADDRESS_LAYOUT: 'vmSetAddressLayout',
  VM_SET_STATUS: 'vmSetStatus',
  VM_EXIT: 'vmExit',
} as const satisfies Record<CallName, CallRpc>;

export type RpcOf<N extends CallName> = (typeof CALL_RPCS)[N];

export interface TypedCodec<N extends CallName, K extends CallRpc> {
  /** The typed request as the wire request value; throws INVALID_ARGUMENT naming a field. */
  toWire(req: ReqOf<K>): RequestOf<N>;
  /** The wire reply value as the typed response (the request is at hand for VM_ALLOCATE). */
  fromWire(reply: ReplyOf<N>, req: ReqOf<K>): ResOf<K>;
}

const none = (): Record<string, never> => ({});
const vmidOnly = (r: { vmid: number }) => ({ vmid: u16(r.vmid, 'vmid') });

/** Flat MEM_SHARE / MEM_LEND / MEM_DONATE requests share one shape (§3.2). */
const parcelCreate = (r: pb.MemShareRequest) => ({
  memType: enumToWire(MemType, r.memType, 'mem_type'),
  flags: flag(r.sanitize, SHARE_FLAGS.SANITIZE) | flag(r.append, SHARE_FLAGS.APPEND),
  label: u32(r.label, 'label'),
  acl: acl(r.acl),
  sgl: sgl(r.sgl),
  attrs: attrs(r.attrs),
});

const NOTIFY_KIND_FLAGS: ReadonlyMap<number, number> = new Map([
  [MemNotifyKind.MEM_NOTIFY_KIND_SHARED, NOTIFY_FLAGS.SHARED],
  [MemNotifyKind.MEM_NOTIFY_KIND_RELEASED, NOTIFY_FLAGS.RELEASED],
  [MemNotifyKind.MEM_NOTIFY_KIND_ACCEPTED, NOTIFY_FLAGS.ACCEPTED],
  [MemNotifyKind.MEM_NOTIFY_KIND_RECALL, NOTIFY_FLAGS.RECALL],
]);

function notifyFlags(kind: number): number {
  const f = NOTIFY_KIND_FLAGS.get(kind);
  if (f === undefined) throw invalidArgument('kind', kind === 0 ? 'required (UNSPECIFIED)' : `unknown enum value ${kind}`);
  return f;
}

export const TYPED_CODECS: { readonly [N in CallName]: TypedCodec<N, RpcOf<N>> } = {
  // §3 memory parcels
  MEM_SHARE: { toWire: parcelCreate, fromWire: (r) => ({ handle: r.handle }) },
  MEM_LEND: { toWire: parcelCreate, fromWire: (r) => ({ handle: r.handle }) },
  MEM_DONATE: { toWire: parcelCreate, fromWire: (r) => ({ handle: r.handle }) },
  MEM_APPEND: {
    toWire: (r) => ({ handle: u32(r.handle, 'handle'), flags: flag(r.done, APPEND_FLAGS.DONE), sgl: sgl(r.sgl) }),
    fromWire: none,
  },
  MEM_ACCEPT: {
    toWire: (r) => ({
      handle: u32(r.handle, 'handle'),
      memType: enumToWire(MemType, r.memType, 'mem_type'),
      transType: enumToWire(TransType, r.transType, 'trans_type'),
      flags:
        flag(r.validateSanitized, ACCEPT_FLAGS.VALIDATE_SANITIZED) |
        flag(r.validateAclAttr, ACCEPT_FLAGS.VALIDATE_ACL_ATTR) |
        flag(r.validateLabel, ACCEPT_FLAGS.VALIDATE_LABEL) |
        flag(r.mapOther, ACCEPT_FLAGS.MAP_OTHER) |
        flag(r.mapContiguous, ACCEPT_FLAGS.MAP_CONTIGUOUS) |
        flag(r.sanitize, ACCEPT_FLAGS.SANITIZE) |
        flag(r.done, ACCEPT_FLAGS.DONE),
      label: u32(r.label, 'label'),
      acl: acl(r.acl),
      sgl: sgl(r.sgl),
      mapVmid: u16(r.mapVmid, 'map_vmid'),
      attrs: attrs(r.attrs),
    }),
    fromWire: (r) =>
      r.kind === 'standard'
        ? { ipasChosenByRm: false, sgl: [], incomplete: false }
        : { ipasChosenByRm: true, sgl: sglOut(r.sgl), incomplete: r.incomplete },
  },
  MEM_RELEASE: { toWire: (r) => ({ handle: u32(r.handle, 'handle'), flags: flag(r.sanitize, RELEASE_FLAGS.SANITIZE) }), fromWire: none },
  MEM_RECLAIM: { toWire: (r) => ({ handle: u32(r.handle, 'handle'), flags: flag(r.sanitize, RELEASE_FLAGS.SANITIZE) }), fromWire: none },
  MEM_NOTIFY: {
    toWire: (r) => ({
      handle: u32(r.handle, 'handle'),
      flags: notifyFlags(r.kind),
      memInfoTag: u32(r.memInfoTag, 'mem_info_tag'),
      vmids: listOf(r.vmids, 0xffff, 'vmids', (v, at) => ({ vmid: u16(v, at) })),
    }),
    fromWire: none,
  },
  MEM_QCOM_LOOKUP_SGL: {
    toWire: (r) => ({
      memType: enumToWire(MemType, r.memType, 'mem_type'),
      label: u32(r.label, 'label'),
      acl: acl(r.acl),
      sgl: sgl(r.sgl),
      attrs: attrs(r.attrs),
    }),
    fromWire: (r) => ({ handle: r.handle }),
  },

  // §4.2 VM management
  VM_ALLOCATE: { toWire: vmidOnly, fromWire: (r, req) => ({ vmid: r.vmid ?? req.vmid }) },
  VM_DEALLOCATE: { toWire: vmidOnly, fromWire: none },
  VM_START: { toWire: vmidOnly, fromWire: none },
  VM_STOP: {
    toWire: (r) => ({
      vmid: u16(r.vmid, 'vmid'),
      flags: flag(r.force, STOP_FLAGS.FORCE),
      stopReason: enumToWire(StopReason, r.stopReason, 'stop_reason'),
    }),
    fromWire: none,
  },
  VM_RESET: { toWire: vmidOnly, fromWire: none },
  VM_CONFIG_IMAGE: {
    toWire: (r) => ({
      vmid: u16(r.vmid, 'vmid'),
      authMech: enumToWire(AuthMech, r.authMech, 'auth_mech'),
      memHandle: u32(r.memHandle, 'mem_handle'),
      imageOffset: u64(r.imageOffset, 'image_offset'),
      imageSize: u64(r.imageSize, 'image_size'),
      dtbOffset: u64(r.dtbOffset, 'dtb_offset'),
      dtbSize: u64(r.dtbSize, 'dtb_size'),
    }),
    fromWire: none,
  },
  VM_AUTH_IMAGE: {
    toWire: (r) => ({
      vmid: u16(r.vmid, 'vmid'),
      params: listOf(r.params, 0xffff, 'params', (p, at) => ({ type: u32(p.type, `${at}.type`), value: u32(p.value, `${at}.value`) })),
    }),
    fromWire: none,
  },
  VM_INIT: { toWire: (r) => ({ vmid: u16(r.vmid, 'vmid'), reserved: 0 }), fromWire: none },
  VM_GET_STATE: {
    toWire: vmidOnly,
    fromWire: (r) => ({ vmStatus: enumFromWire(r.vmStatus), osStatus: enumFromWire(r.osStatus), appStatus: r.appStatus }),
  },
  VM_GET_HYP_RESOURCES: {
    toWire: vmidOnly,
    fromWire: (r) => ({
      resources: r.resources.map((e) => ({
        type: enumFromWire(e.type),
        partnerVmid: e.partnerVmid,
        resourceHandle: e.resourceHandle,
        label: e.label,
        capid: e.capid,
        virqHandle: e.virqHandle,
        virq: e.virq,
        base: e.base,
        size: e.size,
      })),
    }),
  },
  VM_GET_VMID: { toWire: () => ({}), fromWire: (r) => ({ vmid: r.vmid }) },
  VM_HOST_GET_TYPE: { toWire: () => ({}), fromWire: (r) => ({ hostType: r.hostType }) },
  VM_SET_TIME_BASE: {
    toWire: (r) => ({ vmid: u16(r.vmid, 'vmid'), timeBase: u64(r.timeBase, 'time_base'), sysTimerRef: u64(r.sysTimerRef, 'sys_timer_ref') }),
    fromWire: none,
  },
  VM_SET_CONTEXT: {
    toWire: (r) => ({
      vmid: u16(r.vmid, 'vmid'),
      regSet: enumToWire(BootRegSet, r.regSet, 'reg_set'),
      regIndex: u8(r.regIndex, 'reg_index'),
      value: u64(r.value, 'value'),
    }),
    fromWire: none,
  },
  VM_SET_FIRMWARE_MEM: {
    toWire: (r) => ({ vmid: u16(r.vmid, 'vmid'), reserved: 0, memHandle: u32(r.memHandle, 'mem_handle'), offset: u64(r.offset, 'offset'), size: u64(r.size, 'size') }),
    fromWire: none,
  },
  VM_SET_DEMAND_PAGING: {
    toWire: (r) => ({
      vmid: u16(r.vmid, 'vmid'),
      ranges: listOf(r.ranges, 0xffff_ffff, 'ranges', (e, at) => ({ base: u64(e.base, `${at}.base`), size: u64(e.size, `${at}.size`) })),
    }),
    fromWire: none,
  },
  VM_SET_ADDRESS_LAYOUT: {
    toWire: (r) => ({
      vmid: u16(r.vmid, 'vmid'),
      rangeId: enumToWire(AddressRangeId, r.rangeId, 'range_id'),
      base: u64(r.base, 'base'),
      size: u64(r.size, 'size'),
    }),
    fromWire: none,
  },
  VM_SET_STATUS: {
    // UNSPECIFIED is "no change", wire 0 (types.proto OsStatus).
    toWire: (r) => ({ osStatus: r.osStatus === OsStatus.OS_STATUS_UNSPECIFIED ? 0 : enumToWire(OsStatus, r.osStatus, 'os_status'), appStatus: u16(r.appStatus, 'app_status') }),
    fromWire: none,
  },
  VM_EXIT: {
    toWire: (r) => ({ exitFlags: u16(r.exitFlags, 'exit_flags'), exitCode: enumToWire(ExitCode, r.exitCode, 'exit_code'), reserved: 0 }),
    fromWire: none,
  },
};

// ---- notifications (§2.2) --------------------------------------------------------------------

type Payload = Omit<pb.SubscribeResponse, 'messageId' | 'seq' | 'dropped'>;

const NOTIFICATION_PAYLOADS: { readonly [N in NotificationName]: (n: NotificationOf<N>) => Payload } = {
  MEM_SHARED: (n) => ({
    memShared: {
      handle: n.handle,
      memType: enumFromWire(n.memType),
      transType: enumFromWire(n.transType),
      sanitized: (n.flags & 0x1) !== 0,
      ownerVmid: n.ownerVmid,
      label: n.label,
      memInfoTag: n.memInfoTag,
      acl: aclOut(n.acl),
      regionSizes: n.regions.map((r) => r.size),
      attrs: attrsOut(n.attrs),
    },
  }),
  MEM_RELEASED: (n) => ({ memReleased: { handle: n.handle, vmid: n.vmid, memInfoTag: n.memInfoTag } }),
  MEM_ACCEPTED: (n) => ({ memAccepted: { handle: n.handle, vmid: n.vmid, memInfoTag: n.memInfoTag } }),
  MEM_RECALL: (n) => ({ memRecall: { handle: n.handle, memInfoTag: n.memInfoTag } }),
  VM_EXITED: (n) => ({ vmExited: { vmid: n.vmid, exitType: enumFromWire(n.exitType), reason: Buffer.from(n.reason) } }),
  VM_SHUTDOWN: (n) => ({ vmShutdown: { stopReason: enumFromWire(n.stopReason) } }),
  VM_STATUS: (n) => ({
    vmStatus: { vmid: n.vmid, vmStatus: enumFromWire(n.vmStatus), osStatus: enumFromWire(n.osStatus), appStatus: n.appStatus },
  }),
};

/** A queued notification as Subscribe delivers it. */
export function toSubscribeResponse(n: RmNotification, messageId: number, seq: number, dropped: number): pb.SubscribeResponse {
  const payload = (NOTIFICATION_PAYLOADS[n.name] as (p: unknown) => Payload)(n.payload);
  return { messageId, seq, dropped: BigInt(dropped), ...payload };
}
