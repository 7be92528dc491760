/**
 * Proto ↔ domain encodings of the core API that are more than a field copy: access-right bits,
 * enums, frame ranges. Pure; shape checks throw INVALID_ARGUMENT naming the field (@hypmesh/rpc).
 *
 * Rights. The proto and the domain both use the real encodings, Linux `enum kvm_pgtable_prot` and
 * Gunyah's ACL rights byte (X = 1, W = 2, R = 4, types.proto `Right`, stage2 PERM_*); toPerms copies
 * them, and the domain refuses bits it does not allow (open values reach the domain).
 *
 * Open enums. A non-zero enum value this build does not know reaches the domain as its number, so
 * the domain answers it as the real call would (RMI_ERROR_INPUT with its rule, §B3); only
 * UNSPECIFIED (the field is absent) is a shape error, where the field is required.
 */

import {
  FrameRange,
  GrantMemoryType as ProtoGrantMemoryType,
  GrantType as ProtoGrantType,
  GranuleState,
  HypUse as ProtoHypUse,
  MemoryKind as ProtoMemoryKind,
  VmProtection as ProtoVmProtection,
  type MemoryMap,
  PageState as ProtoPageState,
  RealmHashAlgorithm,
  Ripas as ProtoRipas,
  RttEntryState,
} from '@hypmesh/proto';
import { enumField, frameField, invalidArgument, openEnumField } from '@hypmesh/rpc';
import {
  RMI_RIPAS,
  RMI_RTT_STATE,
  memoryConfigProblems,
  type MemoryConfig,
  type MemoryRegion,
  type VmProtection,
  pfn,
  type HashAlgorithm,
  type Pfn,
  type Ripas,
  type FrameRange as DomainFrameRange,
  type GrantMemoryType,
  type GrantType,
  type HypUse,
  type MemoryKind,
  type Perms,
  type RmiGranuleState,
  type ViewState,
} from '@hypmesh/stage2';

/**
 * A `rights`/`prot` field (uint32) as domain perms, the same bits, unchecked beyond the proto's
 * width: which bits are allowed is the domain's rule, refused with its errno and rule (§A5
 * `__pkvm_host_share_guest`: prot outside RWX is -EINVAL prot_invalid; grants: acl_rights_invalid,
 * rights_invalid), never as a field-level BadRequest.
 */
export function toPerms(rights: number, field: string): Perms {
  if (!Number.isInteger(rights) || rights < 0 || rights > 0xffffffff) throw invalidArgument(field, `${String(rights)} is not a uint32`);
  return rights;
}

/** Domain perms as Right bits (the same bits). */
export const fromPerms = (perms: Perms): number => perms;

/** Frame ranges of a request: each base and count a frame number (below 2^40). */
export function toFrameRanges(list: readonly FrameRange[], field: string): DomainFrameRange<number>[] {
  return list.map((r, i) => ({ base: frameField(r.base, `${field}[${i}].base`), count: frameField(r.count, `${field}[${i}].count`) }));
}

/** Physical frame ranges (PFNs) of a request. */
export const toPfnRanges = (list: readonly FrameRange[], field: string): DomainFrameRange<Pfn>[] =>
  toFrameRanges(list, field).map((r) => ({ base: pfn(r.base), count: r.count }));

const GRANT_TYPES = new Map<number, GrantType>([
  [ProtoGrantType.GRANT_TYPE_SHARE, 'SHARE'],
  [ProtoGrantType.GRANT_TYPE_LEND, 'LEND'],
  [ProtoGrantType.GRANT_TYPE_DONATE, 'DONATE'],
]);

export const toGrantType = (t: ProtoGrantType, field: string): GrantType => enumField(t, GRANT_TYPES, field);

const GRANT_TYPES_OUT = { SHARE: ProtoGrantType.GRANT_TYPE_SHARE, LEND: ProtoGrantType.GRANT_TYPE_LEND, DONATE: ProtoGrantType.GRANT_TYPE_DONATE } as const satisfies Record<GrantType, ProtoGrantType>;

