/**
 * §1.3 RM receiver: one test per drop rule, named after it. Each row feeds `before` fragments, then
 * the fragment under test, and checks the drop, the drop count and what stays pending.
 */
import { describe, expect, test } from 'vitest';
import { hex } from '../vectors/hex.js';
import { fragmentMessage, type RmMessage } from './fragment.js';
import { encodeHeader, type RmRpcHeader } from './header.js';
import { DROP_RULES, Reassembler, type DropRule } from './reassembly.js';

const frag = (h: RmRpcHeader, payload: Uint8Array = new Uint8Array(0)): Uint8Array => Uint8Array.of(...encodeHeader(h), ...payload);
const LEND = 0x5100_0012;
/** First fragment of a 3-fragment MEM_LEND (2 continuations due). */
const first = frag({ type: 'REQUEST', fragmentCount: 2, seq: 7, msgId: LEND }, new Uint8Array(232).fill(1));
const cont = (over: Partial<RmRpcHeader> = {}) =>
  frag({ type: 'CONTINUATION', fragmentCount: 2, seq: 7, msgId: LEND, ...over }, new Uint8Array(232).fill(2));

const dropLadder: { rule: DropRule; before: Uint8Array[]; fragment: Uint8Array; pendingAfter: boolean }[] = [
  { rule: 'fragment_too_large', before: [], fragment: new Uint8Array(241).fill(0x21), pendingAfter: false },
  { rule: 'header_too_short', before: [], fragment: hex`21 01 0100 050000`, pendingAfter: false },
  { rule: 'api_version_invalid', before: [], fragment: hex`22 01 0100 05000056 80000000`, pendingAfter: false },
  { rule: 'header_words_invalid', before: [], fragment: hex`11 01 0100 05000056 80000000`, pendingAfter: false },
  { rule: 'fragment_count_over_max', before: [], fragment: hex`21 fd 0100 12000051`, pendingAfter: false },
  { rule: 'continuation_without_partial', before: [], fragment: cont(), pendingAfter: false },
  { rule: 'continuation_mismatch', before: [first], fragment: cont({ msgId: 0x5100_0013 }), pendingAfter: true },
  { rule: 'continuation_mismatch', before: [first], fragment: cont({ seq: 8 }), pendingAfter: true },
  { rule: 'continuation_mismatch', before: [first], fragment: cont({ fragmentCount: 3 }), pendingAfter: true },
  // a bad fragment in the middle of a message leaves the partial alone
  { rule: 'header_words_invalid', before: [first], fragment: hex`31 08 0700 12000051`, pendingAfter: true },
  { rule: 'fragment_count_over_max', before: [first], fragment: hex`21 fc 0700 12000051`, pendingAfter: true },
];

describe('§1.3 RM receiver drop rules', () => {
  test.each(dropLadder)('$rule is dropped and counted (partial pending before: $before.length)', ({ rule, before, fragment, pendingAfter }) => {
    const rx = new Reassembler();
    for (const f of before) expect(rx.push(f)).toEqual([]);
    const pendingBefore = rx.pending;
    const events = rx.push(fragment);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'drop', rule });
    expect(rx.dropCounts()).toEqual(new Map([[rule, 1]]));
    expect(rx.pending).toEqual(pendingAfter ? pendingBefore : undefined);
  });

  test('partial_discarded: a new non-continuation message discards the pending partial, then is taken', () => {
    const rx = new Reassembler();
    rx.push(first);
    rx.push(cont());
    const single = frag({ type: 'REQUEST', fragmentCount: 0, seq: 8, msgId: 0x5600_0005 }, hex`8000 0100 03000000`);
    const events = rx.push(single);
    expect(events).toEqual([
      expect.objectContaining({ kind: 'drop', rule: 'partial_discarded', header: expect.objectContaining({ seq: 7, msgId: LEND }) }),
      { kind: 'message', message: { type: 'REQUEST', msgId: 0x5600_0005, seq: 8, payload: hex`8000 0100 03000000` } },
    ]);
    expect(rx.dropCounts()).toEqual(new Map([['partial_discarded', 1]]));
    // the old message's last continuation now has nothing to continue
    expect(rx.push(cont())[0]).toMatchObject({ kind: 'drop', rule: 'continuation_without_partial' });
  });

  test('partial_discarded: a new multi-fragment message replaces the partial and completes', () => {
    const rx = new Reassembler();
    rx.push(first);
    const m: RmMessage = { type: 'NOTIFICATION', msgId: 0x5110_0011, seq: 9, payload: new Uint8Array(300).fill(9) };
    const frags = fragmentMessage(m);
    if (!frags.ok) throw new Error(frags.error.reason);
    const events = frags.value.flatMap((f) => rx.push(f));
    expect(events.map((e) => e.kind)).toEqual(['drop', 'message']);
    expect(events[1]).toEqual({ kind: 'message', message: m });
  });

  test('a message completes after a mismatched continuation was dropped', () => {
    const rx = new Reassembler();
    rx.push(first);
    rx.push(cont({ seq: 99 }));
    rx.push(cont());
    const events = rx.push(cont());
    expect(events).toHaveLength(1);
    expect(events[0]?.kind).toBe('message');
    if (events[0]?.kind === 'message') expect(events[0].message.payload.length).toBe(3 * 232);
  });

  test('fragments shorter than 232 bytes before the last are accepted (the RM does not check)', () => {
    const rx = new Reassembler();
    rx.push(frag({ type: 'REQUEST', fragmentCount: 1, seq: 1, msgId: LEND }, hex`01 02`));
    const events = rx.push(frag({ type: 'CONTINUATION', fragmentCount: 1, seq: 1, msgId: LEND }, hex`03`));
    expect(events).toEqual([{ kind: 'message', message: { type: 'REQUEST', msgId: LEND, seq: 1, payload: hex`01 02 03` } }]);
  });

  test('an empty single-fragment message is delivered (VM_GET_VMID has no payload)', () => {
    const rx = new Reassembler();
    expect(rx.push(frag({ type: 'REQUEST', fragmentCount: 0, seq: 3, msgId: 0x5600_0024 }))).toEqual([
      { kind: 'message', message: { type: 'REQUEST', msgId: 0x5600_0024, seq: 3, payload: new Uint8Array(0) } },
    ]);
  });

  test('the payload is copied: reusing the receive buffer does not change a pending message', () => {
    const rx = new Reassembler();
    const buf = frag({ type: 'REQUEST', fragmentCount: 1, seq: 1, msgId: LEND }, hex`aa`);
    rx.push(buf);
    buf[8] = 0xbb;
    const events = rx.push(frag({ type: 'CONTINUATION', fragmentCount: 1, seq: 1, msgId: LEND }, hex`cc`));
    expect(events[0]).toMatchObject({ message: { payload: hex`aa cc` } });
  });

  test('every drop rule has a test above and a spec citation', () => {
    const tested = new Set<string>([...dropLadder.map((r) => r.rule), 'partial_discarded']);
    expect(new Set(Object.keys(DROP_RULES))).toEqual(tested);
    for (const text of Object.values(DROP_RULES)) expect(text).toMatch(/^§1\.[13]/);
  });
});
