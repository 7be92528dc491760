import { describe, expect, test } from 'vitest';
import {
  RTTE_UNASSIGNED_EMPTY,
  RTTE_UNASSIGNED_NS,
  HOST_NS_ATTRS_DEFAULT,
  rtteAssigned,
  rtteAssignedNs,
  rtteHasRipas,
  rtteHostDesc,
  rtteIsLive,
  rtteIsRefcounted,
  rtteKind,
  rtteName,
  rttePa,
  rtteRipas,
  rtteTable,
  rtteUnassigned,
  rtteWithPa,
} from './rtt-entry.js';

const PA = 0xf_ffff_f000; // a high PA, granule aligned

describe('§B5 RTTE encoding', () => {
  // kind, RIPAS, PA, live (skip_non_live), refcounted (§B2), has RIPAS.
  test.each([
    { e: RTTE_UNASSIGNED_EMPTY, name: 'UNASSIGNED_EMPTY', pa: 0, live: false, refs: false, ripas: true },
    { e: rtteUnassigned('RAM'), name: 'UNASSIGNED_RAM', pa: 0, live: false, refs: false, ripas: true },
    { e: rtteUnassigned('DESTROYED'), name: 'UNASSIGNED_DESTROYED', pa: 0, live: false, refs: false, ripas: true },
    { e: rtteAssigned(PA, 'EMPTY'), name: 'ASSIGNED_EMPTY', pa: PA, live: true, refs: true, ripas: true },
    { e: rtteAssigned(PA, 'RAM'), name: 'ASSIGNED_RAM', pa: PA, live: true, refs: true, ripas: true },
    { e: rtteAssigned(PA, 'DESTROYED'), name: 'ASSIGNED_DESTROYED', pa: PA, live: true, refs: true, ripas: true },
    { e: RTTE_UNASSIGNED_NS, name: 'UNASSIGNED_NS', pa: 0, live: false, refs: false, ripas: false },
    { e: rtteAssignedNs(PA, HOST_NS_ATTRS_DEFAULT), name: 'ASSIGNED_NS', pa: PA, live: true, refs: false, ripas: false },
    { e: rtteTable(PA), name: 'TABLE', pa: PA, live: true, refs: true, ripas: false },
  ])('$name', ({ e, name, pa, live, refs, ripas }) => {
    expect(rtteName(e)).toBe(name);
    expect(rttePa(e)).toBe(pa);
    expect(rtteIsLive(e)).toBe(live);
    expect(rtteIsRefcounted(e)).toBe(refs);
    expect(rtteHasRipas(e)).toBe(ripas);
    expect(Number.isSafeInteger(e)).toBe(true);
  });

  test('moving a block entry to another PA keeps kind, RIPAS and NS attributes', () => {
    const e = rtteAssigned(PA, 'DESTROYED');
    expect(rtteRipas(rtteWithPa(e, 0x2000))).toBe('DESTROYED');
    const ns = rtteAssignedNs(PA, HOST_NS_ATTRS_DEFAULT);
    expect(rtteHostDesc(rtteWithPa(ns, 0x4000))).toBe(0x4000 + HOST_NS_ATTRS_DEFAULT);
    expect(rtteKind(rtteWithPa(rtteTable(PA), 0x1000))).toBe('TABLE');
  });
});
