/**
 * @hypmesh/consistency: do the VMM, the RM and the core agree? (issue 9 item 5). Pure.
 *
 *   views.ts  what each service believes, as plain snapshots (filled over gRPC or in process)
 *   rules.ts  the rules as one table, compareViews and the printed line
 *
 * A package of its own rather than part of @hypmesh/history: history judges a recorded sequence of
 * client operations against observations; this judges one instant's three views against each
 * other, and the simulation (packages/sim) can feed it without taking on the history format.
 */
export * from './views.js';
export * from './rules.js';
