/**
 * Caller identity. Until transport identity (mTLS) exists, the caller's VMID travels in request
 * metadata (DESIGN.md §3), as the hypervisor would read it from the trapping context or the RM from
 * the message queue it arrived on.
 *
 * One spelling per VMID: decimal, no sign, no leading zeros (`3`, `128`, `0`), 0..65535. A second
 * spelling (`0x3`, `00003`, `0X3`) would let one caller appear under two names wherever the header
 * text is logged, counted or later mapped to an identity; it is refused, naming the canonical form.
 */

import type { Metadata } from '@grpc/grpc-js';
import { VMID_MAX } from './shape.js';
import { invalidArgument, permissionDenied, quoted } from './status.js';

export const CALLER_VMID_KEY = 'x-hypmesh-caller-vmid';

/** The canonical form, as refusals name it. */
export const CALLER_VMID_FORM = `decimal without leading zeros, 0..${VMID_MAX} (e.g. 3 for HOST, 128 for VMID 0x80)`;

const VMID_TEXT = /^(?:0|[1-9][0-9]{0,4})$/;

/** The caller's VMID from metadata, in its canonical form. Missing, repeated or any other spelling: INVALID_ARGUMENT naming the key. */
export function callerVmid(call: { readonly metadata: Metadata }): number {
  const values = call.metadata.get(CALLER_VMID_KEY);
  if (values.length === 0) throw invalidArgument(CALLER_VMID_KEY, `missing: set the caller VMID in request metadata, ${CALLER_VMID_FORM}`);
  if (values.length > 1) throw invalidArgument(CALLER_VMID_KEY, `given ${values.length} times; give it once`);
  const text = values[0];
  const vmid = typeof text === 'string' && VMID_TEXT.test(text) ? Number(text) : undefined;
  if (vmid === undefined || vmid > VMID_MAX) throw invalidArgument(CALLER_VMID_KEY, `${quoted(String(text))} is not a VMID: give it ${CALLER_VMID_FORM}`);
  return vmid;
}

/** The caller's VMID, which must be one of `allowed` (PERMISSION_DENIED otherwise). */
export function requireCaller(call: { readonly metadata: Metadata }, allowed: readonly number[], rpc: string): number {
  const vmid = callerVmid(call);
  if (!allowed.includes(vmid)) {
    const names = allowed.map((v) => `0x${v.toString(16)}`).join(' or ');
    throw permissionDenied(`${rpc} may be called by VMID ${names} only; caller is 0x${vmid.toString(16)}`);
  }
  return vmid;
}