/** A domain grant type as the proto enum. */
export const fromGrantType = (t: GrantType): ProtoGrantType => GRANT_TYPES_OUT[t];

const GRANT_MEMORY_TYPES = new Map<number, GrantMemoryType>([
  [ProtoGrantMemoryType.GRANT_MEMORY_TYPE_NORMAL, 'NORMAL'],
  [ProtoGrantMemoryType.GRANT_MEMORY_TYPE_DEVICE, 'DEVICE'],
]);

/** UNSPECIFIED (0) is "any memory" (grant.proto GrantMemoryType), so it maps to undefined. */
export const toGrantMemoryType = (t: ProtoGrantMemoryType, field: string): GrantMemoryType | undefined =>
  t === ProtoGrantMemoryType.GRANT_MEMORY_TYPE_UNSPECIFIED ? undefined : enumField(t, GRANT_MEMORY_TYPES, field);

const PAGE_STATES = {
  OWNED: ProtoPageState.PAGE_STATE_OWNED,
  SHARED_OWNED: ProtoPageState.PAGE_STATE_SHARED_OWNED,
  SHARED_BORROWED: ProtoPageState.PAGE_STATE_SHARED_BORROWED,
  NOPAGE: ProtoPageState.PAGE_STATE_NOPAGE,
  LENT: ProtoPageState.PAGE_STATE_LENT,
} as const satisfies Record<ViewState, ProtoPageState>;

export const fromPageState = (s: ViewState): ProtoPageState => PAGE_STATES[s];

const MEMORY_KINDS = {
  RAM: ProtoMemoryKind.MEMORY_KIND_RAM,
  MMIO: ProtoMemoryKind.MEMORY_KIND_MMIO,
} as const satisfies Record<MemoryKind, ProtoMemoryKind>;

export const fromMemoryKind = (k: MemoryKind): ProtoMemoryKind => MEMORY_KINDS[k];

const GRANULE_STATES = {
  NS: GranuleState.GRANULE_STATE_NS,
  DELEGATED: GranuleState.GRANULE_STATE_DELEGATED,
  RD: GranuleState.GRANULE_STATE_RD,
  REC: GranuleState.GRANULE_STATE_REC,
  DATA: GranuleState.GRANULE_STATE_DATA,
  RTT: GranuleState.GRANULE_STATE_RTT,
} as const satisfies Record<RmiGranuleState, GranuleState>;

export const fromGranuleState = (g: RmiGranuleState): GranuleState => GRANULE_STATES[g];

const HYP_USES = {
  NONE: ProtoHypUse.HYP_USE_NONE,
  STAGE2: ProtoHypUse.HYP_USE_STAGE2,
} as const satisfies Record<HypUse, ProtoHypUse>;

export const fromHypUse = (u: HypUse): ProtoHypUse => HYP_USES[u];

/** RMI_RTT_STATE (x2 of RTT_READ_ENTRY, §B5) → RttEntryState; an unknown number is a domain bug. */
export function fromRttState(state: number): RttEntryState {
  switch (state) {
    case RMI_RTT_STATE.UNASSIGNED:
      return RttEntryState.RTT_ENTRY_STATE_UNASSIGNED;
    case RMI_RTT_STATE.ASSIGNED:
      return RttEntryState.RTT_ENTRY_STATE_ASSIGNED;
    case RMI_RTT_STATE.TABLE:
      return RttEntryState.RTT_ENTRY_STATE_TABLE;
  }
  throw new RangeError(`RTT_READ_ENTRY returned state ${state}, not an RMI_RTT_STATE`);
}

/** RMI_RIPAS (x4 of RTT_READ_ENTRY, §B5) → Ripas; an unknown number is a domain bug. */
export function fromRipas(ripas: number): ProtoRipas {
  switch (ripas) {
    case RMI_RIPAS.EMPTY:
      return ProtoRipas.RIPAS_EMPTY;
    case RMI_RIPAS.RAM:
      return ProtoRipas.RIPAS_RAM;
    case RMI_RIPAS.DESTROYED:
      return ProtoRipas.RIPAS_DESTROYED;
  }
  throw new RangeError(`RTT_READ_ENTRY returned RIPAS ${ripas}, not an RMI_RIPAS`);
}

