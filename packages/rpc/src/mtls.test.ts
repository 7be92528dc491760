/**
 * mTLS end to end on real grpc-js servers (issue 11 item 5): certificates made by
 * scripts/make-test-ca.sh in a temp dir, a VmmService stub served by serveGrpc with `tls` and
 * `authz`, clients with and without certificates.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ListAllVmsResponse, ListVmsResponse, VMM_SERVICE_NAME, VmmServiceClient, VmmServiceService, WatchVmRequest } from '@hypmesh/proto/vmm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CLIENT_KEY, principalOf, type Principal } from './admission.js';
import { AUTHZ_TABLE, type AuthzTable } from './authz.js';
import { CALLER_VMID_KEY } from './caller.js';
import { serveGrpc, type Served } from './server.js';
import { clientCredentials, loadTls, type TlsMaterial } from './tls.js';
import { fromThrown } from './status.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/make-test-ca.sh', import.meta.url));
let dir: string;
const material = (name: string, ca = 'ca'): TlsMaterial => loadTls({ certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile: join(dir, `${ca}.crt`) });

/** Whom the stub's handlers saw, in order (a refused call never reaches them). */
const seen: Principal[] = [];
const handler =
  <Res>(empty: Res) =>
  (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<Res>): void => {
    try {
      seen.push(principalOf(call));
      cb(null, empty);
    } catch (e) {
      cb(fromThrown(e));
    }
  };
const stub = {
  listAllVms: handler(ListAllVmsResponse.fromPartial({})),
  listVms: handler(ListVmsResponse.fromPartial({})),
  // A server stream: one (empty) event as whoever called, then the end.
  watchVm: (call: grpc.ServerWritableStream<unknown, unknown>) => {
    seen.push(principalOf(call));
    call.end();
  },
};

async function serve(tls: TlsMaterial | undefined, authz: AuthzTable = AUTHZ_TABLE): Promise<Served> {
  return serveGrpc({
    address: '127.0.0.1:0',
    serviceName: VMM_SERVICE_NAME,
    register: (s) => s.addService(VmmServiceService, stub as unknown as grpc.UntypedServiceImplementation),
    ...(tls !== undefined && { tls }),
    authz,
  });
}

type Outcome = { code: string; details: string };
function call(client: VmmServiceClient, rpc: 'listAllVms' | 'listVms', headers: Record<string, string> = {}): Promise<Outcome> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) =>
    (client[rpc] as (r: object, md: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null) => void) => void)(
      {},
      md,
      { deadline: Date.now() + 10_000 },
      (e) => resolve(e === null ? { code: 'OK', details: '' } : { code: grpc.status[e.code] as string, details: e.details }),
    ),
  );
}

let tlsServer: Served;
let plainServer: Served;
const clients: VmmServiceClient[] = [];
const tlsClient = (creds: grpc.ChannelCredentials): VmmServiceClient => {
  const c = new VmmServiceClient(`localhost:${tlsServer.port}`, creds);
  clients.push(c);
  return c;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hypmesh-mtls-'));
  execFileSync(SCRIPT, [dir], { stdio: 'ignore' });
  tlsServer = await serve(material('vmm'));
  plainServer = await serve(undefined);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([tlsServer?.shutdown(100), plainServer?.shutdown(100)]);
  rmSync(dir, { recursive: true, force: true });
});

describe('mTLS: who may connect', () => {
  test('no client certificate: refused at the handshake, no handler runs', async () => {
    const before = seen.length;
    const anon = tlsClient(grpc.credentials.createSsl(material('host-vmm').ca));
    expect((await call(anon, 'listVms', { [CALLER_VMID_KEY]: '3' })).code).toBe('UNAVAILABLE');
    expect(seen.length).toBe(before);
  });

  test('a certificate from another CA: refused at the handshake', async () => {
    const before = seen.length;
    const other = material('other-host', 'other-ca');
    // Trusts our server (test CA) but presents a certificate the server's CA did not sign.
    const c = tlsClient(grpc.credentials.createSsl(material('host-vmm').ca, other.key, other.cert));
    expect((await call(c, 'listVms')).code).toBe('UNAVAILABLE');
    expect(seen.length).toBe(before);
  });

  test('a plaintext client cannot reach the mTLS server', async () => {
    const c = tlsClient(grpc.credentials.createInsecure());
    expect((await call(c, 'listVms', { [CALLER_VMID_KEY]: '3' })).code).toBe('UNAVAILABLE');
  });
});

