/**
 * CoreService handlers (core_service.proto). Each one is thin (STYLE "Thin services"): check the
 * caller and the request's shape (INVALID_ARGUMENT naming the field: presence and width only), call ONE domain function of
 * @hypmesh/stage2, encode its result. Domain errors become gRPC in @hypmesh/rpc's status.ts only;
 * anything thrown is a bug and becomes INTERNAL (unary()). No handler reads or checks domain state,
 * and none refuses a value the modelled call validates itself (pKVM prot, RMI hash algorithm, VMID,
 * RIPAS, flags, levels): those reach the domain, which answers with the exact errno or RMI status.
 *
 * Caller rules (core_service.proto header, the CALLERS table below): pKVM host calls, pool top-ups
 * and RMI come from HOST (3); the hyp-side pKVM calls also accept HYP (0); address spaces are
 * created and destroyed by HOST or the RM (0xFF), the domain taking the caller as the creator; a
 * guest call acts on the caller's own space; grant calls pass the caller to the domain as owner or
 * borrower; queries accept anyone.
 */

import type { CoreServiceServer } from '@hypmesh/proto';
import {
  addressField,
  callerVmid,
  frameField,
  grantIdField,
  numberToU64,
  required,
  requireCaller,
  unaryWith,
  u64Operand,
  u64Register,
  vmidField,
  type BugLog,
  type Result,
} from '@hypmesh/rpc';
import {
  GRANULE_SIZE,
  VMID_HOST,
  VMID_HYP,
  VMID_RM,
  appendGrant,
  hypReservationPages,
  checkInvariants,
  createAddressSpace,
  createGrant,
  dataCreate,
  dataCreateUnknown,
  dataDestroy,
  destroyAddressSpace,
  destroyGrant,
  drainTablePool,
  granuleDelegate,
  granuleUndelegate,
  guestShareHost,
  hostDonateGuest,
  hostDonateHyp,
  hostReclaimPageGuest,
  hostShareFfa,
  hostShareGuest,
  hostShareHyp,
  hostUnshareFfa,
  hostUnshareGuest,
  hostUnshareHyp,
  hypDonateHost,
  hypPinSharedMem,
  hypUnpinSharedMem,
  mapGrant,
  OWNERSHIP_RUNS_MAX,
  addressSpaceMap,
  ownershipCounts,
  ownershipMap,
  readEntry,
  realmActivate,
  realmCreate,
  realmDestroy,
  recCreate,
  recDestroy,
  recRequestRipasChange,
  rttCreate,
  rttDestroy,
  rttFold,
  rttInitRipas,
  rttMapUnprotected,
  rttReadEntry,
  rttSetRipas,
  rttUnmapUnprotected,
  tablePageCounts,
  topUpTablePool,
  translate,
  unmapGrant,
  vmid,
  type DomainError,
  type Stage2,
} from '@hypmesh/stage2';
import {
  fromGrantType,
  fromGranuleState,
  fromHypUse,
  fromMemoryKind,
  fromPageState,
  fromPerms,
  fromRipas,
  fromRttState,
  toFrameRanges,
  toGrantMemoryType,
  toGrantType,
  toPerms,
  memoryMapOut,
  toPfnRanges,
  toHashAlgorithm,
  toProtection,
  toRipas,
} from './codec.js';

const HOST: readonly number[] = [VMID_HOST];
const HOST_OR_HYP: readonly number[] = [VMID_HOST, VMID_HYP];
// The RM creates and destroys a guest's stage-2 at VM_ALLOCATE / VM_DEALLOCATE (gunyah-rm.md §4.2),
// from HYP's boot reservation; the domain's SPACE_CREATORS says which pages each creator uses.
const HOST_OR_RM: readonly number[] = [VMID_HOST, VMID_RM];

/**
 * Which callers each caller-restricted RPC accepts (one table, so the rules read in one place and
 * match core_service.proto). RPCs not listed accept any caller: grants and guest calls act as the
 * caller, queries are read-only.
 */
