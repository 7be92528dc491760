/**
 * The core's domain gauges (README "Metrics"), read from the live core at each scrape: who owns the
 * physical frames (ownership runs, stage2-models.md §A3), and how many address spaces and grants live.
 */
import type { ServiceMetrics } from '@hypmesh/rpc';
import { ownershipCounts, type Stage2 } from '@hypmesh/stage2';

/** A VMID as metrics label it: the fixed owners by name (DESIGN.md §2), guests in hex. */
export const vmidLabel = (vmid: number): string => (vmid === 0 ? 'HYP' : vmid === 3 ? 'HOST' : vmid === 0xff ? 'RM' : `0x${vmid.toString(16)}`);

export function coreGauges(m: ServiceMetrics, core: { readonly stage2: Stage2 }): void {
  m.gauge('core_frames', 'physical frames by owner', ['owner'], () => [...ownershipCounts(core.stage2).byOwner].map(([owner, frames]) => [{ owner: vmidLabel(owner) }, frames] as const));
  m.gauge('core_address_spaces', 'live stage-2 address spaces (HOST included)', [], () => [[{}, core.stage2.spaces.size]]);
  m.gauge('core_grants', 'live grants', [], () => [[{}, core.stage2.grants.size]]);
}
