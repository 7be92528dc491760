/**
 * @hypmesh/vmm: the host VM manager domain (DESIGN.md §4). Pure: the RM and the core are ports
 * (ports.ts), with in-process adapters here and gRPC ones in services/vmm.
 */
export * from './vmm-error.js';
export * from './host-pages.js';
export * from './bindings.js';
export * from './ports.js';
export * from './in-process.js';
export * from './clock.js';
export * from './lease.js';
export * from './vm-manager.js';
export * from './restart-sweep.js';
export * from './durable-state.js';
export * from './reconcile.js';