export const CALLERS = {
  CreateAddressSpace: HOST_OR_RM,
  TopUpTablePool: HOST,
  DrainTablePool: HOST,
  DestroyAddressSpace: HOST_OR_RM,
  HostShareHyp: HOST,
  HostUnshareHyp: HOST,
  HostDonateHyp: HOST,
  HypDonateHost: HOST_OR_HYP,
  HypPinSharedMem: HOST_OR_HYP,
  HypUnpinSharedMem: HOST_OR_HYP,
  HostShareFfa: HOST,
  HostUnshareFfa: HOST,
  HostShareGuest: HOST,
  HostUnshareGuest: HOST,
  HostDonateGuest: HOST,
  HostReclaimPageGuest: HOST,
  GranuleDelegate: HOST,
  GranuleUndelegate: HOST,
  RealmCreate: HOST,
  RealmActivate: HOST,
  RealmDestroy: HOST,
  RecCreate: HOST,
  RecDestroy: HOST,
  RttCreate: HOST,
  RttDestroy: HOST,
  RttFold: HOST,
  RttReadEntry: HOST,
  DataCreate: HOST,
  DataCreateUnknown: HOST,
  DataDestroy: HOST,
  RttInitRipas: HOST,
  RttSetRipas: HOST,
  RecRequestRipasChange: HOST,
  RttMapUnprotected: HOST,
  RttUnmapUnprotected: HOST,
} as const satisfies Record<string, readonly number[]>;
type Restricted = keyof typeof CALLERS;
/** The caller, if CALLERS allows it for `rpc` (PERMISSION_DENIED otherwise). */
const allowed = (call: Parameters<typeof requireCaller>[0], rpc: Restricted): number => requireCaller(call, CALLERS[rpc], rpc);

/** A successful domain result encoded; a failure passed on for unary() to map. */
const encode = <T, U>(r: Result<T, DomainError>, f: (value: T) => U): Result<U, DomainError> =>
  r.ok ? { ok: true, value: f(r.value) } : r;

const empty = <T>(r: Result<T, DomainError>): Result<Record<string, never>, DomainError> => encode(r, () => ({}));

const u64 = numberToU64;
/** A grant's physical runs as proto FrameRanges (PA frames). */
const physRunsOut = (runs: readonly { base: number; count: number }[]) =>
  runs.map((r) => ({ base: u64(r.base, 'phys_runs.base'), count: u64(r.count, 'phys_runs.count') }));

