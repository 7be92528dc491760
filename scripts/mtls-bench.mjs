#!/usr/bin/env node
// mTLS overhead on a cheap unary RPC (issue 11 item 5): calls/s and calls per CPU second of a VmmService.ListVms stub whose
// handler reads the principal (principalOf), plaintext vs mTLS + authz, same run, ABAB blocks,
// 32 calls in flight. Reports, asserts nothing. Needs `npm run build`.
// Usage: node scripts/mtls-bench.mjs [blockMs=1000] [blocks=4]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ListVmsResponse, VMM_SERVICE_NAME, VmmServiceClient, VmmServiceService } from '@hypmesh/proto/vmm';
import { AUTHZ_TABLE, CALLER_VMID_KEY, clientCredentials, loadTls, principalOf, serveGrpc } from '@hypmesh/rpc';

const blockMs = Number(process.argv[2] ?? 1000);
const blocks = Number(process.argv[3] ?? 4);
const INFLIGHT = 32;
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-mtls-bench-'));
execFileSync(fileURLToPath(new URL('./make-test-ca.sh', import.meta.url)), [dir], { stdio: 'ignore' });
const tls = (n) => loadTls({ certFile: join(dir, `${n}.crt`), keyFile: join(dir, `${n}.key`), caFile: join(dir, 'ca.crt') });
const empty = ListVmsResponse.fromPartial({});
const stub = { listVms: (call, cb) => (principalOf(call), cb(null, empty)) };
const serve = (extra) =>
  serveGrpc({ address: '127.0.0.1:0', serviceName: VMM_SERVICE_NAME, register: (s) => s.addService(VmmServiceService, stub), ...extra });
const plain = await serve({});
const secure = await serve({ tls: tls('vmm'), authz: AUTHZ_TABLE });
const md = new grpc.Metadata();
md.set(CALLER_VMID_KEY, '3');
const clients = {
  plaintext: new VmmServiceClient(`127.0.0.1:${plain.port}`, grpc.credentials.createInsecure()),
  mtls: new VmmServiceClient(`localhost:${secure.port}`, clientCredentials(tls('host-vmm'))),
};
const one = (c) => new Promise((res, rej) => c.listVms({}, md, (e) => (e ? rej(e) : res())));
async function block(c, ms) {
  let n = 0;
  const end = performance.now() + ms;
  const worker = async () => {
    while (performance.now() < end) (await one(c), n++);
  };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const cpu = process.cpuUsage(cpu0);
  // Wall-clock rate, and calls per CPU second of this process (client and server both): the
  // second is steadier on a shared machine.
  return { wall: n / ((performance.now() - t0) / 1000), cpu: n / ((cpu.user + cpu.system) / 1e6) };
}
for (const c of Object.values(clients)) await block(c, 300); // warm up: connect, handshake, JIT
const rates = { plaintext: [], mtls: [] };
for (let i = 0; i < blocks; i++) for (const k of i % 2 === 0 ? ['plaintext', 'mtls'] : ['mtls', 'plaintext']) rates[k].push(await block(clients[k], blockMs));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = (field) => {
  const p = median(rates.plaintext.map((r) => r[field]));
  const m = median(rates.mtls.map((r) => r[field]));
  return { plaintext: Math.round(p), mtls: Math.round(m), mtls_over_plaintext: Math.round((m / p) * 1000) / 1000 };
};
console.log(JSON.stringify({ blockMs, blocks, inflight: INFLIGHT, calls_per_s: summary('wall'), calls_per_cpu_s: summary('cpu') }));
for (const c of Object.values(clients)) c.close();
await Promise.all([plain.shutdown(100), secure.shutdown(100)]);
rmSync(dir, { recursive: true, force: true });
