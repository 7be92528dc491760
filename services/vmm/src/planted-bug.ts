/**
 * A deliberate bug for the checker's own test (issue 8: "a test that plants a deliberate bug behind
 * a test-only switch shows that the checker catches it"). Off unless the process environment says
 * HYPMESH_TEST_PLANT_BUG=teardown-skip-reclaim; nothing else turns it on, and no flag, config file
 * or compose service sets it.
 *
 *   teardown-skip-reclaim  the VM manager's first MEM_RECLAIM (only teardown reclaims parcels,
 *                          _gunyah_vm_put, gunyah-lifecycle.ts reclaimAll) is never sent; the port answers
 *                          OK as if the RM had reclaimed it. The VMM forgets the handle, reports no
 *                          leak, and the parcel stays with the RM with its memory still lent: an
 *                          orphaned parcel, which `hypmesh check` must report.
 *
 * The bug is planted at the RM port the service builds (rm-client.ts), so the domain in
 * packages/vmm stays free of test switches.
 */
import type { RmPort } from '@hypmesh/vmm';

export const PLANT_BUG_ENV = 'HYPMESH_TEST_PLANT_BUG';
export const PLANTED_BUGS = ['teardown-skip-reclaim'] as const;
export type PlantedBug = (typeof PLANTED_BUGS)[number];

/** The bug the environment asks for; an unknown value is an error, so a typo does not silently test nothing. */
export function plantedBug(env: NodeJS.ProcessEnv = process.env): PlantedBug | undefined {
  const v = env[PLANT_BUG_ENV];
  if (v === undefined || v === '') return undefined;
  if (!(PLANTED_BUGS as readonly string[]).includes(v)) throw new Error(`${PLANT_BUG_ENV}=${v}: unknown planted bug (known: ${PLANTED_BUGS.join(', ')})`);
  return v as PlantedBug;
}

/** `port` with the bug planted, or `port` itself when none is asked for. */
export function withPlantedBug<P extends RmPort>(port: P, bug: PlantedBug | undefined = plantedBug()): P {
  if (bug !== 'teardown-skip-reclaim') return port;
  let skipped = false;
  return {
    ...port,
    memReclaim: async (request) => {
      if (skipped) return port.memReclaim(request);
      skipped = true;
      return { ok: true, value: {} as never };
    },
  };
}
