/**
 * VM notifications, RM → client, gunyah-rm.md §2.2:
 * VM_STATUS (8 B): vmid u16, pad u16, vm_status u8, os_status u8, app_status u16.
 * VM_EXITED: vmid u16, exit_type u16, exit_reason_size u32, then exactly that many reason bytes.
 * VM_SHUTDOWN (4 B): stop_reason u32, to the VM being stopped.
 */
import { layout, pad, sized, u16, u32, u8, type Infer } from '../layout.js';

export const vmStatusNotification = layout('VM_STATUS notification', [
  u16('vmid'),
  pad(2),
  u8('vmStatus'),
  u8('osStatus'),
  u16('appStatus'),
]);
export type VmStatusNotification = Infer<typeof vmStatusNotification>;

export const vmExitedNotification = layout('VM_EXITED notification', [u16('vmid'), u16('exitType'), sized('reason')]);
export type VmExitedNotification = Infer<typeof vmExitedNotification>;

export const vmShutdownNotification = layout('VM_SHUTDOWN notification', [u32('stopReason')]);
export type VmShutdownNotification = Infer<typeof vmShutdownNotification>;
