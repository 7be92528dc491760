/**
 * Properties over every codec in RM_CODECS (requests, replies, notifications):
 *  - round trip: decode(encode(v)) = v for values the layout's field table generates;
 *  - fuzz: decoding random bytes, or a valid encoding mutated (byte flips, truncation, extension,
 *    a random u16 written over a count), never throws and yields a value or MSG_INVALID/NORESOURCE;
 *    a value it yields re-encodes to bytes that decode to the same value.
 * Also the framing: decodeHeader, decodeReply and the Reassembler never throw on any bytes.
 * Seeded and bounded: SEED=<n> replays a run, RUNS=<n> sets the runs; both are in the test names.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CODEC_NAMES, RM_CODECS, decodeCallReply, type CallName } from './codecs.js';
import { decodeHeader } from './header.js';
import type { Codec, FieldSpec, Layout } from './layout.js';
import { Reassembler } from './reassembly.js';
import { decodeReply } from './reply.js';
import { memAcceptReply } from './payloads/mem-accept.js';
import { memNotifyLayout, memNotifyRequest } from './payloads/mem-notify.js';
import { vmAllocateReply } from './payloads/vm-lifecycle.js';
import { sglEntry } from './payloads/entries.js';

const SEED = Number(process.env.SEED ?? 20261121);
const RUNS = Number(process.env.RUNS ?? 100);
const LIST_LENGTH_MAX = 6; // entries per generated list: enough to cross alignment and counts, cheap

type AnyCodec = Codec<unknown>;
const isLayout = (c: AnyCodec): c is Layout<unknown> => 'fields' in c;

const u = (bits: 8 | 16 | 32) => fc.integer({ min: 0, max: 2 ** bits - 1 });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

function fieldArbitrary(f: FieldSpec, into: Record<string, fc.Arbitrary<unknown>>): void {
  switch (f.kind) {
    case 'u8':
      into[f.name] = u(8);
      return;
    case 'u16':
      into[f.name] = u(16);
      return;
    case 'u32':
      into[f.name] = u(32);
      return;
    case 'u64':
      into[f.name] = u64;
      return;
    case 'pad':
      return;
    case 'list':
      into[f.name] = fc.array(layoutArbitrary(f.entry), { maxLength: LIST_LENGTH_MAX });
      if (f.second !== undefined) into[f.second] = u(16);
      return;
    case 'counted':
      into[f.name] = fc.array(layoutArbitrary(f.entry), { maxLength: LIST_LENGTH_MAX });
      return;
    case 'sized':
      into[f.name] = fc.uint8Array({ maxLength: 64 });
      return;
  }
}

/** Values for a layout, read off its field table. */
function layoutArbitrary(l: Layout<unknown>): fc.Arbitrary<unknown> {
  const rec: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of l.fields) fieldArbitrary(f, rec);
  return fc.record(rec);
}

/** The hand-written codecs get hand-written arbitraries. */
const customArbitraries = new Map<AnyCodec, fc.Arbitrary<unknown>>([
  [
    memAcceptReply as AnyCodec,
    fc.oneof(
      fc.constant({ kind: 'standard' }),
      fc.record({ kind: fc.constant('rm_chosen_ipas'), sgl: fc.array(layoutArbitrary(sglEntry), { maxLength: LIST_LENGTH_MAX }), incomplete: fc.boolean() }),
    ),
  ],
  [vmAllocateReply as AnyCodec, fc.record({ vmid: fc.option(u(32), { nil: null }) })],
  [memNotifyRequest as AnyCodec, layoutArbitrary(memNotifyLayout)],
]);

function arbitraryFor(c: AnyCodec): fc.Arbitrary<unknown> {
  const custom = customArbitraries.get(c);
  if (custom) return custom;
  if (!isLayout(c)) throw new Error(`${c.label}: no arbitrary`);
  return layoutArbitrary(c);
}

const allCodecs: { name: string; codec: AnyCodec }[] = CODEC_NAMES.flatMap((n) => {
  const entry = RM_CODECS[n] as unknown as { kind: string } & Record<string, AnyCodec>;
  const parts = entry.kind === 'request' ? (['request', 'reply'] as const) : (['notification'] as const);
  return parts.map((p) => ({ name: `${n} ${p}`, codec: entry[p]! }));
});

