import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { Journal } from './journal.js';

const dirs: string[] = [];
function freshPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hypmesh-journal-'));
  dirs.push(dir);
  return join(dir, 'core.sqlite');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const rec = (name: string, n: number) => ({ name, caller: '3', body: Uint8Array.of(n) });
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('group commit', () => {
  test('records appended in one turn commit as one group, and only then are their callbacks run, in order', async () => {
    const j = new Journal(freshPath());
    const done: string[] = [];
    for (let i = 0; i < 5; i++) j.append(rec('share', i), (e) => done.push(e === undefined ? `ok${i}` : 'failed'));
    expect(done).toEqual([]);
    await turn();
    expect(done).toEqual(['ok0', 'ok1', 'ok2', 'ok3', 'ok4']);
    expect(j.stats).toEqual({ groups: 1, records: 5 });
    j.close();
  });

  test('afterDurable waits for the records appended before it, and runs at once when none are pending', async () => {
    const j = new Journal(freshPath());
    const order: string[] = [];
    j.afterDurable(() => order.push('read-before'));
    j.append(rec('share', 1), () => order.push('share'));
    j.afterDurable(() => order.push('read-after'));
    expect(order).toEqual(['read-before']);
    await turn();
    expect(order).toEqual(['read-before', 'share', 'read-after']);
    j.close();
  });

  test('a failed commit fails its group and every later operation', async () => {
    const j = new Journal(freshPath());
    const errors: (Error | undefined)[] = [];
    j.append(rec('share', 1), (e) => errors.push(e));
    j.close(); // commits the group
    j.append(rec('share', 2), (e) => errors.push(e));
    j.flush(); // the database is closed: the commit throws
    j.append(rec('share', 3), (e) => errors.push(e));
    j.afterDurable((e) => errors.push(e));
    expect(errors[0]).toBeUndefined();
    expect(errors.slice(1).every((e) => e instanceof Error)).toBe(true);
    expect(errors).toHaveLength(4);
  });
});

describe('reopen', () => {
  test('records come back in append order with their bytes, and metadata persists', async () => {
    const path = freshPath();
    const j = new Journal(path, { sync: 'full' });
    j.putMeta({ memory: '{"paBits":40}' });
    for (let i = 0; i < 3; i++) j.append(rec(`op${i}`, i), () => undefined);
    j.close();
    const again = new Journal(path);
    expect([...again.records()].map((r) => [r.seq, r.name, r.caller, [...r.body]])).toEqual([
      [1, 'op0', '3', [0]],
      [2, 'op1', '3', [1]],
      [3, 'op2', '3', [2]],
    ]);
    expect(again.meta('memory')).toBe('{"paBits":40}');
    expect(again.meta('absent')).toBeUndefined();
    again.close();
  });

  test('clear wipes the records appended before it, sets its metadata and state rows in the same group; sequence numbers are never reused', async () => {
    const path = freshPath();
    const j = new Journal(path);
    j.append(rec('a', 1), () => undefined);
    j.putState('snapshot', 'old', () => undefined);
    j.clear({ memory: 'new' }, { snapshot: null, other: 'kept' }, () => undefined);
    j.append(rec('b', 2), () => undefined);
    await turn();
    expect([...j.records()].map((r) => [r.seq, r.name])).toEqual([[2, 'b']]);
    expect(j.count()).toBe(1);
    expect(j.meta('memory')).toBe('new');
    expect(j.state('snapshot')).toBeUndefined();
    expect(j.state('other')).toBe('kept');
    j.close();
  });
});

describe('state rows', () => {
  test('a row put several times in one group keeps its last value, and survives a reopen', async () => {
    const path = freshPath();
    const j = new Journal(path);
    const done: number[] = [];
    for (let i = 0; i < 3; i++) j.putState('rm', `v${i}`, () => done.push(i));
    expect(j.state('rm')).toBeUndefined();
    await turn();
    expect(done).toEqual([0, 1, 2]);
    expect(j.state('rm')).toBe('v2');
    j.close();
    const again = new Journal(path);
    expect(again.state('rm')).toBe('v2');
    again.close();
  });
});
