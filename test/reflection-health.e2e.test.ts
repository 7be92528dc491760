/**
 * Issue 4's acceptance, "a reflection client lists the three services; health checks answer
 * SERVING", against the three services as separate processes (test/support/processes.ts), through
 * the standard protos only, as grpcurl or grpc_health_probe would (test/support/introspection.ts):
 *
 * - grpc.reflection.v1 list_services on each server names its hypmesh service (and should name
 *   grpc.health.v1.Health: a known gap, below);
 * - file_containing_symbol for the hypmesh service (and its dependencies by file name) gives
 *   descriptors that a strict client accepts and that link into one registry, where the service and
 *   every RPC's input and output messages resolve (core and RM: known bugs, below);
 * - grpc.health.v1 Health/Check answers SERVING for '' (the whole server) and for the service's name,
 *   and NOT_FOUND for a service the server does not know (the health protocol's rule).
 */

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { healthCheck, Reflection } from './support/introspection.js';
import { Processes, type Addresses } from './support/processes.js';

const processes = new Processes();
let addresses: Addresses;

/**
 * Known server reflection bugs (packages/rpc/src/reflection.ts, protobufjs's descriptors): `grpcurl`
 * is what grpcurl prints for `describe` or any call on that server, `refused` what this client's
 * resolve then throws. Their cases assert the refusal, so they fail once the bug is fixed and the
 * fix must delete the entry here (the case then checks the descriptors as for the VMM).
 */
const REFLECTION_BUGS: Record<'core' | 'rm' | 'vmm', { grpcurl: string; refused: RegExp } | undefined> = {
  // `reserved 5;` (rmi.proto RttSetRipasRequest) is served as [5, 5): protobufjs writes the end
  // inclusive where descriptor.proto's is exclusive.
  core: {
    grpcurl: 'proto: message "hypmesh.core.v1.RttSetRipasRequest" reserved ranges has invalid range: 5 to 4',
    refused: /hypmesh\.core\.v1\.RttSetRipasRequest: range \[5, 5\) is empty/,
  },
  // protobufjs merges a package's files into one synthetic hypmesh_rm_v1.proto with no
  // dependencies, so options.proto's `extend google.protobuf.MethodOptions` names a type no
  // dependency declares (and google/protobuf/descriptor.proto is not served).
  rm: {
    grpcurl: 'proto: extension field "hypmesh.rm.v1.message_id" cannot resolve extendee: "google.protobuf.MethodOptions" not found',
    refused: /extendee \.google\.protobuf\.MethodOptions not found/,
  },
  vmm: undefined,
};

const SERVERS = [
  { server: 'core', service: 'hypmesh.core.v1.CoreService', rpc: 'Translate' },
  { server: 'rm', service: 'hypmesh.rm.v1.RmService', rpc: 'MemLend' },
  { server: 'vmm', service: 'hypmesh.vmm.v1.VmmService', rpc: 'OpenSession' },
] as const;

beforeAll(async () => {
  addresses = await processes.startServices();
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
  expect(processes.bugs()).toEqual([]);
}, 30_000);

describe('reflection and health on each of the three processes', () => {
  test.each(SERVERS)('$server: list_services names $service, and no other hypmesh service', async ({ server, service }) => {
    const reflection = new Reflection(addresses[server]);
    try {
      const names = await reflection.listServices();
      expect(names).toContain(service);
      expect(names.filter((n) => n.startsWith('hypmesh.'))).toEqual([service]);
    } finally {
      reflection.close();
    }
  });

  // Known gap: @grpc/reflection lists only the package definition it was given (the service's own
  // protos), so `grpcurl list` shows neither grpc.health.v1.Health nor reflection itself, though
  // both answer. Remove `.fails` once serveGrpc adds health.proto to the reflection definition.
  test.fails.each(SERVERS)('$server: list_services names grpc.health.v1.Health (known gap: not listed)', async ({ server }) => {
    const reflection = new Reflection(addresses[server]);
    try {
      expect(await reflection.listServices()).toContain('grpc.health.v1.Health');
    } finally {
      reflection.close();
    }
  });

  for (const { server, service, rpc } of SERVERS.filter((s) => REFLECTION_BUGS[s.server] === undefined)) {
    test(`${server}: file_containing_symbol ${service} resolves (descriptors valid and link; ${rpc} and every RPC's messages found)`, async () => {
      const reflection = new Reflection(addresses[server]);
      try {
        const registry = await reflection.resolve(service);
        const described = registry.getService(service);
        expect(described?.typeName).toBe(service);
        expect(described!.methods.map((m) => m.name)).toContain(rpc);
        for (const m of described!.methods) expect([m.input.typeName, m.output.typeName].filter((t) => registry.getMessage(t) === undefined)).toEqual([]);
      } finally {
        reflection.close();
      }
    });
  }

  for (const { server, service } of SERVERS.filter((s) => REFLECTION_BUGS[s.server] !== undefined)) {
    const bug = REFLECTION_BUGS[server]!;
    test(`${server}: file_containing_symbol ${service} is refused as grpcurl refuses it (known bug: ${bug.grpcurl})`, async () => {
      const reflection = new Reflection(addresses[server]);
      try {
        await expect(reflection.resolve(service)).rejects.toThrow(bug.refused);
      } finally {
        reflection.close();
      }
    });
  }

  test.each(SERVERS.flatMap(({ server, service }) => [
    { server, service: '' },
    { server, service },
  ]))("$server: grpc.health.v1 Check '$service' answers SERVING", async ({ server, service }) => {
    expect(await healthCheck(addresses[server], service)).toBe('SERVING');
  });

  test.each(SERVERS)('$server: grpc.health.v1 Check of an unknown service is NOT_FOUND', async ({ server }) => {
    await expect(healthCheck(addresses[server], 'hypmesh.nope.v1.Nope')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});
