/**
 * The core's admission control (DESIGN.md §8 "Admission control", issue 10 item 5): per-client quotas
 * on what a principal holds (address spaces, grants, pages donated to HYP) and per-request caps on
 * what one call may name (pages, ranges, pool frames), as data: CORE_ADMISSION is the one table of
 * rules, RPC_ADMISSION says which rules each RPC meets. A refusal is decided before the domain is
 * called (server.ts), so it changes nothing; it is RESOURCE_EXHAUSTED naming the rule
 * (`quota_<rule>` / `cap_<rule>`, @hypmesh/rpc admission.ts).
 *
 * A principal is the caller VMID plus `x-hypmesh-client` (admission.ts in @hypmesh/rpc). An object is
 * charged to whoever made it and released when it goes, whoever ends it: the RM destroys the spaces
 * it created, a DONATE grant ends at its MapGrant by the borrower, donated pages come back by
 * HypDonateHost from HOST or HYP. The ledger is rebuilt on recovery from the journal (whose records
 * carry the client name: durable.ts) or from the image stored with a core snapshot (`image`).
 *
 * Defaults are measured (README "Admission control", `npm run bench -- --only
 * p99_core_rpc_ms_under_abuse`): one maximal admitted request costs the event loop a few ms.
 */

import { AdmissionLimits, principalFromKey, QuotaLedger, type AdmissionTable, type Principal, type StatusError } from '@hypmesh/rpc';
import { GRANULE_SIZE, type Stage2 } from '@hypmesh/stage2';
import { CALLERS } from './handlers.js';

export type CoreRule = 'address_spaces' | 'grants' | 'donated_pages' | 'pages_per_call' | 'ranges_per_call' | 'frames_per_call';

export const CORE_ADMISSION: AdmissionTable<CoreRule> = {
  // One client made 3,000 address spaces and hit no limit (issue 10); each holds VMIDs and HYP
  // pages. The RM makes every guest's space (its own default below).
  address_spaces: { kind: 'quota', counts: 'address spaces', limit: 16 },
  // Each grant holds a grant id and per-frame marks until it is destroyed; the RM holds one per
  // parcel (at most 64 per owner VM, gunyah-rm.md §3.1 MAX_MEMPARCEL_PER_VM), the VMM one per binding.
  grants: { kind: 'quota', counts: 'grants', limit: 1024 },
  // One HostDonateHyp of the VMM's free donation pages (16 GiB in 8 ms) left every create failing
  // (issue 10): pages the principal gave HYP and HYP has not given back, by HostDonateHyp (until
  // HypDonateHost) or into a table pool, a HOST CreateAddressSpace's or a TopUpTablePool's (until
  // DrainTablePool or DestroyAddressSpace). It also bounds a space's teardown, the costliest call
  // a client can make (0.7-1.2 µs a scattered pool frame: 3.6-5 ms at 4,096): 2,048 pages (8 MiB)
  // for any client; the VMM's, below.
  donated_pages: { kind: 'quota', counts: 'pages donated to HYP', limit: 2048 },
  // The pages one call names (grant ranges, borrower IPA ranges, a pKVM call's nr_pages). Measured
  // (CPU ms of the domain call, scattered unaligned runs, `npm run bench -- --only abuse`): at 1,024
  // pages and 128 ranges every call of the rogue's cycle costs 0.2-1.3 ms and the space's teardown
  // about 2; at 4,096 pages and 512 ranges 0.5-1.8 ms and 4-7 (a well-behaved client's p99 then
  // grew 4.4 times). The RM and the VMM have larger caps below.
  pages_per_call: { kind: 'cap', counts: 'pages', limit: 1024 },
  // The ranges one call lists (one 131,072-range CreateGrant took 1.35 s and +115 MiB).
  ranges_per_call: { kind: 'cap', counts: 'ranges', limit: 128 },
  // The frames one TopUpTablePool or CreateAddressSpace donates to a pool (one of 200k frames stalled
  // other clients for 2.2 s): the VMM splits its top-ups into calls of this size.
  frames_per_call: { kind: 'cap', counts: 'frames', limit: 1024 },
};

