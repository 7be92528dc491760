/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) from the real descriptors: the
 * FileDescriptorSet `buf build` writes (packages/proto, `npm run generate`), served byte for byte, so
 * a client sees what protoc would give it: the proto comments (source_code_info), the RM's custom
 * option `(hypmesh.rm.v1.message_id)`, map entries and reserved ranges as written (issue 11 item 4).
 *
 * Why not @grpc/reflection: it takes a proto-loader PackageDefinition and re-encodes every file
 * through protobufjs, which drops source info and unknown fields (so every custom option), and
 * whose descriptors needed hand patches (map entry names, reserved range ends, descriptor.proto) before
 * strict clients such as grpcurl accepted them. The protocol itself is small: list the services,
 * and answer a file, by name or by a symbol or extension it declares, with its imports.
 *
 * grpc.health.v1 is not in the buf module; `npm run generate` builds its set the same way from the
 * .proto grpc-health-check ships.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { create, createFileRegistry, fromBinary, toBinary, type DescFile, type FileRegistry } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DESCRIPTOR_SET_PATH, HEALTH_DESCRIPTOR_SET_PATH } from '@hypmesh/proto';

const require = createRequire(import.meta.url);
const packageDir = (name: string): string => dirname(require.resolve(`${name}/package.json`));
const REFLECTION_PROTOS = {
  v1: join(packageDir('@grpc/reflection'), 'build/proto/grpc/reflection/v1/reflection.proto'),
  v1alpha: join(packageDir('@grpc/reflection'), 'build/proto/grpc/reflection/v1alpha/reflection.proto'),
} as const;

/** The serialized FileDescriptorProtos of a FileDescriptorSet, as written (field 1, repeated). */
export function filesOfSet(set: Uint8Array): Uint8Array[] {
  const reader = new BinaryReader(set);
  const files: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.LengthDelimited) files.push(reader.bytes());
    else reader.skip(wire, field);
  }
  return files;
}

/** What a reflection answer is: the files (serialized), or NOT_FOUND with why. */
export type ReflectionAnswer = { readonly files: readonly Uint8Array[] } | { readonly notFound: string };

/** The descriptors one server describes, indexed for the reflection requests. */
export class DescriptorIndex {
  private readonly bytes = new Map<string, Uint8Array>();
  private readonly registry: FileRegistry;

  /**
   * `files`: serialized FileDescriptorProtos, imports included; `services`: the fully qualified
   * services this server serves (list_services names these only).
   */
  constructor(
    files: readonly Uint8Array[],
    readonly services: readonly string[],
  ) {
    const protos = files.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    protos.forEach((p, i) => this.bytes.set(p.name, files[i]!));
    this.registry = createFileRegistry(create(FileDescriptorSetSchema, { file: protos }));
  }

  /** The file and every file it imports, transitively, the file first. */
  private withImports(file: DescFile): ReflectionAnswer {
    const seen = new Set<string>();
    const order: Uint8Array[] = [];
    const visit = (f: DescFile): void => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      order.push(this.bytes.get(f.proto.name) ?? toBinary(FileDescriptorProtoSchema, f.proto));
      for (const d of f.dependencies) visit(d);
    };
    visit(file);
    return { files: order };
  }

  fileByFilename(name: string): ReflectionAnswer {
    const file = this.registry.getFile(name);
    return file === undefined ? { notFound: `no file ${JSON.stringify(name.slice(0, 200))}` } : this.withImports(file);
  }

  /** A message, enum, service, extension, or a method or field named through its parent. */
  fileContainingSymbol(symbol: string): ReflectionAnswer {
    const direct = this.registry.get(symbol);
    if (direct !== undefined) return this.withImports(direct.file);
    const dot = symbol.lastIndexOf('.');
    const parent = dot < 0 ? undefined : this.registry.get(symbol.slice(0, dot));
    const member = symbol.slice(dot + 1);
    if (parent?.kind === 'service' && parent.methods.some((m) => m.name === member)) return this.withImports(parent.file);
    if (parent?.kind === 'message' && parent.fields.some((f) => f.name === member)) return this.withImports(parent.file);
    return { notFound: `no symbol ${JSON.stringify(symbol.slice(0, 200))}` };
  }

  fileContainingExtension(extendee: string, number: number): ReflectionAnswer {
    const message = this.registry.getMessage(extendee);
    const ext = message === undefined ? undefined : this.registry.getExtensionFor(message, number);
    return ext === undefined ? { notFound: `no extension ${number} of ${JSON.stringify(extendee.slice(0, 200))}` } : this.withImports(ext.file);
  }

  /** The field numbers of every known extension of `extendee`, or undefined if it is not a message. */
  extensionNumbers(extendee: string): number[] | undefined {
    if (this.registry.getMessage(extendee) === undefined) return undefined;
    const numbers: number[] = [];
    for (const t of this.registry) if (t.kind === 'extension' && t.extendee.typeName === extendee) numbers.push(t.number);
    return numbers.sort((a, b) => a - b);
  }
}

