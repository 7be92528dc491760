/**
 * A restorable image of the whole core (the durable core's snapshot: load it, then replay the
 * journal's tail). snapshot.ts is a digest for equality; this is the state itself: the object graph
 * of a Stage2 (physical memory's radix map, every space's table pages and pool, grants, the RMM's
 * objects) with shared references kept, each class instance restored with its prototype, and
 * typed arrays byte for byte.
 *
 * Interned records are restored as the canonical ones: a granule record (memory/granule.ts) goes
 * through granuleMeta, so the radix map's identity comparisons (run merging, folding) behave as in
 * the core that wrote the image; NO_RIPAS_REQUEST is the constant itself. Any other frozen object,
 * a function or an unknown class is refused when writing: an image that would not restore exactly
 * is never written.
 */

import { AddressSpace, TablePool } from './address-space.js';
import { granuleMeta, type GranuleMeta } from './memory/granule.js';
import { PhysicalMemory } from './memory/physical-memory.js';
import { RadixMap } from './memory/radix-map.js';
import { NO_RIPAS_REQUEST, RmmState, Rtt } from './rmi/rmm-state.js';
import { TablePage, TranslationTable } from './s2tt/translation-table.js';
import { Stage2 } from './stage2.js';

/** RadixNode is private to radix-map.ts; its prototype is taken from a map's root. */
const radixNodePrototype = Object.getPrototypeOf((new RadixMap(6, null) as unknown as { root: object }).root) as object;

/** Every class an image may hold, by name. */
const CLASSES: ReadonlyMap<string, object> = new Map<string, object>([
  ['Stage2', Stage2.prototype],
  ['PhysicalMemory', PhysicalMemory.prototype],
  ['RadixMap', RadixMap.prototype],
  ['RadixNode', radixNodePrototype],
  ['AddressSpace', AddressSpace.prototype],
  ['TablePool', TablePool.prototype],
  ['TranslationTable', TranslationTable.prototype],
  ['TablePage', TablePage.prototype],
  ['RmmState', RmmState.prototype],
  ['Rtt', Rtt.prototype],
]);
const CLASS_NAMES = new Map([...CLASSES].map(([name, proto]) => [proto, name]));

const GRANULE_META_KEYS = ['kind', 'owner', 'hyp', 'pins', 'guestShares', 'rmi', 'hypUse'].sort().join();

/** A value in the image: primitives inline, objects by index into the table. */
type Cell = string | number | boolean | null | { readonly $ref: number } | { readonly $undefined: 1 } | { readonly $hole: 1 } | { readonly $number: string } | { readonly $bigint: string };
/** One object of the table. */
type Entry =
  | { readonly array: Cell[] }
  | { readonly map: [Cell, Cell][] }
  | { readonly set: Cell[] }
  | { readonly typed: 'Float64Array' | 'Uint8Array' | 'Uint32Array' | 'Int32Array'; readonly base64: string }
  | { readonly frozen: Record<string, Cell> }
  | { readonly object: Record<string, Cell>; readonly class?: string };

const TYPED = { Float64Array, Uint8Array, Uint32Array, Int32Array } as const;