describe('mTLS: identity is the certificate', () => {
  test('with no header, the certificate gives the VMID and client name', async () => {
    const before = seen.length;
    expect(await call(tlsClient(clientCredentials(material('host-vmm'))), 'listAllVms')).toEqual({ code: 'OK', details: '' });
    expect(seen.slice(before)).toEqual([{ vmid: 3, client: 'vmm', key: '3/vmm' }]);
  });

  test('a header that agrees is accepted', async () => {
    const c = tlsClient(clientCredentials(material('host-vmm')));
    expect((await call(c, 'listAllVms', { [CALLER_VMID_KEY]: '3', [CLIENT_KEY]: 'vmm' })).code).toBe('OK');
  });

  test('a guest certificate calling a HOST-only RPC: PERMISSION_DENIED, even claiming HOST in the header', async () => {
    const before = seen.length;
    const guest = tlsClient(clientCredentials(material('guest-128')));
    const plain = await call(guest, 'listAllVms');
    expect(plain.code).toBe('PERMISSION_DENIED');
    expect(plain.details).toContain('ListAllVms may be called by VMID 0x3 only; caller is VMID 0x80');
    const claiming = await call(guest, 'listAllVms', { [CALLER_VMID_KEY]: '3' });
    expect(claiming.code).toBe('PERMISSION_DENIED');
    expect(claiming.details).toMatch(/says VMID 3 but the client certificate says VMID 128/);
    expect(seen.length).toBe(before);
    // An RPC open to any caller works for the guest, as itself.
    expect((await call(guest, 'listVms')).code).toBe('OK');
    expect(seen.slice(before)).toEqual([{ vmid: 128, client: 'anonymous', key: '128/anonymous' }]);
  });

  test('a header disagreeing with the certificate: PERMISSION_DENIED naming both, in the handler too', async () => {
    const host = tlsClient(clientCredentials(material('host-vmm')));
    // The VMM may act for a guest (ACTING_FOR), never as HYP.
    const vmid = await call(host, 'listVms', { [CALLER_VMID_KEY]: '0' });
    expect(vmid.code).toBe('PERMISSION_DENIED');
    expect(vmid.details).toContain(`${CALLER_VMID_KEY} says VMID 0 but the client certificate says VMID 3`);
    expect(vmid.details).toContain('spiffe://hypmesh/vmid/3');
    const client = await call(host, 'listAllVms', { [CLIENT_KEY]: 'cli' });
    expect(client.code).toBe('PERMISSION_DENIED');
    expect(client.details).toContain(`${CLIENT_KEY} says client cli but the client certificate says client vmm`);
  });

  test('a certificate with no hypmesh VMID URI: PERMISSION_DENIED', async () => {
    const c = tlsClient(clientCredentials(material('no-identity')));
    const o = await call(c, 'listVms', { [CALLER_VMID_KEY]: '3' });
    expect(o.code).toBe('PERMISSION_DENIED');
    expect(o.details).toContain('carries no spiffe://hypmesh/vmid/<n> URI');
  });
});

describe('acting for another VMID (caller.ts ACTING_FOR)', () => {
  test('the VMM may name a guest; the RM HOST or a guest; a guest nobody else; nobody HYP or the RM', async () => {
    const before = seen.length;
    const vmm = tlsClient(clientCredentials(material('host-vmm')));
    const rm = tlsClient(clientCredentials(material('rm-client')));
    const guest = tlsClient(clientCredentials(material('guest-128')));
    expect((await call(vmm, 'listVms', { [CALLER_VMID_KEY]: '130' })).code).toBe('OK');
    expect((await call(rm, 'listVms', { [CALLER_VMID_KEY]: '3' })).code).toBe('OK');
    expect((await call(rm, 'listVms', { [CALLER_VMID_KEY]: '128' })).code).toBe('OK');
    expect(seen.slice(before).map((p) => p.key)).toEqual(['130/vmm', '3/rm', '128/rm']);
    for (const [c, vmid] of [[guest, '129'], [guest, '3'], [rm, '0'], [vmm, '3000'], [vmm, '255']] as const) {
      const o = await call(c, 'listVms', { [CALLER_VMID_KEY]: vmid });
      expect(o.code, `${vmid}`).toBe('PERMISSION_DENIED');
      expect(o.details).toContain(`says VMID ${vmid} but the client certificate says`);
    }
    expect(seen.length).toBe(before + 3);
  });
});

describe('without TLS (insecure local use), identity is the metadata header, as before', () => {
  test('HOST by header may call ListAllVms; a guest by header may not; no header is INVALID_ARGUMENT', async () => {
    const c = new VmmServiceClient(`127.0.0.1:${plainServer.port}`, grpc.credentials.createInsecure());
    clients.push(c);
    expect((await call(c, 'listAllVms', { [CALLER_VMID_KEY]: '3', [CLIENT_KEY]: 'cli' })).code).toBe('OK');
    expect(seen.at(-1)).toEqual({ vmid: 3, client: 'cli', key: '3/cli' });
    expect((await call(c, 'listAllVms', { [CALLER_VMID_KEY]: '128' })).code).toBe('PERMISSION_DENIED');
    expect((await call(c, 'listAllVms')).code).toBe('INVALID_ARGUMENT');
  });
});

describe('serveGrpc authz on a server stream', () => {
  test('a stream RPC the table restricts is refused before its handler; an allowed caller gets it', async () => {
    // Today every stream RPC is open to all; restrict WatchVm to HOST to exercise the stream path.
    const table: AuthzTable = { ...AUTHZ_TABLE, [VMM_SERVICE_NAME]: { ...AUTHZ_TABLE[VMM_SERVICE_NAME], WatchVm: { vmids: [3] } } };
    const server = await serve(undefined, table);
    const c = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const watch = (vmid: string): Promise<string> =>
      new Promise((resolve) => {
        const md = new grpc.Metadata();
        md.set(CALLER_VMID_KEY, vmid);
        const s = c.watchVm(WatchVmRequest.fromPartial({}), md);
        s.on('data', () => {});
        s.on('error', (e: grpc.ServiceError) => resolve(`${grpc.status[e.code]}: ${e.details}`));
        s.on('end', () => resolve('end'));
      });
    try {
      const before = seen.length;
      expect(await watch('128')).toBe('PERMISSION_DENIED: WatchVm may be called by VMID 0x3 only; caller is VMID 0x80 as client anonymous');
      expect(seen.length).toBe(before);
      expect(await watch('3')).toBe('end');
      expect(seen.slice(before)).toEqual([{ vmid: 3, client: 'anonymous', key: '3/anonymous' }]);
    } finally {
      c.close();
      await server.shutdown(100);
    }
  });
});
