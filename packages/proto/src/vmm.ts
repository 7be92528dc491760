/**
 * The generated API of the VM manager, hypmesh.vmm.v1 (ts-proto over proto/hypmesh/vmm/v1), as the
 * subpath `@hypmesh/proto/vmm`, following the RM's (`./rm`).
 */

export * from './gen/hypmesh/vmm/v1/vmm_service.js';
export { protobufPackage } from './gen/hypmesh/vmm/v1/vmm_service.js';

/** The fully qualified gRPC service name, as reflection and health checks spell it. */
export const VMM_SERVICE_NAME = 'hypmesh.vmm.v1.VmmService';
