/**
 * VM status values and the RM's allowed state transitions (gunyah-rm.md §4.3, RM `vm_mgnt.h`,
 * `vm_mgnt_state_change_valid`). The calls of §4.2 move VMs only along these edges.
 *
 *   ALLOCATE → LOAD ─CONFIG_IMAGE→ INIT (or AUTH ─AUTH_IMAGE→ INIT) ─VM_INIT→ READY ─START→ RUNNING
 *   RUNNING ─STOP(force)/EXIT→ EXITED ─RESET→ RESETTING → RESET ─DEALLOCATE→ (gone)
 *   READY and INIT_FAILED may be reset directly; failures on the way land in INIT_FAILED.
 */
import { VM_STATUS } from '@hypmesh/rm-wire';

/** Status numbers live with the wire codec (rm-wire VM_STATUS, §4.3). */
export { VM_STATUS };
export type VmStatus = keyof typeof VM_STATUS;

/** Target ← the states it may be entered from (§4.3). */
export const VM_STATUS_SOURCES: Readonly<Record<VmStatus, readonly VmStatus[]>> = {
  NONE: ['RESET'],
  LOAD: ['NONE'],
  AUTH: ['LOAD', 'RESET'],
  INIT: ['LOAD', 'AUTH', 'RESET'],
  READY: ['INIT'],
  RUNNING: ['READY', 'PAUSED'],
  PAUSED: ['RUNNING'],
  INIT_FAILED: ['INIT', 'READY', 'LOAD', 'AUTH', 'RESET'],
  EXITED: ['RUNNING', 'PAUSED'],
  RESETTING: ['EXITED', 'READY', 'INIT_FAILED'],
  RESET: ['RESETTING'],
};

export const canEnter = (from: VmStatus, to: VmStatus): boolean => VM_STATUS_SOURCES[to].includes(from);
