/**
 * RMI return status codes (stage2-models.md §B1, RMM 1.0) and their packing into x0:
 * `status | index << 8`, 8 bits each (RMI_RETURN_STATUS / RMI_RETURN_INDEX in KVM).
 */

export const RMI_STATUS = {
  RMI_SUCCESS: 0,
  RMI_ERROR_INPUT: 1,
  RMI_ERROR_REALM: 2,
  RMI_ERROR_REC: 3,
  RMI_ERROR_RTT: 4,
} as const;

export type RmiStatusName = keyof typeof RMI_STATUS;
export type RmiErrorStatusName = Exclude<RmiStatusName, 'RMI_SUCCESS'>;

/**
 * A failed RMI command: status, index, the failure condition that fired (named as TF-RMM's CBMC
 * testbenches name them where they exist), and the output registers the command still returns on
 * this failure (RTT_DESTROY and DATA_DESTROY report `top` in x2 even on RMI_ERROR_RTT, §B6).
 */
export interface RmiError {
  readonly family: 'rmi';
  readonly status: RmiErrorStatusName;
  readonly index: number;
  readonly rule: string;
  readonly message: string;
  readonly outputs: Readonly<Record<string, number>>;
}

export const rmiError = (
  status: RmiErrorStatusName,
  index: number,
  rule: string,
  message: string,
  outputs: Record<string, number> = {},
): RmiError => ({ family: 'rmi', status, index, rule, message, outputs });

/** x0 as the RMM returns it. */
export const packRmiReturn = (status: RmiStatusName, index: number): number => RMI_STATUS[status] | (index << 8);
export const rmiReturnStatus = (x0: number): number => x0 & 0xff;
export const rmiReturnIndex = (x0: number): number => (x0 >> 8) & 0xff;
