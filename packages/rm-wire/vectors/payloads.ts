/**
 * Payload vectors, written by hand from the field tables of gunyah-rm.md §3, §4.2 and §2.2
 * (little-endian, packed). `request` and `notification` bytes are the whole message payload;
 * `reply` bytes are the whole reply payload, starting with the §1.4 error word.
 */
import { hex } from './hex.js';

export const payloadVectors = [
  {
    name: 'MEM_LEND with 2 ACL entries and 3 SGL entries, SANITIZE (§3.2)',
    message: 'MEM_LEND',
    part: 'request',
    bytes: hex`
      00 00 01 00               // mem_type NORMAL, reserved, flags SANITIZE, reserved
      78 56 34 12               // label 0x12345678
      02 00 0000                // ACL list: count 2, reserved
      80 00 06 00               //   vmid 0x80, rights RW
      81 00 04 00               //   vmid 0x81, rights R
      03 00 0000                // SGL list: count 3, reserved
      00 00 00 80 00 00 00 00   //   base 0x80000000
      00 10 00 00 00 00 00 00   //   size 0x1000
      00 00 20 80 00 00 00 00   //   base 0x80200000
      00 00 20 00 00 00 00 00   //   size 0x200000
      00 f0 ff ff 0f 00 00 00   //   base 0xffffff000 (last page below 2^36)
      00 10 00 00 00 00 00 00   //   size 0x1000
      00 00 0000                // attr list: count 0 (Linux always sends it)
    `,
    value: {
      memType: 0,
      flags: 1,
      label: 0x1234_5678,
      acl: [
        { vmid: 0x80, rights: 6 },
        { vmid: 0x81, rights: 4 },
      ],
      sgl: [
        { base: 0x8000_0000n, size: 0x1000n },
        { base: 0x8020_0000n, size: 0x20_0000n },
        { base: 0xf_ffff_f000n, size: 0x1000n },
      ],
      attrs: [],
    },
  },
  {
    name: 'MEM_LEND reply: handle 5 (§3.2)',
    message: 'MEM_LEND',
    part: 'reply',
    bytes: hex`00000000 05000000`,
    value: { handle: 5 },
  },
  {
    name: 'MEM_DONATE with a DEVICE attr for an IO parcel (§3.2)',
    message: 'MEM_DONATE',
    part: 'request',
    bytes: hex`
      01 00 00 00  00000000     // IO, flags 0, label 0
      01 00 0000  80 00 06 00   // ACL: 0x80 RW
      01 00 0000  00 00 00 09 00 00 00 00  00 10 00 00 00 00 00 00
      01 00 0000  01 00 80 00   // attr: DEVICE for 0x80
    `,
    value: {
      memType: 1,
      flags: 0,
      label: 0,
      acl: [{ vmid: 0x80, rights: 6 }],
      sgl: [{ base: 0x900_0000n, size: 0x1000n }],
      attrs: [{ attr: 1, vmid: 0x80 }],
    },
  },
  {
    name: 'MEM_APPEND with DONE and one SGL entry (§3.3)',
    message: 'MEM_APPEND',
    part: 'request',
    bytes: hex`
      05000000  01 000000       // handle 5, flags DONE, reserved[3]
      01 00 0000  00 00 40 80 00 00 00 00  00 20 00 00 00 00 00 00
    `,
    value: { handle: 5, flags: 1, sgl: [{ base: 0x8040_0000n, size: 0x2000n }] },
  },
  {
    name: 'MEM_ACCEPT asking the RM to choose IPAs: SGL count 0, map_vmid 0 (§3.4)',
    message: 'MEM_ACCEPT',
    part: 'request',
    bytes: hex`
      05000000                  // handle 5
      00 01 82 00               // mem_type NORMAL, trans_type LEND, flags VALIDATE_ACL_ATTR|DONE, reserved
      00000000                  // label
      01 00 0000  80 00 07 00   // ACL: 0x80 RWX
      00 00 0000                // SGL count 0, map_vmid 0
      00 00 0000                // attr count 0
    `,
    value: {
      handle: 5,
      memType: 0,
      transType: 1,
      flags: 0x82,
      label: 0,
      acl: [{ vmid: 0x80, rights: 7 }],
      sgl: [],
      mapVmid: 0,
      attrs: [],
    },
  },
  {
    name: 'MEM_ACCEPT with requested IPAs and a non-zero map_vmid (the RM refuses it, the codec keeps it)',
    message: 'MEM_ACCEPT',
    part: 'request',
    bytes: hex`
      09000000  00 02 00 00  00000000
      00 00 0000                // ACL count 0
      01 00 8000  00 00 00 00 02 00 00 00  00 10 00 00 00 00 00 00   // SGL count 1, map_vmid 0x80
      00 00 0000
    `,
    value: {
      handle: 9,
      memType: 0,
      transType: 2,
      flags: 0,
      label: 0,
      acl: [],
      sgl: [{ base: 0x2_0000_0000n, size: 0x1000n }],
      mapVmid: 0x80,
      attrs: [],
    },
  },
  {
    name: 'MEM_ACCEPT reply with RM-chosen IPAs and INCOMPLETE (§3.4)',
    message: 'MEM_ACCEPT',
    part: 'reply',
    bytes: hex`
      00000000                  // err OK
      02 00 01 00               // sgl_count 2, flags INCOMPLETE, reserved
      00 00 00 00 01 00 00 00   // base 0x100000000
      00 00 20 00 00 00 00 00   // size 0x200000
      00 00 40 00 01 00 00 00   // base 0x100400000
      00 10 00 00 00 00 00 00   // size 0x1000
    `,
    value: {
      kind: 'rm_chosen_ipas',
      sgl: [
        { base: 0x1_0000_0000n, size: 0x20_0000n },
        { base: 0x1_0040_0000n, size: 0x1000n },
      ],
      incomplete: true,
    },
  },
  {
    name: 'MEM_ACCEPT standard reply (the request named its IPAs)',
    message: 'MEM_ACCEPT',
    part: 'reply',
    bytes: hex`00000000`,
    value: { kind: 'standard' },
  },
  {
    name: 'MEM_RELEASE with SANITIZE (§3.5)',
    message: 'MEM_RELEASE',
    part: 'request',
    bytes: hex`05000000 01 000000`,
    value: { handle: 5, flags: 1 },
  },
  {
    name: 'MEM_RECLAIM as Linux L24 sends it: flags 0 (§3.5)',
    message: 'MEM_RECLAIM',
    part: 'request',
    bytes: hex`05000000 00 000000`,
    value: { handle: 5, flags: 0 },
  },
  {
    name: 'MEM_NOTIFY SHARED with a VMID list (§3.6)',
    message: 'MEM_NOTIFY',
    part: 'request',
    bytes: hex`
      05000000  01 000000       // handle 5, flags SHARED
      99000000                  // mem_info_tag 0x99
      01 00 0000  80 00 0000    // VMID list: count 1; vmid 0x80, reserved
    `,
    value: { handle: 5, flags: 1, memInfoTag: 0x99, vmids: [{ vmid: 0x80 }] },
  },
  {
    name: 'MEM_NOTIFY RELEASED: no VMID list (§3.6)',
    message: 'MEM_NOTIFY',
    part: 'request',
    bytes: hex`05000000 02 000000 99000000`,
    value: { handle: 5, flags: 2, memInfoTag: 0x99, vmids: [] },
  },
  {
    name: 'MEM_QCOM_LOOKUP_SGL without the optional attr list (§3.8)',
    /** Decode only: the encoder always writes the attr list header (as Linux does). */
    decodeOnly: true,
    message: 'MEM_QCOM_LOOKUP_SGL',
    part: 'request',
    bytes: hex`
      00 000000  2a000000       // mem_type NORMAL, reserved[3], label 42
      01 00 0000  80 00 06 00
      01 00 0000  00 00 00 80 00 00 00 00  00 10 00 00 00 00 00 00
    `,
    value: { memType: 0, label: 42, acl: [{ vmid: 0x80, rights: 6 }], sgl: [{ base: 0x8000_0000n, size: 0x1000n }], attrs: [] },
  },
  {
    name: 'MEM_QCOM_LOOKUP_SGL reply LOOKUP_FAILED (§3.8)',
    message: 'MEM_QCOM_LOOKUP_SGL',
    part: 'reply',
    bytes: hex`0e000000`,
    error: { rmError: 'LOOKUP_FAILED', errorCode: 0xe },
  },
  {
    name: 'MEM_SHARED: sizes only, no addresses (§3.7)',
    message: 'MEM_SHARED',
    part: 'notification',
    bytes: hex`
      05000000                  // handle 5
      00 02 01 00               // mem_type NORMAL, trans_type SHARE, flags sanitized, reserved
      03 00 0000                // owner vmid 3 (HLOS), reserved
      10000000                  // label 0x10
      99000000                  // mem_info_tag 0x99
      02 00 0000  03 00 07 00  80 00 06 00             // ACL
      02 00 0000  00 10 00 00 00 00 00 00  00 00 20 00 00 00 00 00   // region sizes 0x1000, 0x200000
      00 00 0000                // attrs
    `,
    value: {
      handle: 5,
      memType: 0,
      transType: 2,
      flags: 1,
      ownerVmid: 3,
      label: 0x10,
      memInfoTag: 0x99,
      acl: [
        { vmid: 3, rights: 7 },
        { vmid: 0x80, rights: 6 },
      ],
      regions: [{ size: 0x1000n }, { size: 0x20_0000n }],
      attrs: [],
    },
  },
  {
    name: 'MEM_RELEASED to the owner (§2.2)',
    message: 'MEM_RELEASED',
    part: 'notification',
    bytes: hex`05000000 8000 0000 99000000`,
    value: { handle: 5, vmid: 0x80, memInfoTag: 0x99 },
  },
  {
    name: 'MEM_ACCEPTED to the owner (§2.2)',
    message: 'MEM_ACCEPTED',
    part: 'notification',
    bytes: hex`05000000 8100 0000 00000000`,
    value: { handle: 5, vmid: 0x81, memInfoTag: 0 },
  },
  {
    name: 'MEM_RECALL to a borrower (§2.2)',
    message: 'MEM_RECALL',
    part: 'notification',
    bytes: hex`05000000 99000000`,
    value: { handle: 5, memInfoTag: 0x99 },
  },
  {
    name: 'VM_ALLOCATE for any VMID: vmid 0 (§4.2)',
    message: 'VM_ALLOCATE',
    part: 'request',
    bytes: hex`0000 0000`,
    value: { vmid: 0 },
  },
  {
    name: 'VM_ALLOCATE reply carrying the VMID the RM picked (§4.2)',
    message: 'VM_ALLOCATE',
    part: 'reply',
    bytes: hex`00000000 80000000`,
    value: { vmid: 0x80 },
  },
  {
    name: 'VM_ALLOCATE reply for an explicit VMID: no data (§4.2)',
    message: 'VM_ALLOCATE',
    part: 'reply',
    bytes: hex`00000000`,
    value: { vmid: null },
  },
  {
    name: 'VM_STOP as Linux sends it: FORCE, reason 3 force-stop (§4.2)',
    message: 'VM_STOP',
    part: 'request',
    bytes: hex`8000 01 00 03000000`,
    value: { vmid: 0x80, flags: 1, stopReason: 3 },
  },
  {
    name: 'VM_STOP reply from a non-owner: VMID_INVALID (§4.2, §8.2)',
    message: 'VM_STOP',
    part: 'reply',
    bytes: hex`0d000000`,
    error: { rmError: 'VMID_INVALID', errorCode: 0xd },
  },
  {
    name: 'VM_INIT keeps its reserved half-word for the RM to check (§4.2)',
    message: 'VM_INIT',
    part: 'request',
    bytes: hex`8000 0100`,
    value: { vmid: 0x80, reserved: 1 },
  },
  {
    name: 'VM_CONFIG_IMAGE as L23 sends it: auth 0, image 0/0, DTB at 0x1000 of parcel 5 (§4.2, §4.4)',
    message: 'VM_CONFIG_IMAGE',
    part: 'request',
    bytes: hex`
      8000 0000 05000000        // vmid 0x80, auth_mech NONE, mem_handle 5
      00 00 00 00 00 00 00 00   // image_offset
      00 00 00 00 00 00 00 00   // image_size
      00 10 00 00 00 00 00 00   // dtb_offset 0x1000
      00 20 00 00 00 00 00 00   // dtb_size 0x2000
    `,
    value: { vmid: 0x80, authMech: 0, memHandle: 5, imageOffset: 0n, imageSize: 0n, dtbOffset: 0x1000n, dtbSize: 0x2000n },
  },
  {
    name: 'VM_AUTH_IMAGE with two parameters (§4.2)',
    message: 'VM_AUTH_IMAGE',
    part: 'request',
    bytes: hex`8000 0200  01000000 aa000000  02000000 bb000000`,
    value: {
      vmid: 0x80,
      params: [
        { type: 1, value: 0xaa },
        { type: 2, value: 0xbb },
      ],
    },
  },
  {
    name: 'VM_GET_STATE reply: RUNNING, os RUN, app 2 (§4.2)',
    message: 'VM_GET_STATE',
    part: 'reply',
    bytes: hex`00000000 03 04 0200`,
    value: { vmStatus: 3, osStatus: 4, appStatus: 2 },
  },
  {
    name: 'VM_SET_STATUS: byte 0 ignored, os BOOT, app 0x1234 (§4.2)',
    message: 'VM_SET_STATUS',
    part: 'request',
    bytes: hex`00 02 3412`,
    value: { osStatus: 2, appStatus: 0x1234 },
  },
  {
    name: 'VM_EXIT: restart flag, software error (§4.2)',
    message: 'VM_EXIT',
    part: 'request',
    bytes: hex`0100 01 00`,
    value: { exitFlags: 1, exitCode: 1, reserved: 0 },
  },
  {
    name: 'VM_GET_VMID: empty request (§4.2)',
    message: 'VM_GET_VMID',
    part: 'request',
    bytes: hex``,
    value: {},
  },
  {
    name: 'VM_GET_VMID reply: the caller is HLOS (§4.2)',
    message: 'VM_GET_VMID',
    part: 'reply',
    bytes: hex`00000000 03000000`,
    value: { vmid: 3 },
  },
  {
    name: 'VM_GET_HYP_RESOURCES reply with one 44-byte vCPU entry (§4.2)',
    message: 'VM_GET_HYP_RESOURCES',
    part: 'reply',
    bytes: hex`
      00000000                  // err OK
      01000000                  // n = 1
      04 00 8000                // type VCPU, reserved, partner_vmid 0x80
      01000000                  // resource_handle 1
      00000000                  // label 0 (vCPU id)
      2a 00 00 00 00 00 00 00   // capid 42
      ffffffff                  // virq_handle
      00000000                  // virq
      00 00 00 00 00 00 00 00   // base
      00 00 00 00 00 00 00 00   // size
    `,
    value: {
      resources: [
        { type: 4, partnerVmid: 0x80, resourceHandle: 1, label: 0, capid: 42n, virqHandle: 0xffff_ffff, virq: 0, base: 0n, size: 0n },
      ],
    },
  },
  {
    name: 'VM_SET_FIRMWARE_MEM (§4.2)',
    message: 'VM_SET_FIRMWARE_MEM',
    part: 'request',
    bytes: hex`8000 0000 06000000  00 00 00 00 00 00 00 00  00 00 10 00 00 00 00 00`,
    value: { vmid: 0x80, reserved: 0, memHandle: 6, offset: 0n, size: 0x10_0000n },
  },
  {
    name: 'VM_SET_TIME_BASE (§4.2)',
    message: 'VM_SET_TIME_BASE',
    part: 'request',
    bytes: hex`0000 0000  00 ca 9a 3b 00 00 00 00  40 42 0f 00 00 00 00 00`,
    value: { vmid: 0, timeBase: 1_000_000_000n, sysTimerRef: 1_000_000n },
  },
  {
    name: 'VM_SET_TIME_BASE error reply carries a hypervisor error after the RM error (§4.2)',
    message: 'VM_SET_TIME_BASE',
    part: 'reply',
    bytes: hex`14000000 1e000000`,
    error: { rmError: 'VM_STATE', errorCode: 0x14, data: [0x1e, 0, 0, 0] },
  },
  {
    name: 'VM_SET_BOOT_CONTEXT: PC = 0x80080000 (§4.2)',
    message: 'VM_SET_CONTEXT',
    part: 'request',
    bytes: hex`8000 01 00 00000000 00 00 08 80 00 00 00 00`,
    value: { vmid: 0x80, regSet: 1, regIndex: 0, value: 0x8008_0000n },
  },
  {
    name: 'VM_SET_DEMAND_PAGING with two ranges (§4.2)',
    message: 'VM_SET_DEMAND_PAGING',
    part: 'request',
    bytes: hex`
      8000 0000 02000000
      00 00 00 80 00 00 00 00  00 00 00 01 00 00 00 00
      00 00 00 c0 00 00 00 00  00 00 20 00 00 00 00 00
    `,
    value: {
      vmid: 0x80,
      ranges: [
        { base: 0x8000_0000n, size: 0x100_0000n },
        { base: 0xc000_0000n, size: 0x20_0000n },
      ],
    },
  },
  {
    name: 'VM_SET_ADDRESS_LAYOUT: IMAGE range (§4.2)',
    message: 'VM_SET_ADDRESS_LAYOUT',
    part: 'request',
    bytes: hex`8000 0000 00000000  00 00 00 80 00 00 00 00  00 00 00 01 00 00 00 00`,
    value: { vmid: 0x80, rangeId: 0, base: 0x8000_0000n, size: 0x100_0000n },
  },
  {
    name: 'VM_STATUS: VM 0x80 reached RESET (§2.2)',
    message: 'VM_STATUS',
    part: 'notification',
    bytes: hex`8000 0000 0b 00 0000`,
    value: { vmid: 0x80, vmStatus: 11, osStatus: 0, appStatus: 0 },
  },
  {
    name: 'VM_EXITED after VM_EXIT: type 0, reason = flags + (code << 16) (§2.2, §4.2)',
    message: 'VM_EXITED',
    part: 'notification',
    bytes: hex`8000 0000 04000000 01 00 01 00`,
    value: { vmid: 0x80, exitType: 0, reason: new Uint8Array([1, 0, 1, 0]) },
  },
  {
    name: 'VM_EXITED after a forced stop: type 7, no reason (§4.2)',
    message: 'VM_EXITED',
    part: 'notification',
    bytes: hex`8000 0700 00000000`,
    value: { vmid: 0x80, exitType: 7, reason: new Uint8Array(0) },
  },
  {
    name: 'VM_SHUTDOWN: stop reason shutdown (§2.2)',
    message: 'VM_SHUTDOWN',
    part: 'notification',
    bytes: hex`00000000`,
    value: { stopReason: 0 },
  },
] as const;