/** The image of `s` as JSON text. Throws on anything it could not restore exactly (a bug to fix here). */
export function coreImage(s: Stage2): string {
  const ids = new Map<object, number>();
  const table: Entry[] = [];
  const cell = (v: unknown, path: string): Cell => {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0) ? v : { $number: Object.is(v, -0) ? '-0' : String(v) };
    if (v === undefined) return { $undefined: 1 };
    if (typeof v === 'bigint') return { $bigint: v.toString() };
    if (typeof v !== 'object') throw new Error(`core image: ${typeof v} at ${path}`);
    const known = ids.get(v);
    if (known !== undefined) return { $ref: known };
    const id = table.length;
    ids.set(v, id);
    table.push({ array: [] }); // placeholder, so that cycles find the id
    table[id] = entry(v, path);
    return { $ref: id };
  };
  const fields = (v: object, path: string): Record<string, Cell> => Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cell(x, `${path}.${k}`)]));
  const entry = (v: object, path: string): Entry => {
    // By index, so that holes (a table page's children not yet made) stay holes.
    if (Array.isArray(v)) return { array: Array.from({ length: v.length }, (_, i) => (i in v ? cell(v[i], `${path}[${i}]`) : { $hole: 1 as const })) };
    if (v instanceof Map) return { map: [...v.entries()].map(([k, x]) => [cell(k, `${path}<key>`), cell(x, `${path}<value>`)]) };
    if (v instanceof Set) return { set: [...v].map((x) => cell(x, `${path}<member>`)) };
    if (ArrayBuffer.isView(v)) {
      const name = v.constructor.name;
      if (!(name in TYPED)) throw new Error(`core image: ${name} at ${path}`);
      return { typed: name as keyof typeof TYPED, base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
    }
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto === Object.prototype || proto === null) {
      if (!Object.isFrozen(v)) return { object: fields(v, path) };
      if (v !== NO_RIPAS_REQUEST && Object.keys(v).sort().join() !== GRANULE_META_KEYS) throw new Error(`core image: an unknown frozen object at ${path}`);
      return { frozen: fields(v, path) };
    }
    const name = CLASS_NAMES.get(proto);
    if (name === undefined) throw new Error(`core image: an instance of ${proto.constructor?.name ?? 'an unknown class'} at ${path}`);
    return { object: fields(v, path), class: name };
  };
  const root = cell(s, 'core');
  return JSON.stringify({ root, table });
}

/** The core an image holds. */
export function restoreCore(image: string): Stage2 {
  const { root, table } = JSON.parse(image) as { root: Cell; table: Entry[] };
  const objects: unknown[] = new Array(table.length);
  const value = (c: Cell): unknown => {
    if (c === null || typeof c !== 'object') return c;
    if ('$ref' in c) return objects[c.$ref];
    if ('$undefined' in c || '$hole' in c) return undefined;
    if ('$number' in c) return c.$number === '-0' ? -0 : Number(c.$number);
    return BigInt(c.$bigint);
  };
  // Shells first (so references in any order resolve), then contents. Frozen records hold only
  // primitives, so they are built and interned at once.
  table.forEach((e, i) => {
    if ('array' in e) objects[i] = new Array(e.array.length);
    else if ('map' in e) objects[i] = new Map();
    else if ('set' in e) objects[i] = new Set();
    else if ('typed' in e) {
      const bytes = Buffer.from(e.base64, 'base64');
      const Typed = TYPED[e.typed];
      objects[i] = new Typed(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    } else if ('frozen' in e) {
      const record = Object.fromEntries(Object.entries(e.frozen).map(([k, c]) => [k, value(c)]));
      objects[i] = 'addr' in record ? NO_RIPAS_REQUEST : granuleMeta(record as unknown as GranuleMeta);
    } else {
      const proto = e.class === undefined ? Object.prototype : CLASSES.get(e.class);
      if (proto === undefined) throw new Error(`core image: unknown class ${e.class}`);
      objects[i] = Object.create(proto);
    }
  });
  table.forEach((e, i) => {
    const o = objects[i];
    if ('array' in e) {
      for (let at = 0; at < e.array.length; at++) {
        const c = e.array[at]!;
        if (c === null || typeof c !== 'object' || !('$hole' in c)) (o as unknown[])[at] = value(c);
      }
    }
    else if ('map' in e) for (const [k, x] of e.map) (o as Map<unknown, unknown>).set(value(k), value(x));
    else if ('set' in e) for (const x of e.set) (o as Set<unknown>).add(value(x));
    else if ('object' in e) for (const [k, c] of Object.entries(e.object)) Object.defineProperty(o, k, { value: value(c), writable: true, enumerable: true, configurable: true });
  });
  const core = value(root);
  if (!(core instanceof Stage2)) throw new Error('core image: the root is not a core');
  return core;
}
