/**
 * Fuzz of the byte face: random fragments and mutated valid ones (bit flips, truncation, extension,
 * spliced headers) from three client VMs. Every reply must be a well-formed RM reply (§1.2–§1.4:
 * header 0x21, type REPLY, a known error word), and input the RM rejects — dropped fragments, and
 * requests answered MSG_INVALID, NORESOURCE or UNIMPLEMENTED — must change nothing in the RM or the
 * core. Seeded: SEED=<n> replays, FUZZ_RUNS=<n> sets the count. The default, 10,000, keeps a local
 * run near 25 s on two cores (100,000 took over five minutes); a soak sets FUZZ_RUNS=100000.
 */
import { MESSAGE_IDS, RM_CODECS, Reassembler, SHARE_FLAGS, decodeHeader, fragmentMessage, rmErrorName, type CallName, type RequestOf } from '@hypmesh/rm-wire';
import { checkInvariants } from '@hypmesh/stage2';
import { expect, test } from 'vitest';
import type { CoreGrantPort } from './core-port.js';
import { inProcessCore } from './in-process-core.js';
import { MsgqEndpoint } from './msgq-endpoint.js';
import { ResourceManager } from './resource-manager.js';
import { snapshotRm } from './snapshot.js';
import { RW, RWX, acceptReq, createReq, rmFixture, sgl } from './test-support.js';
import { VMID_HLOS } from './vmid.js';

const SEED = Number(process.env.SEED ?? 20261121);
const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);

/** mulberry32: a small seeded PRNG, so a failing run replays from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function request<N extends CallName>(name: N, seq: number, req: RequestOf<N>): Uint8Array[] {
  const codec = RM_CODECS[name].request as { encode(v: RequestOf<N>): Uint8Array };
  const frags = fragmentMessage({ type: 'REQUEST', msgId: MESSAGE_IDS[name].id, seq, payload: codec.encode(req) });
  if (!frags.ok) throw new Error(frags.error.reason);
  return frags.value;
}

/** Counts core mutations that succeeded, to prove a rejected input reached nothing. */
function counting(core: CoreGrantPort): CoreGrantPort & { mutations: number } {
  const c = { mutations: 0 } as CoreGrantPort & { mutations: number };
  for (const k of ['createGrant', 'appendGrant', 'mapGrant', 'unmapGrant', 'destroyGrant', 'createVmSpace', 'destroyVmSpace'] as const) {
    (c as unknown as Record<string, unknown>)[k] = async (a: never) => {
      const r = await (core[k] as (x: never) => Promise<{ ok: boolean }>)(a);
      if (r.ok) c.mutations++;
      return r;
    };
  }
  return c;
}

/** Calls whose refusal still moves a VM to INIT_FAILED by design (§4.2). */
const FAILS_INTO_STATE = new Set([MESSAGE_IDS.VM_CONFIG_IMAGE.id, MESSAGE_IDS.VM_START.id]);
const REJECTED = new Set(['MSG_INVALID', 'NORESOURCE', 'UNIMPLEMENTED']);

