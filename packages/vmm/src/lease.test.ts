/**
 * Lease sessions (lease.ts; DESIGN.md §4, seed 001) on a ManualClock: the TTL bounds, renewal by
 * every call naming the lease and by RenewLease, expiry and close tearing the session's VMs down
 * exactly as a closed stream does, and EBADF for any later call. Every scenario ends with all
 * memory back with the host.
 */
import { describe, expect, test } from 'vitest';
import { ManualClock, type VmmClock } from './clock.js';
import { LEASE_TTL_MS_MAX, LEASE_TTL_MS_MIN } from './lease.js';
import { bind, MiB, vmmFixture } from './test-support.js';
import type { VmmResult } from './vmm-error.js';

const must = <T>(r: VmmResult<T>): T => {
  if (!r.ok) throw new Error(`${r.error.errno} ${r.error.rule}: ${r.error.message}`);
  return r.value;
};
const refusal = (r: VmmResult<unknown>): string => (r.ok ? 'ok' : `${r.error.errno} ${r.error.rule}`);

const TTL_MS = 60_000;

function leased(clock = new ManualClock()) {
  const f = vmmFixture({}, clock);
  const lease = must(f.vmm.openLease(TTL_MS)).sessionId;
  return { f, clock, lease };
}

describe('OpenLease: ttl_ms bounds', () => {
  test.each([
    { ttlMs: LEASE_TTL_MS_MIN - 1, expected: 'EINVAL lease_ttl_invalid' },
    { ttlMs: LEASE_TTL_MS_MAX + 1, expected: 'EINVAL lease_ttl_invalid' },
    { ttlMs: 0, expected: 'EINVAL lease_ttl_invalid' },
    { ttlMs: 1_500.5, expected: 'EINVAL lease_ttl_invalid' },
    { ttlMs: LEASE_TTL_MS_MIN, expected: 'ok' },
    { ttlMs: LEASE_TTL_MS_MAX, expected: 'ok' },
  ])('ttl_ms $ttlMs → $expected', ({ ttlMs, expected }) => {
    const f = vmmFixture({}, new ManualClock());
    const r = f.vmm.openLease(ttlMs);
    expect(refusal(r)).toBe(expected);
    if (r.ok) expect([r.value.ttlMs, r.value.expiresInMs]).toEqual([ttlMs, ttlMs]);
    f.vmm.close();
  });
});

describe('renewal', () => {
  test('every call naming the lease renews it, RenewLease too; it expires ttl_ms after the last one', async () => {
    const { f, clock, lease } = leased();
    const vm = must(await f.vmm.create(lease, 'GUNYAH', 40));
    clock.advance(TTL_MS - 1);
    must(f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 2 * MiB), false, lease)); // renews
    clock.advance(TTL_MS - 1);
    expect(must(f.vmm.describe(vm.handle, lease)).state).toBe('CREATED'); // renews
    clock.advance(TTL_MS - 1);
    expect(must(f.vmm.listVms(lease)).map((v) => v.handle)).toEqual([vm.handle]); // renews
    clock.advance(TTL_MS - 1);
    expect(must(f.vmm.renewLease(lease)).expiresInMs).toBe(TTL_MS);
    clock.advance(TTL_MS - 1);
    expect(f.vmm.view(vm.handle)?.state).toBe('CREATED'); // view without a session renews nothing
    clock.advance(1);
    await f.vmm.idle();
    expect(f.vmm.view(vm.handle)).toBeUndefined();
    f.expectAllBack();
  });

  test('a stream session is not a lease; an unknown id is unknown', () => {
    const { f, lease } = leased();
    expect(refusal(f.vmm.renewLease(f.session))).toBe('EINVAL not_a_lease');
    expect(refusal(f.vmm.renewLease('lease-999'))).toBe('ENOENT session_unknown');
    expect(refusal(f.vmm.listVms('lease-999'))).toBe('ENOENT session_unknown');
    expect(must(f.vmm.listVms(lease))).toEqual([]);
    f.vmm.close();
  });
});

