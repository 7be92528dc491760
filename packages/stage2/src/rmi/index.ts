/**
 * Arm CCA RMI, stage2-models.md §B: the RMM's granule, realm, REC, RTT and DATA commands, each
 * returning `Result<Outputs, RmiError>` with the status and index of §B1, the RMM's state and its
 * invariants, and the KVM host-side walks over them (seed 004).
 */
export * from './status.js';
export * from './rtt-entry.js';
export { RmmState, Rtt, NO_RIPAS_REQUEST, type Realm, type RealmState, type Rec, type RipasRequest, type HashAlgorithm } from './rmm-state.js';
export type { Outputs, NoOutputs } from './lookup.js';
export { addrInPar, realmIpaSize, rttWalk, skipNonLive, type RttWalk } from './rtt-walk.js';
export * from './granule.js';
export * from './realm.js';
export * from './rec.js';
export * from './rtt.js';
export * from './data.js';
export * from './ripas.js';
export * from './unprotected.js';
export * from './invariants.js';
export * from './kvm-host.js';
