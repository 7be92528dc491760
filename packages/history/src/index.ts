/**
 * @hypmesh/history: recorded histories and their checker (DESIGN.md §7, issue 8 item 4). Pure.
 *
 *   history.ts  entries (invoke, ok/fail/info, observe), JSON lines, pairing into operations
 *   checker.ts  the six checks, one verdict each, and the printed report
 */
export * from './result.js';
export * from './history.js';
export * from './checker.js';
