/** §1.5 error table and §2 message-ID catalogue: spot values from the spec, and the tables' own rules. */
import { describe, expect, test } from 'vitest';
import { CODEC_NAMES, codecsForId, codecMessageId } from './codecs.js';
import { MESSAGE_IDS, MESSAGE_NAMES, messageName, NOTIFICATION_ID_BIT } from './message-id.js';
import { linuxErrnoOf, RM_ERROR_NAMES, RM_ERRORS, rmErrorName } from './rm-error.js';

describe('§1.5 RM error codes', () => {
  test.each([
    { code: 0x0, name: 'OK', errno: 0 },
    { code: 0xffff_ffff, name: 'UNIMPLEMENTED', errno: -95 },
    { code: 0x1, name: 'NOMEM', errno: -12 },
    { code: 0x2, name: 'NORESOURCE', errno: -19 },
    { code: 0x3, name: 'DENIED', errno: -1 },
    { code: 0x4, name: 'MSG_INVALID', errno: -22 },
    { code: 0x5, name: 'BUSY', errno: -16 },
    { code: 0x6, name: 'ARGUMENT_INVALID', errno: -22 },
    { code: 0xb, name: 'MEM_INUSE', errno: -22 },
    { code: 0xd, name: 'VMID_INVALID', errno: -22 },
    { code: 0x11, name: 'IRQ_RELEASED', errno: -22 },
    { code: 0x12, name: 'IN_USE', errno: -74 },
    { code: 0x13, name: 'IRQ_NOT_MAPPED', errno: -74 },
    { code: 0x14, name: 'VM_STATE', errno: -74 },
  ])('$code is $name, Linux $errno', ({ code, name, errno }) => {
    expect(rmErrorName(code)).toBe(name);
    expect(linuxErrnoOf(code)).toBe(errno);
  });

  test('codes are unique and 0x0–0x14 plus 0xffffffff are all named', () => {
    const codes = RM_ERROR_NAMES.map((n) => RM_ERRORS[n].code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(codes.length).toBe(0x15 + 1);
  });

  test('a code §1.5 does not define is unnamed, and Linux returns -EBADMSG for it (default branch)', () => {
    expect(rmErrorName(0x15)).toBeUndefined();
    expect(linuxErrnoOf(0x15)).toBe(-74);
  });
});

describe('§2 message-ID catalogue', () => {
  test.each([
    { name: 'MEM_DONATE', id: 0x5100_0010 },
    { name: 'MEM_LEND', id: 0x5100_0012 },
    { name: 'MEM_APPEND', id: 0x5100_0018 },
    { name: 'MEM_QCOM_LOOKUP_SGL', id: 0x5100_001a },
    { name: 'VM_ALLOCATE', id: 0x5600_0001 },
    { name: 'VM_GET_VMID', id: 0x5600_0024 },
    { name: 'VM_SET_CONTEXT', id: 0x5600_0031 },
    { name: 'VM_SET_ADDRESS_LAYOUT', id: 0x5600_0034 },
    { name: 'VM_EXIT', id: 0x5600_0085 },
    { name: 'MEM_SHARED', id: 0x5110_0011 },
    { name: 'VM_STATUS', id: 0x5610_0008 },
  ] as const)('$name = $id', ({ name, id }) => {
    expect(MESSAGE_IDS[name].id).toBe(id);
    expect(messageName(id)).toBe(name);
  });

  test('IDs are unique', () => {
    const ids = MESSAGE_NAMES.map((n) => MESSAGE_IDS[n].id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('notifications, and only they, set bit 20 (GET_IDENT/GET_FEATURES are outside the 0x51/0x56 families)', () => {
    for (const n of MESSAGE_NAMES) {
      const { id, kind } = MESSAGE_IDS[n];
      expect([n, (id & NOTIFICATION_ID_BIT) !== 0]).toEqual([n, kind === 'notification']);
    }
  });

  test('every codec is named in the catalogue, with the kind of its codecs', () => {
    for (const n of CODEC_NAMES) {
      const row = MESSAGE_IDS[n];
      expect(codecsForId(codecMessageId(n))?.name).toBe(n);
      expect(codecsForId(row.id)?.codecs.kind).toBe(row.kind);
    }
  });

  test('an ID with no codec (the RM answers UNIMPLEMENTED) finds none', () => {
    expect(codecsForId(MESSAGE_IDS.VM_CONSOLE_WRITE.id)).toBeUndefined();
    expect(codecsForId(0x5600_00ff)).toBeUndefined();
  });
});
