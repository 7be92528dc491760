/**
 * Property: any sequence of RM calls — parcels from HLOS and guests, accepts with given and
 * RM-chosen IPAs, releases, reclaims, notifies, VM starts, stops and resets, with arguments often
 * wrong — keeps the RM's invariants (every parcel one live core grant, acceptors = core borrowers)
 * and the core's after every step, and a refused call changes nothing (save the §4.2 calls whose
 * failure moves the VM to INIT_FAILED). Seeded: SEED=<n> replays; RUNS=<n> sets the count.
 */
import fc from 'fast-check';
import { ACCEPT_FLAGS, ADDRESS_RANGE_ID, MEM_TYPE, NOTIFY_FLAGS, SHARE_FLAGS, TRANS_TYPE, type SglEntry } from '@hypmesh/rm-wire';
import { checkInvariants } from '@hypmesh/stage2';
import { expect, test } from 'vitest';
import { rmInvariants } from './invariants.js';
import type { RmOutcome } from './rm-outcome.js';
import { R, RW, RWX, createReq, rmFixture, sgl, type RmFixture } from './test-support.js';
import { VMID_HLOS } from './vmid.js';

const SEED = Number(process.env.SEED ?? 20261121);
const RUNS = Number(process.env.RUNS ?? 30);
const FAILS_INTO_STATE = new Set(['VM_CONFIG_IMAGE', 'VM_START']);

type Op = { name: string; run: (f: RmFixture, vms: number[]) => Promise<RmOutcome<unknown>> };
const pick = <T>(list: readonly T[], sel: number): T | undefined => (list.length === 0 ? undefined : list[sel % list.length]);

const who = fc.nat(); // an index into [HLOS, ...guests]
const actor = (vms: number[], sel: number): number => [VMID_HLOS, ...vms][sel % (vms.length + 1)]!;
const hostRange = fc.constantFrom(0x10000, 0x20000, 0x21000, 0x40000).map((off) => sgl(off, 0x1000));
const rightsArb = fc.oneof({ arbitrary: fc.constantFrom(R, RW, RWX), weight: 5 }, { arbitrary: fc.constantFrom(0, 2, 8), weight: 1 });

