/**
 * VM lifecycle calls, gunyah-rm.md §4.2, and the value tables of §4.3.
 * Fixed-size requests must be exactly their size (§4.2 "vmid req" = 4 bytes, exact length required;
 * VM_ALLOCATE "length ≠ 4 [MSG_INVALID]"). Reserved fields that the spec says must be 0 (VM_INIT's,
 * VM_EXIT's) are decoded as fields, so the RM can refuse them; other reserved bytes are ignored.
 */
import { err, ok } from '../result.js';
import { Reader, Writer } from '../cursor.js';
import { layout, pad, u16, u32, u8, type Codec, type Infer } from '../layout.js';
import { emptyPayload, vmidReq } from './entries.js';

/** VM_ALLOCATE: vmid req (0 ⇒ RM picks a dynamic VMID). */
export const vmAllocateRequest = vmidReq('VM_ALLOCATE request');

/** VM_ALLOCATE reply: u32 vmid only when the request's vmid was 0, else no data (Linux reads the low 16 bits). */
export interface VmAllocateReply {
  readonly vmid: number | null;
}

const ALLOCATE_REPLY = 'VM_ALLOCATE reply';
export const vmAllocateReply: Codec<VmAllocateReply> = {
  label: ALLOCATE_REPLY,
  encode(v) {
    const w = new Writer(ALLOCATE_REPLY);
    if (v.vmid !== null) w.u32(v.vmid, 'vmid');
    return w.finish();
  },
  decode(bytes) {
    if (bytes.length === 0) return ok({ vmid: null });
    const r = new Reader(bytes, ALLOCATE_REPLY);
    const d = r.finish({ vmid: r.u32('vmid') });
    return d.ok ? ok(d.value) : err(d.error);
  },
};

export const vmDeallocateRequest = vmidReq('VM_DEALLOCATE request');
/** VM_INIT: vmid req whose reserved half-word must be 0 (§4.2), so it is a field here. */
export const vmInitRequest = layout('VM_INIT request', [u16('vmid'), u16('reserved')]);
export type VmInitRequest = Infer<typeof vmInitRequest>;
export const vmStartRequest = vmidReq('VM_START request');
export const vmResetRequest = vmidReq('VM_RESET request');

/** VM_STOP (8 B): vmid u16, flags u8 (bit0 FORCE), reserved u8, stop_reason u32. */
export const vmStopRequest = layout('VM_STOP request', [u16('vmid'), u8('flags'), pad(1), u32('stopReason')]);
export type VmStopRequest = Infer<typeof vmStopRequest>;
export const STOP_FLAGS = { FORCE: 0x1 } as const;
/** Stop reasons (QCV); Linux always sends FORCE with FORCE_STOP. */
export const STOP_REASON = { SHUTDOWN: 0, RESTART: 1, CRASH: 2, FORCE_STOP: 3 } as const;

/** VM_EXIT (guest, 4 B): exit_flags u16, exit_code u8, reserved u8 (must be 0). */
export const vmExitRequest = layout('VM_EXIT request', [u16('exitFlags'), u8('exitCode'), u8('reserved')]);
export type VmExitRequest = Infer<typeof vmExitRequest>;
/** VM_EXIT exit codes the RM accepts (§4.2; 2 "unknown" is rejected with MSG_INVALID). */
export const VM_EXIT_CODE = { NORMAL: 0, SOFTWARE_ERROR: 1, BUS_ERROR: 3, DEVICE_ERROR: 4 } as const;
/** VM_EXIT flags (RM): bit0 restart. */
export const VM_EXIT_FLAGS = { RESTART: 0x1 } as const;

/** VM_GET_STATE: vmid req (0 = self). */
export const vmGetStateRequest = vmidReq('VM_GET_STATE request');
/** VM_GET_STATE reply: u32 = vm_status + (os_status << 8) + (app_status << 16), i.e. these bytes in LE order. */
export const vmGetStateReply = layout('VM_GET_STATE reply', [u8('vmStatus'), u8('osStatus'), u16('appStatus')]);
export type VmState = Infer<typeof vmGetStateReply>;

/** VM_SET_STATUS (guest, 4 B): byte 0 ignored, os_status u8 (0 = no change), app_status u16. */
export const vmSetStatusRequest = layout('VM_SET_STATUS request', [pad(1), u8('osStatus'), u16('appStatus')]);
export type VmSetStatusRequest = Infer<typeof vmSetStatusRequest>;

/** VM_GET_VMID: empty request; reply u32 caller VMID. */
export const vmGetVmidRequest = emptyPayload('VM_GET_VMID request');
export const vmGetVmidReply = layout('VM_GET_VMID reply', [u32('vmid')]);

/** VM_HOST_GET_TYPE 0x560000A0: empty request; reply u32 host type (§2.1). */
export const vmHostGetTypeRequest = emptyPayload('VM_HOST_GET_TYPE request');
export const vmHostGetTypeReply = layout('VM_HOST_GET_TYPE reply', [u32('hostType')]);
/** The open RM's answer: 0x01000164 = AArch64, "Gunyah+RM", version 1 (§2.1). */
export const VM_HOST_TYPE = 0x0100_0164;

export const vmDeallocateReply = emptyPayload('VM_DEALLOCATE reply');
export const vmInitReply = emptyPayload('VM_INIT reply');
export const vmStartReply = emptyPayload('VM_START reply');
export const vmStopReply = emptyPayload('VM_STOP reply');
export const vmResetReply = emptyPayload('VM_RESET reply');
export const vmExitReply = emptyPayload('VM_EXIT reply');
export const vmSetStatusReply = emptyPayload('VM_SET_STATUS reply');

/** §4.3 VM status values (RM `vm_mgnt.h` = Linux `gunyah_rm_vm_status`); 7 is reserved. */
export const VM_STATUS = {
  NONE: 0,
  INIT: 1,
  READY: 2,
  RUNNING: 3,
  PAUSED: 4,
  LOAD: 5,
  AUTH: 6,
  INIT_FAILED: 8,
  EXITED: 9,
  RESETTING: 10,
  RESET: 11,
} as const;

/** §4.3 OS status values. */
export const OS_STATUS = { NONE: 0, EARLY_BOOT: 1, BOOT: 2, INIT: 3, RUN: 4, SHUTDOWN: 5, HALTED: 6, CRASHED: 7 } as const;

/** §4.3 exit types (RM `exit_type_t`), carried by VM_EXITED. */
export const EXIT_TYPE = {
  VM_EXIT: 0,
  PLATFORM_OFF: 1,
  PLATFORM_RESET: 2,
  PSCI_SYSTEM_RESET2: 3,
  WATCHDOG_BITE: 4,
  SOFTWARE_ERROR: 5,
  ASYNC_HW_ERROR: 6,
  VM_STOP_FORCED: 7,
} as const;
