/**
 * @hypmesh/rm-wire: the Gunyah Resource Manager wire codec (DESIGN.md §3 "Byte-exact" face;
 * gunyah-rm.md §1–§4). Pure: bytes in, values out, no I/O, no timers, no other hypmesh package.
 *
 *   header.ts      8-byte RPC header (§1.2)
 *   fragment.ts    message → ≤ 240-byte fragments, the size limits (§1.1, §1.3)
 *   reassembly.ts  the RM receiver's state machine and drop rules (§1.3)
 *   reply.ts       `[err][data]` reply framing (§1.4)
 *   rm-error.ts    RM error codes and Linux errnos (§1.5)
 *   message-id.ts  the message-ID catalogue (§2)
 *   cursor.ts      LE reading/writing and the RM list form (§3.1); decode rules and WireError
 *   layout.ts      payload layouts as field tables (one table = encoder + decoder)
 *   payloads/      every §3 and §4.2 payload, and the §2.2 notifications
 *   codecs.ts      message name → { request, reply } | { notification }
 */
export * from './result.js';
export * from './header.js';
export * from './fragment.js';
export * from './reassembly.js';
export * from './reply.js';
export * from './rm-error.js';
export * from './message-id.js';
export { DECODE_RULES, LIST_ENTRIES_MAX, LIST_HEADER_SIZE, wireError, type Decoded, type DecodeRule, type WireError } from './cursor.js';
export type { Codec, Infer, Layout } from './layout.js';
export * from './payloads/entries.js';
export * from './payloads/mem-share.js';
export * from './payloads/mem-append.js';
export * from './payloads/mem-accept.js';
export * from './payloads/mem-release.js';
export * from './payloads/mem-notify.js';
export * from './payloads/mem-lookup-sgl.js';
export * from './payloads/mem-notifications.js';
export * from './payloads/vm-lifecycle.js';
export * from './payloads/vm-config.js';
export * from './payloads/vm-resources.js';
export * from './payloads/vm-notifications.js';
export * from './codecs.js';
