/**
 * Fixtures for the VMM tests (not part of the package build): a core and an RM in process, a VM
 * manager over them with a port that records every RM call in order, and the "everything is back
 * with the host" check.
 */
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { Stage2, DEFAULT_STAGE2_CONFIG, checkInvariants, ownershipCounts } from '@hypmesh/stage2';
import { expect } from 'vitest';
import { RIGHTS, type Binding } from './bindings.js';
import type { VmmClock } from './clock.js';
import { donationRegionOf, inProcessCorePort, inProcessHoldings, inProcessRm } from './in-process.js';
import { RM_PORT_CALLS, type CorePort, type RmPort } from './ports.js';
import { DEFAULT_VMM_CONFIG, VmManager, type VmmConfig } from './vm-manager.js';

export const GiB = 2 ** 30;
export const MiB = 2 ** 20;
/** Host RAM for guest memory: 1 GiB into the default RAM (2 GiB..18 GiB). */
export const HOST_GUEST_RAM = BigInt(3 * GiB);
export const RWX = RIGHTS.R | RIGHTS.W | RIGHTS.X;

/** An RmPort that records each call's message name (and what `fail` makes it refuse). */
export function recording(inner: RmPort, log: string[]): RmPort {
  const port: Record<string, unknown> = { onNotice: inner.onNotice.bind(inner) };
  for (const [method, name] of Object.entries(RM_PORT_CALLS)) {
    port[method] = (req: unknown) => {
      log.push(name);
      return (inner as unknown as Record<string, (r: unknown) => unknown>)[method]!(req);
    };
  }
  return port as unknown as RmPort;
}

/** The real timers (the service's clock lives in services/vmm; tests that need time pass a ManualClock). */
export const timerClock: VmmClock = {
  nowMs: () => performance.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/**
 * A CorePort that records each grant call in the same log as the RM calls, named after its core RPC
 * and the VMID it acts as (`CreateGrant LEND as HOST`, `MapGrant as 0x80`): the demand-paged memory's
 * place in the start and teardown sequences.
 */
export function recordingGrants(inner: CorePort, log: string[]): CorePort {
  return {
    ...inner,
    createGrant: (a) => (log.push(`CreateGrant ${a.type} as HOST`), inner.createGrant(a)),
    mapGrant: (a) => (log.push(`MapGrant as 0x${a.borrower.toString(16)}`), inner.mapGrant(a)),
    unmapGrant: (a) => (log.push(`UnmapGrant as 0x${a.borrower.toString(16)}`), inner.unmapGrant(a)),
    destroyGrant: (a) => (log.push('DestroyGrant as HOST'), inner.destroyGrant(a)),
  };
}

export interface VmmFixture {
  readonly s: Stage2;
  readonly rm: ResourceManager;
  readonly vmm: VmManager;
  readonly calls: string[];
  readonly session: string;
  /** Every frame is owned and in the state it was at boot, no grant, no address space but the host's, no page of `by` (default: the fixture's VMM) out, invariants hold. */
  expectAllBack(by?: VmManager): void;
}

/** A fixture's core port as the VMM sees it (`core`: e.g. one that loses replies), and whether the VMM can query holdings. */
export interface FixtureWiring {
  readonly core?: (port: CorePort) => CorePort;
  readonly holdings?: boolean;
}

export function vmmFixture(config: Partial<VmmConfig> = {}, clock: VmmClock = timerClock, wiring: FixtureWiring = {}): VmmFixture {
  const s = new Stage2(DEFAULT_STAGE2_CONFIG);
  const bootCounts = ownershipCounts(new Stage2(DEFAULT_STAGE2_CONFIG));
  const boot = bootCounts.byOwner;
  const rm = new ResourceManager(inProcessCore(s));
  const calls: string[] = [];
  const core = recordingGrants(inProcessCorePort(s), calls);
  const vmm = new VmManager(
    recording(inProcessRm(rm), calls),
    wiring.core?.(core) ?? core,
    { ...DEFAULT_VMM_CONFIG, donationRegion: donationRegionOf(s), waitMs: 1_000, ...config },
    clock,
    wiring.holdings === true ? inProcessHoldings(rm, s) : undefined,
  );
  return {
    s,
    rm,
    vmm,
    calls,
    session: vmm.openSession(),
    expectAllBack(by = vmm) {
      expect(checkInvariants(s)).toEqual([]);
      expect(by.pages.inUse()).toBe(0);
      expect(s.spaces.size).toBe(1);
      // Every VM_ALLOCATE's stage-2 went back to HYP's reservation with its VM_DEALLOCATE.
      expect(s.hypReservation.size).toBe(s.hypReservationRange.count);
      expect(s.rmm.realms.size + s.rmm.rtts.size).toBe(0);
      expect(ownershipCounts(s).byOwner).toEqual(boot);
      // A lent granule stays the host's: only its state shows that it came back.
      expect(ownershipCounts(s).byState).toEqual(bootCounts.byState);
      expect(s.grants.size).toBe(0);
      expect(rm.vms.size + rm.parcels.size).toBe(0);
    },
  };
}

export const bind = (guest: number, hostOffset: number, size: number, mode: 'LEND' | 'SHARE' = 'LEND', rights = RWX): Binding => ({
  guestAddr: BigInt(guest),
  hostAddr: HOST_GUEST_RAM + BigInt(hostOffset),
  sizeBytes: BigInt(size),
  mode,
  rights,
});
