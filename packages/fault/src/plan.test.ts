import { describe, expect, test } from 'vitest';
import { VMM_ERRNO } from '@hypmesh/vmm';
import { ACTIONS_AT_BOUNDARY, BOUNDARIES, VMM_ERRNO_NAMES } from './plan.js';

describe('plan tables', () => {
  test('VMM_ERRNO_NAMES is exactly @hypmesh/vmm VMM_ERRNO (kept as a list to avoid a package cycle)', () => {
    expect([...VMM_ERRNO_NAMES].sort()).toEqual(Object.keys(VMM_ERRNO).sort());
  });

  test('every boundary has its actions; corrupt and reorder only on fragments, truncate only on RM reply fragments', () => {
    expect(Object.keys(ACTIONS_AT_BOUNDARY).sort()).toEqual([...BOUNDARIES].sort());
    for (const b of BOUNDARIES) {
      const actions: readonly string[] = ACTIONS_AT_BOUNDARY[b];
      const fragment = b === 'VMM_TO_RM_FRAGMENT' || b === 'RM_TO_CLIENT_FRAGMENT';
      expect(actions.includes('corrupt')).toBe(fragment);
      expect(actions.includes('reorder')).toBe(fragment);
      expect(actions.includes('truncate')).toBe(b === 'RM_TO_CLIENT_FRAGMENT');
      expect(actions.includes('delay')).toBe(true);
    }
  });
});
