/**
 * The RM's domain gauges (README "Metrics"), read at each scrape: VMs by status (gunyah-rm.md §4.3),
 * parcels by state (§3.9), each client's notification queue (waiting, and dropped because full:
 * §1.3 bounds it at 256), and the byte face's msgq counters (fragments, replies by message ID and RM
 * error, drops by rule).
 */
import type { ServiceMetrics } from '@hypmesh/rpc';
import type { ResourceManager } from '@hypmesh/rm';
import type { ByteFaceStats } from './byte-face.js';

const tally = <T>(items: Iterable<T>, key: (t: T) => string): Map<string, number> => {
  const m = new Map<string, number>();
  for (const t of items) m.set(key(t), (m.get(key(t)) ?? 0) + 1);
  return m;
};

export function rmGauges(m: ServiceMetrics, rm: { readonly rm: ResourceManager; readonly stats: ByteFaceStats }): void {
  const hex = (vmid: number): string => `0x${vmid.toString(16)}`;
  m.gauge('rm_vms', 'VMs by RM status', ['status'], () => [...tally(rm.rm.vms.values(), (v) => v.status)].map(([status, n]) => [{ status }, n] as const));
  m.gauge('rm_parcels', 'parcels by state', ['state'], () => [...tally(rm.rm.parcels.values(), (p) => p.state)].map(([state, n]) => [{ state }, n] as const));
  m.gauge('rm_notifications_pending', 'notifications waiting in a client VM queue', ['vmid'], () => [...rm.rm.vms.keys(), 3].map((vmid) => [{ vmid: hex(vmid) }, rm.rm.pendingFor(vmid)] as const));
  m.gauge('rm_notifications_dropped', 'notifications dropped because a client VM queue was full, since boot', ['vmid'], () => [...rm.rm.vms.keys(), 3].map((vmid) => [{ vmid: hex(vmid) }, rm.rm.queue(vmid).dropped] as const));
  m.gauge('rm_msgq_fragments', 'msgq fragments on the byte face, since boot', ['direction'], () => {
    const s = rm.stats.snapshot();
    return [
      [{ direction: 'received' }, Number(s.fragmentsReceived)],
      [{ direction: 'sent' }, Number(s.fragmentsSent)],
    ];
  });
  m.gauge('rm_msgq_requests', 'whole RM messages dispatched from the byte face, since boot', [], () => [[{}, Number(rm.stats.snapshot().requestsDispatched)]]);
  m.gauge('rm_msgq_replies', 'replies to RM messages on the byte face, by message ID and RM error (gunyah-rm.md §1.5), since boot', ['message_id', 'message', 'rm_error'], () =>
    rm.stats.answerCounts().map((a) => [{ message_id: `0x${a.msgId.toString(16).padStart(8, '0')}`, message: a.message, rm_error: a.rmError }, a.count] as const),
  );
  m.gauge('rm_msgq_drops', 'msgq fragments dropped by the byte face, by rule, since boot', ['rule'], () => rm.stats.snapshot().drops.map((d) => [{ rule: d.rule }, Number(d.count)] as const));
}
