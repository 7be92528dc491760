/**
 * `p99_core_rpc_ms_under_abuse` (issue 10 item 5): what admission control leaves of one client's
 * latency while another abuses the core. A core process (services/core dist, default limits, on
 * 127.0.0.1:0); a well-behaved client here sends Translate (cheap, read-only) one at a time and
 * records each latency; in alternate phases a rogue process (abuse-rogue.ts) sends, back to back,
 * the largest request each cap still admits. The figure is the p99 under abuse ÷ the p99 alone,
 * same run, phases interleaved (alone, abused, alone, abused…) so drift hits both alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient, type TranslateRequest } from '@hypmesh/proto';
import {
  createAddressSpace,
  createGrant,
  createStage2,
  destroyAddressSpace,
  destroyGrant,
  hostDonateHyp,
  hypDonateHost,
  mapGrant,
  topUpTablePool,
  unmapGrant,
  vmid,
  DEFAULT_STAGE2_CONFIG,
  VMID_HOST,
  pfn,
  type FrameRange,
  type Pfn,
  type Result,
} from '@hypmesh/stage2';
import { GRANT_RANGES, IPA_RANGES, MAX_PAGES, REGION, ROGUE_GUEST, SPACE_DONATED, TOP_UPS } from './abuse-shapes.js';

export const ABUSE_PHASES = 3;
export const ABUSE_PHASE_MS = 2_500;

const CORE_MAIN = fileURLToPath(new URL('../../../services/core/dist/main.js', import.meta.url));
const ROGUE = fileURLToPath(new URL('./abuse-rogue.js', import.meta.url));

/** Spawns `script` and resolves with the process and the first stdout line matching `ready`. */
async function spawnUntil(args: string[], ready: (line: string) => boolean): Promise<{ proc: ChildProcess; line: string; lines: AsyncIterableIterator<string> }> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  for (;;) {
    const next = await lines.next();
    if (next.done === true) throw new Error(`${args[0]} ended before it was ready`);
    if (ready(next.value)) return { proc, line: next.value, lines };
  }
}

const p99 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]!;

export interface AbuseFigures {
  readonly p99AloneMs: number;
  readonly p99AbusedMs: number;
  readonly ratio: number;
  readonly samplesAlone: number;
  readonly samplesAbused: number;
  /** The rogue's admitted calls per second while it ran, and how many of its calls were refused. */
  readonly rogueCallsPerS: number;
  readonly rogueRefused: number;
}

export async function p99UnderAbuse(): Promise<AbuseFigures> {
  const core = await spawnUntil([CORE_MAIN, '--address', '127.0.0.1:0', '--log-level', 'info'], (l) => l.includes('hypmesh core serving'));
  const port = (JSON.parse(core.line) as { port: number }).port;
  const client = new CoreServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('x-hypmesh-caller-vmid', '3');
  md.set('x-hypmesh-client', 'bench');
  const req: TranslateRequest = { vmid: 3, ipa: 2n ** 31n + 0x1234_5000n };
  const translate = (): Promise<void> => new Promise((resolve, reject) => client.translate(req, md, (e) => (e ? reject(e) : resolve())));
  /** Latencies (ms) of sequential calls for `ms`. */
  const phase = async (ms: number): Promise<number[]> => {
    const out: number[] = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const t0 = performance.now();
      await translate();
      out.push(performance.now() - t0);
    }
    return out;
  };
  const alone: number[] = [];
  const abused: number[] = [];
  let rogueCalls = 0;
  let rogueRefused = 0;
  let rogueMs = 0;
  try {
    await phase(500); // warm-up: connection, JIT
    for (let i = 0; i < ABUSE_PHASES; i++) {
      alone.push(...(await phase(ABUSE_PHASE_MS)));
      const rogue = await spawnUntil([ROGUE, String(port)], (l) => l.startsWith('ready'));
      const t0 = performance.now();
      abused.push(...(await phase(ABUSE_PHASE_MS)));
      rogue.proc.kill('SIGTERM');
      const last = await rogue.lines.next();
      rogueMs += performance.now() - t0;
      const tally = JSON.parse(last.done === true ? '{}' : last.value) as { calls?: number; refused?: number };
      rogueCalls += tally.calls ?? 0;
      rogueRefused += tally.refused ?? 0;
      if (rogue.proc.exitCode === null) await once(rogue.proc, 'exit');
    }
  } finally {
    client.close();
    core.proc.kill('SIGTERM');
    if (core.proc.exitCode === null) await once(core.proc, 'exit');
  }
  const p99AloneMs = p99(alone);
  const p99AbusedMs = p99(abused);
  return {
    p99AloneMs,
    p99AbusedMs,
    ratio: p99AbusedMs / p99AloneMs,
    samplesAlone: alone.length,
    samplesAbused: abused.length,
    rogueCallsPerS: ((rogueCalls - rogueRefused) / rogueMs) * 1000,
    rogueRefused,
  };
}

