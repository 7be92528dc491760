/**
 * VM_GET_HYP_RESOURCES, gunyah-rm.md §4.2: request vmid req; reply n u32 then n 44-byte entries
 * (Linux validates size == 4 + 44n, which the counted layout enforces: short ⇒ truncated, long ⇒
 * trailing bytes).
 */
import { counted, layout, pad, u16, u32, u64, u8, type Infer } from '../layout.js';
import { vmidReq } from './entries.js';

/** Hyp resource entry (44 B). */
export const hypResourceEntry = layout('hyp resource entry', [
  u8('type'),
  pad(1),
  u16('partnerVmid'),
  u32('resourceHandle'),
  u32('label'),
  u64('capid'),
  u32('virqHandle'),
  u32('virq'),
  u64('base'),
  u64('size'),
]);
export type HypResourceEntry = Infer<typeof hypResourceEntry>;

export const vmGetHypResourcesRequest = vmidReq('VM_GET_HYP_RESOURCES request');
export const vmGetHypResourcesReply = layout('VM_GET_HYP_RESOURCES reply', [counted('resources', 'u32', hypResourceEntry)]);
export type VmGetHypResourcesReply = Infer<typeof vmGetHypResourcesReply>;

/** Resource types (RM 0–8; L24 adds 9 MEM_EXTENT and 10 ADDR_SPACE, not in the open RM enum). */
export const HYP_RESOURCE_TYPE = {
  DOORBELL_TX: 0,
  DOORBELL_RX: 1,
  MSGQ_TX: 2,
  MSGQ_RX: 3,
  VCPU: 4,
  VPM_GROUP: 5,
  VIRTIO_MMIO: 6,
  VRTC: 7,
  WATCHDOG: 8,
  MEM_EXTENT: 9,
  ADDR_SPACE: 10,
} as const;