/**
 * Defaults for the system's own clients, before the operator's --quota specs (which may override
 * them). The RM creates every guest's address space (63 dynamic + 64 explicit VMIDs, gunyah-rm.md
 * §4.1) and passes one RM message's SGL in one grant call (512 entries, gunyah-rm.md §3.1); the VMM
 * makes a grant per binding and donates its whole donation region at most (16,384 pages by
 * default, packages/vmm host-pages.ts). Their grants are as large as what a VM binds (a 512 MiB
 * guest lends 131,072 pages in one range), and the core's cost follows the runs a call touches, not
 * its pages, so only their range counts are capped. The client name is declared until mTLS binds
 * it (issue 11), so these are a convention, not a protection.
 */
export const CORE_BUILTIN_SPECS: readonly string[] = [
  'rm:address_spaces=256',
  'rm:ranges_per_call=512',
  'rm:pages_per_call=unlimited',
  'vmm:pages_per_call=unlimited',
  'vmm:donated_pages=16384',
];

/** One VM's frame count as the cap sees it: u64 ranges summed (a bigint, so no overflow hides a huge ask). */
type Ranges = readonly { readonly count: bigint }[];
const pages = (rs: Ranges): number => Number(rs.reduce((n, r) => n + r.count, 0n));

/** A cap check: the rule, the amount asked and the field that asked. */
type Ask = readonly [rule: 'pages_per_call' | 'ranges_per_call' | 'frames_per_call', asked: number, field: string];

/** What admission does around one RPC (all optional): caps and quota checks before, charges and releases after success. */
interface RpcRule {
  readonly caps?: (req: never) => readonly Ask[];
  readonly quotas?: (req: never) => readonly (readonly [rule: 'address_spaces' | 'grants' | 'donated_pages', n: number])[];
  readonly applied?: (a: CoreAdmission, who: Principal, req: never, value: never, s: Stage2) => void;
}

const rangesAsk = (rs: Ranges, field: string): Ask[] => [
  ['ranges_per_call', rs.length, field],
  ['pages_per_call', pages(rs), field],
];
const nrPages = (req: { nrPages: bigint }): readonly Ask[] => [['pages_per_call', Number(req.nrPages), 'nr_pages']];

/** Which rules each RPC meets (one table; an RPC not listed meets none). */
const RPC_ADMISSION: Readonly<Record<string, RpcRule>> = {
  createAddressSpace: {
    caps: (req: { donated: Ranges }) => [['ranges_per_call', req.donated.length, 'donated'], ['frames_per_call', pages(req.donated), 'donated']],
    quotas: (req: { donated: Ranges }) => [['address_spaces', 1], ['donated_pages', pages(req.donated)]],
    // The RM adopting its own unused space (spaces.ts createReserved) makes nothing new.
    applied: (a, who, req: { vmid: number; donated: Ranges }) => {
      if (a.ledger.holder('address_spaces', `space:${req.vmid}`) === undefined) a.ledger.charge('address_spaces', who, `space:${req.vmid}`);
      a.pooled(who, req.vmid, pages(req.donated));
    },
  },
  // Every page of the space goes back to where it came from (spaces.ts destroyAddressSpace).
  destroyAddressSpace: {
    applied: (a, _who, req: { vmid: number }) => {
      a.ledger.release('address_spaces', `space:${req.vmid}`);
      a.unpooled(req.vmid, Infinity, undefined);
    },
  },
  topUpTablePool: {
    caps: (req: { frames: Ranges }) => [['ranges_per_call', req.frames.length, 'frames'], ['frames_per_call', pages(req.frames), 'frames']],
    quotas: (req: { frames: Ranges }) => [['donated_pages', pages(req.frames)]],
    applied: (a, who, req: { vmid: number; frames: Ranges }) => a.pooled(who, req.vmid, pages(req.frames)),
  },
  drainTablePool: { applied: (a, who, req: { vmid: number }, value: { returnedPages: bigint }) => a.unpooled(req.vmid, Number(value.returnedPages), who) },
  hostDonateHyp: {
    caps: nrPages,
    quotas: (req: { nrPages: bigint }) => [['donated_pages', Number(req.nrPages)]],
    applied: (a, who, req: { pfn: bigint; nrPages: bigint }) => a.donated(who, Number(req.pfn), Number(req.nrPages)),
  },
  hypDonateHost: { caps: nrPages, applied: (a, _who, req: { pfn: bigint; nrPages: bigint }) => a.returned(Number(req.pfn), Number(req.nrPages)) },
  hypPinSharedMem: { caps: nrPages },
  hypUnpinSharedMem: { caps: nrPages },
  hostShareFfa: { caps: nrPages },
  hostUnshareFfa: { caps: nrPages },
  hostShareGuest: { caps: nrPages },
  hostUnshareGuest: { caps: nrPages },
  createGrant: {
    caps: (req: { ranges: Ranges }) => rangesAsk(req.ranges, 'ranges'),
    quotas: () => [['grants', 1]],
    applied: (a, who, _req, value: { grantId: bigint }) => a.ledger.charge('grants', who, `grant:${value.grantId}`),
  },
  appendGrant: { caps: (req: { ranges: Ranges }) => rangesAsk(req.ranges, 'ranges') },
  mapGrant: {
    caps: (req: { ipaRanges: Ranges }) => rangesAsk(req.ipaRanges, 'ipa_ranges'),
    // A DONATE grant is gone once its borrower maps it (grant.ts mapGrant): its owner holds it no more.
    applied: (a, _who, req: { grantId: bigint }, _value, s) => {
      if (!s.grants.has(Number(req.grantId))) a.ledger.release('grants', `grant:${req.grantId}`);
    },
  },
  destroyGrant: { applied: (a, _who, req: { grantId: bigint }) => a.ledger.release('grants', `grant:${req.grantId}`) },
};