export const ABUSE_CPU_ROUNDS = 15;

/**
 * The cost the caps bound, without the scheduler's noise: each maximal admitted request of the
 * rogue's cycle as a domain call on a default core, in CPU ms of this process (process.cpuUsage),
 * the median of ABUSE_CPU_ROUNDS rounds after 3 warm-up rounds (a rogue's cycle on one core). The largest is the longest one
 * admitted request can hold the core's event loop (plus its decoding).
 */
export function maximalRequestCpuMs(): { readonly rpc: string; readonly ms: number }[] {
  const pfns = (rs: readonly { base: number; count: number }[]): FrameRange<Pfn>[] => rs.map((r) => ({ base: pfn(r.base), count: r.count }));
  const samples = new Map<string, number[]>();
  const must = <T>(r: Result<T, { message: string }>, what: string): T => {
    if (!r.ok) throw new Error(`${what}: ${r.error.message}`);
    return r.value;
  };
  const cpu = <T>(rpc: string, f: () => Result<T, { message: string }>, round: number): T => {
    const c0 = process.cpuUsage();
    const r = f();
    const c = process.cpuUsage(c0);
    if (round >= 3) samples.set(rpc, [...(samples.get(rpc) ?? []), (c.user + c.system) / 1000]);
    return must(r, rpc);
  };
  const guest = vmid(ROGUE_GUEST);
  // One core for every round, as the rogue's cycle runs on one core process.
  const built = createStage2(DEFAULT_STAGE2_CONFIG);
  if (!built.ok) throw new Error(built.error.join('; '));
  const s = built.value;
  for (let round = 0; round < ABUSE_CPU_ROUNDS + 3; round++) {
    cpu('CreateAddressSpace', () => createAddressSpace(s, guest, 40, pfns(SPACE_DONATED)), round);
    for (const t of TOP_UPS) cpu('TopUpTablePool', () => topUpTablePool(s, guest, pfns(t)), round);
    const g = cpu('CreateGrant', () => createGrant(s, { owner: VMID_HOST, type: 'SHARE', ranges: GRANT_RANGES, acl: [{ vmid: guest, perms: 6 }] }), round);
    cpu('MapGrant', () => mapGrant(s, { grantId: g.grantId, borrower: guest, perms: 6, ranges: IPA_RANGES }), round);
    cpu('UnmapGrant', () => unmapGrant(s, g.grantId, guest), round);
    cpu('DestroyGrant', () => destroyGrant(s, g.grantId, VMID_HOST), round);
    cpu('DestroyAddressSpace', () => destroyAddressSpace(s, guest), round);
    cpu('HostDonateHyp', () => hostDonateHyp(s, pfn(REGION.donate), MAX_PAGES), round);
    cpu('HypDonateHost', () => hypDonateHost(s, pfn(REGION.donate), MAX_PAGES), round);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return [...samples].map(([rpc, xs]) => ({ rpc, ms: median(xs) })).sort((a, b) => b.ms - a.ms);
}
