/**
 * VM status values and the RM's allowed state transitions (gunyah-rm.md §4.3, RM `vm_mgnt.h`,
 * `vm_mgnt_state_change_valid`). The calls of §4.2 move VMs only along these edges.
 *
 *   ALLOCATE → LOAD ─CONFIG_IMAGE→ INIT (or AUTH ─AUTH_IMAGE→ INIT) ─VM_INIT→ READY ─START→ RUNNING
 *   RUNNING ─STOP(force)/EXIT→ EXITED ─RESET→ RESETTING → RESET ─DEALLOCATE→ (gone)
 *   READY and INIT_FAILED may be reset directly; failures on the way land in INIT_FAILED.
 */

/** Status numbers, shared by RM and Linux (`gunyah_rm_vm_status`); 7 is reserved. */
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

/** OS status values a guest reports with VM_SET_STATUS (§4.3). */
export const OS_STATUS = { NONE: 0, EARLY_BOOT: 1, BOOT: 2, INIT: 3, RUN: 4, SHUTDOWN: 5, HALTED: 6, CRASHED: 7 } as const;

/** Exit types carried by VM_EXITED (§4.3, RM `exit_type_t`). */
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
