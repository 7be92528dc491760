import { describe, expect, test } from 'vitest';
import type { RmPort } from '@hypmesh/vmm';
import { plantedBug, withPlantedBug } from './planted-bug.js';

const port = (): { port: RmPort; reclaimed: number[] } => {
  const reclaimed: number[] = [];
  const p = { memReclaim: async (r: { handle: number }) => (reclaimed.push(r.handle), { ok: true, value: {} }) } as unknown as RmPort;
  return { port: p, reclaimed };
};

describe('planted bug (test-only switch)', () => {
  test('off by default: the port is returned unchanged', () => {
    const { port: p } = port();
    expect(plantedBug({})).toBeUndefined();
    expect(withPlantedBug(p, undefined)).toBe(p);
  });
  test('an unknown value is refused', () => {
    expect(() => plantedBug({ HYPMESH_TEST_PLANT_BUG: 'typo' })).toThrow(/unknown planted bug/);
  });
  test('teardown-skip-reclaim: the first MEM_RECLAIM is answered OK without reaching the RM, later ones pass', async () => {
    const { port: p, reclaimed } = port();
    const bugged = withPlantedBug(p, plantedBug({ HYPMESH_TEST_PLANT_BUG: 'teardown-skip-reclaim' }));
    expect(await bugged.memReclaim({ handle: 1, flags: 0 })).toEqual({ ok: true, value: {} });
    expect(await bugged.memReclaim({ handle: 2, flags: 0 })).toEqual({ ok: true, value: {} });
    expect(reclaimed).toEqual([2]);
  });
});
