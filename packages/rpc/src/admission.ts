/**
 * Admission control (DESIGN.md §8 "Admission control", issue 10): per-client quotas on what a client
 * holds (VMIDs, parcels, grants, address spaces, sessions, streams, donated pages) and per-request caps
 * on what one call may ask for (pages, ranges, frames). A refusal is RESOURCE_EXHAUSTED naming the rule
 * (status.ts resourceExhausted) and is decided before the domain is called, so nothing changes.
 *
 * Who a client is. The caller VMID says which VM a call comes from, but every tool on the host calls
 * as HLOS (VMID 3): the VMM, a test driver, a grpcurl session. Quotas keyed by VMID alone would let one
 * HLOS tool take every VMID or parcel and starve the VMM (the issue's finding: 63 VM_ALLOCATEs and then
 * every CreateVm is ENODEV). So a principal is the caller VMID plus the client's name from metadata
 * `x-hypmesh-client` (`anonymous` when absent). Without TLS the name is declared, as the VMID header
 * is (insecure local use only); over mTLS it is the certificate's `spiffe://hypmesh/client/<name>`
 * (caller.ts), and a header naming another client is refused.
 *
 * Limits are data: each service has a table of rules with defaults, and `--quota` specs override a
 * rule for every client (`NAME=N`) or for one client name (`CLIENT:NAME=N`); `N` may be `unlimited`.
 */

import type { Metadata } from '@grpc/grpc-js';
import { callerVmid, peerIdentity, SPIFFE_CLIENT_PREFIX, type CallerCall } from './caller.js';
import { invalidArgument, permissionDenied, quoted, resourceExhausted } from './status.js';
import type { StatusError } from './status-details.js';

export const CLIENT_KEY = 'x-hypmesh-client';

/** The client name of a call that does not give one. */
export const ANONYMOUS_CLIENT = 'anonymous';

const CLIENT_TEXT = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The canonical form, as refusals name it. */
export const CLIENT_FORM = 'lower-case letters, digits, ".", "_" and "-", starting with a letter or digit, at most 63 characters';

/** The caller VMID and the client name: whom quotas count against. */
export interface Principal {
  readonly vmid: number;
  readonly client: string;
  /** `<vmid>/<client>`, as refusals and metadata name it. */
  readonly key: string;
}

export function principal(vmid: number, client: string): Principal {
  return { vmid, client, key: `${vmid}/${client}` };
}

/** The client name from metadata (ANONYMOUS_CLIENT when absent); repeated or malformed: INVALID_ARGUMENT. */
export function clientName(metadata: Metadata): string {
  const values = metadata.get(CLIENT_KEY);
  if (values.length === 0) return ANONYMOUS_CLIENT;
  if (values.length > 1) throw invalidArgument(CLIENT_KEY, `given ${values.length} times; give it once`);
  const text = values[0];
  if (typeof text !== 'string' || !CLIENT_TEXT.test(text)) throw invalidArgument(CLIENT_KEY, `${quoted(String(text))} is not a client name: use ${CLIENT_FORM}`);
  return text;
}

/**
 * The call's client name. Over mTLS: the certificate's (ANONYMOUS_CLIENT if it names none); a
 * header naming another client is PERMISSION_DENIED naming both. Without TLS: clientName(metadata).
 */
export function callerClient(call: CallerCall): string {
  const claimed = clientName(call.metadata);
  const peer = peerIdentity(call);
  if (peer === undefined) return claimed;
  const certified = peer.client ?? ANONYMOUS_CLIENT;
  if (call.metadata.get(CLIENT_KEY).length > 0 && claimed !== certified)
    throw permissionDenied(`${CLIENT_KEY} says client ${claimed} but the client certificate says ${peer.client === undefined ? `none (no ${SPIFFE_CLIENT_PREFIX}<name> URI)` : `client ${certified}`} (${peer.uris}); drop the header or make it agree`);
  return certified;
}

/** The principal a key (`<vmid>/<client>`, as Principal.key and charges() give it) names. */
export function principalFromKey(key: string): Principal {
  const slash = key.indexOf('/');
  return principal(Number(key.slice(0, slash)), key.slice(slash + 1));
}

/** The call's principal: its canonical caller VMID and its client name (from the certificate over mTLS). */
export function principalOf(call: CallerCall): Principal {
  return principal(callerVmid(call), callerClient(call));
}

/**
 * One admission rule. A quota counts what a principal holds at once (released when the object
 * goes); a cap bounds what one request asks for.
 */
export interface AdmissionRule {
  readonly kind: 'quota' | 'cap';
  /** What is counted, for refusals and --help: "address spaces", "pages in one call". */
  readonly counts: string;
  /** The default limit for every client; Infinity for none. */
  readonly limit: number;
}

export type AdmissionTable<R extends string> = Readonly<Record<R, AdmissionRule>>;

/** The limits in force: the table's defaults overridden by --quota specs. */
export class AdmissionLimits<R extends string> {
  private readonly defaults = new Map<R, number>();
  private readonly perClient = new Map<string, number>();