const ops: fc.Arbitrary<Op>[] = [
  fc
    .tuple(fc.constantFrom('MEM_LEND', 'MEM_SHARE', 'MEM_DONATE') as fc.Arbitrary<'MEM_LEND' | 'MEM_SHARE' | 'MEM_DONATE'>, who, fc.uniqueArray(hostRange, { minLength: 1, maxLength: 2, selector: (e) => e.base }), fc.nat(), rightsArb, fc.boolean())
    .map(([name, sel, entries, target, rights, append]) => ({
      name: `${name} by #${sel} of ${entries.length} range(s)`,
      run: (f, vms) => {
        // Mostly HLOS lending to a guest; sometimes a guest, which owns no such memory.
        const owner = sel % 5 === 0 ? actor(vms, sel) : VMID_HLOS;
        const borrower = sel % 7 === 0 ? actor(vms, target) : vms[target % vms.length]!;
        const acl = name === 'MEM_SHARE' ? [{ vmid: borrower, rights }, { vmid: owner, rights: RWX }] : [{ vmid: borrower, rights: name === 'MEM_DONATE' ? RWX : rights }];
        return f.rm.call(owner, name, createReq(acl, entries, { flags: append ? SHARE_FLAGS.APPEND : 0 }));
      },
    })),
  fc.tuple(fc.nat(), who, fc.boolean()).map(([h, sel, done]) => ({
    name: `MEM_APPEND #${h} by #${sel}`,
    run: (f, vms) => f.rm.call(actor(vms, sel), 'MEM_APPEND', { handle: pick([...f.rm.parcels.keys()], h) ?? h, flags: done ? 1 : 0, sgl: [sgl(0x60000, 0x1000)] }),
  })),
  fc.tuple(fc.nat(), who, fc.constantFrom(ACCEPT_FLAGS.DONE, ACCEPT_FLAGS.DONE | ACCEPT_FLAGS.MAP_CONTIGUOUS, 0), fc.boolean()).map(([h, sel, flags, given]) => ({
    name: `MEM_ACCEPT #${h} by #${sel} flags ${flags}${given ? ' at given IPAs' : ''}`,
    run: (f, vms) => {
      const p = pick([...f.rm.parcels.values()], h);
      // Mostly a VM the parcel's ACL names; sometimes anyone.
      const caller = p !== undefined && sel % 4 !== 0 ? p.acl[sel % p.acl.length]!.vmid : actor(vms, sel);
      const ipas: SglEntry[] = given && p !== undefined ? p.regions.map((r, i) => ({ base: 0x2_0000_0000n + BigInt(i) * 0x10_0000n, size: r.size })) : [];
      return f.rm.call(caller, 'MEM_ACCEPT', {
        handle: p?.handle ?? h,
        memType: p?.memType ?? MEM_TYPE.NORMAL,
        transType: p === undefined ? 1 : TRANS_TYPE[p.transType],
        flags,
        label: 0,
        acl: [],
        mapVmid: 0,
        sgl: ipas,
        attrs: [],
      });
    },
  })),
  fc.tuple(fc.constantFrom('MEM_RELEASE', 'MEM_RECLAIM') as fc.Arbitrary<'MEM_RELEASE' | 'MEM_RECLAIM'>, fc.nat(), who).map(([name, h, sel]) => ({
    name: `${name} #${h} by #${sel}`,
    run: (f, vms) => {
      const p = pick([...f.rm.parcels.values()], h);
      const right = p === undefined ? undefined : name === 'MEM_RECLAIM' ? p.owner : pick([...p.accepted.keys()], sel);
      return f.rm.call(sel % 4 !== 0 && right !== undefined ? right : actor(vms, sel), name, { handle: p?.handle ?? h, flags: 0 });
    },
  })),
  fc.tuple(fc.nat(), who, fc.constantFrom(NOTIFY_FLAGS.SHARED, NOTIFY_FLAGS.RELEASED, NOTIFY_FLAGS.ACCEPTED, NOTIFY_FLAGS.RECALL, 3), fc.nat()).map(([h, sel, flags, target]) => ({
    name: `MEM_NOTIFY #${h} by #${sel} flags ${flags}`,
    run: (f, vms) => f.rm.call(actor(vms, sel), 'MEM_NOTIFY', { handle: pick([...f.rm.parcels.keys()], h) ?? h, flags, memInfoTag: 1, vmids: [{ vmid: actor(vms, target + 1) }] }),
  })),
  fc.tuple(fc.constantFrom('VM_START', 'VM_RESET', 'VM_INIT') as fc.Arbitrary<'VM_START' | 'VM_RESET' | 'VM_INIT'>, fc.nat()).map(([name, v]) => ({
    name: `${name} of guest #${v}`,
    run: (f, vms) => f.rm.call(VMID_HLOS, name, { vmid: vms[v % vms.length]!, reserved: 0 } as never),
  })),
  fc.tuple(fc.nat(), fc.boolean()).map(([v, force]) => ({
    name: `VM_STOP of guest #${v}${force ? ' (force)' : ''}`,
    run: (f, vms) => f.rm.call(VMID_HLOS, 'VM_STOP', { vmid: vms[v % vms.length]!, flags: force ? 1 : 0, stopReason: 3 }),
  })),
  fc.tuple(fc.nat(), fc.nat()).map(([v, h]) => ({
    name: `VM_CONFIG_IMAGE of guest #${v} with parcel #${h}`,
    run: (f, vms) =>
      f.rm.call(VMID_HLOS, 'VM_CONFIG_IMAGE', { vmid: vms[v % vms.length]!, authMech: 0, memHandle: pick([...f.rm.parcels.keys()], h) ?? h, imageOffset: 0n, imageSize: 0n, dtbOffset: 0n, dtbSize: 0x100n }),
  })),
  fc.nat().map((v) => ({
    name: `VM_SET_ADDRESS_LAYOUT of guest #${v}`,
    run: (f, vms) => f.rm.call(VMID_HLOS, 'VM_SET_ADDRESS_LAYOUT', { vmid: vms[v % vms.length]!, rangeId: ADDRESS_RANGE_ID.IMAGE, base: 0x8000_0000n, size: 0x1000n }),
  })),
];

test(`random RM call sequences keep the RM's and the core's invariants (SEED=${SEED}, ${RUNS} runs)`, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(...ops), { minLength: 1, maxLength: 60, size: 'large' }), async (seq) => {
      const f = rmFixture();
      const vms = [await f.vm(), await f.vm()];
      for (const op of seq) {
        const before = f.snapshot();
        const r = await op.run(f, vms);
        await f.rm.idle();
        if (!r.ok && !FAILS_INTO_STATE.has(op.name.split(' ')[0]!)) expect(f.snapshot(), `refused ${op.name} changed state`).toEqual(before);
        expect(rmInvariants(f.rm, f.s), `after ${op.name}`).toEqual([]);
        expect(checkInvariants(f.s), `after ${op.name}`).toEqual([]);
        expect(f.rm.bugs).toEqual([]);
      }
    }),
    { seed: SEED, numRuns: RUNS },
  );
}, 120_000);
