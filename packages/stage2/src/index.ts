/**
 * @hypmesh/stage2: the stage-2 core (DESIGN.md §2). Pure domain logic, no I/O.
 * Every mutation is a function of the core state `s` returning Result<T, DomainError>.
 */
export * from './types.js';
export * from './result.js';
export * from './errors.js';
export * from './pkvm/errno.js';
export * from './rmi/index.js';
export { Stage2, createStage2, DEFAULT_STAGE2_CONFIG, BOOT_GENERATION_MAX, GRANT_IDS_PER_GENERATION, grantGeneration, type Stage2Config } from './stage2.js';
export { DEFAULT_MEMORY_CONFIG, memoryConfigProblems, type MemoryConfig, type MemoryRegion } from './memory/physical-memory.js';
export { formatMemorySpec, parseBytes, parseMemoryJson, parseMemorySpec } from './memory/memory-map.js';
export type { GranuleMeta, PageState, MemoryKind, RmiGranuleState, HypUse } from './memory/granule.js';
export type { ViewState } from './views.js';
export * from './pkvm/transitions.js';
export * from './spaces.js';
export {
  createGrant,
  appendGrant,
  mapGrant,
  unmapGrant,
  destroyGrant,
  GRANT_TYPES,
  GRANTS_MAX,
  GRANT_RANGES_MAX,
  GRANT_ACL_MAX,
  GRANT_MEMORY_TYPES,
  physicalRuns,
  type CreatedGrant,
  type GrantMemoryType,
  type Grant,
  type GrantType,
  type AclEntry,
  type CreateGrantArgs,
  type MapGrantArgs,
} from './grant/grant.js';
export * from './queries.js';
export { checkInvariants } from './invariants.js';
export * from './s2tt/geometry.js';
export { snapshot } from './snapshot.js';
export { coreImage, restoreCore } from './image.js';
export type { VmProtection } from './address-space.js';
export {
  HYP_RESERVATION_PAGES,
  HYP_SPACE_IPA_BITS,
  HYP_SPACE_POOL_PAGES,
  SPACE_CREATORS,
  type SpaceCreator,
  type TablePageSource,
} from './hyp-reservation.js';
