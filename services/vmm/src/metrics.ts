/**
 * The VM manager's domain gauges (README "Metrics"), read at each scrape: VMs by type and state
 * (the handle's life cycle, DESIGN.md §4), and open sessions (streams and leases).
 */
import type { ServiceMetrics } from '@hypmesh/rpc';
import type { VmManager } from '@hypmesh/vmm';

export function vmmGauges(m: ServiceMetrics, server: { readonly vmm: VmManager }): void {
  m.gauge('vmm_vms', 'VMs by type and state', ['type', 'state'], () => {
    const n = new Map<string, number>();
    for (const v of server.vmm.states()) n.set(`${v.type}|${v.state}`, (n.get(`${v.type}|${v.state}`) ?? 0) + 1);
    return [...n].map(([k, count]) => {
      const [type = '', state = ''] = k.split('|');
      return [{ type, state }, count] as const;
    });
  });
  m.gauge('vmm_sessions', 'open sessions (OpenSession streams and leases)', [], () => [[{}, server.vmm.counts().sessions]]);
}