/** Bytes every RM decoder must refuse, named after the rule (cursor.ts DECODE_RULES). */
export const badPayloadVectors = [
  // §3.1 (open RM memparcel.c): every list header of the fixed part must be present.
  {
    rule: 'list_header_missing',
    name: '§3.1 MEM_SHARE of 16 bytes (attr list header absent, < 20)',
    message: 'MEM_SHARE',
    part: 'request',
    bytes: hex`00 00 00 00 07000000  0000 0000  0000 0000`,
    rmError: 'MSG_INVALID',
  },
  { rule: 'list_header_missing', name: '§3.1 MEM_LEND of 8 bytes (no list header)', message: 'MEM_LEND', part: 'request', bytes: hex`00 00 00 00 07000000`, rmError: 'MSG_INVALID' },
  { rule: 'list_header_missing', name: '§3.1 MEM_DONATE of 12 bytes (SGL header absent)', message: 'MEM_DONATE', part: 'request', bytes: hex`00 00 00 00 07000000 0000 0000`, rmError: 'MSG_INVALID' },
  { rule: 'list_header_missing', name: '§3.1 MEM_APPEND of 8 bytes (< 12)', message: 'MEM_APPEND', part: 'request', bytes: hex`05000000 01 000000`, rmError: 'MSG_INVALID' },
  {
    rule: 'list_header_missing',
    name: '§3.1 MEM_ACCEPT of 20 bytes (attr list header absent, < 24)',
    message: 'MEM_ACCEPT',
    part: 'request',
    bytes: hex`05000000 00 01 80 00 00000000  0000 0000  0000 0000`,
    rmError: 'MSG_INVALID',
  },
  { rule: 'length_invalid', name: 'vmid req of 3 bytes', message: 'VM_START', part: 'request', bytes: hex`8000 00`, rmError: 'MSG_INVALID' },
  { rule: 'length_invalid', name: 'vmid req of 5 bytes', message: 'VM_RESET', part: 'request', bytes: hex`8000 0000 00`, rmError: 'MSG_INVALID' },
  { rule: 'length_invalid', name: 'VM_ALLOCATE of 0 bytes', message: 'VM_ALLOCATE', part: 'request', bytes: hex``, rmError: 'MSG_INVALID' },
  { rule: 'length_invalid', name: 'VM_STOP of 4 bytes', message: 'VM_STOP', part: 'request', bytes: hex`8000 0100`, rmError: 'MSG_INVALID' },
  { rule: 'length_invalid', name: 'VM_GET_VMID with a byte', message: 'VM_GET_VMID', part: 'request', bytes: hex`00`, rmError: 'MSG_INVALID' },
  {
    rule: 'list_entries_over_max',
    name: 'MEM_LEND ACL count 513',
    message: 'MEM_LEND',
    part: 'request',
    bytes: hex`00 00 00 00 00000000 0102 0000`,
    rmError: 'NORESOURCE',
  },
  {
    rule: 'list_entries_over_max',
    name: 'MEM_APPEND SGL count 0xffff',
    message: 'MEM_APPEND',
    part: 'request',
    bytes: hex`05000000 01000000 ffff 0000`,
    rmError: 'NORESOURCE',
  },
  {
    rule: 'truncated',
    name: 'MEM_LEND SGL count 3 with 2 entries',
    message: 'MEM_LEND',
    part: 'request',
    bytes: hex`00 00 00 00 00000000  01 00 0000 80 00 06 00  03 00 0000  ${'00'.repeat(32)}`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'MEM_LEND ending inside a list header',
    message: 'MEM_LEND',
    part: 'request',
    bytes: hex`00 00 00 00 00000000 0100`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'MEM_LEND shorter than its 8 bytes of fields',
    message: 'MEM_LEND',
    part: 'request',
    bytes: hex`00 00 00 00 0000`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'trailing_bytes',
    name: 'MEM_LEND with 4 bytes after the attr list',
    message: 'MEM_LEND',
    part: 'request',
    bytes: hex`00 00 00 00 00000000 0000 0000 0000 0000 0000 0000 deadbeef`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'trailing_bytes',
    name: 'MEM_NOTIFY with bytes after its VMID list',
    message: 'MEM_NOTIFY',
    part: 'request',
    bytes: hex`05000000 01 000000 99000000 0100 0000 8000 0000 00`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'VM_EXITED reason size 8 with 4 bytes of reason',
    message: 'VM_EXITED',
    part: 'notification',
    bytes: hex`8000 0000 08000000 01000100`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'trailing_bytes',
    name: 'VM_EXITED with more reason bytes than its size',
    message: 'VM_EXITED',
    part: 'notification',
    bytes: hex`8000 0000 00000000 01`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'VM_SET_DEMAND_PAGING count 0xffffffff (nothing allocated for it)',
    message: 'VM_SET_DEMAND_PAGING',
    part: 'request',
    bytes: hex`8000 0000 ffffffff`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'VM_GET_HYP_RESOURCES reply shorter than 4 + 44n',
    message: 'VM_GET_HYP_RESOURCES',
    part: 'reply',
    bytes: hex`00000000 01000000 ${'00'.repeat(43)}`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'trailing_bytes',
    name: 'VM_GET_HYP_RESOURCES reply longer than 4 + 44n',
    message: 'VM_GET_HYP_RESOURCES',
    part: 'reply',
    bytes: hex`00000000 00000000 00`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'a reply shorter than its error word',
    message: 'VM_START',
    part: 'reply',
    bytes: hex`000000`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'VM_ALLOCATE reply with 2 bytes of data',
    message: 'VM_ALLOCATE',
    part: 'reply',
    bytes: hex`00000000 8000`,
    rmError: 'MSG_INVALID',
  },
  {
    rule: 'truncated',
    name: 'MEM_ACCEPT reply with a short list header',
    message: 'MEM_ACCEPT',
    part: 'reply',
    bytes: hex`00000000 0100`,
    rmError: 'MSG_INVALID',
  },
] as const;
