/**
 * The VM manager's errors: Linux errnos as the Gunyah VM-manager ioctls return them (gunyah-rm.md
 * §5.2–§5.4), one table. An RM refusal comes back as the errno Linux maps it to (§1.5) with the RM
 * code kept as the cause; a core refusal keeps its errno or RMI status.
 */

/** errno numbers (positive; the ioctl returns -errno). */
export const VMM_ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EBADMSG: 74,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;
export type VmmErrnoName = keyof typeof VMM_ERRNO;

export interface VmmError {
  readonly family: 'vmm';
  readonly errno: VmmErrnoName;
  /** The rule that fired, named after the broken condition (`guest_overlap`, `start_vm_init`). */
  readonly rule: string;
  readonly message: string;
  /** The RM error or core code behind it, by name ("MEM_INUSE", "RMI_ERROR_RTT"), if any. */
  readonly cause?: string;
}

export type VmmResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: VmmError };

export const vmmOk = <T>(value: T): VmmResult<T> => ({ ok: true, value });
export const vmmFail = <T = never>(errno: VmmErrnoName, rule: string, message: string, cause?: string): VmmResult<T> => ({
  ok: false,
  error: cause === undefined ? { family: 'vmm', errno, rule, message } : { family: 'vmm', errno, rule, message, cause },
});