/** A run of pages donated to HYP and not yet returned, and whose donation it was (its ledger object). */
interface DonatedRun {
  readonly base: number;
  readonly count: number;
  readonly principal: string;
}

/** The ledger's image (stored with a core snapshot, durable.ts). */
interface AdmissionImage {
  readonly charges: { rule: CoreRule; object: string; principal: string; n: number }[];
  readonly donations: DonatedRun[];
}

export class CoreAdmission {
  readonly limits: AdmissionLimits<CoreRule>;
  readonly ledger: QuotaLedger<CoreRule>;
  /** Donated runs by base, disjoint (the domain refuses donating a page HYP already owns). */
  private runs: DonatedRun[] = [];

  /** `specs`: the --quota flags, applied after CORE_BUILTIN_SPECS. Throws Error naming a bad spec. */
  constructor(specs: readonly string[] = []) {
    this.limits = new AdmissionLimits(CORE_ADMISSION, [...CORE_BUILTIN_SPECS, ...specs]);
    this.ledger = new QuotaLedger(this.limits);
  }

  /** Whether `rpc` meets any rule (the others need no principal). */
  governs(rpc: string): boolean {
    return Object.hasOwn(RPC_ADMISSION, rpc);
  }

  /**
   * The refusal of `req` by `who`, or undefined if it may go to the domain. Nothing is charged.
   * A call that is refused anyway, cheaply and with its own answer, is left to it: a caller the
   * RPC does not accept (PERMISSION_DENIED, handlers.ts CALLERS), and an ask of more pages than the
   * PA space has frames (the shape check's INVALID_ARGUMENT or the hypercall's errno, which any
   * uint64 register may meet: stage2-models.md §A5). Such a call is never admitted work.
   */
  refusal(rpc: string, who: Principal, req: unknown, s: Stage2): StatusError | undefined {
    const r = RPC_ADMISSION[rpc];
    if (r === undefined) return undefined;
    const callers = (CALLERS as Readonly<Record<string, readonly number[]>>)[`${rpc.charAt(0).toUpperCase()}${rpc.slice(1)}`];
    if (callers !== undefined && !callers.includes(who.vmid)) return undefined;
    const asks = r.caps?.(req as never) ?? [];
    const paFrames = 2 ** s.config.memory.paBits / GRANULE_SIZE;
    if (asks.some(([rule, asked]) => rule !== 'ranges_per_call' && asked > paFrames)) return undefined;
    for (const [rule, asked, field] of asks) {
      const refused = this.limits.capRefusal(rule, who, asked, field);
      if (refused !== undefined) return refused;
    }
    for (const [rule, n] of r.quotas?.(req as never) ?? []) {
      const refused = n > 0 ? this.ledger.refusal(rule, who, n) : undefined;
      if (refused !== undefined) return refused;
    }
    return undefined;
  }

