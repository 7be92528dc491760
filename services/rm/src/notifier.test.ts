/**
 * RM_NOTIFICATION faults in the notifier (notifier.ts header): drop, delay, pause and crash, each
 * seen as what a stream is handed and when. The crash port is a spy.
 */

import { describe, expect, test } from 'vitest';
import { FaultEngine, type FaultAction, type FaultEvent } from '@hypmesh/fault';
import { ResourceManager, inProcessCore } from '@hypmesh/rm';
import { createStage2, DEFAULT_STAGE2_CONFIG } from '@hypmesh/stage2';
import { Notifier } from './notifier.js';

const VM = 0x80;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function setup(action?: FaultAction) {
  const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
  if (!stage2.ok) throw new Error(stage2.error.join('; '));
  const rm = new ResourceManager(inProcessCore(stage2.value));
  const engine = new FaultEngine({ nowMs: Date.now });
  if (action !== undefined) {
    const armed = engine.arm({ rules: [{ id: 'n', boundary: 'RM_NOTIFICATION', match: { rmMessage: 'VM_STATUS', nth: 1 }, action }] }, 3);
    if (!armed.ok) throw new Error(JSON.stringify(armed.error));
  }
  const crashes: FaultEvent[] = [];
  const notifier = new Notifier(rm, { engine, crash: (e) => void crashes.push(e) });
  const got: { seq: number; atMs: number }[] = [];
  const t0 = Date.now();
  const { stop } = notifier.attach(VM, (_n, _id, seq) => (got.push({ seq, atMs: Date.now() - t0 }), true));
  /** Queue one VM_STATUS for VM (the payload is not encoded on this path). */
  const notify = (): void => rm.notify(VM, 'VM_STATUS', { vmid: VM, vmStatus: 'RUNNING' } as never);
  return { got, crashes, notify, stop };
}

describe('RM_NOTIFICATION faults at delivery', () => {
  test('no plan: every notification delivered at once, in order', () => {
    const s = setup();
    s.notify();
    s.notify();
    expect(s.got.map((g) => g.seq)).toEqual([0, 1]);
    s.stop();
  });

  test('drop: the first is never delivered, the next one is', async () => {
    const s = setup({ kind: 'drop' });
    s.notify();
    s.notify();
    await sleep(20);
    expect(s.got.map((g) => g.seq)).toEqual([1]);
    s.stop();
  });

  test('delay: the first arrives late and is overtaken by the next', async () => {
    const s = setup({ kind: 'delay', fixedMs: 80, jitterMs: 0 });
    s.notify();
    s.notify();
    expect(s.got.map((g) => g.seq)).toEqual([1]);
    await sleep(120);
    expect(s.got.map((g) => g.seq)).toEqual([1, 0]);
    expect(s.got[1]!.atMs).toBeGreaterThanOrEqual(75);
    s.stop();
  });

  test('pause: delivery stops for the duration; everything held goes out after, in order', async () => {
    const s = setup({ kind: 'pause', durationMs: 80 });
    s.notify();
    s.notify();
    expect(s.got).toEqual([]);
    await sleep(130);
    expect(s.got.map((g) => g.seq)).toEqual([0, 1]);
    expect(s.got[0]!.atMs).toBeGreaterThanOrEqual(75);
    s.stop();
  });

  test.each([
    { point: 'BEFORE_COMMIT' as const, delivered: [] as number[] },
    { point: 'AFTER_COMMIT' as const, delivered: [0] },
  ])('crash $point: the crash port is called, after delivering only for AFTER_COMMIT', ({ point, delivered }) => {
    const s = setup({ kind: 'crash', point });
    s.notify();
    expect(s.crashes.map((e) => e.ruleId)).toEqual(['n']);
    expect(s.got.map((g) => g.seq)).toEqual(delivered);
    s.stop();
  });

  test('a stopped attachment gets nothing a timer would have delivered', async () => {
    const s = setup({ kind: 'delay', fixedMs: 30, jitterMs: 0 });
    s.notify();
    s.stop();
    await sleep(60);
    expect(s.got).toEqual([]);
  });
});

