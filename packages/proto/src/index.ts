/**
 * The generated API (ts-proto over proto/, see buf.gen.yaml) and where its .proto sources live.
 * src/gen/ is rebuilt by `npm run build` and never committed.
 *
 * Every generated file exports its own `protobufPackage`; and the shared helper types repeat in each; the
 * explicit exports below settle those names (core's package and file name).
 */

import { fileURLToPath } from 'node:url';

export * from './gen/google/protobuf/any.js';
export * from './gen/google/rpc/status.js';
export * from './gen/google/rpc/error_details.js';
export * from './gen/hypmesh/common/v1/error_detail.js';
export * from './gen/hypmesh/core/v1/types.js';
export * from './gen/hypmesh/core/v1/address_space.js';
export * from './gen/hypmesh/core/v1/pkvm.js';
export * from './gen/hypmesh/core/v1/grant.js';
export * from './gen/hypmesh/core/v1/rmi.js';
export * from './gen/hypmesh/core/v1/query.js';
export * from './gen/hypmesh/core/v1/admin.js';
export * from './gen/hypmesh/core/v1/core_service.js';
export { protobufPackage, protobufFileName } from './gen/hypmesh/core/v1/core_service.js';
export type { DeepPartial, Exact, MessageFns } from './gen/google/protobuf/any.js';

/** The proto/ directory (the buf module root): the same path from src/ and dist/. */
export const PROTO_ROOT = fileURLToPath(new URL('../../../proto/', import.meta.url));

/**
 * The FileDescriptorSet of proto/ with its imports and source info (comments), as `buf build`
 * writes it (`npm run generate`): what server reflection serves. The same path from src/ and dist/.
 */
export const DESCRIPTOR_SET_PATH = fileURLToPath(new URL('../descriptors/hypmesh.binpb', import.meta.url));

/** grpc.health.v1's descriptors, built the same way from the .proto grpc-health-check ships. */
export const HEALTH_DESCRIPTOR_SET_PATH = fileURLToPath(new URL('../descriptors/health.binpb', import.meta.url));

/** Fully qualified gRPC service names, as reflection and health checks spell them. */
export const CORE_SERVICE_NAME = 'hypmesh.core.v1.CoreService';

/** Type URL prefix of google.protobuf.Any. */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';
