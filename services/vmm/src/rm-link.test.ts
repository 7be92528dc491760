/**
 * The msgq client's LINK notices (rm-client.ts, @hypmesh/vmm ports.ts RmNotice): the RM server
 * going away is LINK down, and the reopened stream reaching an RM on the same address again is LINK
 * up, so the VM manager re-reads what notifications it may have lost (issue 9 §3).
 */
import { afterAll, expect, test } from 'vitest';
import { inProcessCore } from '@hypmesh/rm';
import { startRmServer, type RmServer } from '@hypmesh/rm-service';
import { createStage2, DEFAULT_STAGE2_CONFIG } from '@hypmesh/stage2';
import type { RmNotice } from '@hypmesh/vmm';
import { grpcRm, type GrpcRmPort } from './rm-client.js';

const servers: RmServer[] = [];
let port: GrpcRmPort | undefined;
afterAll(async () => {
  port?.close();
  for (const s of servers) await s.shutdown(500);
});

async function rmServer(address: string): Promise<RmServer> {
  const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
  if (!stage2.ok) throw new Error(stage2.error.join('; '));
  const s = await startRmServer({ address, core: inProcessCore(stage2.value), log: { error: () => {} } });
  servers.push(s);
  return s;
}

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
};

test('an RM that goes away and comes back on its address: LINK down, then LINK up once the new stream reaches it; calls work again', async () => {
  const first = await rmServer('127.0.0.1:0');
  const address = `127.0.0.1:${first.port}`;
  const c = grpcRm(address, 1_000);
  port = c;
  const links: boolean[] = [];
  c.onNotice((n: RmNotice) => {
    if (n.kind === 'LINK') links.push(n.up);
  });
  await until(() => c.connected());
  expect((await c.vmAllocate({ vmid: 0 })).ok).toBe(true);
  // The first stream's opening is no LINK change: nothing could have been lost before it.
  expect(links).toEqual([]);

  await first.shutdown(0);
  await until(() => links.length > 0);
  expect(links).toEqual([false]);

  await rmServer(address);
  await until(() => links.length > 1);
  expect(links).toEqual([false, true]);
  expect((await c.vmAllocate({ vmid: 0 })).ok).toBe(true);
}, 20_000);
