/**
 * VM configuration calls, gunyah-rm.md §4.2: CONFIG_IMAGE, AUTH_IMAGE, SET_FIRMWARE_MEM,
 * SET_TIME_BASE, and the L24-only SET_BOOT_CONTEXT (catalogue name VM_SET_CONTEXT, §2.1),
 * SET_DEMAND_PAGING and SET_ADDRESS_LAYOUT. All replies are standard; on error SET_TIME_BASE's reply
 * also carries a 4-byte hypervisor error, which the reply framing (reply.ts) hands over as raw data.
 */
import { counted, layout, pad, u16, u32, u64, u8, type Infer } from '../layout.js';
import { emptyPayload } from './entries.js';

/** VM_CONFIG_IMAGE (40 B); offsets are relative to the parcel's start. */
export const vmConfigImageRequest = layout('VM_CONFIG_IMAGE request', [
  u16('vmid'),
  u16('authMech'),
  u32('memHandle'),
  u64('imageOffset'),
  u64('imageSize'),
  u64('dtbOffset'),
  u64('dtbSize'),
]);
export type VmConfigImageRequest = Infer<typeof vmConfigImageRequest>;
/** auth_mech (RM names; Linux calls 1 QCOM_PIL_ELF and 2 QCOM_ANDROID_PVM, §8.5). */
export const AUTH_MECH = { NONE: 0, PLATFORM: 1, ANDROID: 2 } as const;

/** VM_AUTH_IMAGE: vmid u16, n u16, n × {type u32, value u32}. */
export const authParamEntry = layout('auth param', [u32('type'), u32('value')]);
export const vmAuthImageRequest = layout('VM_AUTH_IMAGE request', [u16('vmid'), counted('params', 'u16', authParamEntry)]);
export type VmAuthImageRequest = Infer<typeof vmAuthImageRequest>;

/** VM_SET_FIRMWARE_MEM (24 B): vmid u16, reserved u16 (must be 0, kept as a field), fw handle u32, offset u64, size u64. */
export const vmSetFirmwareMemRequest = layout('VM_SET_FIRMWARE_MEM request', [
  u16('vmid'),
  u16('reserved'),
  u32('memHandle'),
  u64('offset'),
  u64('size'),
]);
export type VmSetFirmwareMemRequest = Infer<typeof vmSetFirmwareMemRequest>;

/** VM_SET_TIME_BASE (20 B): vmid u16 (0 = caller), rsvd u16, time_base u64, sys_timer_ref u64. */
export const vmSetTimeBaseRequest = layout('VM_SET_TIME_BASE request', [u16('vmid'), pad(2), u64('timeBase'), u64('sysTimerRef')]);
export type VmSetTimeBaseRequest = Infer<typeof vmSetTimeBaseRequest>;

/** VM_SET_BOOT_CONTEXT (16 B, L24): vmid u16, reg_set u8, reg_index u8, pad u32, value u64. */
export const vmSetBootContextRequest = layout('VM_SET_BOOT_CONTEXT request', [
  u16('vmid'),
  u8('regSet'),
  u8('regIndex'),
  pad(4),
  u64('value'),
]);
export type VmSetBootContextRequest = Infer<typeof vmSetBootContextRequest>;
/** reg_set values and index limits, validated by Linux (§4.2, §5.3): X 0–31, PC 0, SP 0–2. */
export const BOOT_CONTEXT_REG_SET = { X: 0, PC: 1, SP: 2 } as const;

/** VM_SET_DEMAND_PAGING (L24): vmid u16, pad u16, count u32, count × {base u64, size u64}. */
export const demandPagingRange = layout('demand-paging range', [u64('base'), u64('size')]);
export const vmSetDemandPagingRequest = layout('VM_SET_DEMAND_PAGING request', [
  u16('vmid'),
  pad(2),
  counted('ranges', 'u32', demandPagingRange),
]);
export type VmSetDemandPagingRequest = Infer<typeof vmSetDemandPagingRequest>;

/** VM_SET_ADDRESS_LAYOUT (24 B, L24): vmid u16, pad u16, range_id u32, base u64, size u64. */
export const vmSetAddressLayoutRequest = layout('VM_SET_ADDRESS_LAYOUT request', [
  u16('vmid'),
  pad(2),
  u32('rangeId'),
  u64('base'),
  u64('size'),
]);
export type VmSetAddressLayoutRequest = Infer<typeof vmSetAddressLayoutRequest>;
export const ADDRESS_RANGE_ID = { IMAGE: 0, FIRMWARE: 1 } as const;

export const vmConfigImageReply = emptyPayload('VM_CONFIG_IMAGE reply');
export const vmAuthImageReply = emptyPayload('VM_AUTH_IMAGE reply');
export const vmSetFirmwareMemReply = emptyPayload('VM_SET_FIRMWARE_MEM reply');
export const vmSetTimeBaseReply = emptyPayload('VM_SET_TIME_BASE reply');
export const vmSetBootContextReply = emptyPayload('VM_SET_BOOT_CONTEXT reply');
export const vmSetDemandPagingReply = emptyPayload('VM_SET_DEMAND_PAGING reply');
export const vmSetAddressLayoutReply = emptyPayload('VM_SET_ADDRESS_LAYOUT reply');
