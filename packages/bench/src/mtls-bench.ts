/**
 * mTLS's cost on core RPC throughput (issue 11 item 5): Translate as HOST, 64 in flight, against a
 * core serving mTLS + the authorisation table (the services' `--tls-*` flags) ÷ a plaintext core,
 * same run, ABBA blocks (fault-bench.ts pairedRatio). The TLS handshake happens once per
 * connection and is warmed away: the figure is the per-call cost (record encryption, the
 * certificate identity, the table check). Certificates: scripts/make-test-ca.sh in a temp dir.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoreServer } from '@hypmesh/core-service';
import { CoreServiceClient } from '@hypmesh/proto';
import { clientCredentials, serveSecurity, serviceTls } from '@hypmesh/rpc';
import { coreClient, pairedRatio, translateCall } from './fault-bench.js';

export const MTLS_BENCH_BLOCKS = 12;
const MAKE_TEST_CA = fileURLToPath(new URL('../../../scripts/make-test-ca.sh', import.meta.url));

export interface MtlsOverhead {
  /** mTLS ÷ plaintext, calls per wall second (the figure) and per CPU second of this process (client and server). */
  readonly ratio: number;
  readonly cpuRatio: number;
  readonly mtlsPerS: number;
  readonly plainPerS: number;
}

export async function mtlsOverhead(): Promise<MtlsOverhead> {
  const dir = mkdtempSync(join(tmpdir(), 'hypmesh-mtls-bench-'));
  try {
    execFileSync(MAKE_TEST_CA, [dir], { stdio: 'ignore' });
    const files = (name: string) => ({ tlsCert: join(dir, `${name}.crt`), tlsKey: join(dir, `${name}.key`), tlsCa: join(dir, 'ca.crt') });
    const server = serviceTls(files('core'));
    const client = serviceTls(files('host-cli'));
    const secure = await startCoreServer({ address: '127.0.0.1:0', faults: 'off', security: serveSecurity(server) });
    const plain = await startCoreServer({ address: '127.0.0.1:0', faults: 'off' });
    // `localhost`: the test certificates name it, and grpc-js then sends a DNS server name, not an IP.
    const a = new CoreServiceClient(`localhost:${secure.port}`, clientCredentials(client!.client));
    const b = coreClient(plain.port);
    try {
      const r = await pairedRatio(translateCall(a), translateCall(b), MTLS_BENCH_BLOCKS);
      return { ratio: r.ratio, cpuRatio: r.cpuRatio, mtlsPerS: r.aPerS, plainPerS: r.bPerS };
    } finally {
      a.close();
      b.close();
      await Promise.all([secure.shutdown(100), plain.shutdown(100)]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
