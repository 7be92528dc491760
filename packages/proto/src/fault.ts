/**
 * The generated fault-injection API, hypmesh.fault.v1 (ts-proto over proto/hypmesh/fault/v1), as the
 * subpath `@hypmesh/proto/fault`, following the RM's (`./rm`) and the VM manager's (`./vmm`).
 */

export * from './gen/hypmesh/fault/v1/fault.js';
export { protobufPackage } from './gen/hypmesh/fault/v1/fault.js';

/** The fully qualified gRPC service name, as reflection and health checks spell it. */
export const FAULT_SERVICE_NAME = 'hypmesh.fault.v1.FaultService';
