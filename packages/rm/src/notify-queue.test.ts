/** §1.3: up to 256 pending notifications per client; the oldest is dropped beyond that. */
import { describe, expect, test } from 'vitest';
import { NOTIFY_QUEUE_DEPTH_MAX, NotifyQueue } from './notify-queue.js';

describe('§1.3 notification queue', () => {
  test('keeps 256 and drops the oldest beyond, counting drops', () => {
    const q = new NotifyQueue<number>();
    for (let i = 0; i < NOTIFY_QUEUE_DEPTH_MAX + 10; i++) q.push(i);
    expect(q.length).toBe(256);
    expect(q.dropped).toBe(10);
    expect(q.pushed).toBe(266);
    const items = q.drain();
    expect(items[0]).toBe(10);
    expect(items[255]).toBe(265);
    expect(q.length).toBe(0);
  });

  test('delivers in order and drops nothing below the limit', () => {
    const q = new NotifyQueue<string>(4);
    q.push('a');
    q.push('b');
    expect(q.shift()).toBe('a');
    expect(q.drain()).toEqual(['b']);
    expect(q.dropped).toBe(0);
  });
});
