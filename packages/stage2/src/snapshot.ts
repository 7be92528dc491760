/**
 * A structural digest of the whole core: ownership runs, every address space's entries, pools and
 * table counts, live grants and the RMM's objects. Two digests are equal exactly when nothing
 * observable changed, which is how tests prove that a refused call left everything untouched.
 */

import { ownershipMap } from './queries.js';
import type { Stage2 } from './stage2.js';

export function snapshot(s: Stage2): unknown {
  const owners = ownershipMap(s, 0, s.memory.frameCount, Number.MAX_SAFE_INTEGER);
  return {
    owners: owners.ok ? owners.value.runs : owners.error,
    spaces: [...s.spaces.values()].map((sp) => {
      const entries: [number, number, number, number][] = [];
      sp.table.leafRuns(0, sp.table.frameLimit, (v) => {
        if (v.desc !== 0) entries.push([v.start, v.frames, v.level, v.desc]);
      });
      return { vmid: sp.vmid, entries, pool: [...sp.pool.snapshot()].sort((a, b) => a - b), tablePages: sp.table.tablePages };
    }),
    hypReservation: [...s.hypReservation.snapshot()].sort((a, b) => a - b),
    spaceCreators: [...s.spaces.values()].map((sp) => [sp.vmid, sp.creator]),
    grants: [...s.grants.values()].map((g) => ({ ...g, borrowers: [...g.borrowers.entries()] })),
    nextGrantId: s.nextGrantId,
    rmm: digest(s.rmm),
  };
}

/** Plain-data copy of a value (Maps, Sets and typed arrays become arrays), for deep equality. */
function digest(value: unknown, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[cycle]';
  seen.add(value);
  let out: unknown;
  if (value instanceof Map) out = [...value.entries()].map(([k, v]) => [digest(k, seen), digest(v, seen)]);
  else if (value instanceof Set) out = [...value].map((v) => digest(v, seen));
  else if (ArrayBuffer.isView(value)) out = Array.from(value as unknown as ArrayLike<number>);
  else if (Array.isArray(value)) out = value.map((v) => digest(v, seen));
  else out = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, digest(v, seen)]));
  seen.delete(value);
  return out;
}