test(`byte-face fuzz: ${RUNS} inputs, well-formed replies, rejected input changes nothing (SEED=${SEED})`, async () => {
  const f = rmFixture();
  const A = await f.vm();
  const B = await f.vm();
  const core = counting(inProcessCore(f.s));
  const rm = new ResourceManager(core);
  // Give the fuzzed RM the same VMs as the fixture's: its VM_ALLOCATEs adopt the unused stage-2s
  // the fixture's RM had the core make for these VMIDs (§4.2).
  await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
  await rm.call(VMID_HLOS, 'VM_ALLOCATE', { vmid: 0 });
  const endpoints = [VMID_HLOS, A, B].map((v) => new MsgqEndpoint(rm, v));
  const corpus: Uint8Array[][] = [
    request('VM_GET_VMID', 1, {}),
    request('VM_ALLOCATE', 2, { vmid: 0 }),
    request('VM_GET_STATE', 3, { vmid: A }),
    request('MEM_LEND', 4, createReq([{ vmid: A, rights: RW }], [sgl(0x10000, 0x2000)])),
    request('MEM_SHARE', 5, createReq([{ vmid: A, rights: RW }, { vmid: VMID_HLOS, rights: RWX }], [sgl(0x20000, 0x1000)])),
    request('MEM_LEND', 6, createReq([{ vmid: B, rights: RW }], Array.from({ length: 20 }, (_, i) => sgl(0x40000 + i * 0x2000, 0x1000)), { flags: SHARE_FLAGS.APPEND })),
    request('MEM_APPEND', 7, { handle: 2, flags: 1, sgl: [sgl(0x80000, 0x1000)] }),
    request('MEM_ACCEPT', 8, acceptReq(0, 'LEND')),
    request('MEM_RELEASE', 9, { handle: 0, flags: 0 }),
    request('MEM_RECLAIM', 10, { handle: 1, flags: 0 }),
    request('MEM_NOTIFY', 11, { handle: 0, flags: 1, memInfoTag: 3, vmids: [{ vmid: A }] }),
    request('VM_STOP', 12, { vmid: A, flags: 1, stopReason: 3 }),
    request('VM_CONFIG_IMAGE', 13, { vmid: A, authMech: 0, memHandle: 0, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x1000n }),
    request('VM_SET_CONTEXT', 14, { vmid: A, regSet: 1, regIndex: 0, value: 1n }),
  ];
  const rnd = prng(SEED);
  const int = (n: number): number => Math.floor(rnd() * n);
  const input = (): Uint8Array => {
    if (rnd() < 0.2) return new Uint8Array(Array.from({ length: int(260) }, () => int(256)));
    const msg = corpus[int(corpus.length)]!;
    const frag = new Uint8Array(msg[int(msg.length)]!);
    switch (int(5)) {
      case 0:
        return frag; // valid as is
      case 1: {
        for (let i = 0, n = 1 + int(4); i < n && frag.length > 0; i++) {
          const at = int(frag.length);
          frag[at] = frag[at]! ^ (1 << int(8));
        }
        return frag;
      }
      case 2:
        return frag.slice(0, int(frag.length + 1));
      case 3: {
        const out = new Uint8Array(Math.min(frag.length + 1 + int(16), 250));
        out.set(frag.slice(0, out.length));
        for (let i = frag.length; i < out.length; i++) out[i] = int(256);
        return out;
      }
      default: {
        // A valid header on another message's payload.
        const other = corpus[int(corpus.length)]![0]!;
        const out = new Uint8Array(Math.max(8, other.length));
        out.set(frag.slice(0, 8));
        out.set(other.slice(8), 8);
        return out;
      }
    }
  };

  for (let run = 0; run < RUNS; run++) {
    const ep = endpoints[int(endpoints.length)]!;
    const bytes = input();
    const before = snapshotRm(rm);
    const mutations = core.mutations;
    const replies = await ep.receive(bytes);
    const context = `run ${run} (SEED=${SEED}) input ${Buffer.from(bytes).toString('hex')}`;
    const back = new Reassembler();
    let accepted = false;
    let failsIntoState = false;
    for (const r of replies) {
      const h = decodeHeader(r);
      expect(h.ok, context).toBe(true);
      expect(r.length, context).toBeLessThanOrEqual(240);
      for (const ev of back.push(r)) {
        if (ev.kind !== 'message') throw new Error(`${context}: malformed reply fragments (${ev.rule})`);
        expect(ev.message.type, context).toBe('REPLY');
        expect(ev.message.payload.length, context).toBeGreaterThanOrEqual(4);
        const code = new DataView(ev.message.payload.buffer, ev.message.payload.byteOffset).getUint32(0, true);
        const name = rmErrorName(code);
        expect(name, context).toBeDefined();
        if (!REJECTED.has(name!)) accepted = true;
        if (FAILS_INTO_STATE.has(ev.message.msgId)) failsIntoState = true;
      }
    }
    if (!accepted && !failsIntoState) {
      expect(core.mutations, context).toBe(mutations);
      expect(snapshotRm(rm), context).toEqual(before);
    }
    for (const e of endpoints) e.drainNotifications();
  }
  expect(rm.bugs).toEqual([]);
  expect(checkInvariants(f.s)).toEqual([]);
}, 300_000);
