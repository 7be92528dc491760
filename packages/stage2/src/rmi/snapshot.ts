/**
 * A plain-data image of everything RMI commands may change: the granule records and grant marks
 * (as runs), the host's stage 2 (as leaves) and its pool, and the RMM's realms, RECs, RTTs and
 * VMIDs. Two images are deep-equal exactly when no such state differs, which is how tests check
 * that a failed command changed nothing (STYLE.md: every failure case checks nothing changed).
 */

import type { Stage2 } from '../stage2.js';

export interface RmiSnapshot {
  readonly meta: readonly unknown[];
  readonly grants: readonly unknown[];
  readonly host: readonly unknown[];
  readonly hostPool: number;
  readonly hostTablePages: number;
  readonly realms: readonly unknown[];
  readonly recs: readonly unknown[];
  readonly rtts: readonly unknown[];
  readonly vmids: readonly number[];
}

const byKey = <V>(m: Map<number, V>): [number, V][] => [...m.entries()].sort((a, b) => a[0] - b[0]);

export function rmiSnapshot(s: Stage2): RmiSnapshot {
  const meta: unknown[] = [];
  s.memory.meta.runs(0, s.memory.frameCount, (start, frames, m) => void meta.push([start, frames, m === null ? null : { ...m }]));
  const grants: unknown[] = [];
  s.memory.grantOf.runs(0, s.memory.frameCount, (start, frames, g) => void grants.push([start, frames, g]));
  const host: unknown[] = [];
  s.host.table.leafRuns(0, s.host.table.frameLimit, (v) => void host.push([v.start, v.frames, v.desc, v.level]));
  return {
    meta,
    grants,
    host,
    hostPool: s.host.pool.size,
    hostTablePages: s.host.table.tablePages,
    realms: byKey(s.rmm.realms).map(([, r]) => ({ ...r, roots: r.roots.map((t) => t.frame) })),
    recs: byKey(s.rmm.recs).map(([, r]) => ({ ...r, ripasRequest: { ...r.ripasRequest } })),
    rtts: byKey(s.rmm.rtts).map(([, t]) => ({ frame: t.frame, rd: t.rd, level: t.level, baseIpa: t.baseIpa, refcount: t.refcount, entries: Array.from(t.entries) })),
    vmids: [...s.rmm.vmids].sort((a, b) => a - b),
  };
}