describe('backpressure: a stream that takes no more leaves notifications in the bounded queue (issue 10)', () => {
  test('deliver answers false: the rest wait in the queue, the oldest beyond 256 dropped and counted; resume delivers what is left', () => {
    const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
    if (!stage2.ok) throw new Error(stage2.error.join('; '));
    const rm = new ResourceManager(inProcessCore(stage2.value));
    const got: { seq: number; dropped: number }[] = [];
    let room = 2;
    const attachment = new Notifier(rm).attach(VM, (_n, _id, seq, dropped) => (got.push({ seq, dropped }), --room > 0));
    for (let i = 0; i < 1_000; i++) rm.notify(VM, 'VM_STATUS', { vmid: VM, vmStatus: 'RUNNING' } as never);
    // Two taken (the second filled the stream); of the other 998 the queue keeps the newest 256.
    expect(got.map((g) => g.seq)).toEqual([0, 1]);
    expect({ pending: rm.pendingFor(VM), dropped: rm.queue(VM).dropped }).toEqual({ pending: 256, dropped: 998 - 256 });
    room = Infinity;
    attachment.resume();
    expect(got).toHaveLength(2 + 256);
    expect(got.at(-1)).toEqual({ seq: 999, dropped: 742 });
    expect(got[2]!.seq).toBe(1_000 - 256);
    attachment.stop();
  });
});

describe('several streams for one VM (issue 11 item 5: a second HLOS subscriber must not steal)', () => {
  test('the first drains the queue and gets everything; a later one gets copies; when the first ends the next drains what waits', () => {
    const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
    if (!stage2.ok) throw new Error(stage2.error.join('; '));
    const rm = new ResourceManager(inProcessCore(stage2.value));
    const notifier = new Notifier(rm);
    const notify = (): void => rm.notify(VM, 'VM_STATUS', { vmid: VM, vmStatus: 'RUNNING' } as never);
    const first: number[] = [];
    const second: number[] = [];
    const a = notifier.attach(VM, (_n, _id, seq) => (first.push(seq), true));
    notify();
    const b = notifier.attach(VM, (_n, _id, seq) => (second.push(seq), true));
    notify();
    notify();
    expect(first).toEqual([0, 1, 2]);
    expect(second).toEqual([1, 2]);
    expect(rm.pendingFor(VM)).toBe(0);
    // A copy stream that is full loses its copies, never the primary's notifications.
    let room = 0;
    const c = notifier.attach(VM, () => room-- > 0);
    notify();
    expect(first).toEqual([0, 1, 2, 3]);
    a.stop();
    notify();
    // b is the primary now; c is still full and the queue is b's to drain.
    expect(second).toEqual([1, 2, 3, 4]);
    expect(rm.pendingFor(VM)).toBe(0);
    b.stop();
    notify();
    expect(rm.pendingFor(VM)).toBe(1);
    room = 10;
    c.resume();
    expect(rm.pendingFor(VM)).toBe(0);
    c.stop();
  });

  test('a drainer whose buffer fills (stalled, partitioned) yields the queue to the next stream; on resume it drains again', () => {
    const stage2 = createStage2(DEFAULT_STAGE2_CONFIG);
    if (!stage2.ok) throw new Error(stage2.error.join('; '));
    const rm = new ResourceManager(inProcessCore(stage2.value));
    const notifier = new Notifier(rm);
    const notify = (): void => rm.notify(VM, 'VM_STATUS', { vmid: VM, vmStatus: 'RUNNING' } as never);
    const stuck: number[] = [];
    const next: number[] = [];
    let room = 1;
    const a = notifier.attach(VM, (_n, _id, seq) => (stuck.push(seq), --room > 0));
    const b = notifier.attach(VM, (_n, _id, seq) => (next.push(seq), true));
    notify(); // a takes it and is full; b gets its copy
    notify(); // b drains now
    notify();
    expect(stuck).toEqual([0]);
    expect(next).toEqual([0, 1, 2]);
    expect(rm.pendingFor(VM)).toBe(0);
    room = Infinity;
    a.resume();
    notify(); // a drains again, b gets the copy
    expect(stuck).toEqual([0, 3]);
    expect(next).toEqual([0, 1, 2, 3]);
    a.stop();
    b.stop();
  });
});