/** `reset` is the service's (server.ts): it replaces the core these handlers act on. */
export function createCoreHandlers(s: Stage2, log: BugLog, reset: CoreServiceServer['reset']): CoreServiceServer {
  const unary = unaryWith(log);
  return {
    // ---- Address spaces ----
    createAddressSpace: unary((req, call) => {
      const creator = vmid(allowed(call, 'CreateAddressSpace'));
      const space = vmid(vmidField(req.vmid, 'vmid'));
      const donated = toPfnRanges(req.donated, 'donated');
      return encode(createAddressSpace(s, space, req.ipaBits, donated, toProtection(req.protection, 'protection'), creator), (v) => ({
        rootTables: v.rootTables,
        poolPages: u64(v.poolPages, 'poolPages'),
      }));
    }),
    topUpTablePool: unary((req, call) => {
      allowed(call, 'TopUpTablePool');
      const space = vmid(vmidField(req.vmid, 'vmid'));
      return encode(topUpTablePool(s, space, toPfnRanges(req.frames, 'frames')), (v) => ({ poolPages: u64(v.poolPages, 'poolPages') }));
    }),
    drainTablePool: unary((req, call) => {
      allowed(call, 'DrainTablePool');
      const space = vmid(vmidField(req.vmid, 'vmid'));
      return encode(drainTablePool(s, space, frameField(req.maxPages, 'max_pages')), (v) => ({
        returnedPages: u64(v.returnedPages, 'returnedPages'),
        poolPages: u64(v.poolPages, 'poolPages'),
      }));
    }),
    destroyAddressSpace: unary((req, call) => {
      const caller = vmid(allowed(call, 'DestroyAddressSpace'));
      return encode(destroyAddressSpace(s, vmid(vmidField(req.vmid, 'vmid')), caller), (v) => ({ returnedPages: u64(v.returnedPages, 'returnedPages') }));
    }),

    // ---- pKVM hypercalls ----
    hostShareHyp: unary((req, call) => {
      allowed(call, 'HostShareHyp');
      return empty(hostShareHyp(s, u64Operand(req.pfn, 'pfn')));
    }),
    hostUnshareHyp: unary((req, call) => {
      allowed(call, 'HostUnshareHyp');
      return empty(hostUnshareHyp(s, u64Operand(req.pfn, 'pfn')));
    }),
    hostDonateHyp: unary((req, call) => {
      allowed(call, 'HostDonateHyp');
      return empty(hostDonateHyp(s, u64Operand(req.pfn, 'pfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hypDonateHost: unary((req, call) => {
      allowed(call, 'HypDonateHost');
      return empty(hypDonateHost(s, u64Operand(req.pfn, 'pfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hypPinSharedMem: unary((req, call) => {
      allowed(call, 'HypPinSharedMem');
      return empty(hypPinSharedMem(s, u64Operand(req.pfn, 'pfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hypUnpinSharedMem: unary((req, call) => {
      allowed(call, 'HypUnpinSharedMem');
      return empty(hypUnpinSharedMem(s, u64Operand(req.pfn, 'pfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hostShareFfa: unary((req, call) => {
      allowed(call, 'HostShareFfa');
      return empty(hostShareFfa(s, u64Operand(req.pfn, 'pfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hostUnshareFfa: unary((req, call) => {
      allowed(call, 'HostUnshareFfa');
      return empty(hostUnshareFfa(s, u64Operand(req.pfn, 'pfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hostShareGuest: unary((req, call) => {
      allowed(call, 'HostShareGuest');
      const guest = vmid(vmidField(req.vmid, 'vmid'));
      const pfn = u64Operand(req.pfn, 'pfn');
      const gfn = u64Operand(req.gfn, 'gfn');
      const nr = u64Operand(req.nrPages, 'nr_pages');
      return empty(hostShareGuest(s, guest, pfn, gfn, nr, toPerms(req.prot, 'prot')));
    }),
    hostUnshareGuest: unary((req, call) => {
      allowed(call, 'HostUnshareGuest');
      const guest = vmid(vmidField(req.vmid, 'vmid'));
      return empty(hostUnshareGuest(s, guest, u64Operand(req.gfn, 'gfn'), u64Operand(req.nrPages, 'nr_pages')));
    }),
    hostDonateGuest: unary((req, call) => {
      allowed(call, 'HostDonateGuest');
      const guest = vmid(vmidField(req.vmid, 'vmid'));
      return empty(hostDonateGuest(s, guest, u64Operand(req.pfn, 'pfn'), u64Operand(req.gfn, 'gfn')));
    }),
    guestShareHost: unary((req, call) => {
      const guest = vmid(callerVmid(call));
      return empty(guestShareHost(s, guest, u64Operand(req.gfn, 'gfn')));
    }),
    hostReclaimPageGuest: unary((req, call) => {
      allowed(call, 'HostReclaimPageGuest');
      const guest = vmid(vmidField(req.vmid, 'vmid'));
      return empty(hostReclaimPageGuest(s, guest, u64Operand(req.gfn, 'gfn')));
    }),

    // ---- Grants ----
    createGrant: unary((req, call) => {
      const owner = vmid(callerVmid(call));
      const type = toGrantType(req.type, 'type');
      const ranges = toFrameRanges(req.ranges, 'ranges');
      const acl = req.acl.map((e, i) => ({
        vmid: vmid(vmidField(e.vmid, `acl[${i}].vmid`)),
        perms: toPerms(e.rights, `acl[${i}].rights`),
      }));
      const memoryType = toGrantMemoryType(req.memoryType, 'memory_type');
      return encode(createGrant(s, { owner, type, ranges, acl, ...(memoryType === undefined ? {} : { memoryType }) }), (v) => ({
        grantId: u64(v.grantId, 'grantId'),
        physRuns: physRunsOut(v.physRuns),
      }));
    }),
    appendGrant: unary((req, call) => {
      const owner = vmid(callerVmid(call));
      const grantId = grantIdField(req.grantId, 'grant_id');
      return encode(appendGrant(s, grantId, owner, toFrameRanges(req.ranges, 'ranges')), (v) => ({
        frames: u64(v.frames, 'frames'),
        physRuns: physRunsOut(v.physRuns),
      }));
    }),
    mapGrant: unary((req, call) => {
      const borrower = vmid(callerVmid(call));
      const grantId = grantIdField(req.grantId, 'grant_id');
      const perms = toPerms(req.rights, 'rights');
      return empty(mapGrant(s, { grantId, borrower, perms, ranges: toFrameRanges(req.ipaRanges, 'ipa_ranges') }));
    }),
    unmapGrant: unary((req, call) => {
      const borrower = vmid(callerVmid(call));
      return empty(unmapGrant(s, grantIdField(req.grantId, 'grant_id'), borrower));
    }),
    destroyGrant: unary((req, call) => {
      const owner = vmid(callerVmid(call));
      return empty(destroyGrant(s, grantIdField(req.grantId, 'grant_id'), owner));
    }),

    // ---- RMI ----
    granuleDelegate: unary((req, call) => {
      allowed(call, 'GranuleDelegate');
      return empty(granuleDelegate(s, u64Operand(req.addr, 'addr')));
    }),
    granuleUndelegate: unary((req, call) => {
      allowed(call, 'GranuleUndelegate');
      return empty(granuleUndelegate(s, u64Operand(req.addr, 'addr')));
    }),
    realmCreate: unary((req, call) => {
      allowed(call, 'RealmCreate');
      const rd = u64Operand(req.rd, 'rd');
      const p = required(req.params, 'params');
      // hash_algorithm and vmid are the domain's to validate (§B3: RMI_ERROR_INPUT), not shape.
      const hash = toHashAlgorithm(p.hashAlgorithm);
      const params = {
        s2sz: p.s2sz,
        rttLevelStart: p.rttLevelStart,
        rttNumStart: p.rttNumStart,
        rttBase: u64Operand(p.rttBase, 'params.rtt_base'),
        ...(p.vmid !== 0 && { vmid: p.vmid }),
        ...(hash !== undefined && { hashAlgorithm: hash }),
      };
      return empty(realmCreate(s, rd, params));
    }),
    realmActivate: unary((req, call) => {
      allowed(call, 'RealmActivate');
      return empty(realmActivate(s, u64Operand(req.rd, 'rd')));
    }),
    realmDestroy: unary((req, call) => {
      allowed(call, 'RealmDestroy');
      return empty(realmDestroy(s, u64Operand(req.rd, 'rd')));
    }),
    recCreate: unary((req, call) => {
      allowed(call, 'RecCreate');
      return empty(recCreate(s, u64Operand(req.rd, 'rd'), u64Operand(req.rec, 'rec')));
    }),
    recDestroy: unary((req, call) => {
      allowed(call, 'RecDestroy');
      return empty(recDestroy(s, u64Operand(req.rec, 'rec')));
    }),
    rttCreate: unary((req, call) => {
      allowed(call, 'RttCreate');
      const rd = u64Operand(req.rd, 'rd');
      return empty(rttCreate(s, rd, u64Operand(req.rtt, 'rtt'), u64Operand(req.ipa, 'ipa'), req.level));
    }),
    rttDestroy: unary((req, call) => {
      allowed(call, 'RttDestroy');
      return encode(rttDestroy(s, u64Operand(req.rd, 'rd'), u64Operand(req.ipa, 'ipa'), req.level), (o) => ({
        rtt: u64(o.rtt, 'rtt'),
        top: u64(o.top, 'top'),
      }));
    }),
    rttFold: unary((req, call) => {
      allowed(call, 'RttFold');
      return encode(rttFold(s, u64Operand(req.rd, 'rd'), u64Operand(req.ipa, 'ipa'), req.level), (o) => ({ rtt: u64(o.rtt, 'rtt') }));
    }),
    rttReadEntry: unary((req, call) => {
      allowed(call, 'RttReadEntry');
      return encode(rttReadEntry(s, u64Operand(req.rd, 'rd'), u64Operand(req.ipa, 'ipa'), req.level), (o) => ({
        walkLevel: o.walkLevel,
        state: fromRttState(o.state),
        ripas: fromRipas(o.ripas),
        desc: u64(o.desc, 'desc'),
      }));
    }),
    dataCreate: unary((req, call) => {
      allowed(call, 'DataCreate');
      const rd = u64Operand(req.rd, 'rd');
      const data = u64Operand(req.data, 'data');
      const ipa = u64Operand(req.ipa, 'ipa');
      const src = u64Operand(req.src, 'src');
      return empty(dataCreate(s, rd, data, ipa, src, u64Register(req.flags, 'flags')));
    }),
    dataCreateUnknown: unary((req, call) => {
      allowed(call, 'DataCreateUnknown');
      return empty(dataCreateUnknown(s, u64Operand(req.rd, 'rd'), u64Operand(req.data, 'data'), u64Operand(req.ipa, 'ipa')));
    }),
    dataDestroy: unary((req, call) => {
      allowed(call, 'DataDestroy');
      return encode(dataDestroy(s, u64Operand(req.rd, 'rd'), u64Operand(req.ipa, 'ipa')), (o) => ({
        data: u64(o.data, 'data'),
        top: u64(o.top, 'top'),
      }));
    }),
    rttInitRipas: unary((req, call) => {
      allowed(call, 'RttInitRipas');
      const rd = u64Operand(req.rd, 'rd');
      return encode(rttInitRipas(s, rd, u64Operand(req.base, 'base'), u64Operand(req.top, 'top')), (o) => ({ progress: u64(o.top, 'top') }));
    }),
    rttSetRipas: unary((req, call) => {
      allowed(call, 'RttSetRipas');
      const rd = u64Operand(req.rd, 'rd');
      const rec = u64Operand(req.rec, 'rec');
      return encode(rttSetRipas(s, rd, rec, u64Operand(req.base, 'base'), u64Operand(req.top, 'top')), (o) => ({
        progress: u64(o.top, 'top'),
      }));
    }),
    recRequestRipasChange: unary((req, call) => {
      allowed(call, 'RecRequestRipasChange');
      const rec = u64Operand(req.rec, 'rec');
      const base = u64Operand(req.base, 'base');
      const top = u64Operand(req.top, 'top');
      return empty(recRequestRipasChange(s, rec, base, top, toRipas(req.ripas, 'ripas'), req.changeDestroyed));
    }),
    rttMapUnprotected: unary((req, call) => {
      allowed(call, 'RttMapUnprotected');
      const rd = u64Operand(req.rd, 'rd');
      const ipa = u64Operand(req.ipa, 'ipa');
      return empty(rttMapUnprotected(s, rd, ipa, req.level, u64Register(req.desc, 'desc')));
    }),
    rttUnmapUnprotected: unary((req, call) => {
      allowed(call, 'RttUnmapUnprotected');
      return encode(rttUnmapUnprotected(s, u64Operand(req.rd, 'rd'), u64Operand(req.ipa, 'ipa'), req.level), (o) => ({
        top: u64(o.top, 'top'),
      }));
    }),

    // ---- Queries ----
    translate: unary((req, call) => {
      callerVmid(call);
      const space = vmid(vmidField(req.vmid, 'vmid'));
      return encode(translate(s, space, addressField(req.ipa, 'ipa')), (t) => ({
        pa: u64(t.pa, 'pa'),
        level: t.level,
        perms: fromPerms(t.perms),
        state: fromPageState(t.state),
      }));
    }),
    readEntry: unary((req, call) => {
      callerVmid(call);
      const space = vmid(vmidField(req.vmid, 'vmid'));
      return encode(readEntry(s, space, addressField(req.ipa, 'ipa')), (e) => ({
        level: e.level,
        sizeBytes: u64(e.sizeBytes, 'sizeBytes'),
        valid: e.valid,
        state: fromPageState(e.state),
        outputAddress: u64(e.outputAddress, 'outputAddress'),
        perms: fromPerms(e.perms),
        device: e.device,
        raw: u64(e.descriptor, 'descriptor'),
      }));
    }),
    ownershipMap: unary((req, call) => {
      callerVmid(call);
      const base = frameField(req.base, 'base');
      const count = frameField(req.count, 'count');
      const runsMax = req.runsMax === 0 ? OWNERSHIP_RUNS_MAX : Math.min(req.runsMax, OWNERSHIP_RUNS_MAX);
      return encode(ownershipMap(s, base, count, runsMax), (m) => ({
        runs: m.runs.map((r) => ({
          base: u64(r.base, 'base'),
          count: u64(r.count, 'count'),
          ownerVmid: r.owner,
          kind: fromMemoryKind(r.kind),
          hostState: fromPageState(r.host),
          hypState: fromPageState(r.hyp),
          granuleState: fromGranuleState(r.rmi),
          grantId: u64(r.grant, 'grant'),
          pins: r.pins,
          guestShares: r.guestShares,
          hypUse: fromHypUse(r.hypUse),
        })),
        ...(m.next !== undefined && { nextBase: u64(m.next, 'next') }),
      }));
    }),
    addressSpaceMap: unary((req, call) => {
      callerVmid(call);
      const space = vmid(vmidField(req.vmid, 'vmid'));
      const runsMax = req.runsMax === 0 ? OWNERSHIP_RUNS_MAX : Math.min(req.runsMax, OWNERSHIP_RUNS_MAX);
      return encode(addressSpaceMap(s, space, frameField(req.base, 'base'), frameField(req.count, 'count'), runsMax), (m) => ({
        runs: m.runs.map((r) => ({
          base: u64(r.base, 'base'),
          count: u64(r.count, 'count'),
          state: fromPageState(r.state),
          outputFrame: u64(r.outputFrame, 'outputFrame'),
          perms: fromPerms(r.perms),
          device: r.device,
          level: r.level,
        })),
        ...(m.next !== undefined && { nextBase: u64(m.next, 'next') }),
      }));
    }),
    ownershipCounts: unary((_req, call) => {
      callerVmid(call);
      const c = ownershipCounts(s);
      const byOwner = [...c.byOwner].sort(([a], [b]) => a - b).map(([owner, frames]) => ({ ownerVmid: owner, frames: u64(frames, 'frames') }));
      const byState = [...c.byState]
        .sort(([a], [b]) => a - b)
        .flatMap(([space, states]) =>
          [...states].map(([state, frames]) => ({ vmid: space, state: fromPageState(state), frames: u64(frames, 'frames') })).sort((a, b) => a.state - b.state),
        );
      return { ok: true, value: { byOwner, byState, totalFrames: u64(c.totalFrames, 'totalFrames') } };
    }),
    tablePageCounts: unary((_req, call) => {
      callerVmid(call);
      const spaces = tablePageCounts(s)
        .sort((a, b) => a.vmid - b.vmid)
        .map((t) => ({
          vmid: t.vmid,
          tablePages: u64(t.tablePages, 'tablePages'),
          rootPages: u64(t.rootPages, 'rootPages'),
          poolPages: u64(t.poolPages, 'poolPages'),
        }));
      return { ok: true, value: { spaces, hypReservationPages: u64(hypReservationPages(s), 'hypReservationPages') } };
    }),
    listAddressSpaces: unary((_req, call) => {
      callerVmid(call);
      const spaces = [...s.spaces.values()].sort((a, b) => a.vmid - b.vmid).map((a) => ({ vmid: a.vmid, ipaBits: a.ipaBits }));
      return { ok: true, value: { spaces } };
    }),
    listGrants: unary((_req, call) => {
      callerVmid(call);
      const asc = (xs: Iterable<number>): number[] => [...xs].sort((a, b) => a - b);
      const grants = [...s.grants.values()]
        .sort((a, b) => a.id - b.id)
        .map((g) => ({
          grantId: BigInt(g.id),
          type: fromGrantType(g.type),
          ownerVmid: g.owner,
          aclVmids: asc(g.acl.map((e) => e.vmid)),
          borrowerVmids: asc(g.borrowers.keys()),
          frames: u64(g.frames, 'frames'),
        }));
      return { ok: true, value: { grants } };
    }),
    listRealms: unary((_req, call) => {
      callerVmid(call);
      const addr = (f: number): bigint => BigInt(f) * BigInt(GRANULE_SIZE);
      const realms = [...s.rmm.realms.values()]
        .sort((a, b) => a.rd - b.rd)
        .map((r) => ({
          rd: addr(r.rd),
          state: r.state,
          ipaBits: r.ipaBits,
          rttLevelStart: r.startLevel,
          rootRtts: r.roots.map((t) => addr(t.frame)),
          recs: [...s.rmm.recs.values()].filter((c) => c.rd === r.rd).map((c) => c.frame).sort((a, b) => a - b).map(addr),
          vmid: r.vmid,
        }));
      return { ok: true, value: { realms } };
    }),
    checkInvariants: unary((_req, call) => {
      callerVmid(call);
      return { ok: true, value: { violations: checkInvariants(s) } };
    }),

    // ---- Admin ----
    reset,
    getMemoryMap: unary((_req, call) => {
      callerVmid(call);
      const c = s.hostCarveout;
      return { ok: true, value: { memoryMap: memoryMapOut(s.config.memory), hypCarveout: { base: BigInt(c.base), count: BigInt(c.count) } } };
    }),
  };
}

