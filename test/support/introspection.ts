/**
 * The standard day-2 services every hypmesh server carries (packages/rpc/src/server.ts), called as
 * an outside client would, with no hypmesh code: grpc.reflection.v1 ServerReflectionInfo (the .proto
 * @grpc/reflection ships, loaded by @grpc/proto-loader, as grpcurl's reflection client speaks it)
 * and grpc.health.v1 Health/Check (the .proto grpc-health-check ships).
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { create, createFileRegistry, fromBinary, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type DescriptorProto, type FieldDescriptorProto, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const require = createRequire(import.meta.url);
const packageDir = (name: string): string => dirname(require.resolve(`${name}/package.json`));
const REFLECTION_PROTO = join(packageDir('@grpc/reflection'), 'build/proto/grpc/reflection/v1/reflection.proto');
const HEALTH_PROTO = join(packageDir('grpc-health-check'), 'proto/health/v1/health.proto');
export const CALL_TIMEOUT_MS = 10_000;

const LOADER_OPTIONS: protoLoader.Options = { longs: String, enums: String, defaults: false, oneofs: true };

interface ServiceConstructor {
  new (address: string, credentials: grpc.ChannelCredentials): grpc.Client;
}
function serviceClient(protoFile: string, fullName: string, address: string): grpc.Client {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, LOADER_OPTIONS));
  const ctor = fullName.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], pkg) as ServiceConstructor;
  return new ctor(address, grpc.credentials.createInsecure());
}

/** grpc.reflection.v1.ServerReflectionResponse, as proto-loader decodes it (oneofs named). */
interface ReflectionResponse {
  messageResponse: 'listServicesResponse' | 'fileDescriptorResponse' | 'errorResponse' | 'allExtensionNumbersResponse';
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** A reflection client: each request on its own ServerReflectionInfo stream, one answer each. */
export class Reflection {
  private readonly client: grpc.Client;

  constructor(address: string) {
    this.client = serviceClient(REFLECTION_PROTO, 'grpc.reflection.v1.ServerReflection', address);
  }

  private ask(request: object): Promise<ReflectionResponse> {
    const method = (this.client as unknown as Record<string, (opts: grpc.CallOptions) => grpc.ClientDuplexStream<object, ReflectionResponse>>)['ServerReflectionInfo']!;
    const call = method.call(this.client, { deadline: Date.now() + CALL_TIMEOUT_MS });
    return new Promise((resolve, reject) => {
      call.once('data', (r: ReflectionResponse) => {
        resolve(r);
        call.end();
      });
      call.once('error', reject);
      call.write(request);
    });
  }

  /** list_services: the fully qualified names of every service the server offers. */
  async listServices(): Promise<string[]> {
    const r = await this.ask({ listServices: '' });
    if (r.listServicesResponse === undefined) throw new Error(`list_services answered ${JSON.stringify(r)}`);
    return r.listServicesResponse.service.map((s) => s.name);
  }

