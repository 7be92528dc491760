/**
 * Who may call what (issue 11 item 5): ONE table, per service and RPC, of the caller VMIDs and
 * client names allowed. It restates the requireCaller rules the services apply today
 * (services/core/src/handlers.ts CALLERS, the Reset handlers, RM ListVms, VMM ListAllVms; authz.test.ts
 * checks that they agree), so that with mTLS (caller.ts, tls.ts) a server can refuse a call before
 * its handler runs, on an identity the client cannot forge.
 *
 * An RPC missing from the table is refused: nothing is allowed by omission. Rules that depend on a
 * request field stay in the handler (RM ListParcels with all_vms: HLOS only).
 */
import type * as grpc from '@grpc/grpc-js';
import { CORE_SERVICE_NAME } from '@hypmesh/proto';
import { FAULT_SERVICE_NAME } from '@hypmesh/proto/fault';
import { RM_SERVICE_NAME } from '@hypmesh/proto/rm';
import { VMM_SERVICE_NAME } from '@hypmesh/proto/vmm';
import { VMID_DYNAMIC_FIRST, VMID_DYNAMIC_LAST, VMID_HOST, VMID_HYP, VMID_RM } from '@hypmesh/stage2';
import { principalOf, type Principal } from './admission.js';
import type { CallerCall } from './caller.js';
import { fromThrown, permissionDenied } from './status.js';
import type { StatusError } from './status-details.js';

/** A VMID, or `guest`: any dynamically allocated guest VMID (0x80..0xbe, gunyah-rm.md §4.2). */
export type VmidClass = number | 'guest';

/** Who may call one RPC: a caller must match `vmids` and, if given, be one of `clients`. */
export interface AuthzRule {
  readonly vmids: 'any' | readonly VmidClass[];
  readonly clients?: readonly string[];
}

/** Service name → RPC name (as in the proto) → rule. */
export type AuthzTable = Readonly<Record<string, Readonly<Record<string, AuthzRule>>>>;

const ANY: AuthzRule = { vmids: 'any' };
const HOST: AuthzRule = { vmids: [VMID_HOST] };
const HOST_OR_HYP: AuthzRule = { vmids: [VMID_HOST, VMID_HYP] };
// The RM creates and destroys a guest's stage-2 at VM_ALLOCATE / VM_DEALLOCATE (gunyah-rm.md §4.2).
const HOST_OR_RM: AuthzRule = { vmids: [VMID_HOST, VMID_RM] };

/** `rule` for every name. */
const all = (rule: AuthzRule, ...names: string[]): Record<string, AuthzRule> => Object.fromEntries(names.map((n) => [n, rule]));

export const AUTHZ_TABLE: AuthzTable = {
  [CORE_SERVICE_NAME]: {
    CreateAddressSpace: HOST_OR_RM,
    DestroyAddressSpace: HOST_OR_RM,
    ...all(HOST_OR_HYP, 'HypDonateHost', 'HypPinSharedMem', 'HypUnpinSharedMem'),
    ...all(HOST, 'TopUpTablePool', 'DrainTablePool', 'HostShareHyp', 'HostUnshareHyp', 'HostDonateHyp', 'HostShareFfa', 'HostUnshareFfa'),
    ...all(HOST, 'HostShareGuest', 'HostUnshareGuest', 'HostDonateGuest', 'HostReclaimPageGuest'),
    // RMI (stage2-models.md): the host drives the realm's lifecycle.
    ...all(HOST, 'GranuleDelegate', 'GranuleUndelegate', 'RealmCreate', 'RealmActivate', 'RealmDestroy', 'RecCreate', 'RecDestroy'),
    ...all(HOST, 'RttCreate', 'RttDestroy', 'RttFold', 'RttReadEntry', 'DataCreate', 'DataCreateUnknown', 'DataDestroy'),
    ...all(HOST, 'RttInitRipas', 'RttSetRipas', 'RecRequestRipasChange', 'RttMapUnprotected', 'RttUnmapUnprotected'),
    Reset: HOST,
    // Guest calls and grants act as the caller (the domain checks ownership); queries are read-only.
    ...all(ANY, 'GuestShareHost', 'CreateGrant', 'AppendGrant', 'MapGrant', 'UnmapGrant', 'DestroyGrant'),
    ...all(ANY, 'Translate', 'ReadEntry', 'OwnershipMap', 'AddressSpaceMap', 'OwnershipCounts', 'TablePageCounts'),
    ...all(ANY, 'ListAddressSpaces', 'ListGrants', 'ListRealms', 'CheckInvariants', 'GetMemoryMap'),
  },
  [RM_SERVICE_NAME]: {
    ListVms: HOST,
    Reset: HOST,
    WatchNotifications: HOST,
    // Every RM call acts as its caller VM, as a message on that VM's queue would (gunyah-rm.md):
    // the RM's domain decides what that VM may do to which parcel or VM.
    ...all(ANY, 'MemShare', 'MemLend', 'MemDonate', 'MemAppend', 'MemAccept', 'MemRelease', 'MemReclaim', 'MemNotify', 'MemQcomLookupSgl'),
    ...all(ANY, 'VmAllocate', 'VmDeallocate', 'VmStart', 'VmStop', 'VmReset', 'VmConfigImage', 'VmAuthImage', 'VmInit', 'VmGetState'),
    ...all(ANY, 'VmGetHypResources', 'VmGetVmid', 'VmHostGetType', 'VmSetTimeBase', 'VmSetBootContext', 'VmSetFirmwareMem'),
    ...all(ANY, 'VmSetDemandPaging', 'VmSetAddressLayout', 'VmSetStatus', 'VmExit', 'Subscribe', 'Exchange', 'GetStats'),
    ListParcels: ANY, // all_vms: HLOS only, decided in the handler
  },
  [VMM_SERVICE_NAME]: {
    ListAllVms: HOST,
    // Sessions and leases scope everything else (sessions are bound to their opener, vmm sessions.ts).
    ...all(ANY, 'OpenSession', 'OpenLease', 'RenewLease', 'CloseLease', 'ListVms', 'CreateVm', 'MapMem', 'SetDtbConfig'),
    ...all(ANY, 'SetBootContext', 'StartVm', 'StopVm', 'DestroyVm', 'GetVm', 'WatchVm'),
    // Table only (TABLE_ONLY): Reset drops every client's VMs; the handler has no caller rule.
    Reset: HOST,
  },
  // Fault injection (DESIGN.md §7) can crash the service: HOST's tools only. Table only (TABLE_ONLY).
  [FAULT_SERVICE_NAME]: all(HOST, 'Arm', 'Disarm', 'List', 'Events'),
};

