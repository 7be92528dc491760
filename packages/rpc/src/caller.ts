/**
 * Caller identity (DESIGN.md §3, issue 11 item 5). Two sources, one answer:
 *
 * - mTLS on (the call's auth context says `ssl`): the VMID is the client certificate's URI SAN
 *   `spiffe://hypmesh/vmid/<n>`, and the client name its `spiffe://hypmesh/client/<name>`
 *   (tls.ts). The metadata headers may be left out; one that is given must agree with the
 *   certificate, or the call is refused PERMISSION_DENIED naming both.
 *   Two certified services act for others, as the model has them do (ACTING_FOR): the RM calls
 *   the core as the VM a grant is the owner or borrower of (gunyah-rm.md §3), and the VMM maps a
 *   guest's grants as that guest; their headers may name those VMIDs.
 * - no TLS: the VMID travels in metadata, as the hypervisor would read it from the trapping context
 *   or the RM from the message queue it arrived on. Anyone can claim anything: this is for insecure
 *   local use only (a laptop, CI), never a shared network.
 *
 * One spelling per VMID: decimal, no sign, no leading zeros (`3`, `128`, `0`), 0..65535. A second
 * spelling (`0x3`, `00003`, `0X3`) would let one caller appear under two names wherever the header
 * text is logged, counted or later mapped to an identity; it is refused, naming the canonical form.
 */

import type { Metadata } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { VMID_DYNAMIC_FIRST, VMID_DYNAMIC_LAST, VMID_HOST, VMID_RM } from '@hypmesh/stage2';
import { VMID_MAX } from './shape.js';
import { invalidArgument, permissionDenied, quoted } from './status.js';

export const CALLER_VMID_KEY = 'x-hypmesh-caller-vmid';

/** The canonical form, as refusals name it. */
export const CALLER_VMID_FORM = `decimal without leading zeros, 0..${VMID_MAX} (e.g. 3 for HOST, 128 for VMID 0x80)`;

/** URI SAN prefixes of a client certificate's identity (SPIFFE-style, trust domain `hypmesh`). */
export const SPIFFE_VMID_PREFIX = 'spiffe://hypmesh/vmid/';
export const SPIFFE_CLIENT_PREFIX = 'spiffe://hypmesh/client/';

const VMID_TEXT = /^(?:0|[1-9][0-9]{0,4})$/;
/** As admission.ts CLIENT_TEXT (kept here so the certificate parser needs nothing from admission). */
const CLIENT_TEXT = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** What a handler's call offers: metadata and, on a grpc-js server call, the transport's auth context. */
export interface CallerCall {
  readonly metadata: Metadata;
  getAuthContext?(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } | null;
}

/** A verified client certificate's hypmesh identity; either part may be absent from the certificate. */
export interface PeerIdentity {
  readonly vmid?: number;
  readonly client?: string;
  /** The certificate's hypmesh URIs, as refusals name them. */
  readonly uris: string;
}

/** The identity in a certificate's subjectaltname text (`URI:spiffe://hypmesh/vmid/3, DNS:...`); two VMIDs or two names: Error. */
export function identityFromSan(san: string | undefined): PeerIdentity {
  let vmid: number | undefined;
  let client: string | undefined;
  const uris: string[] = [];
  for (const entry of (san ?? '').split(', ')) {
    if (!entry.startsWith('URI:')) continue;
    const uri = entry.slice(4);
    if (uri.startsWith(SPIFFE_VMID_PREFIX)) {
      const text = uri.slice(SPIFFE_VMID_PREFIX.length);
      if (!VMID_TEXT.test(text) || Number(text) > VMID_MAX) throw new Error(`${uri} is not a VMID URI: give it ${CALLER_VMID_FORM}`);
      if (vmid !== undefined) throw new Error('the certificate names two VMIDs');
      vmid = Number(text);
      uris.push(uri);
    } else if (uri.startsWith(SPIFFE_CLIENT_PREFIX)) {
      const text = uri.slice(SPIFFE_CLIENT_PREFIX.length);
      if (!CLIENT_TEXT.test(text)) throw new Error(`${uri} is not a client URI`);
      if (client !== undefined) throw new Error('the certificate names two clients');
      client = text;
      uris.push(uri);
    }
  }
  return { ...(vmid !== undefined && { vmid }), ...(client !== undefined && { client }), uris: uris.length === 0 ? 'no hypmesh URI' : uris.join(' + ') };
}

// Parsed identities by SAN text: a connection makes many calls with one certificate.
const parsed = new Map<string, PeerIdentity | Error>();
const PARSED_MAX = 1024;

/**
 * The call's certificate identity when it came over mTLS, else undefined (insecure local use).
 * A TLS call whose certificate is missing or malformed is refused PERMISSION_DENIED.
 */
export function peerIdentity(call: CallerCall): PeerIdentity | undefined {
  const known = byCall.get(call);
  if (known !== undefined) return known ?? undefined;
  const found = certifiedIdentity(call);
  byCall.set(call, found ?? null);
  return found;
}