/** The descriptor index of a server that serves `services`, from the buf-built set plus grpc.health.v1. */
export function serverDescriptors(services: readonly string[]): DescriptorIndex {
  return new DescriptorIndex([DESCRIPTOR_SET_PATH, HEALTH_DESCRIPTOR_SET_PATH].flatMap((path) => filesOfSet(readFileSync(path))), services);
}

/** ServerReflectionRequest as proto-loader decodes it (oneofs named; both versions have one shape). */
interface ReflectionRequest {
  host: string;
  messageRequest?: 'fileByFilename' | 'fileContainingSymbol' | 'fileContainingExtension' | 'allExtensionNumbersOfType' | 'listServices';
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType: string; extensionNumber: number };
  allExtensionNumbersOfType?: string;
}

function answer(index: DescriptorIndex, request: ReflectionRequest): object {
  const base = { validHost: request.host, originalRequest: request };
  const files = (a: ReflectionAnswer): object =>
    'files' in a ? { ...base, fileDescriptorResponse: { fileDescriptorProto: a.files.map((b) => Buffer.from(b)) } } : { ...base, errorResponse: { errorCode: grpc.status.NOT_FOUND, errorMessage: a.notFound } };
  switch (request.messageRequest) {
    case 'listServices':
      return { ...base, listServicesResponse: { service: index.services.map((name) => ({ name })) } };
    case 'fileByFilename':
      return files(index.fileByFilename(request.fileByFilename ?? ''));
    case 'fileContainingSymbol':
      return files(index.fileContainingSymbol(request.fileContainingSymbol ?? ''));
    case 'fileContainingExtension':
      return files(index.fileContainingExtension(request.fileContainingExtension?.containingType ?? '', request.fileContainingExtension?.extensionNumber ?? 0));
    case 'allExtensionNumbersOfType': {
      const type = request.allExtensionNumbersOfType ?? '';
      const numbers = index.extensionNumbers(type);
      return numbers === undefined
        ? { ...base, errorResponse: { errorCode: grpc.status.NOT_FOUND, errorMessage: `no message ${JSON.stringify(type.slice(0, 200))}` } }
        : { ...base, allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: numbers } };
    }
    default:
      return { ...base, errorResponse: { errorCode: grpc.status.UNIMPLEMENTED, errorMessage: 'unknown reflection request' } };
  }
}

/** Serves grpc.reflection.v1 and v1alpha (grpcurl and older clients ask v1alpha) from `index`. */
export function addReflection(server: grpc.Server, index: DescriptorIndex): void {
  for (const [version, file] of Object.entries(REFLECTION_PROTOS)) {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(file, { longs: String, enums: String, defaults: true, oneofs: true }));
    const service = (pkg['grpc'] as never)['reflection'][version]['ServerReflection'] as grpc.ServiceClientConstructor;
    server.addService(service.service, {
      ServerReflectionInfo: (stream: grpc.ServerDuplexStream<ReflectionRequest, object>) => {
        stream.on('data', (request: ReflectionRequest) => stream.write(answer(index, request)));
        stream.on('end', () => stream.end());
      },
    });
  }
}