const RIPAS_NAMES = new Map<number, Ripas>([
  [ProtoRipas.RIPAS_EMPTY, 'EMPTY'],
  [ProtoRipas.RIPAS_RAM, 'RAM'],
  [ProtoRipas.RIPAS_DESTROYED, 'DESTROYED'],
]);

/** A requested RIPAS: a known value's name, an unknown non-zero value as its number (the domain refuses it). */
export const toRipas = (r: ProtoRipas, field: string): Ripas | number => openEnumField(r, RIPAS_NAMES, field);

export const HASH_ALGORITHMS = new Map<number, HashAlgorithm>([
  [RealmHashAlgorithm.REALM_HASH_ALGORITHM_SHA_256, 'SHA_256'],
  [RealmHashAlgorithm.REALM_HASH_ALGORITHM_SHA_512, 'SHA_512'],
]);

/**
 * RmiRealmParams.hash_algo: UNSPECIFIED means SHA-256 (undefined, the domain's default); a known
 * value its name; an unknown value its number, which REALM_CREATE refuses (params_hash_algorithm, §B3).
 */
export const toHashAlgorithm = (h: RealmHashAlgorithm): HashAlgorithm | number | undefined =>
  h === RealmHashAlgorithm.REALM_HASH_ALGORITHM_UNSPECIFIED ? undefined : (HASH_ALGORITHMS.get(h) ?? h);

// ---- Memory map and VM kind (admin.proto, address_space.proto) ----

/** VmProtection → the domain's kind; UNSPECIFIED is ANY (address_space.proto documents the default). */
const PROTECTIONS: ReadonlyMap<number, VmProtection> = new Map([
  [ProtoVmProtection.VM_PROTECTION_UNSPECIFIED, 'ANY'],
  [ProtoVmProtection.VM_PROTECTION_PROTECTED, 'PROTECTED'],
  [ProtoVmProtection.VM_PROTECTION_NON_PROTECTED, 'NON_PROTECTED'],
]);
export const toProtection = (v: ProtoVmProtection, field: string): VmProtection => enumField(v, PROTECTIONS, field);

/** The core's map as the proto reports it: regions sorted by base. */
export function memoryMapOut(c: MemoryConfig): MemoryMap {
  const regions = [
    ...c.ram.map((r) => ({ kind: ProtoMemoryKind.MEMORY_KIND_RAM, base: BigInt(r.base), sizeBytes: BigInt(r.sizeBytes) })),
    ...c.mmio.map((r) => ({ kind: ProtoMemoryKind.MEMORY_KIND_MMIO, base: BigInt(r.base), sizeBytes: BigInt(r.sizeBytes) })),
  ].sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
  return { paBits: c.paBits, regions };
}

/** A proto map as a MemoryConfig, validated as the --memory flag is; every problem in one INVALID_ARGUMENT. */
export function memoryMapIn(m: MemoryMap, field: string): MemoryConfig {
  const problems: string[] = [];
  const config = { paBits: m.paBits, ram: [] as MemoryRegion[], mmio: [] as MemoryRegion[] };
  m.regions.forEach((r, i) => {
    const list = r.kind === ProtoMemoryKind.MEMORY_KIND_RAM ? config.ram : r.kind === ProtoMemoryKind.MEMORY_KIND_MMIO ? config.mmio : undefined;
    if (list === undefined) problems.push(`regions[${i}].kind must be RAM or MMIO`);
    else if (r.base > BigInt(Number.MAX_SAFE_INTEGER) || r.sizeBytes > BigInt(Number.MAX_SAFE_INTEGER)) problems.push(`regions[${i}] beyond 2^53 bytes`);
    else list.push({ base: Number(r.base), sizeBytes: Number(r.sizeBytes) });
  });
  problems.push(...(problems.length === 0 ? memoryConfigProblems(config) : []));
  if (problems.length > 0) throw invalidArgument(field, problems.join('; '));
  return config;
}
