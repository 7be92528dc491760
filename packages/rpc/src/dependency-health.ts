/**
 * Health that reflects dependencies (issue 10 item 2, DESIGN.md §8): a service whose dependency
 * (the RM's core; the VMM's RM and core) has been unreachable for longer than a grace period
 * reports NOT_SERVING, and SERVING again once it answers. Each dependency is probed with its own
 * grpc.health.v1 Check (any answer means reachable: a dependency that answers is there, whatever
 * it says of itself), so an idle service notices an outage too. Per-dependency state is its own
 * health service name, `<service>/<dependency>` (e.g. hypmesh.vmm.v1.VmmService/core); the
 * service's name and '' are SERVING only while every dependency is. Each transition is logged once.
 */

import * as grpc from '@grpc/grpc-js';
import type { HealthImplementation } from 'grpc-health-check';
import type { Dependency } from './dependency.js';

export interface WatchedDependency {
  readonly name: Dependency;
  /** host:port */
  readonly address: string;
}

export interface TransitionLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface DependencyWatch {
  readonly dependencies: readonly WatchedDependency[];
  /** How long a dependency may be unreachable before the service reports NOT_SERVING. */
  readonly graceMs: number;
  /** Probe period (default: graceMs / 3, at most 1 s); each probe's deadline is the same. */
  readonly probeMs?: number;
  readonly log: TransitionLog;
  /** The probes' channel credentials: the service's client mTLS identity (tls.ts), else plaintext. */
  readonly credentials?: grpc.ChannelCredentials;
}

export const DEPENDENCY_GRACE_MS_DEFAULT = 3_000;

const CHECK_PATH = '/grpc.health.v1.Health/Check';
const identity = (b: Buffer): Buffer => b;

/** Starts probing; `stop` ends it (serveGrpc calls it before shutdown sets NOT_SERVING). */
export function watchDependencies(health: HealthImplementation, serviceName: string, watch: DependencyWatch): { stop(): void } {
  const probeMs = watch.probeMs ?? Math.max(50, Math.min(1_000, Math.floor(watch.graceMs / 3)));
  const states = watch.dependencies.map((d) => ({
    ...d,
    healthName: `${serviceName}/${d.name}`,
    client: new grpc.Client(d.address, watch.credentials ?? grpc.credentials.createInsecure()),
    serving: true,
    downSince: undefined as number | undefined,
    inFlight: false,
  }));
  let stopped = false;
  const overall = (): void => {
    const status = states.every((s) => s.serving) ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', status);
    health.setStatus(serviceName, status);
  };
  for (const s of states) health.setStatus(s.healthName, 'SERVING');

  const probe = (s: (typeof states)[number]): void => {
    if (s.inFlight) return;
    s.inFlight = true;
    s.client.makeUnaryRequest(CHECK_PATH, identity, identity, Buffer.alloc(0), { deadline: Date.now() + probeMs }, (e) => {
      s.inFlight = false;
      if (stopped) return;
      const now = Date.now();
      if (e === null) {
        s.downSince = undefined;
        if (s.serving) return;
        s.serving = true;
        health.setStatus(s.healthName, 'SERVING');
        overall();
        watch.log.info({ dependency: s.name, address: s.address }, `dependency ${s.name} reachable again: SERVING`);
        return;
      }
      s.downSince ??= now;
      if (!s.serving || now - s.downSince < watch.graceMs) return;
      s.serving = false;
      health.setStatus(s.healthName, 'NOT_SERVING');
      overall();
      watch.log.warn({ dependency: s.name, address: s.address, downMs: now - s.downSince, error: e.details }, `dependency ${s.name} unreachable for ${now - s.downSince} ms: NOT_SERVING`);
    });
  };
  const timer = setInterval(() => states.forEach(probe), probeMs);
  timer.unref();
  states.forEach(probe);
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
      for (const s of states) s.client.close();
    },
  };
}
