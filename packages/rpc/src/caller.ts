/**
 * Caller identity. Until transport identity (mTLS) exists, the caller's VMID travels in request
 * metadata (DESIGN.md §3), as the hypervisor would read it from the trapping context or the RM from
 * the message queue it arrived on.
 */

import type { Metadata } from '@grpc/grpc-js';
import { VMID_MAX } from './shape.js';
import { invalidArgument, permissionDenied, quoted } from './status.js';

export const CALLER_VMID_KEY = 'x-hypmesh-caller-vmid';

const VMID_TEXT = /^(?:0[xX][0-9a-fA-F]{1,4}|[0-9]{1,5})$/;

/** The caller's VMID from metadata: decimal or 0x-hex. Missing, repeated or malformed: INVALID_ARGUMENT naming the key. */
export function callerVmid(call: { readonly metadata: Metadata }): number {
  const values = call.metadata.get(CALLER_VMID_KEY);
  if (values.length === 0) throw invalidArgument(CALLER_VMID_KEY, 'missing: set the caller VMID in request metadata (decimal or 0x-hex)');
  if (values.length > 1) throw invalidArgument(CALLER_VMID_KEY, `given ${values.length} times; give it once`);
  const text = values[0];
  if (typeof text !== 'string' || !VMID_TEXT.test(text.trim()))
    throw invalidArgument(CALLER_VMID_KEY, `${quoted(String(text))} is not a VMID (decimal or 0x-hex)`);
  const vmid = Number(text.trim());
  if (vmid > VMID_MAX) throw invalidArgument(CALLER_VMID_KEY, `${vmid} is above 0x${VMID_MAX.toString(16)}`);
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
