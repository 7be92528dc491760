/**
 * Core calls whose outcome stays unknown (issue 9 item 2: the gRPC adapter's keyed retries ran out,
 * rule outcome_unknown): the core applied them, the VMM never heard. The VMM must neither forget
 * what the core holds for the VM (a demand-paged grant under an id it never learnt would keep
 * VM_DEALLOCATE from destroying the VM's stage-2: the VMID and its pool would leak) nor hand out
 * pages again that HYP may own (a top-up that did apply).
 */
import { HYP_SPACE_POOL_PAGES, drainTablePool, vmid } from '@hypmesh/stage2';
import { describe, expect, test } from 'vitest';
import { CORE_OUTCOME_UNKNOWN_RULE, type CorePort } from './ports.js';
import { bind, MiB, vmmFixture } from './test-support.js';
import type { VmmResult } from './vmm-error.js';

const must = <T>(r: VmmResult<T>): T => {
  if (!r.ok) throw new Error(`${r.error.errno} ${r.error.rule}: ${r.error.message}`);
  return r.value;
};

/** `method`'s `nth` call (1-based) is applied by the core and its reply lost. */
function losingReply(method: 'createGrant' | 'topUpTablePool', nth: number): (port: CorePort) => CorePort {
  let n = 0;
  return (port) =>
    new Proxy(port, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (key !== method || typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const r = (await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as { ok: boolean };
          return ++n === nth && r.ok ? { ok: false, error: { errno: 'EIO', rule: CORE_OUTCOME_UNKNOWN_RULE, message: 'core call failed: deadline exceeded on every try' } } : r;
        };
      },
    });
}

describe('a core reply lost after the core applied the call', () => {
  test('CreateGrant of a binding: START fails, and the teardown finds the grant by query and destroys it; nothing leaks', async () => {
    const f = vmmFixture({}, undefined, { core: losingReply('createGrant', 1), holdings: true });
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(f.vmm.setDtbConfig(vm.handle, 0x8000_0000n, 0x2000n));
    must(f.vmm.setBootContext(vm.handle, 'PC', 0, 0x8000_0000n));
    const started = await f.vmm.start(vm.handle);
    expect(started.ok ? 'ok' : started.error.rule).toBe('start_demand_paged_grant');
    // The core holds a grant naming the VM that backs no parcel (not the DTB's) and that the VMM never learnt of.
    const parcelGrants = new Set([...f.rm.parcels.values()].map((p) => p.grantId));
    expect([...f.s.grants.values()].filter((g) => !parcelGrants.has(g.id) && g.acl.some((e) => e.vmid === vm.vmid))).toHaveLength(1);
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.leaked).toEqual([]);
    expect(done.teardown.filter((t) => !t.ok)).toEqual([]);
    expect(done.teardown.filter((t) => /^reclaim_demand_paged grant \d+ \(a CreateGrant whose reply was lost\)$/.test(t.step)).map((t) => t.ok)).toEqual([true]);
    f.expectAllBack();
  });

  test('CreateGrant without holdings to ask: VM_DEALLOCATE is refused and the VMID is reported leaked, never silently lost', async () => {
    const f = vmmFixture({}, undefined, { core: losingReply('createGrant', 1) });
    const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4 * MiB)));
    must(f.vmm.setDtbConfig(vm.handle, 0x8000_0000n, 0x2000n));
    must(f.vmm.setBootContext(vm.handle, 'PC', 0, 0x8000_0000n));
    expect((await f.vmm.start(vm.handle)).ok).toBe(false);
    const done = must(await f.vmm.destroy(vm.handle));
    expect(done.leaked).toEqual([expect.stringContaining(`VMID ${vm.vmid}`), expect.stringContaining('stage-2 pool pages')]);
  });

  test('TopUpTablePool: the run HYP took stays with the VM, not handed out again to the next VM, and comes back with its stage-2', async () => {
    // No pool at all: each START's MapGrant answers ENOMEM and the VMM tops the pool up (seed 003).
    const f = vmmFixture({ initialPoolPages: 0, topUpPages: 2, reservePoolAtStart: false, attemptsMax: 6 }, undefined, { core: losingReply('topUpTablePool', 1), holdings: true });
    const starterless = async () => {
      const vm = must(await f.vmm.create(f.session, 'GUNYAH', 40));
      expect(drainTablePool(f.s, vmid(vm.vmid), HYP_SPACE_POOL_PAGES).ok).toBe(true);
      must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, vm.vmid * 8 * MiB, 4 * MiB)));
      must(f.vmm.setDtbConfig(vm.handle, 0x8000_0000n, 0x2000n));
      must(f.vmm.setBootContext(vm.handle, 'PC', 0, 0x8000_0000n));
      return vm;
    };
    const a = await starterless();
    const failed = await f.vmm.start(a.handle);
    expect(failed.ok ? 'ok' : failed.error.rule).toBe('pool_top_up');
    // HYP took the run: the VMM counts it as A's, so B's top-up gets other pages and B starts.
    expect(f.vmm.view(a.handle)?.hostPages).toBe(2);
    const b = await starterless();
    expect((await f.vmm.start(b.handle)).ok).toBe(true);
    for (const vm of [a, b]) expect(must(await f.vmm.destroy(vm.handle)).leaked).toEqual([]);
    f.expectAllBack();
  });
});
