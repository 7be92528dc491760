/**
 * The RM's receive side of one client's TX queue, gunyah-rm.md §1.3 (RM `do_recv`): a pure state
 * machine fed one msgq fragment at a time. No timers, no I/O; the caller owns time.
 *
 * State: at most one partial message (its header and the payload so far). A fragment either
 * completes a message, starts or extends the partial, or is dropped; every drop is reported with the
 * rule that fired so callers can count them. Check order is the RM's: length, header fields, then the
 * continuation rules. Dropped fragments change nothing, except that a new first fragment discards a
 * pending partial (reported as its own drop, `partial_discarded`) before it is taken.
 *
 * Not modelled: the Linux receiver (L24), which also aborts the partial on a continuation mismatch
 * and matches replies to waiters by seq and msg_id; that belongs to a host model.
 */
import { decodeHeader, RM_RPC_HEADER_SIZE, type HeaderRule, type RmRpcHeader } from './header.js';
import { RM_RPC_CONTINUATIONS_MAX, RM_RPC_MESSAGE_SIZE, type RmMessage } from './fragment.js';

/** Why a fragment (or a pending partial) was dropped, with the spec text each rule transcribes. */
export const DROP_RULES = {
  fragment_too_large: '§1.1: the RM RPC msgq carries at most 240-byte messages (a real queue refuses longer ones)',
  header_too_short: '§1.3: the RM drops packets < 8 bytes',
  api_version_invalid: '§1.3: the RM drops a wrong API version',
  header_words_invalid: '§1.3: the RM drops wrong header words',
  fragment_count_over_max: '§1.3: the RM drops a fragment count > 62',
  partial_discarded: '§1.3: a new non-continuation message while a partial one is pending discards the partial',
  continuation_without_partial: '§1.3: a continuation with no partial pending is dropped',
  continuation_mismatch: '§1.3: a continuation whose msg_id/seq/frag-count differ from the partial is dropped',
} as const satisfies Record<HeaderRule, string> & Record<string, string>; // every header failure is a drop rule

export type DropRule = keyof typeof DROP_RULES;

export interface Drop {
  readonly rule: DropRule;
  readonly reason: string;
  /** The header, when it could be read. */
  readonly header?: RmRpcHeader;
}

export type ReassemblyEvent = { readonly kind: 'message'; readonly message: RmMessage } | ({ readonly kind: 'drop' } & Drop);

interface Partial {
  readonly first: RmRpcHeader & { type: RmMessage['type'] };
  readonly chunks: Uint8Array[];
  remaining: number;
}

export class Reassembler {
  private partial: Partial | undefined;
  private readonly counts = new Map<DropRule, number>();

  /** Feeds one fragment; returns what it caused, in order (a discarded partial comes before the new message). */
  push(fragment: Uint8Array): ReassemblyEvent[] {
    if (fragment.length > RM_RPC_MESSAGE_SIZE) {
      return [this.drop({ rule: 'fragment_too_large', reason: `fragment is ${fragment.length} bytes, max ${RM_RPC_MESSAGE_SIZE}` })];
    }
    const decoded = decodeHeader(fragment);
    if (!decoded.ok) return [this.drop(decoded.error)];
    const header = decoded.value;
    if (header.fragmentCount > RM_RPC_CONTINUATIONS_MAX) {
      return [this.drop({ rule: 'fragment_count_over_max', reason: `fragment count ${header.fragmentCount} > ${RM_RPC_CONTINUATIONS_MAX}`, header })];
    }
    // Copy: the caller may reuse its receive buffer, as the RM reuses transport_buf.
    const payload = fragment.slice(RM_RPC_HEADER_SIZE);
    if (header.type !== 'CONTINUATION') return this.first({ ...header, type: header.type }, payload);
    const event = this.continuation(header, payload);
    return event ? [event] : [];
  }

  /** The partial message being collected, if any (its header and how many continuations it still needs). */
  get pending(): { readonly header: RmRpcHeader; readonly continuationsRemaining: number } | undefined {
    return this.partial && { header: this.partial.first, continuationsRemaining: this.partial.remaining };
  }

  /** Drops so far, per rule. */
  dropCounts(): ReadonlyMap<DropRule, number> {
    return new Map(this.counts);
  }

  private first(header: RmRpcHeader & { type: RmMessage['type'] }, payload: Uint8Array): ReassemblyEvent[] {
    const events: ReassemblyEvent[] = [];
    if (this.partial) {
      const old = this.partial.first;
      events.push(this.drop({ rule: 'partial_discarded', reason: `partial msg_id ${hex(old.msgId)} seq ${old.seq} discarded by a new ${header.type}`, header: old }));
      this.partial = undefined;
    }
    if (header.fragmentCount === 0) {
      events.push(message(header, [payload]));
    } else {
      this.partial = { first: header, chunks: [payload], remaining: header.fragmentCount };
    }
    return events;
  }

  /** A drop, the completed message, or undefined when the continuation was taken and more are due. */
  private continuation(header: RmRpcHeader, payload: Uint8Array): ReassemblyEvent | undefined {
    const p = this.partial;
    if (!p) return this.drop({ rule: 'continuation_without_partial', reason: `continuation of msg_id ${hex(header.msgId)} seq ${header.seq} with nothing pending`, header });
    if (header.msgId !== p.first.msgId || header.seq !== p.first.seq || header.fragmentCount !== p.first.fragmentCount) {
      return this.drop({
        rule: 'continuation_mismatch',
        reason: `continuation (msg_id ${hex(header.msgId)}, seq ${header.seq}, count ${header.fragmentCount}) does not match the partial (msg_id ${hex(p.first.msgId)}, seq ${p.first.seq}, count ${p.first.fragmentCount})`,
        header,
      });
    }
    p.chunks.push(payload);
    p.remaining -= 1;
    if (p.remaining > 0) return undefined;
    this.partial = undefined;
    return message(p.first, p.chunks);
  }

  private drop(d: Drop): ReassemblyEvent {
    this.counts.set(d.rule, (this.counts.get(d.rule) ?? 0) + 1);
    return { kind: 'drop', ...d };
  }
}

function message(header: RmRpcHeader & { type: RmMessage['type'] }, chunks: readonly Uint8Array[]): ReassemblyEvent {
  const payload = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    payload.set(c, at);
    at += c.length;
  }
  return { kind: 'message', message: { type: header.type, msgId: header.msgId, seq: header.seq, payload } };
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