  /** Throws Error naming the bad spec (a start-up flag, not a request). */
  constructor(
    readonly table: AdmissionTable<R>,
    specs: readonly string[] = [],
  ) {
    for (const rule of Object.keys(table) as R[]) this.defaults.set(rule, table[rule].limit);
    for (const spec of specs) this.apply(spec);
  }

  /** The limit of `rule` for the principal: its client's override, else the default. */
  limit(rule: R, who: Principal): number {
    return this.perClient.get(`${who.client}:${rule}`) ?? (this.defaults.get(rule) as number);
  }

  /**
   * A cap: undefined when one request may ask for `asked`, else the refusal. `what` says which
   * field asked (it is echoed bounded).
   */
  capRefusal(rule: R, who: Principal, asked: number, what: string): StatusError | undefined {
    const limit = this.limit(rule, who);
    if (asked <= limit) return undefined;
    return resourceExhausted(`cap_${rule}`, `${what} asks for ${asked} ${this.table[rule].counts}; one call may ask for at most ${limit} (split the request)`, {
      principal: who.key,
      asked: String(asked),
      limit: String(limit),
    });
  }

  private apply(spec: string): void {
    const m = /^(?:([a-z0-9][a-z0-9._-]{0,62}):)?([a-z_]+)=(unlimited|[0-9]{1,15})$/.exec(spec);
    if (m === null) throw new Error(`--quota ${JSON.stringify(spec)}: expected NAME=N or CLIENT:NAME=N (N a count or "unlimited")`);
    const [, client, name, value] = m as unknown as [string, string | undefined, string, string];
    if (!Object.hasOwn(this.table, name)) throw new Error(`--quota ${JSON.stringify(spec)}: no rule ${name}; rules: ${Object.keys(this.table).join(', ')}`);
    const limit = value === 'unlimited' ? Infinity : Number(value);
    if (client === undefined) this.defaults.set(name as R, limit);
    else this.perClient.set(`${client}:${name}`, limit);
  }
}

/**
 * What each principal holds under each quota rule, by object: an object (an address space, a parcel,
 * a stream) is charged to the principal that made it and released by whoever ends it.
 */
export class QuotaLedger<R extends string> {
  private readonly held = new Map<string, number>();
  private readonly objects = new Map<string, { readonly principal: string; readonly n: number }>();

  constructor(readonly limits: AdmissionLimits<R>) {}

  /** How much of `rule` the principal holds. */
  holding(rule: R, who: Principal): number {
    return this.held.get(`${rule}|${who.key}`) ?? 0;
  }

  /** Undefined if the principal may take `n` more of `rule`, else the refusal (nothing is charged). */
  refusal(rule: R, who: Principal, n = 1): StatusError | undefined {
    const limit = this.limits.limit(rule, who);
    const holding = this.holding(rule, who);
    if (holding + n <= limit) return undefined;
    return resourceExhausted(`quota_${rule}`, `client ${who.key} holds ${holding} ${this.limits.table[rule].counts} of its ${limit}; asked for ${n} more`, {
      principal: who.key,
      held: String(holding),
      asked: String(n),
      limit: String(limit),
    });
  }

  /**
   * Charges `n` units of `rule` for `object` to the principal; charging an object again adds to it.
   * An object charged to one principal is never re-charged to another (the first maker keeps it).
   */
  charge(rule: R, who: Principal, object: string, n = 1): void {
    const id = `${rule}|${object}`;
    const o = this.objects.get(id);
    const owner = o?.principal ?? who.key;
    this.objects.set(id, { principal: owner, n: (o?.n ?? 0) + n });
    const key = `${rule}|${owner}`;
    this.held.set(key, (this.held.get(key) ?? 0) + n);
  }

  /** `n` units of the object are gone (all of it by default): its principal holds that much less. Unknown objects are ignored. */
  release(rule: R, object: string, n = Infinity): void {
    const id = `${rule}|${object}`;
    const o = this.objects.get(id);
    if (o === undefined) return;
    const gone = Math.min(n, o.n);
    if (gone === o.n) this.objects.delete(id);
    else this.objects.set(id, { principal: o.principal, n: o.n - gone });
    const key = `${rule}|${o.principal}`;
    const left = (this.held.get(key) as number) - gone;
    if (left === 0) this.held.delete(key);
    else this.held.set(key, left);
  }

  /** The principal key (`<vmid>/<client>`) an object of `rule` is charged to, if it is charged. */
  holder(rule: R, object: string): string | undefined {
    return this.objects.get(`${rule}|${object}`)?.principal;
  }

  /** Every charge, in charging order: what a durable service stores to rebuild the ledger with `charge`. */
  charges(): { rule: R; object: string; principal: string; n: number }[] {
    return [...this.objects].map(([id, o]) => {
      const bar = id.indexOf('|');
      return { rule: id.slice(0, bar) as R, object: id.slice(bar + 1), principal: o.principal, n: o.n };
    });
  }

  /** Forgets every charge (a Reset to boot state). */
  clear(): void {
    this.held.clear();
    this.objects.clear();
  }
}
