import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { CORE_PROTO_FILES, PROTO_ROOT } from '@hypmesh/proto';
import { describe, expect, test } from 'vitest';
import { mapEntryName, reflectionPackageDefinition } from './reflection.js';

describe('reflection descriptors', () => {
  test.each([
    ['metadata', 'MetadataEntry'],
    ['field_violations', 'FieldViolationsEntry'],
    ['x2_top', 'X2TopEntry'],
  ])('map entry of %s is %s (protoc naming)', (field, entry) => {
    expect(mapEntryName(field)).toBe(entry);
  });

  const definition = reflectionPackageDefinition(PROTO_ROOT, CORE_PROTO_FILES);
  const messageOf = (typeName: string, message: string) => {
    const entry = definition[typeName] as { fileDescriptorProtos: Buffer[] };
    const files = entry.fileDescriptorProtos.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    return files.flatMap((f) => f.messageType).find((m) => m.name === message);
  };

  test('ErrorInfo.metadata is a MetadataEntry map, as Go reflection clients require', () => {
    const info = messageOf('google.rpc.ErrorInfo', 'ErrorInfo')!;
    expect(info.nestedType.map((n) => n.name)).toEqual(['MetadataEntry']);
    expect(info.field.find((f) => f.name === 'metadata')?.typeName).toMatch(/MetadataEntry$/);
  });

  test('field names keep their .proto spelling', () => {
    const req = messageOf('hypmesh.core.v1.HostDonateHypRequest', 'HostDonateHypRequest')!;
    expect(req.field.map((f) => f.name)).toEqual(['pfn', 'nr_pages']);
  });

  test('CoreService is described', () => {
    expect(definition['hypmesh.core.v1.CoreService']).toBeDefined();
  });
});