  /**
   * file_containing_symbol, then every dependency the answer names but leaves out (file_by_filename),
   * as a reflection client resolves a service; the files are then checked for what Go's protodesc
   * (grpcurl) refuses and @bufbuild/protobuf does not check (rangeProblems), and linked into one
   * registry, which fails on any name that does not resolve.
   */
  async resolve(symbol: string): Promise<FileRegistry> {
    const files = new Map<string, FileDescriptorProto>();
    const add = (r: ReflectionResponse, asked: string): void => {
      if (r.fileDescriptorResponse === undefined) throw new Error(`${asked} answered ${JSON.stringify(r.errorResponse ?? r)}`);
      for (const b of r.fileDescriptorResponse.fileDescriptorProto) {
        const f = fromBinary(FileDescriptorProtoSchema, b);
        files.set(f.name, f);
      }
    };
    add(await this.ask({ fileContainingSymbol: symbol }), `file_containing_symbol ${symbol}`);
    for (let missing = missingDeps(files); missing.length > 0; missing = missingDeps(files)) {
      for (const name of missing) add(await this.ask({ fileByFilename: name }), `file_by_filename ${name}`);
    }
    const problems = [...files.values()].flatMap(rangeProblems);
    if (problems.length > 0) throw new Error(`invalid descriptors: ${problems.join('; ')}`);
    qualifyTypeNames([...files.values()]);
    return createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }));
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Reserved and extension ranges whose exclusive end is not above their start ("reserved ranges has
 * invalid range: 5 to 4" in Go, which prints the end inclusive): the checks Go's protodesc makes
 * that @bufbuild/protobuf's registry leaves out.
 */
function rangeProblems(file: FileDescriptorProto): string[] {
  const out: string[] = [];
  const visit = (ms: DescriptorProto[], scope: string): void => {
    for (const m of ms) {
      const name = `${scope}.${m.name}`;
      for (const r of [...m.reservedRange, ...m.extensionRange]) if (!(r.start < r.end)) out.push(`${name}: range [${r.start}, ${r.end}) is empty`);
      visit(m.nestedType, name);
    }
  };
  visit(file.messageType, file.package);
  return out;
}

/**
 * Makes every relative type name fully qualified, as a protoc-built pool or Go's protodesc does when
 * it links: descriptor.proto allows `BindMode` for `.hypmesh.vmm.v1.BindMode` ("C++-like scoping
 * rules", innermost scope first), and protobufjs, which @grpc/reflection serves from, writes them
 * so; @bufbuild/protobuf's registry takes fully qualified names only. Nothing else is changed, so
 * a descriptor a strict client refuses (a bad reserved range, an extendee no dependency declares)
 * still fails to link.
 */
function qualifyTypeNames(files: FileDescriptorProto[]): void {
  const known = new Set<string>();
  const collect = (scope: string, messages: DescriptorProto[], enums: { name: string }[]): void => {
    for (const e of enums) known.add(`${scope}.${e.name}`);
    for (const m of messages) {
      known.add(`${scope}.${m.name}`);
      collect(`${scope}.${m.name}`, m.nestedType, m.enumType);
    }
  };
  const scopeOf = (f: FileDescriptorProto): string => (f.package ? `.${f.package}` : '');
  for (const f of files) collect(scopeOf(f), f.messageType, f.enumType);
  const qualify = (name: string, scope: string): string => {
    if (name === '' || name.startsWith('.')) return name;
    for (let s = scope; ; s = s.slice(0, Math.max(0, s.lastIndexOf('.')))) {
      if (known.has(`${s}.${name}`)) return `${s}.${name}`;
      if (s === '') return name; // left as is: the registry reports it
    }
  };
  const fields = (fs: FieldDescriptorProto[], scope: string): void => {
    for (const f of fs) {
      f.typeName = qualify(f.typeName, scope);
      f.extendee = qualify(f.extendee, scope);
    }
  };
  const messages = (ms: DescriptorProto[], scope: string): void => {
    for (const m of ms) {
      const inner = `${scope}.${m.name}`;
      fields(m.field, inner);
      fields(m.extension, inner);
      messages(m.nestedType, inner);
    }
  };
  for (const f of files) {
    const scope = scopeOf(f);
    messages(f.messageType, scope);
    fields(f.extension, scope);
    for (const svc of f.service) {
      for (const m of svc.method) {
        m.inputType = qualify(m.inputType, scope);
        m.outputType = qualify(m.outputType, scope);
      }
    }
  }
}

/** The files with every file after the ones it depends on (a FileDescriptorSet links in order). */
function dependenciesFirst(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const out: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (f: FileDescriptorProto): void => {
    if (placed.has(f.name)) return;
    placed.add(f.name);
    for (const d of f.dependency) {
      const dep = files.get(d);
      if (dep !== undefined) place(dep);
    }
    out.push(f);
  };
  for (const f of files.values()) place(f);
  return out;
}

function missingDeps(files: Map<string, FileDescriptorProto>): string[] {
  return [...new Set([...files.values()].flatMap((f) => f.dependency))].filter((d) => !files.has(d));
}

/** grpc.health.v1 Health/Check of `service` ('' is the whole server): the status name (SERVING, …; an absent field is UNKNOWN, 0). */
export function healthCheck(address: string, service: string): Promise<string> {
  const client = serviceClient(HEALTH_PROTO, 'grpc.health.v1.Health', address);
  const check = (client as unknown as Record<string, (req: object, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void) => void>)['Check']!;
  return new Promise<string>((resolve, reject) =>
    check.call(client, { service }, { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, r) => (e ? reject(e) : resolve(r?.status ?? 'UNKNOWN'))),
  ).finally(() => client.close());
}
