/**
 * The plan's seeded PRNG: splitmix32, a 32-bit-state generator (a Weyl sequence stepped by the
 * golden-ratio constant 0x9e3779b9, then an avalanche mix; constants from Chris Wellons' "hash
 * prospector" as used by the widely copied `splitmix32` of bryc/code PRNGs.md). Why this one: one
 * 32-bit word of state (cheap to copy into a replay file), no bigint on the hot path, every seed is
 * valid, and its outputs pass the usual smoke tests for this use (probability draws, jitter, byte
 * offsets), which is all fault injection needs. Not cryptographic.
 *
 * Streams: as TigerBeetle's VOPR splits one top-level seed per subsystem, `ruleStream(seed, ruleId)`
 * derives one independent stream per rule from the plan's seed and the rule's id, so a rule's draws
 * depend only on its own history: removing another rule (shrinking) leaves them unchanged.
 */

/** 2^32, to turn a u32 draw into a fraction in [0, 1). */
const U32_RANGE = 0x1_0000_0000;

/** A splitmix32 generator. The same seed gives the same sequence, on every platform. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next draw, a u32. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let t = this.state ^ (this.state >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    t ^= t >>> 15;
    return t >>> 0;
  }

  /** A fraction in [0, 1) with 32 bits of resolution. */
  nextFraction(): number {
    return this.nextU32() / U32_RANGE;
  }

  /** An integer in [low, high] (both inclusive; high - low < 2^32). */
  nextIntInclusive(low: number, high: number): number {
    const span = high - low + 1;
    // Multiply-shift keeps the bias below span / 2^32, irrelevant for delays of at most 10 minutes.
    return low + Math.floor(this.nextFraction() * span);
  }

  /** The state, for a replay file. */
  get stateU32(): number {
    return this.state;
  }
}

/** FNV-1a over the UTF-16 code units of `text`, 32 bits: a stable hash of a rule id. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The PRNG stream of one rule: the plan's seed mixed with the hash of the rule's id. */
export function ruleStream(seed: number, ruleId: string): Prng {
  // One splitmix step over (seed ^ hash) decorrelates nearby seeds and similar ids.
  const mixed = new Prng((seed ^ fnv1a32(ruleId)) >>> 0).nextU32();
  return new Prng(mixed);
}
