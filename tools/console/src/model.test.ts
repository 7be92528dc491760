import { describe, expect, test } from 'vitest';
import { diffSnapshots, EMPTY_SNAPSHOT, rightsText, Timeline, type Snapshot, type VmView } from './model.js';

const vm = (over: Partial<VmView> = {}): VmView => ({ handle: 1, type: 'GUNYAH', vmid: 128, ipaBits: 40, state: 'CREATED', rmStatus: 'LOAD', rmListed: 'LOAD', hostPages: 16, session: 's', ...over });
const snap = (over: Partial<Snapshot> = {}): Snapshot => ({ ...EMPTY_SNAPSHOT, ...over });
const texts = (a: Snapshot, b: Snapshot): string[] => diffSnapshots(a, b).map((e) => `${e.kind} [${e.vmids.join(',')}] ${e.text}`);

describe('diffSnapshots: a change between two looks as timeline events', () => {
  test('a VM created, changing state and RM status, then gone', () => {
    const a = snap({ vms: [vm()] });
    const b = snap({ vms: [vm({ state: 'RUNNING', rmStatus: 'RUNNING' })] });
    expect(texts(EMPTY_SNAPSHOT, a)).toEqual(['vm [128] VM 1 (GUNYAH, VMID 128) created: CREATED, RM LOAD']);
    // The RM status change is not an event here: WatchNotifications brings the RM's own VM_STATUS.
    expect(texts(a, b)).toEqual(['vm [128] VM 1 (GUNYAH, VMID 128) state CREATED → RUNNING']);
    expect(texts(b, EMPTY_SNAPSHOT)).toEqual(['vm [128] VM 1 (GUNYAH, VMID 128) gone']);
    expect(texts(b, b)).toEqual([]);
  });

  test('parcels and grants appearing, changing and going, tagged with every VMID they concern', () => {
    const parcel = { handle: 0, owner: 3, transType: 'LEND', memType: 'NORMAL', state: 'SHARING', acl: [128], acceptedBy: [], grant: '7', bytes: 8192 };
    const grant = { id: '18446744073709551615', type: 'LEND', owner: 3, acl: [128], borrowers: [], frames: 2 };
    const a = snap({ parcels: [parcel], grants: [grant] });
    const b = snap({ parcels: [{ ...parcel, state: 'SHARED', acceptedBy: [128] }], grants: [{ ...grant, borrowers: [128] }] });
    expect(texts(EMPTY_SNAPSHOT, a)).toEqual(['parcel [3,128] parcel 0 (LEND by VMID 3, ACL 128) SHARING', 'grant [3,128] grant 18446744073709551615 LEND of 2 frames by VMID 3 to 128']);
    expect(texts(a, b)).toEqual([
      'parcel [3,128] parcel 0 (LEND by VMID 3, ACL 128) SHARING → SHARED, accepted by 128',
      'grant [3,128] grant 18446744073709551615 LEND of 2 frames by VMID 3 to 128: mapped by 128',
    ]);
    expect(texts(b, EMPTY_SNAPSHOT)).toEqual(['parcel [3,128] parcel 0 (LEND by VMID 3) reclaimed', 'grant [3,128] grant 18446744073709551615 LEND by VMID 3 ended']);
  });

  test("a service that could not be asked: its outage and recovery are events, its rows do not 'vanish'", () => {
    const up = snap({ vms: [vm()] });
    const down = snap({ errors: ['vmm: 14 UNAVAILABLE: No connection established'] });
    expect(texts(up, down)).toEqual(['service [] vmm: 14 UNAVAILABLE: No connection established']);
    expect(texts(down, up)).toEqual(['service [] recovered: vmm: 14 UNAVAILABLE: No connection established']);
  });
});

test('Timeline numbers events and keeps only the newest `capacity`', () => {
  const t = new Timeline(2);
  for (const text of ['a', 'b', 'c']) t.add({ kind: 'vm', vmids: [], text }, 5);
  expect(t.all().map((e) => `${e.seq}:${e.text}`)).toEqual(['2:b', '3:c']);
});

test('rightsText spells AddressSpaceRun.perms bits (X = 1, W = 2, R = 4) as rwx', () => {
  expect([7, 6, 4, 1, 0].map(rightsText)).toEqual(['rwx', 'rw-', 'r--', '--x', '---']);
});

test('vmidParam takes a u32 VMID and nothing else', async () => {
  const { vmidParam } = await import('./server.js');
  expect(['128', '0', '4294967295'].map(vmidParam)).toEqual([128, 0, 4294967295]);
  expect([null, '', 'x', '-1', '1.5', '4294967296', '12345678901'].map(vmidParam)).toEqual(Array(7).fill(undefined));
});