// One call's identity, read once: authz.ts and the handler both ask, and grpc-js builds the peer
// certificate anew on every getAuthContext().
const byCall = new WeakMap<object, PeerIdentity | null>();

function certifiedIdentity(call: CallerCall): PeerIdentity | undefined {
  // grpc-js reports a TLS peer it did not verify as no security at all, so this relies on the
  // server requiring a client certificate (tls.ts serverCredentials always does).
  const auth = call.getAuthContext?.();
  if (auth?.transportSecurityType !== 'ssl') return undefined;
  const cert = auth.sslPeerCertificate;
  if (cert === undefined) throw permissionDenied('mTLS: the call carries no verified client certificate');
  const san = cert.subjectaltname ?? '';
  let found = parsed.get(san);
  if (found === undefined) {
    try {
      found = identityFromSan(san);
    } catch (e) {
      found = e as Error;
    }
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(san, found);
  }
  if (found instanceof Error) throw permissionDenied(`mTLS: client certificate refused: ${found.message}`);
  return found;
}

/**
 * Certified identities that may name another VMID in the header, and which (issue 11 item 5): the
 * certificate must carry both the VMID and the client URI. The RM (0xff, client `rm`) acts for
 * HOST and the guests whose grants it makes and maps; the VMM (HOST, client `vmm`) acts for the
 * guests whose memory it maps (vmm core-client.ts mapGrant). Nobody may act as HYP or the RM.
 */
export const ACTING_FOR: Readonly<Record<string, { readonly vmid: number; readonly mayAct: (vmid: number) => boolean }>> = {
  rm: { vmid: VMID_RM, mayAct: (v) => v === VMID_HOST || (v >= VMID_DYNAMIC_FIRST && v <= VMID_DYNAMIC_LAST) },
  vmm: { vmid: VMID_HOST, mayAct: (v) => v >= VMID_DYNAMIC_FIRST && v <= VMID_DYNAMIC_LAST },
};

/** Whether the certified `peer` may name `claimed` as its caller VMID (ACTING_FOR). */
function actsFor(peer: PeerIdentity, claimed: number): boolean {
  const rule = peer.client !== undefined && Object.hasOwn(ACTING_FOR, peer.client) ? ACTING_FOR[peer.client] : undefined;
  return rule !== undefined && rule.vmid === peer.vmid && rule.mayAct(claimed);
}

/** The VMID in the metadata header, canonical; undefined when absent. Repeated or any other spelling: INVALID_ARGUMENT. */
function headerVmid(metadata: Metadata): number | undefined {
  const values = metadata.get(CALLER_VMID_KEY);
  if (values.length === 0) return undefined;
  if (values.length > 1) throw invalidArgument(CALLER_VMID_KEY, `given ${values.length} times; give it once`);
  const text = values[0];
  const vmid = typeof text === 'string' && VMID_TEXT.test(text) ? Number(text) : undefined;
  if (vmid === undefined || vmid > VMID_MAX) throw invalidArgument(CALLER_VMID_KEY, `${quoted(String(text))} is not a VMID: give it ${CALLER_VMID_FORM}`);
  return vmid;
}

/**
 * The caller's VMID. Over mTLS: the certificate's (a header that disagrees: PERMISSION_DENIED
 * naming both, unless ACTING_FOR lets the certificate name it; a certificate without one:
 * PERMISSION_DENIED). Without TLS: the metadata header,
 * whose absence is INVALID_ARGUMENT naming the key.
 */
export function callerVmid(call: CallerCall): number {
  const peer = peerIdentity(call);
  const claimed = headerVmid(call.metadata);
  if (peer === undefined) {
    if (claimed === undefined) throw invalidArgument(CALLER_VMID_KEY, `missing: set the caller VMID in request metadata, ${CALLER_VMID_FORM}`);
    return claimed;
  }
  if (peer.vmid === undefined) throw permissionDenied(`mTLS: the client certificate (${peer.uris}) carries no ${SPIFFE_VMID_PREFIX}<n> URI, so it names no caller VMID`);
  if (claimed !== undefined && claimed !== peer.vmid) {
    if (actsFor(peer, claimed)) return claimed;
    throw permissionDenied(`${CALLER_VMID_KEY} says VMID ${claimed} but the client certificate says VMID ${peer.vmid} (${peer.uris}); drop the header or make it agree`);
  }
  return peer.vmid;
}

/** The caller's VMID, which must be one of `allowed` (PERMISSION_DENIED otherwise). */
export function requireCaller(call: CallerCall, allowed: readonly number[], rpc: string): number {
  const vmid = callerVmid(call);
  if (!allowed.includes(vmid)) {
    const names = allowed.map((v) => `0x${v.toString(16)}`).join(' or ');
    throw permissionDenied(`${rpc} may be called by VMID ${names} only; caller is 0x${vmid.toString(16)}`);
  }
  return vmid;
}
