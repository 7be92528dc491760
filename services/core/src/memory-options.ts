/**
 * The core's memory map from its options (main.ts and the suite share it): `--memory` /
 * HYPMESH_MEMORY (the flag form) or `--memory-config` / HYPMESH_MEMORY_CONFIG (a JSON file), parsed
 * by @hypmesh/stage2's one parser (memory/memory-map.ts). Reading the file is the only I/O here.
 */

import { readFileSync } from 'node:fs';
import { parseMemoryJson, parseMemorySpec, type MemoryConfig } from '@hypmesh/stage2';

export interface MemoryOptions {
  /** The flag form, e.g. `ram@0x80000000:16G,mmio@0x10000000:256M,pa=40`. */
  readonly memory?: string | undefined;
  /** Path of a JSON memory config (`{ "paBits": 40, "regions": [{ "kind": "ram", "base": "0x80000000", "size": "16G" }] }`). */
  readonly memoryConfig?: string | undefined;
}

/** The map the options give, undefined when they give none, or every problem found. */
export function memoryFromOptions(given: MemoryOptions): { ok: true; value: MemoryConfig | undefined } | { ok: false; error: string[] } {
  // An empty variable (HYPMESH_MEMORY= in a compose file) means "not given", not an empty map.
  const o = { memory: given.memory === '' ? undefined : given.memory, memoryConfig: given.memoryConfig === '' ? undefined : given.memoryConfig };
  if (o.memory !== undefined && o.memoryConfig !== undefined) return { ok: false, error: ['give --memory or --memory-config, not both'] };
  if (o.memory !== undefined) {
    const r = parseMemorySpec(o.memory);
    return r.ok ? r : { ok: false, error: r.error.map((p) => `--memory: ${p}`) };
  }
  if (o.memoryConfig === undefined) return { ok: true, value: undefined };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(o.memoryConfig, 'utf8'));
  } catch (e) {
    return { ok: false, error: [`--memory-config ${o.memoryConfig}: ${e instanceof Error ? e.message : String(e)}`] };
  }
  const r = parseMemoryJson(json);
  return r.ok ? r : { ok: false, error: r.error.map((p) => `--memory-config ${o.memoryConfig}: ${p}`) };
}