describe('expiry: the session ends as a closed stream does', () => {
  test('a RUNNING VM and a REALM of an expired lease are torn down in the background; the stream session is untouched', async () => {
    const { f, clock, lease } = leased();
    const a = must(await f.vmm.create(lease, 'GUNYAH', 40));
    must(f.vmm.mapMem(a.handle, bind(0x8000_0000, 0, 4 * MiB), false, lease));
    must(f.vmm.setDtbConfig(a.handle, 0x8010_0000n, 0x2000n, lease));
    expect(must(await f.vmm.start(a.handle, lease)).state).toBe('RUNNING');
    const b = must(await f.vmm.create(lease, 'REALM', 40));
    const other = must(await f.vmm.create(f.session, 'GUNYAH', 40));
    const states: string[] = [];
    f.vmm.watch((e) => e.kind === 'STATE' && e.handle === a.handle && states.push(e.state));
    clock.advance(TTL_MS);
    await f.vmm.idle();
    expect(states).toEqual(['DESTROYING', 'DESTROYED']);
    expect(f.vmm.view(a.handle)).toBeUndefined();
    expect(f.vmm.view(b.handle)).toBeUndefined();
    expect(f.vmm.view(other.handle)?.state).toBe('CREATED');
    must(await f.vmm.destroy(other.handle, f.session));
    f.expectAllBack();
  });

  test('lease_expired: every later call naming it is EBADF and says why', async () => {
    const { f, clock, lease } = leased();
    const vm = must(await f.vmm.create(lease, 'GUNYAH', 40));
    clock.advance(TTL_MS + 5);
    await f.vmm.idle();
    const calls: [string, VmmResult<unknown>][] = [
      ['create', await f.vmm.create(lease, 'GUNYAH', 40)],
      ['mapMem', f.vmm.mapMem(vm.handle, bind(0x8000_0000, 0, 4096), false, lease)],
      ['describe', f.vmm.describe(vm.handle, lease)],
      ['start', await f.vmm.start(vm.handle, lease)],
      ['destroy', await f.vmm.destroy(vm.handle, lease)],
      ['listVms', f.vmm.listVms(lease)],
      ['renewLease', f.vmm.renewLease(lease)],
      ['closeLease', await f.vmm.closeLease(lease)],
    ];
    for (const [name, r] of calls) expect([name, refusal(r)]).toEqual([name, 'EBADF lease_expired']);
    const r = f.vmm.renewLease(lease);
    expect(r.ok ? '' : r.error.message).toMatch(new RegExp(`^session ${lease} expired \\(not renewed within its TTL\\) 5 ms ago; its VMs were torn down`));
    f.expectAllBack();
  });

  test('a late timer: the first call at or after the expiry ends the lease itself', async () => {
    let now = 0;
    const deaf: VmmClock = { nowMs: () => now, after: () => () => {} }; // timers never fire
    const f = vmmFixture({}, deaf);
    const lease = must(f.vmm.openLease(TTL_MS)).sessionId;
    const vm = must(await f.vmm.create(lease, 'GUNYAH', 40));
    now = TTL_MS;
    expect(refusal(f.vmm.describe(vm.handle, lease))).toBe('EBADF lease_expired');
    await f.vmm.idle();
    expect(f.vmm.view(vm.handle)).toBeUndefined();
    f.expectAllBack();
  });
});

describe('CloseLease', () => {
  test('tears the VMs down, waits, returns their final views; later calls are EBADF lease_closed', async () => {
    const { f, lease } = leased();
    const a = must(await f.vmm.create(lease, 'GUNYAH', 40));
    must(f.vmm.mapMem(a.handle, bind(0x8000_0000, 0, 4 * MiB), false, lease));
    must(f.vmm.setDtbConfig(a.handle, 0x8010_0000n, 0x2000n, lease));
    must(await f.vmm.start(a.handle, lease));
    const b = must(await f.vmm.create(lease, 'REALM', 40));
    const done = must(await f.vmm.closeLease(lease));
    expect(done.map((v) => [v.handle, v.state, v.leaked])).toEqual([
      [a.handle, 'DESTROYED', []],
      [b.handle, 'DESTROYED', []],
    ]);
    expect(done[0]!.teardown.map((t) => t.step)).toEqual(expect.arrayContaining(['vm_stop', 'vm_reset', 'vm_deallocate']));
    expect(refusal(f.vmm.listVms(lease))).toBe('EBADF lease_closed');
    expect(refusal(await f.vmm.closeLease(lease))).toBe('EBADF lease_closed');
    f.expectAllBack();
  });

  test('a VM whose create was in flight when the lease closed is torn down too', async () => {
    const { f, lease } = leased();
    const creating = f.vmm.create(lease, 'GUNYAH', 40);
    expect(must(await f.vmm.closeLease(lease))).toEqual([]);
    const vm = must(await creating);
    await f.vmm.idle();
    expect(f.vmm.view(vm.handle)).toBeUndefined();
    f.expectAllBack();
  });

  test('VMM shutdown (endLeases) ends every live lease and tears its VMs down', async () => {
    const { f, clock, lease } = leased();
    must(await f.vmm.create(lease, 'GUNYAH', 40));
    f.vmm.endLeases();
    await f.vmm.idle();
    expect(refusal(f.vmm.renewLease(lease))).toBe('EBADF lease_expired');
    expect(clock.pending()).toBe(0);
    f.expectAllBack();
  });
});