  /** The call succeeded: charge what it made to `who`, release what it ended. */
  applied(rpc: string, who: Principal, req: unknown, value: unknown, s: Stage2): void {
    RPC_ADMISSION[rpc]?.applied?.(this, who, req as never, value as never, s);
  }

  /** `n` frames of `who` went into `vmid`'s table pool: charged per (space, principal), as a pool returns counts, not frames. */
  pooled(who: Principal, vmid: number, n: number): void {
    if (n > 0) this.ledger.charge('donated_pages', who, `pool:${vmid}:${who.key}`, n);
  }

  /**
   * `n` frames of `vmid`'s pool went back to the host (all: a destroy): released from `first`'s
   * charge before the others' (which frames came back the pool does not say).
   */
  unpooled(vmid: number, n: number, first: Principal | undefined): void {
    const prefix = `pool:${vmid}:`;
    const charged = this.ledger.charges().filter((c) => c.rule === 'donated_pages' && c.object.startsWith(prefix));
    charged.sort((x, y) => Number(y.principal === first?.key) - Number(x.principal === first?.key));
    let left = n;
    for (const c of charged) {
      if (left <= 0) break;
      const gone = Math.min(left, c.n);
      this.ledger.release('donated_pages', c.object, gone);
      left -= gone;
    }
  }

  /** HostDonateHyp of [base, base+count) by `who` succeeded. */
  donated(who: Principal, base: number, count: number): void {
    if (count <= 0) return;
    this.ledger.charge('donated_pages', who, `pages:${base}`, count);
    const at = this.runs.findIndex((r) => r.base > base);
    this.runs.splice(at === -1 ? this.runs.length : at, 0, { base, count, principal: who.key });
  }

  /** HypDonateHost of [base, base+count) succeeded: each donation it overlaps holds that much less. */
  returned(base: number, count: number): void {
    const end = base + count;
    const kept: DonatedRun[] = [];
    for (const r of this.runs) {
      const rEnd = r.base + r.count;
      if (rEnd <= base || r.base >= end) {
        kept.push(r);
        continue;
      }
      // The run's object is keyed by its base: the part below `base` keeps it, the part above `end` is charged anew.
      const below = Math.max(0, base - r.base);
      const above = Math.max(0, rEnd - end);
      this.ledger.release('donated_pages', `pages:${r.base}`, r.count - below);
      if (below > 0) kept.push({ base: r.base, count: below, principal: r.principal });
      if (above > 0) {
        this.ledger.charge('donated_pages', principalFromKey(r.principal), `pages:${end}`, above);
        kept.push({ base: end, count: above, principal: r.principal });
      }
    }
    this.runs = kept;
  }

  /** A Reset: the new core holds nothing. */
  clear(): void {
    this.ledger.clear();
    this.runs = [];
  }

  image(): string {
    const image: AdmissionImage = { charges: this.ledger.charges(), donations: this.runs };
    return JSON.stringify(image);
  }

  /** Replaces the ledger with a stored image (recovery from a snapshot). */
  restore(text: string): void {
    const image = JSON.parse(text) as AdmissionImage;
    this.clear();
    for (const c of image.charges) this.ledger.charge(c.rule, principalFromKey(c.principal), c.object, c.n);
    this.runs = image.donations.map((r) => ({ base: r.base, count: r.count, principal: r.principal }));
  }
}

/** The --quota specs from flags and HYPMESH_CORE_QUOTA (comma-separated; the flags come last, so they win). */
export function quotaSpecs(flags: readonly string[], env: string | undefined): string[] {
  const fromEnv = (env ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  return [...fromEnv, ...flags];
}

/** The rules as --help lists them: `name (quota|cap, counts): default`. */
export function admissionHelp(): string {
  const rows = (Object.keys(CORE_ADMISSION) as CoreRule[]).map((r) => `  ${r} (${CORE_ADMISSION[r].kind}, ${CORE_ADMISSION[r].counts}): ${CORE_ADMISSION[r].limit}`);
  return [`admission rules (--quota NAME=N | CLIENT:NAME=N, N a count or "unlimited"; built in: ${CORE_BUILTIN_SPECS.join(' ')}):`, ...rows].join('\n');
}
