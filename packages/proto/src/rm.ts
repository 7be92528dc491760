/**
 * The generated API of the Resource Manager, hypmesh.rm.v1 (ts-proto over proto/hypmesh/rm/v1),
 * as the subpath `@hypmesh/proto/rm`: its message names (AclEntry, ...) follow the Gunyah spec and
 * would clash with the core's in the package root.
 */

export * from './gen/hypmesh/rm/v1/types.js';
export * from './gen/hypmesh/rm/v1/parcel.js';
export * from './gen/hypmesh/rm/v1/vm.js';
export * from './gen/hypmesh/rm/v1/notification.js';
export * from './gen/hypmesh/rm/v1/msgq.js';
export * from './gen/hypmesh/rm/v1/rm_service.js';
export { protobufPackage, protobufFileName } from './gen/hypmesh/rm/v1/rm_service.js';
export type { DeepPartial, Exact, MessageFns } from './gen/hypmesh/rm/v1/types.js';

/** The fully qualified gRPC service name, as reflection and health checks spell it. */
export const RM_SERVICE_NAME = 'hypmesh.rm.v1.RmService';