/**
 * Rules the table adds to the handlers' own caller checks, so enforced only where the table is
 * (serveGrpc `authz`: with mTLS), where identity cannot be claimed. Without TLS they stay open.
 */
export const TABLE_ONLY: readonly string[] = [`${VMM_SERVICE_NAME}/Reset`, ...['Arm', 'Disarm', 'List', 'Events'].map((m) => `${FAULT_SERVICE_NAME}/${m}`)];

/** The rule for `service`/`method`, undefined when the table has none. */
export function authzRule(service: string, method: string, table: AuthzTable = AUTHZ_TABLE): AuthzRule | undefined {
  const rules = Object.hasOwn(table, service) ? table[service] : undefined;
  return rules !== undefined && Object.hasOwn(rules, method) ? rules[method] : undefined;
}

/** True when the rule lets anyone call, so no identity need be read. */
export const isOpen = (rule: AuthzRule): boolean => rule.vmids === 'any' && rule.clients === undefined;

const vmidMatches = (c: VmidClass, vmid: number): boolean => (c === 'guest' ? vmid >= VMID_DYNAMIC_FIRST && vmid <= VMID_DYNAMIC_LAST : c === vmid);
const hex = (v: number): string => `0x${v.toString(16)}`;
const describe = (rule: AuthzRule): string =>
  [
    rule.vmids === 'any' ? 'any VMID' : `VMID ${rule.vmids.map((c) => (c === 'guest' ? 'any guest' : hex(c))).join(' or ')}`,
    ...(rule.clients === undefined ? [] : [`client ${rule.clients.join(' or ')}`]),
  ].join(' as ');

/** Undefined if `who` may call `service`/`method`, else PERMISSION_DENIED naming the rule and the caller. */
export function authorize(service: string, method: string, who: Principal, table: AuthzTable = AUTHZ_TABLE): StatusError | undefined {
  const rule = authzRule(service, method, table);
  if (rule === undefined) return permissionDenied(`${service}/${method} is not in the authorisation table: no caller may call it`);
  const vmidOk = rule.vmids === 'any' || rule.vmids.some((c) => vmidMatches(c, who.vmid));
  const clientOk = rule.clients === undefined || rule.clients.includes(who.client);
  if (vmidOk && clientOk) return undefined;
  return permissionDenied(`${method} may be called by ${describe(rule)} only; caller is VMID ${hex(who.vmid)} as client ${who.client}`);
}

type Handler = (call: never, callback?: never) => void;

/**
 * `implementation` with the table checked before every method of `definition` that is not open to
 * all (serveGrpc's `authz` option). A refusal, or an identity that cannot be read (caller.ts), ends
 * the call with that status; the handler does not run.
 */
export function guardAuthz(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, table: AuthzTable = AUTHZ_TABLE): grpc.UntypedServiceImplementation {
  const wrapped: Record<string, Handler> = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name] as Handler | undefined;
    if (handler === undefined) continue;
    const slash = method.path.lastIndexOf('/');
    const service = method.path.slice(1, slash);
    const rpc = method.path.slice(slash + 1);
    const rule = authzRule(service, rpc, table);
    if (rule !== undefined && isOpen(rule)) continue;
    const refusal = (call: CallerCall): StatusError | undefined => {
      try {
        return authorize(service, rpc, principalOf(call), table);
      } catch (e) {
        return fromThrown(e);
      }
    };
    wrapped[name] = (
      !method.requestStream && !method.responseStream
        ? (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
            const refused = refusal(call);
            if (refused !== undefined) return callback(refused);
            (handler as unknown as grpc.handleUnaryCall<unknown, unknown>)(call, callback);
          }
        : (call: grpc.ServerWritableStream<unknown, unknown>) => {
            const refused = refusal(call);
            if (refused !== undefined) return void call.emit('error', refused);
            (handler as unknown as (c: typeof call) => void)(call);
          }
    ) as unknown as Handler;
  }
  return { ...implementation, ...wrapped } as grpc.UntypedServiceImplementation;
}
