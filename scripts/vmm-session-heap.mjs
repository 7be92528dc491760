// The VMM's heap over many sessions (issue 10: session memory). In process, RM and core too; run
// after `npm run build`: node --expose-gc scripts/vmm-session-heap.mjs [sessions]. Prints heapUsed (MiB,
// after GC) and VmManager.footprint() every 1,000 sessions: half OpenSession streams cancelled by the
// client, half leases opened and closed, a fresh connection every 500.
import * as grpc from '@grpc/grpc-js';
import { VmmServiceClient } from '@hypmesh/proto/vmm';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { Stage2, DEFAULT_STAGE2_CONFIG } from '@hypmesh/stage2';
import { inProcessCorePort, inProcessRm } from '@hypmesh/vmm';
import { startVmmServer } from '@hypmesh/vmm-service';
const s = new Stage2(DEFAULT_STAGE2_CONFIG);
const rm = new ResourceManager(inProcessCore(s));
const server = await startVmmServer({ address: '127.0.0.1:0', rm: inProcessRm(rm), core: inProcessCorePort(s), vmmConfig: { waitMs: 1000 } });
let client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
const md = () => { const m = new grpc.Metadata(); m.set('x-hypmesh-caller-vmid', '3'); return m; };
const heap = () => { global.gc(); global.gc(); return (process.memoryUsage().heapUsed / 2**20).toFixed(1); };
async function one(i) {
  if (i % 2 === 0) {
    await new Promise((resolve, reject) => {
      const st = client.openSession({}, md());
      st.on('data', () => { st.cancel(); });
      st.on('error', () => resolve());
      st.on('end', () => resolve());
    });
  } else {
    const l = await new Promise((res, rej) => client.openLease({ ttlMs: 60000 }, md(), (e, r) => e ? rej(e) : res(r)));
    await new Promise((res, rej) => client.closeLease({ sessionId: l.lease.sessionId }, md(), (e, r) => e ? rej(e) : res(r)));
  }
}
const N = Number(process.argv[2] ?? 6000);
console.log('start', heap(), JSON.stringify(server.vmm.footprint()));
for (let i = 0; i < N; i++) {
  if (i % 500 === 0) { client.close(); client = new VmmServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()); }
  await one(i);
  if ((i + 1) % 1000 === 0) { await new Promise(r => setTimeout(r, 50)); console.log(i + 1, heap(), JSON.stringify(server.vmm.footprint())); }
}
client.close(); await server.shutdown(1000); process.exit(0);
