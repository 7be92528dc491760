/**
 * @hypmesh/sim: deterministic simulation of the core, RM and VMM domains in one process (issue 8
 * item 3, DESIGN.md §7). Pure: no I/O; the CLI (tools/cli sim.ts) reads and writes the files.
 *
 *   world.ts          the three domains over fault-wrapped in-memory ports and one simulated clock
 *   faulty-ports.ts   the port wrappers: every call numbered and decided by the fault engine
 *   random-faults.ts  --fault-rate: the survivable faults as plan rules
 *   actors.ts         the weighted actor table (VMM sessions, guests, HLOS)
 *   checks.ts         per-step, core and final checkers
 *   simulation.ts     scheduler, replay files, shrinking
 */
export * from './world.js';
export * from './faulty-ports.js';
export * from './random-faults.js';
export { ACTORS, ACTOR_INDEX, ClientState, type ActorRow } from './actors.js';
export { coreChecks, finalChecks, stepChecks, reported } from './checks.js';
export * from './simulation.js';
