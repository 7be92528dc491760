/**
 * What an RM call returns: a reply value, or an RM error (gunyah-rm.md §1.5) with the rule that
 * fired, named after the broken condition as in the spec's checks (§3, §4.2).
 */
import type { RmErrorName } from '@hypmesh/rm-wire';

export type RmErrorCode = Exclude<RmErrorName, 'OK'>;

export interface RmError {
  readonly family: 'rm';
  readonly rmError: RmErrorCode;
  readonly rule: string;
  readonly message: string;
}

export type RmOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: RmError };

export const rmError = (code: RmErrorCode, rule: string, message: string): RmError => ({ family: 'rm', rmError: code, rule, message });
export const rmOk = <T>(value: T): RmOutcome<T> => ({ ok: true, value });
export const rmFail = <T = never>(code: RmErrorCode, rule: string, message: string): RmOutcome<T> => ({
  ok: false,
  error: rmError(code, rule, message),
});
