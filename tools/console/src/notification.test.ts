/** A watched RM notification as a timeline line (server.ts notificationDraft). */
import { describe, expect, test } from 'vitest';
import { SubscribeResponse, VmStatus, OsStatus } from '@hypmesh/proto/rm';
import { notificationDraft } from './server.js';

describe('notificationDraft', () => {
  test('VM_STATUS to HLOS: its name, where it went, its fields with enums by name; both VMIDs filter it', () => {
    const notification = SubscribeResponse.fromPartial({ messageId: 0x56100008, seq: 7, vmStatus: { vmid: 0x80, vmStatus: VmStatus.VM_STATUS_RUNNING, osStatus: OsStatus.OS_STATUS_BOOT, appStatus: 0 } });
    expect(notificationDraft({ vmid: 3, notification, missed: 0n })).toEqual({
      kind: 'notification',
      vmids: [3, 0x80],
      text: 'RM VM_STATUS to VMID 3 (seq 7): vmid=128 vmStatus=RUNNING osStatus=BOOT appStatus=0',
    });
  });

  test('MEM_SHARED to a guest: lists left out; skipped ones said; no payload, nothing', () => {
    const notification = SubscribeResponse.fromPartial({ messageId: 0x51100011, seq: 9, memShared: { handle: 5, ownerVmid: 3, label: 1, acl: [{ vmid: 0x80, rights: 6 }] } });
    const d = notificationDraft({ vmid: 0x80, notification, missed: 2n });
    expect(d?.vmids).toEqual([0x80]);
    expect(d?.text).toMatch(/^RM MEM_SHARED to VMID 128 \(seq 9\): handle=5 .*ownerVmid=3 label=1 .*\(2 missed before\)$/);
    expect(d?.text).not.toMatch(/acl/);
    expect(notificationDraft({ vmid: 3, notification: undefined, missed: 0n })).toBeUndefined();
  });
});
