/**
 * @hypmesh/rm: the Gunyah Resource Manager domain (DESIGN.md §3, gunyah-rm.md §3–§4). Pure: the
 * stage-2 effects go through a CoreGrantPort.
 */
export * from './core-port.js';
export * from './core-refusal.js';
export * from './in-process-core.js';
export * from './notify-queue.js';
export * from './rm-outcome.js';
export * from './vm-status.js';
export * from './vmid.js';
export { ResourceManager, type RmNotification, type CallHandler, type CallTable, type PersistPort } from './resource-manager.js';
export { restoreRm, rmDurableState, type RmDurableState } from './durable-state.js';
export { MEM_ENTRIES_PER_MSG_MAX, PARCEL_ADDR_LIMIT, type Parcel, type ParcelState, type TransType } from './parcel.js';
export { resumeResets, vmIpaBits, type Vm } from './vm.js';
export { snapshotRm } from './snapshot.js';
export { settleIntents, type CoreIntent, type CoreOp } from './intents.js';
export { MsgqEndpoint, type MsgqRefusal, type MsgqStats, type RequestHook } from './msgq-endpoint.js';
export { rmInvariants } from './invariants.js';
