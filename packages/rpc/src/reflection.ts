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
 */

import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, type DescriptorProto } from '@bufbuild/protobuf/wkt';
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

function fixFile(bytes: Buffer): Buffer {
  const file = fromBinary(FileDescriptorProtoSchema, bytes);
  for (const m of file.messageType) fixMapEntries(m);
  return Buffer.from(toBinary(FileDescriptorProtoSchema, file));
}

const hasDescriptors = (entry: object): entry is { fileDescriptorProtos: Buffer[] } =>
  Array.isArray((entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos);

/** Loads `files` (relative to `protoRoot`) for @grpc/reflection, with the corrections above. */
export function reflectionPackageDefinition(protoRoot: string, files: readonly string[]): protoLoader.PackageDefinition {
  const definition = protoLoader.loadSync([...files], { includeDirs: [protoRoot], keepCase: true });
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
