/**
 * §1.2 header vectors, written by hand from the spec table: byte 0 = 0x21 (version 1, 2 header
 * words); byte 1 = count << 2 | type (0 continuation, 1 request, 2 reply, 3 notification); seq LE16;
 * msg id LE32.
 */
import { hex } from './hex.js';

export const headerVectors = [
  {
    name: 'VM_STOP request, seq 1, one fragment',
    bytes: hex`21 01 0100 05000056`,
    header: { type: 'REQUEST', fragmentCount: 0, seq: 1, msgId: 0x5600_0005 },
  },
  {
    name: 'MEM_LEND reply, seq 0x1234',
    bytes: hex`21 02 3412 12000051`,
    header: { type: 'REPLY', fragmentCount: 0, seq: 0x1234, msgId: 0x5100_0012 },
  },
  {
    name: 'VM_STATUS notification, seq 0xffff',
    bytes: hex`21 03 ffff 08001056`,
    header: { type: 'NOTIFICATION', fragmentCount: 0, seq: 0xffff, msgId: 0x5610_0008 },
  },
  {
    name: 'first fragment of a 3-fragment MEM_LEND request',
    bytes: hex`21 09 0700 12000051`,
    header: { type: 'REQUEST', fragmentCount: 2, seq: 7, msgId: 0x5100_0012 },
  },
  {
    name: 'continuation of that MEM_LEND: type 0, same id, seq and count',
    bytes: hex`21 08 0700 12000051`,
    header: { type: 'CONTINUATION', fragmentCount: 2, seq: 7, msgId: 0x5100_0012 },
  },
  {
    name: 'first of 63 fragments (count 62, the RM maximum)',
    bytes: hex`21 f9 0000 18000051`,
    header: { type: 'REQUEST', fragmentCount: 62, seq: 0, msgId: 0x5100_0018 },
  },
] as const;

/** Bytes decodeHeader refuses, with the rule; several rules hold for some and the first in §1.3 order wins. */
export const badHeaderVectors = [
  { rule: 'header_too_short', name: '7 bytes', bytes: hex`21 01 0100 050000` },
  { rule: 'header_too_short', name: 'empty', bytes: hex`` },
  { rule: 'api_version_invalid', name: 'version 2 (byte 0 = 0x22)', bytes: hex`22 01 0100 05000056` },
  { rule: 'api_version_invalid', name: 'version 0 and 1 header word (byte 0 = 0x10): version checked first', bytes: hex`10 01 0100 05000056` },
  { rule: 'header_words_invalid', name: '3 header words (byte 0 = 0x31)', bytes: hex`31 01 0100 05000056` },
  { rule: 'header_words_invalid', name: 'byte 0 = 0x01', bytes: hex`01 01 0100 05000056` },
] as const;
