/** tls.ts loading and caller.ts certificate identity parsing (issue 11 item 5). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { identityFromSan } from './caller.js';
import { loadTls, tlsConfigFrom, type TlsConfig } from './tls.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/make-test-ca.sh', import.meta.url));
let dir: string;
const files = (cert: string, key = cert, ca = 'ca'): TlsConfig => ({ certFile: join(dir, `${cert}.crt`), keyFile: join(dir, `${key}.key`), caFile: join(dir, `${ca}.crt`) });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hypmesh-tls-'));
  execFileSync(SCRIPT, [dir], { stdio: 'ignore' });
  writeFileSync(join(dir, 'junk.crt'), 'not a certificate\n');
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadTls', () => {
  test('a matching set loads, with the certificate SANs', () => {
    expect(loadTls(files('host-vmm')).subjectAltName).toBe('URI:spiffe://hypmesh/vmid/3, URI:spiffe://hypmesh/client/vmm');
  });

  test('missing, unreadable-as-PEM, mismatched and foreign files: an Error naming the flag and file', () => {
    const err = (c: TlsConfig): string => {
      try {
        loadTls(c);
        return 'loaded';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(err({ ...files('core'), certFile: join(dir, 'absent.crt') })).toMatch(/^--tls-cert ".*absent\.crt": cannot read \(ENOENT\)$/);
    expect(err({ ...files('core'), caFile: dir })).toMatch(/^--tls-ca ".*": cannot read \(EISDIR\)$/);
    expect(err(files('junk', 'core'))).toMatch(/^--tls-cert ".*junk\.crt": not a PEM certificate/);
    expect(err(files('core', 'rm'))).toMatch(/^--tls-key ".*rm\.key" is not the key of --tls-cert ".*core\.crt"/);
    expect(err(files('other-host'))).toMatch(/^--tls-cert ".*other-host\.crt" \(CN=hypmesh-other-host\) is not signed by --tls-ca ".*ca\.crt"/);
  });

  test('the flags come all together or not at all', () => {
    expect(tlsConfigFrom({})).toBeUndefined();
    expect(tlsConfigFrom({ certFile: 'a', keyFile: 'b', caFile: 'c' })).toEqual({ certFile: 'a', keyFile: 'b', caFile: 'c' });
    expect(() => tlsConfigFrom({ certFile: 'a' })).toThrow('mTLS needs --tls-cert, --tls-key, --tls-ca together; missing --tls-key, --tls-ca');
  });
});

describe('identityFromSan', () => {
  test('VMID and client URIs; other SANs ignored', () => {
    expect(identityFromSan('DNS:x, URI:spiffe://hypmesh/vmid/128, URI:spiffe://hypmesh/client/vmm')).toEqual({
      vmid: 128,
      client: 'vmm',
      uris: 'spiffe://hypmesh/vmid/128 + spiffe://hypmesh/client/vmm',
    });
    expect(identityFromSan('URI:spiffe://other/vmid/3, IP Address:127.0.0.1')).toEqual({ uris: 'no hypmesh URI' });
    expect(identityFromSan(undefined)).toEqual({ uris: 'no hypmesh URI' });
  });

  test.each([
    ['URI:spiffe://hypmesh/vmid/03', 'is not a VMID URI'],
    ['URI:spiffe://hypmesh/vmid/65536', 'is not a VMID URI'],
    ['URI:spiffe://hypmesh/vmid/3, URI:spiffe://hypmesh/vmid/4', 'two VMIDs'],
    ['URI:spiffe://hypmesh/client/Bad Name', 'is not a client URI'],
    ['URI:spiffe://hypmesh/client/a, URI:spiffe://hypmesh/client/b', 'two clients'],
  ])('%s is refused', (san, why) => {
    expect(() => identityFromSan(san)).toThrow(why);
  });
});
