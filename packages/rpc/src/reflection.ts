/**
 * The PackageDefinition @grpc/reflection serves (grpc-ecosystem.md §2.1: it takes a proto-loader
 * definition, since it cannot read ts-proto output), corrected so that strict clients (grpcurl and
 * other Go or C++ reflection clients) accept every descriptor:
 *
 * - `keepCase`: field names stay as written in the .proto (`nr_pages`), as protoc would describe
 *   them; proto-loader's default camelCases them, which changes their JSON names.
 * - map entries: protobufjs (7.x, ext/descriptor) names a map field's entry message after the field
 *   (`Metadata`) where protoc names it `MetadataEntry`; Go's protodesc then refuses the whole file
 *   ("incorrect implicit map entry name"). The entry and the field's type name are renamed.
 * - reserved ranges: protobufjs writes a message's reserved range end inclusive (`reserved 5;` as
 *   5..5); DescriptorProto.ReservedRange.end is exclusive, so strict parsers refuse "5 to 4". Each
 *   end moves up by one (enum reserved ranges are inclusive in the format and stay).
 * - custom options: a file that extends `google.protobuf.*Options` (rm's `message_id`) must depend
 *   on google/protobuf/descriptor.proto, which protobufjs neither lists nor serves: it injects the
 *   extension as a field into its own merged `google_protobuf.proto` instead. That file is replaced
 *   by the real descriptor.proto and the dependency is added.
 */

import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, file_google_protobuf_descriptor, type DescriptorProto } from '@bufbuild/protobuf/wkt';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

/** protoc's map entry name: `field_violations` → `FieldViolationsEntry`. */
export const mapEntryName = (field: string): string =>
  field.replace(/(?:^|_)([a-z0-9])/g, (_m, c: string) => c.toUpperCase()).replace(/_/g, '') + 'Entry';

function fixMapEntries(message: DescriptorProto): void {
  for (const nested of message.nestedType) {
    if (nested.options?.mapEntry) {
      const field = message.field.find((f) => f.typeName === nested.name || f.typeName.endsWith(`.${nested.name}`));
      if (field !== undefined) {
        const name = mapEntryName(field.name);
        field.typeName = field.typeName.slice(0, field.typeName.length - nested.name.length) + name;
        nested.name = name;
      }
    }
    fixMapEntries(nested);
  }
}

function fixReservedRanges(message: DescriptorProto): void {
  for (const r of message.reservedRange) r.end += 1;
  for (const nested of message.nestedType) fixReservedRanges(nested);
}

const DESCRIPTOR_PROTO = file_google_protobuf_descriptor.proto;
const DESCRIPTOR_PROTO_BYTES = Buffer.from(toBinary(FileDescriptorProtoSchema, DESCRIPTOR_PROTO));
const DESCRIPTOR_MESSAGES = new Set(DESCRIPTOR_PROTO.messageType.map((m) => m.name));

function fixFile(bytes: Buffer): Buffer {
  const file = fromBinary(FileDescriptorProtoSchema, bytes);
  // protobufjs's merged google.protobuf file holding only descriptor.proto's types: the real one.
  if (file.package === 'google.protobuf' && file.messageType.every((m) => DESCRIPTOR_MESSAGES.has(m.name))) return DESCRIPTOR_PROTO_BYTES;
  for (const m of file.messageType) {
    fixMapEntries(m);
    fixReservedRanges(m);
  }
  if (file.extension.some((x) => x.extendee.startsWith('.google.protobuf.')) && !file.dependency.includes(DESCRIPTOR_PROTO.name)) {
    file.dependency.push(DESCRIPTOR_PROTO.name);
  }
  return Buffer.from(toBinary(FileDescriptorProtoSchema, file));
}

const hasDescriptors = (entry: object): entry is { fileDescriptorProtos: Buffer[] } =>
  Array.isArray((entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos);

/** grpc.health.v1's own .proto, shipped by grpc-health-check, so reflection lists Health too. */
const HEALTH_PROTO_ROOT = join(dirname(createRequire(import.meta.url).resolve('grpc-health-check/package.json')), 'proto');
const HEALTH_PROTO = 'health/v1/health.proto';

/**
 * Loads `files` (relative to `protoRoot`) and grpc.health.v1 for @grpc/reflection, with the
 * corrections above.
 */
export function reflectionPackageDefinition(protoRoot: string, files: readonly string[]): protoLoader.PackageDefinition {
  const definition = protoLoader.loadSync([...files, HEALTH_PROTO], { includeDirs: [protoRoot, HEALTH_PROTO_ROOT], keepCase: true });
  const fixed = new Map<Buffer, Buffer>();
  for (const entry of Object.values(definition)) {
    if (hasDescriptors(entry)) {
      entry.fileDescriptorProtos = entry.fileDescriptorProtos.map((b) => {
        let f = fixed.get(b);
        if (f === undefined) fixed.set(b, (f = fixFile(b)));
        return f;
      });
    }
  }
  return definition;
}
