/**
 * RM error codes and the Linux errno each becomes, gunyah-rm.md §1.5, as one table.
 * Codes are the u32 at the head of every reply (§1.4). Linux (L23/L24 identical) maps 0x12–0x14
 * through its default branch to -EBADMSG (§8.2). UNIMPLEMENTED is also the answer to unknown IDs.
 */

/** Linux errno numbers used by the mapping (arm64/generic asm-generic/errno*.h). */
export const LINUX_ERRNO = {
  EPERM: 1,
  ENOMEM: 12,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  EBADMSG: 74,
  EOPNOTSUPP: 95,
} as const;

export type LinuxErrnoName = keyof typeof LINUX_ERRNO;

export interface RmErrorRow {
  /** The u32 on the wire. */
  readonly code: number;
  /** Linux's errno (negated by the driver); null for OK (returns 0). */
  readonly linuxErrno: LinuxErrnoName | null;
  /** Linux's own name where it differs from the RM's (`rm_types.h`). */
  readonly linuxName?: string;
  /** Defined by the RM only; Linux has no enumerator (→ -EBADMSG). */
  readonly rmOnly?: true;
}

/** §1.5, in the spec's row order. */
export const RM_ERRORS = {
  OK: { code: 0x0, linuxErrno: null },
  UNIMPLEMENTED: { code: 0xffff_ffff, linuxErrno: 'EOPNOTSUPP' },
  NOMEM: { code: 0x1, linuxErrno: 'ENOMEM' },
  NORESOURCE: { code: 0x2, linuxErrno: 'ENODEV' },
  DENIED: { code: 0x3, linuxErrno: 'EPERM' },
  MSG_INVALID: { code: 0x4, linuxErrno: 'EINVAL', linuxName: 'INVALID' },
  BUSY: { code: 0x5, linuxErrno: 'EBUSY' },
  ARGUMENT_INVALID: { code: 0x6, linuxErrno: 'EINVAL' },
  HANDLE_INVALID: { code: 0x7, linuxErrno: 'EINVAL' },
  VALIDATE_FAILED: { code: 0x8, linuxErrno: 'EINVAL' },
  MAP_FAILED: { code: 0x9, linuxErrno: 'EINVAL' },
  MEM_INVALID: { code: 0xa, linuxErrno: 'EINVAL' },
  MEM_INUSE: { code: 0xb, linuxErrno: 'EINVAL' },
  MEM_RELEASED: { code: 0xc, linuxErrno: 'EINVAL' },
  VMID_INVALID: { code: 0xd, linuxErrno: 'EINVAL' },
  LOOKUP_FAILED: { code: 0xe, linuxErrno: 'EINVAL' },
  IRQ_INVALID: { code: 0xf, linuxErrno: 'EINVAL' },
  IRQ_INUSE: { code: 0x10, linuxErrno: 'EINVAL' },
  IRQ_RELEASED: { code: 0x11, linuxErrno: 'EINVAL' },
  IN_USE: { code: 0x12, linuxErrno: 'EBADMSG', rmOnly: true },
  IRQ_NOT_MAPPED: { code: 0x13, linuxErrno: 'EBADMSG', rmOnly: true },
  VM_STATE: { code: 0x14, linuxErrno: 'EBADMSG', rmOnly: true },
} as const satisfies Record<string, RmErrorRow>;

export type RmErrorName = keyof typeof RM_ERRORS;

export const RM_ERROR_NAMES = Object.keys(RM_ERRORS) as readonly RmErrorName[];

const byCode = new Map<number, RmErrorName>(RM_ERROR_NAMES.map((name) => [RM_ERRORS[name].code, name]));

/** The name of a wire code; undefined for a code §1.5 does not define. */
export const rmErrorName = (code: number): RmErrorName | undefined => byCode.get(code);

export const rmErrorCode = (name: RmErrorName): number => RM_ERRORS[name].code;

/** What the Linux driver returns for this code: 0, or a negative errno (-EBADMSG for codes it lacks). */
export function linuxErrnoOf(code: number): number {
  const name = rmErrorName(code);
  if (name === undefined) return -LINUX_ERRNO.EBADMSG;
  const errno: LinuxErrnoName | null = RM_ERRORS[name].linuxErrno;
  return errno === null ? 0 : -LINUX_ERRNO[errno];
}
