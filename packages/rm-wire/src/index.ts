/**
 * @hypmesh/rm-wire: the Gunyah Resource Manager wire codec (DESIGN.md §3 "Byte-exact" face;
 * gunyah-rm.md §1–§4). Pure: bytes in, values out, no I/O, no timers, no other hypmesh package.
 *
 *   header.ts      8-byte RPC header (§1.2)
 *   fragment.ts    message → ≤ 240-byte fragments, the size limits (§1.1, §1.3)
 *   reassembly.ts  the RM receiver's state machine and drop rules (§1.3)
 */
export * from './result.js';
export * from './header.js';
export * from './fragment.js';
export * from './reassembly.js';
