/**
 * The abusive client of the `p99_core_rpc_ms_under_abuse` figure (abuse-bench.ts), in its own process
 * so its request building costs the measured client nothing: `node abuse-rogue.js <port>`. As HOST
 * with `x-hypmesh-client: rogue` it sends, one after another and forever, the largest request each of
 * the core's caps still admits (services/core admission.ts defaults), in a cycle that cleans up after
 * itself, so no quota ends it: CreateAddressSpace and TopUpTablePools of `ranges_per_call` scattered
 * runs making `frames_per_call` frames each, until its pool holds its whole `donated_pages` quota, CreateGrant of `ranges_per_call` runs making `pages_per_call`
 * pages, MapGrant of as many unaligned IPA runs by the guest, then UnmapGrant, DestroyGrant,
 * DestroyAddressSpace, HostDonateHyp and HypDonateHost of `pages_per_call` pages.
 *
 * Prints `ready` after its first cycle; on SIGTERM prints `{"cycles":…,"calls":…,"refused":…}` and exits.
 */
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, GrantType } from '@hypmesh/proto';
import { GRANT_RANGES, IPA_RANGES, MAX_PAGES, REGION, ROGUE_GUEST as GUEST, SPACE_DONATED, TOP_UPS } from './abuse-shapes.js';

const port = Number(process.argv[2]);
const client = new CoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
const wire = (rs: readonly { base: number; count: number }[]) => rs.map((r) => ({ base: BigInt(r.base), count: BigInt(r.count) }));
const PAGES = MAX_PAGES;

const md = (caller: number): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set('x-hypmesh-caller-vmid', String(caller));
  m.set('x-hypmesh-client', 'rogue');
  return m;
};
const HOST = md(3);
const AS_GUEST = md(GUEST);

let calls = 0;
let refused = 0;
let cycles = 0;
type Unary = (req: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: unknown) => void) => unknown;
const rpc = (name: string, req: unknown, as = HOST): Promise<unknown> =>
  new Promise((resolve) => {
    ((client as unknown as Record<string, Unary>)[name] as Unary).call(client, req, as, (e, r) => {
      calls++;
      if (e !== null) refused++;
      resolve(r);
    });
  });

const spaceDonated = wire(SPACE_DONATED);
const topUps = TOP_UPS.map(wire);
const grantRanges = wire(GRANT_RANGES);
const ipaRanges = wire(IPA_RANGES);

async function cycle(): Promise<void> {
  await rpc('createAddressSpace', { vmid: GUEST, ipaBits: 40, donated: spaceDonated, protection: 0 });
  for (const frames of topUps) await rpc('topUpTablePool', { vmid: GUEST, frames });
  const g = (await rpc('createGrant', { type: GrantType.GRANT_TYPE_SHARE, memoryType: 0, ranges: grantRanges, acl: [{ vmid: GUEST, rights: 6 }] })) as { grantId: bigint } | undefined;
  if (g !== undefined) {
    await rpc('mapGrant', { grantId: g.grantId, rights: 6, ipaRanges }, AS_GUEST);
    await rpc('unmapGrant', { grantId: g.grantId }, AS_GUEST);
    await rpc('destroyGrant', { grantId: g.grantId });
  }
  await rpc('destroyAddressSpace', { vmid: GUEST });
  await rpc('hostDonateHyp', { pfn: BigInt(REGION.donate), nrPages: BigInt(PAGES) });
  await rpc('hypDonateHost', { pfn: BigInt(REGION.donate), nrPages: BigInt(PAGES) });
  cycles++;
}

let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

await cycle();
process.stdout.write(`ready ${JSON.stringify({ calls, refused })}\n`);
while (!stopping) await cycle();
process.stdout.write(`${JSON.stringify({ cycles, calls, refused })}\n`);
client.close();
process.exit(0);
