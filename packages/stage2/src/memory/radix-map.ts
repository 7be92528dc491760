/**
 * A map from frame numbers to values, stored as a 64-ary radix tree whose slots hold either one
 * value for their whole span or a child node. It is how per-granule records (pKVM's hyp_vmemmap,
 * RMM's granule descriptors) stay cheap for large uniform ranges: a 1 GiB range with one record is
 * one slot, and cost grows with the number of distinct runs touched, never with bytes.
 *
 * Values must be interned (equal records are the same object): folding compares with ===.
 */

// 64-way: splitting a uniform slot and checking a node for folding cost 64 steps per level, which
// keeps single-granule updates (pins, shares) cheap; depth grows to 7 for a 40-bit frame space.
const FANOUT = 64;
const FANOUT_BITS = 6;

/** Folded nodes kept for reuse: enough for split/fold churn at full depth, bounded for memory. */
const SPARE_NODES_MAX = 64;

/** `q & SLOT_MASK` is q mod 64 for any integer q below 2^53, without a float modulo. */
const SLOT_MASK = FANOUT - 1;

class RadixNode<V> {
  constructor(readonly slots: (V | RadixNode<V>)[]) {}
}

/** The run `runs` is merging, and whether the visitor asked to stop. */
interface PendingRun<V> {
  start: number;
  frames: number;
  value: V | undefined;
  readonly visit: (start: number, frames: number, value: V) => boolean | void;
  stopped: boolean;
}

/** Extends the pending run with [start, start+frames) of `value`, or hands it over and starts anew. */
function emitRun<V>(p: PendingRun<V>, start: number, frames: number, value: V): void {
  if (p.frames > 0 && value === p.value && p.start + p.frames === start) {
    p.frames += frames;
    return;
  }
  if (p.frames > 0 && p.visit(p.start, p.frames, p.value as V) === false) p.stopped = true;
  p.start = start;
  p.frames = frames;
  p.value = value;
}

/**
 * All slots hold the same value (not a child node): the node can fold into its parent slot.
 * `probe` is a slot just written; checking it first makes the common answer (no) O(1).
 */
function isUniform<V>(node: RadixNode<V>, probe: number): boolean {
  const slots = node.slots;
  const v0 = slots[0];
  if (v0 instanceof RadixNode || slots[probe] !== v0 || slots[FANOUT - 1] !== v0) return false;
  for (let i = 1; i < FANOUT; i++) if (slots[i] !== v0) return false;
  return true;
}

export class RadixMap<V> {
  private readonly root: RadixNode<V>;
  /** Frames one slot covers at each depth (root first). */
  private readonly spans: readonly number[];
  /** Frames covered: [0, size). */
  readonly size: number;
  /**
   * Nodes that folded away, reused by the next split: a single-granule change splits one node per
   * level below a uniform slot and undoing it folds them again, so reuse saves the allocation.
   */
  private readonly spare: RadixNode<V>[] = [];

  constructor(frameBits: number, initial: V) {
    const depth = Math.max(1, Math.ceil(frameBits / FANOUT_BITS));
    this.spans = Array.from({ length: depth }, (_, d) => 2 ** (FANOUT_BITS * (depth - 1 - d)));
    this.size = 2 ** frameBits;
    this.root = new RadixNode<V>(new Array(FANOUT).fill(initial));
  }

  private spanAt(depthIndex: number): number {
    return this.spans[depthIndex] as number;
  }

  get(frame: number): V {
    let node = this.root;
    for (let d = 0; ; d++) {
      const slot = node.slots[Math.floor(frame / this.spanAt(d)) & SLOT_MASK] as V | RadixNode<V>;
      if (!(slot instanceof RadixNode)) return slot;
      node = slot;
    }
  }

