import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary, getExtension, hasExtension, type DescExtension } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { DESCRIPTOR_SET_PATH } from '@hypmesh/proto';
import { describe, expect, test } from 'vitest';
import { filesOfSet, serverDescriptors } from './reflection.js';

const index = serverDescriptors(['hypmesh.rm.v1.RmService', 'grpc.health.v1.Health']);
const files = (a: ReturnType<typeof index.fileByFilename>): FileDescriptorProto[] => {
  if (!('files' in a)) throw new Error(a.notFound);
  return a.files.map((b) => fromBinary(FileDescriptorProtoSchema, b));
};

describe('reflection from the buf-built descriptor set', () => {
  test('filesOfSet gives each file of the set byte for byte', () => {
    const set = readFileSync(DESCRIPTOR_SET_PATH);
    const decoded = fromBinary(FileDescriptorSetSchema, set).file.map((f) => f.name);
    expect(filesOfSet(set).map((b) => fromBinary(FileDescriptorProtoSchema, b).name)).toEqual(decoded);
  });

  test('a service by symbol: its file first, then every import, with the proto comments', () => {
    const [rm, ...imports] = files(index.fileContainingSymbol('hypmesh.rm.v1.RmService'));
    expect(rm!.name).toBe('hypmesh/rm/v1/rm_service.proto');
    expect(imports.map((f) => f.name)).toContain('google/protobuf/descriptor.proto');
    const comments = rm!.sourceCodeInfo?.location.map((l) => l.leadingComments).join('\n') ?? '';
    expect(comments).toContain('MEM_LEND 0x51000012');
  });

  test("the RM's custom option (hypmesh.rm.v1.message_id) survives: MemLend is 0x51000012", () => {
    const all = files(index.fileContainingSymbol('hypmesh.rm.v1.RmService'));
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET_PATH)));
    const messageId = registry.getExtension('hypmesh.rm.v1.message_id') as DescExtension;
    const rmFile = all[0]!;
    const lend = rmFile.service[0]!.method.find((m) => m.name === 'MemLend')!;
    expect(hasExtension(lend.options!, messageId)).toBe(true);
    expect(getExtension(lend.options!, messageId)).toBe(0x51000012);
  });

  test('methods and fields resolve through their parent; unknown symbols are NOT_FOUND answers', () => {
    expect(files(index.fileContainingSymbol('hypmesh.rm.v1.RmService.MemLend'))[0]!.name).toBe('hypmesh/rm/v1/rm_service.proto');
    expect(files(index.fileContainingSymbol('hypmesh.core.v1.HostDonateHypRequest.nr_pages'))[0]!.name).toBe('hypmesh/core/v1/pkvm.proto');
    expect(index.fileContainingSymbol('hypmesh.rm.v1.Nope')).toEqual({ notFound: 'no symbol "hypmesh.rm.v1.Nope"' });
    expect(index.fileByFilename('x.proto')).toEqual({ notFound: 'no file "x.proto"' });
  });

  test('extensions: by number, and all numbers of a type', () => {
    expect(files(index.fileContainingExtension('google.protobuf.MethodOptions', 50001))[0]!.name).toBe('hypmesh/rm/v1/options.proto');
    expect(index.extensionNumbers('google.protobuf.MethodOptions')).toEqual([50001]);
    expect(index.extensionNumbers('no.Such')).toBeUndefined();
  });

  test('map entries and reserved ranges are as protoc writes them (strict clients accept them)', () => {
    const details = files(index.fileByFilename('google/rpc/error_details.proto'))[0]!;
    const info = details.messageType.find((m) => m.name === 'ErrorInfo')!;
    expect(info.nestedType.map((n) => n.name)).toEqual(['MetadataEntry']);
  });

  test('grpc.health.v1 is described too; list_services names only what the server serves', () => {
    expect(files(index.fileContainingSymbol('grpc.health.v1.Health'))[0]!.package).toBe('grpc.health.v1');
    expect(index.services).toEqual(['hypmesh.rm.v1.RmService', 'grpc.health.v1.Health']);
  });
});
