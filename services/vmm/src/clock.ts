/**
 * The VM manager's clock over the process's timers (@hypmesh/vmm's VmmClock port): the domain
 * never reads the wall clock itself. Monotonic (performance.now), so a wall-clock step does not
 * expire or extend a lease.
 */

import type { VmmClock } from '@hypmesh/vmm';

export const systemClock: VmmClock = {
  nowMs: () => performance.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};
