/**
 * Fixtures for the rmi/ tests (no test framework imports, so it type-checks with the package):
 * a fresh core, a host page allocator for KVM-style walks, and a realm built the way KVM builds one.
 */

import { Stage2, DEFAULT_STAGE2_CONFIG } from '../stage2.js';
import type { Result } from '../result.js';
import { GRANULE_SIZE } from '../types.js';
import { granuleDelegate } from './granule.js';
import type { RealmHost, RealmLayout, TeardownStep } from './kvm-host.js';
import { realmCreate, realmRootRttCount, type RealmParams } from './realm.js';
import type { RmiError } from './status.js';

export const GiB = 2 ** 30;
export const MiB = 2 ** 20;
export const KiB = 2 ** 10;
/** Default memory (physical-memory.ts): 1 GiB MMIO at 0, 16 GiB RAM at 2 GiB, PA 40 bits. */
export const RAM_BASE = 2 * GiB;
export const MMIO_BASE = 0;

export const newCore = (): Stage2 => new Stage2(DEFAULT_STAGE2_CONFIG);

/** The i-th granule of RAM, from the start of RAM. */
export const ram = (i: number): number => RAM_BASE + i * GRANULE_SIZE;

/** What a failed result reports, for table-driven expectations; 'ok' on success. */
export function outcome(r: Result<unknown, RmiError>): { status: string; index: number; rule: string } | 'ok' {
  return r.ok ? 'ok' : { status: r.error.status, index: r.error.index, rule: r.error.rule };
}

/** Unwraps a result that must succeed (fixture setup). */
export function must<T>(r: Result<T, { message: string }>, what = 'fixture step'): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.message}`);
  return r.value;
}

/** A host allocator over RAM from `base`: fresh pages in order, freed ones reused first. */
export class TestHost implements RealmHost {
  readonly warnings: string[] = [];
  readonly freed: number[] = [];
  readonly steps: TeardownStep[] = [];
  allocated = 0;
  private nextFresh: number;
  constructor(
    base = RAM_BASE + 256 * MiB,
    private readonly limit = Infinity,
  ) {
    this.nextFresh = base;
  }
  alloc(): number | undefined {
    if (this.allocated >= this.limit) return undefined;
    this.allocated++;
    const reused = this.freed.pop();
    if (reused !== undefined) return reused;
    const a = this.nextFresh;
    this.nextFresh += GRANULE_SIZE;
    return a;
  }
  free(addr: number): void {
    this.allocated--;
    this.freed.push(addr);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  trace(step: TeardownStep): void {
    this.steps.push(step);
  }
}

/** Delegates a fresh host page and returns its address. */
export function delegated(s: Stage2, host: TestHost): number {
  const a = host.alloc();
  if (a === undefined) throw new Error('test host out of pages');
  must(granuleDelegate(s, a), `delegate ${a.toString(16)}`);
  return a;
}

export interface TestRealm extends RealmLayout {
  readonly params: RealmParams;
}

/** Delegates an RD and consecutive roots and creates a realm (default: 40-bit IPA, level 1, 2 roots). */
export function createTestRealm(s: Stage2, host: TestHost, s2sz = 40, rttLevelStart = 1, vmid?: number): TestRealm {
  const rd = delegated(s, host);
  const count = realmRootRttCount(s2sz, rttLevelStart);
  const roots: number[] = [];
  for (let i = 0; i < count; i++) roots.push(delegated(s, host));
  for (let i = 1; i < count; i++) if (roots[i] !== (roots[0] as number) + i * GRANULE_SIZE) throw new Error('roots not consecutive');
  const params: RealmParams = { s2sz, rttLevelStart, rttNumStart: count, rttBase: roots[0] as number, ...(vmid === undefined ? {} : { vmid }) };
  must(realmCreate(s, rd, params), 'realm create');
  return { rd, roots, ipaBits: s2sz, startLevel: rttLevelStart, recs: [], params };
}

/** Delegates `count` consecutive granules from `base`; returns their addresses. */
export function delegateRange(s: Stage2, base: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const a = base + i * GRANULE_SIZE;
    must(granuleDelegate(s, a), `delegate ${a.toString(16)}`);
    out.push(a);
  }
  return out;
}
