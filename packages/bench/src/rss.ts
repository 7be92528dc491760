/**
 * Child process of the RSS benchmark: builds the 64 GiB / 60-guest scenario in a fresh heap,
 * collects garbage and prints its resident set size in MB. Run by main.ts with --expose-gc.
 */
import { checkInvariants } from '@hypmesh/stage2';
import { sixtyGuests } from './core-bench.js';

const s = sixtyGuests();
const violations = checkInvariants(s).length;
(globalThis as { gc?: () => void }).gc?.();
const rssMb = process.memoryUsage().rss / 2 ** 20;
process.stdout.write(JSON.stringify({ rssMb, violations, spaces: s.spaces.size, grants: s.grants.size }) + '\n');