  /**
   * Visits [base, base+count) as maximal runs of one value, in order. Returning false stops.
   * Adjacent slots with the same value are merged before the callback sees them.
   */
  runs(base: number, count: number, visit: (start: number, frames: number, value: V) => boolean | void): void {
    if (count <= 0) return;
    // One frame is one run: skip the merging walk.
    if (count === 1) {
      visit(base, 1, this.get(base));
      return;
    }
    const pending: PendingRun<V> = { start: base, frames: 0, value: undefined, visit, stopped: false };
    this.visitRuns(this.root, 0, 0, base, base + count, pending);
    if (!pending.stopped && pending.frames > 0) visit(pending.start, pending.frames, pending.value as V);
  }

  private visitRuns(node: RadixNode<V>, d: number, nodeBase: number, lo: number, hi: number, pending: PendingRun<V>): void {
    const span = this.spanAt(d);
    const first = Math.floor((lo - nodeBase) / span);
    const last = Math.floor((hi - 1 - nodeBase) / span);
    for (let i = first; i <= last && !pending.stopped; i++) {
      const slotBase = nodeBase + i * span;
      const slot = node.slots[i] as V | RadixNode<V>;
      const a = Math.max(lo, slotBase);
      const b = Math.min(hi, slotBase + span);
      if (slot instanceof RadixNode) this.visitRuns(slot, d + 1, slotBase, a, b, pending);
      else emitRun(pending, a, b - a, slot);
    }
  }

  /** The first run in range whose value fails `pred`, or undefined if all pass. */
  findRun(base: number, count: number, pred: (value: V) => boolean): { start: number; frames: number; value: V } | undefined {
    if (count === 1) {
      const value = this.get(base);
      return pred(value) ? undefined : { start: base, frames: 1, value };
    }
    let found: { start: number; frames: number; value: V } | undefined;
    this.runs(base, count, (start, frames, value) => {
      if (pred(value)) return true;
      found = { start, frames, value };
      return false;
    });
    return found;
  }

  /**
   * Replaces each value v in [base, base+count) by update(v). `update` must return interned values;
   * a slot whose children all end up equal folds back into one value.
   */
  update(base: number, count: number, update: (value: V) => V): void {
    if (count > 0) this.updateBelow(this.root, 0, 0, base, base + count, update);
  }

  private updateBelow(node: RadixNode<V>, d: number, nodeBase: number, lo: number, hi: number, update: (value: V) => V): void {
    const span = this.spanAt(d);
    const first = Math.floor((lo - nodeBase) / span);
    const last = Math.floor((hi - 1 - nodeBase) / span);
    for (let i = first; i <= last; i++) {
      const slotBase = nodeBase + i * span;
      const a = Math.max(lo, slotBase);
      const b = Math.min(hi, slotBase + span);
      let slot = node.slots[i] as V | RadixNode<V>;
      if (!(slot instanceof RadixNode)) {
        if (a === slotBase && b === slotBase + span) {
          node.slots[i] = update(slot);
          continue;
        }
        slot = this.uniformNode(slot);
        node.slots[i] = slot;
      }
      this.updateBelow(slot, d + 1, slotBase, a, b, update);
      if (isUniform(slot, Math.floor((a - slotBase) / this.spanAt(d + 1)))) {
        node.slots[i] = slot.slots[0] as V;
        if (this.spare.length < SPARE_NODES_MAX) this.spare.push(slot);
      }
    }
  }

  /** A node whose slots all hold `value` (a split slot). */
  private uniformNode(value: V): RadixNode<V> {
    const reused = this.spare.pop();
    if (reused === undefined) return new RadixNode<V>(new Array(FANOUT).fill(value));
    reused.slots.fill(value);
    return reused;
  }

  /** Number of interior nodes, for memory accounting in benchmarks. */
  nodeCount(): number {
    const count = (n: RadixNode<V>): number =>
      1 + n.slots.reduce<number>((acc, s) => acc + (s instanceof RadixNode ? count(s) : 0), 0);
    return count(this.root);
  }
}
