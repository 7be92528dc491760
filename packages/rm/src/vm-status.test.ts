/** §4.3: the allowed-transition table, transcribed and checked edge by edge. */
import { describe, expect, test } from 'vitest';
import { VM_STATUS, VM_STATUS_SOURCES, canEnter, type VmStatus } from './vm-status.js';

const all = Object.keys(VM_STATUS) as VmStatus[];

describe('§4.3 VM state machine', () => {
  test('status numbers match the RM and Linux enums (7 reserved)', () => {
    expect(Object.values(VM_STATUS)).toEqual([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]);
  });

  const allowed: [VmStatus, VmStatus][] = [
    ['NONE', 'LOAD'],
    ['LOAD', 'AUTH'],
    ['RESET', 'AUTH'],
    ['LOAD', 'INIT'],
    ['AUTH', 'INIT'],
    ['RESET', 'INIT'],
    ['INIT', 'READY'],
    ['READY', 'RUNNING'],
    ['PAUSED', 'RUNNING'],
    ['RUNNING', 'PAUSED'],
    ['INIT', 'INIT_FAILED'],
    ['READY', 'INIT_FAILED'],
    ['LOAD', 'INIT_FAILED'],
    ['AUTH', 'INIT_FAILED'],
    ['RESET', 'INIT_FAILED'],
    ['RUNNING', 'EXITED'],
    ['PAUSED', 'EXITED'],
    ['EXITED', 'RESETTING'],
    ['READY', 'RESETTING'],
    ['INIT_FAILED', 'RESETTING'],
    ['RESETTING', 'RESET'],
    ['RESET', 'NONE'],
  ];

  test.each(all.flatMap((from) => all.map((to) => [from, to] as const)))('%s → %s', (from, to) => {
    expect(canEnter(from, to)).toBe(allowed.some(([f, t]) => f === from && t === to));
  });

  test('every target lists its sources once', () => {
    for (const to of all) expect(new Set(VM_STATUS_SOURCES[to]).size).toBe(VM_STATUS_SOURCES[to].length);
  });
});
