/**
 * The physical memory map as a user writes it (DESIGN.md §2 "Physical memory: configured RAM and
 * MMIO ranges"): one parser for the core's `--memory` flag / HYPMESH_MEMORY and for the JSON of
 * `--memory-config`, pure (the service reads the file). Both produce a MemoryConfig and are validated
 * by `memoryConfigProblems` (physical-memory.ts), so every route reports the same clear errors:
 * zero size, not 4 KiB aligned, beyond the PA width, overlap, no RAM.
 *
 * Flag form: comma-separated items, `<kind>@<base>:<size>` with kind `ram` or `mmio`, plus an
 * optional `pa=<bits>` (default 40, 32..48):
 *
 *     ram@0x80000000:16G,mmio@0x10000000:256M
 *     ram@0x80000000:2G,ram@0x880000000:2G,mmio@0:16M,pa=40
 *
 * Numbers are decimal or 0x-hex; a size may end in K, M, G or T (binary: KiB … TiB).
 *
 * JSON form: `{ "paBits": 40, "regions": [ { "kind": "ram", "base": "0x80000000", "size": "16G" } ] }`
 * where base and size are each a number or a string in the flag's syntax.
 */

import { err, ok, type Result } from '../result.js';
import { DEFAULT_MEMORY_CONFIG, memoryConfigProblems, type MemoryConfig, type MemoryRegion } from './physical-memory.js';

const UNITS = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 } as const;

/** A byte count or address: decimal or 0x-hex, optionally with a K/M/G/T (binary) suffix. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(0x[0-9a-f_]+|[0-9_]+)\s*([KMGT])?(?:i?B)?\s*$/i.exec(text);
  if (m === null) return undefined;
  const digits = m[1]!.replace(/_/g, '');
  const n = digits.toLowerCase().startsWith('0x') ? Number.parseInt(digits.slice(2), 16) : Number.parseInt(digits, 10);
  const unit = m[2] === undefined ? 1 : UNITS[m[2].toUpperCase() as keyof typeof UNITS];
  const v = n * unit;
  return Number.isSafeInteger(v) ? v : undefined;
}

interface Draft {
  paBits: number;
  ram: MemoryRegion[];
  mmio: MemoryRegion[];
}

const finish = (d: Draft, problems: string[]): Result<MemoryConfig, string[]> => {
  const config: MemoryConfig = { paBits: d.paBits, ram: d.ram, mmio: d.mmio };
  const all = [...problems, ...(problems.length === 0 ? memoryConfigProblems(config) : [])];
  return all.length > 0 ? err(all) : ok(config);
};

function addRegion(d: Draft, problems: string[], where: string, kind: string, base: unknown, size: unknown): void {
  const k = kind.toLowerCase();
  if (k !== 'ram' && k !== 'mmio') {
    problems.push(`${where}: kind "${kind}" is neither ram nor mmio`);
    return;
  }
  const b = typeof base === 'number' ? base : typeof base === 'string' ? parseBytes(base) : undefined;
  const s = typeof size === 'number' ? size : typeof size === 'string' ? parseBytes(size) : undefined;
  if (b === undefined || !Number.isSafeInteger(b) || b < 0) problems.push(`${where}: base ${JSON.stringify(base)} is not a byte address`);
  if (s === undefined || !Number.isSafeInteger(s) || s < 0) problems.push(`${where}: size ${JSON.stringify(size)} is not a byte count`);
  if (b === undefined || s === undefined) return;
  (k === 'ram' ? d.ram : d.mmio).push({ base: b, sizeBytes: s });
}

function paBitsOf(v: unknown, problems: string[], where: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n)) problems.push(`${where}: PA width ${JSON.stringify(v)} is not an integer`);
  return n;
}

/** Parses the flag form (`ram@0x80000000:16G,mmio@0x10000000:256M[,pa=40]`). */
export function parseMemorySpec(text: string): Result<MemoryConfig, string[]> {
  const d: Draft = { paBits: DEFAULT_MEMORY_CONFIG.paBits, ram: [], mmio: [] };
  const problems: string[] = [];
  const items = text.split(',').map((x) => x.trim());
  if (text.trim() === '') return err(['memory map is empty: expected e.g. ram@0x80000000:16G,mmio@0x10000000:256M']);
  items.forEach((item, i) => {
    const where = `item ${i + 1} "${item}"`;
    const pa = /^pa(?:bits)?\s*=\s*(.*)$/i.exec(item);
    if (pa !== null) {
      d.paBits = paBitsOf(pa[1]!, problems, where);
      return;
    }
    const m = /^([a-z]+)@([^:]+):(.+)$/i.exec(item);
    if (m === null) {
      problems.push(`${where}: expected <ram|mmio>@<base>:<size> or pa=<bits>`);
      return;
    }
    addRegion(d, problems, where, m[1]!, m[2]!, m[3]!);
  });
  return finish(d, problems);
}

/** Parses the JSON form (already decoded with JSON.parse). */
export function parseMemoryJson(value: unknown): Result<MemoryConfig, string[]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return err(['memory config: expected a JSON object with "regions"']);
  const o = value as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(o).filter((k) => k !== 'paBits' && k !== 'regions');
  if (unknown.length > 0) problems.push(`memory config: unknown key(s) ${unknown.join(', ')} (expected paBits, regions)`);
  const d: Draft = { paBits: o['paBits'] === undefined ? DEFAULT_MEMORY_CONFIG.paBits : paBitsOf(o['paBits'], problems, 'paBits'), ram: [], mmio: [] };
  const regions = o['regions'];
  if (!Array.isArray(regions)) return err([...problems, 'memory config: "regions" must be an array']);
  regions.forEach((r: unknown, i) => {
    const where = `regions[${i}]`;
    if (typeof r !== 'object' || r === null) {
      problems.push(`${where}: expected { kind, base, size }`);
      return;
    }
    const x = r as Record<string, unknown>;
    addRegion(d, problems, where, typeof x['kind'] === 'string' ? x['kind'] : String(x['kind']), x['base'], x['size']);
  });
  return finish(d, problems);
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The flag form of a map, as `parseMemorySpec` reads it back (for logs and the CLI). */
export function formatMemorySpec(c: MemoryConfig): string {
  const regions = [...c.ram.map((r) => ({ kind: 'ram', ...r })), ...c.mmio.map((r) => ({ kind: 'mmio', ...r }))].sort((a, b) => a.base - b.base);
  return [...regions.map((r) => `${r.kind}@${hex(r.base)}:${hex(r.sizeBytes)}`), `pa=${c.paBits}`].join(',');
}
