/**
 * The Linux errno values pKVM hypercalls return (stage2-models.md §A5), one table.
 * Grants and address-space management reuse the same family, as the hypervisor's own calls do.
 */

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ENXIO: 6,
  E2BIG: 7,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ERANGE: 34,
  EHWPOISON: 133,
} as const;

export type ErrnoName = keyof typeof ERRNO;

/** A refused pKVM-family call: the errno and the rule (named after the broken condition) that fired. */
export interface ErrnoError {
  readonly family: 'errno';
  readonly errno: ErrnoName;
  readonly rule: string;
  readonly message: string;
}

export const errnoError = (errno: ErrnoName, rule: string, message: string): ErrnoError => ({
  family: 'errno',
  errno,
  rule,
  message,
});