/** A valid encoding changed in one of the ways a fuzzer or a broken peer would change it. */
function mutated(c: AnyCodec): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(arbitraryFor(c), fc.nat(), fc.integer({ min: 0, max: 4 }), u(16), fc.uint8Array({ minLength: 1, maxLength: 16 }))
    .map(([v, at, how, word, extra]) => {
      const b = c.encode(v);
      const i = b.length === 0 ? 0 : at % b.length;
      switch (how) {
        case 0: // flip one byte
          if (b.length > 0) b[i] = b[i]! ^ (1 + (word % 255));
          return b;
        case 1: // truncate
          return b.subarray(0, i);
        case 2: // extend
          return Uint8Array.of(...b, ...extra);
        case 3: // a random u16 over a likely count (every list starts 4-byte aligned)
          if (b.length >= 2) new DataView(b.buffer, b.byteOffset).setUint16(i & ~3 & ~1, word, true);
          return b;
        default: // unchanged
          return b;
      }
    });
}

describe('round trip', () => {
  test.each(allCodecs)(`$name: decode(encode(v)) = v (SEED=${SEED}, ${RUNS} runs)`, ({ codec }) => {
    fc.assert(
      fc.property(arbitraryFor(codec), (v) => {
        expect(codec.decode(codec.encode(v))).toEqual({ ok: true, value: v });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('fuzz: decoding never throws', () => {
  const wireErrors = ['MSG_INVALID', 'NORESOURCE'];

  test.each(allCodecs)(`$name: random and mutated bytes → a value or MSG_INVALID/NORESOURCE (SEED=${SEED}, ${RUNS * 2} runs)`, ({ codec }) => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated(codec)), (bytes) => {
        const r = codec.decode(bytes);
        if (!r.ok) {
          expect(wireErrors).toContain(r.error.rmError);
          return;
        }
        // a decoded value is canonical: it re-encodes to bytes that decode to the same value
        expect(codec.decode(codec.encode(r.value))).toEqual(r);
      }),
      { seed: SEED, numRuns: RUNS * 2 },
    );
  });

  test(`decodeHeader, decodeReply and decodeCallReply never throw (SEED=${SEED}, ${RUNS * 5} runs)`, () => {
    const callNames = CODEC_NAMES.filter((n) => RM_CODECS[n].kind === 'request') as CallName[];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(...callNames), (bytes, name) => {
        decodeHeader(bytes);
        const frame = decodeReply(bytes);
        expect(frame.ok).toBe(bytes.length >= 4);
        const r = decodeCallReply(name, bytes);
        if (!r.ok) expect(wireErrors).toContain(r.error.rmError);
      }),
      { seed: SEED, numRuns: RUNS * 5 },
    );
  });

  test(`the Reassembler takes any fragment sequence without throwing, and counts every drop (SEED=${SEED}, ${RUNS} runs)`, () => {
    // Mostly well-formed headers for two messages, so continuations meet partials.
    const header = fc.record({
      b0: fc.oneof({ arbitrary: fc.constant(0x21), weight: 9 }, { arbitrary: u(8), weight: 1 }),
      type: fc.integer({ min: 0, max: 3 }),
      count: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3 }), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 63 }), weight: 1 }),
      seq: fc.constantFrom(1, 2),
      id: fc.constantFrom(0x5100_0012, 0x5600_0005),
      len: fc.oneof({ arbitrary: fc.integer({ min: 8, max: 240 }), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 1 }),
    });
    const fragment = header.map(({ b0, type, count, seq, id, len }) => {
      const f = new Uint8Array(len);
      const head = [b0, (count << 2) | type, seq, 0, id & 0xff, (id >>> 8) & 0xff, (id >>> 16) & 0xff, id >>> 24];
      f.set(head.slice(0, len));
      return f;
    });
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 40 }), (frags) => {
        const rx = new Reassembler();
        let drops = 0;
        for (const f of frags) for (const e of rx.push(f)) if (e.kind === 'drop') drops++;
        expect([...rx.dropCounts().values()].reduce((a, b) => a + b, 0)).toBe(drops);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
