/**
 * The RM's byte-exact face for one client VM: raw msgq fragments in, raw fragments out (gunyah-rm.md
 * §1.2–§1.4). Pure: the service pipes a gRPC stream through it; tests and the fuzzer drive it directly.
 *
 *   fragments ─Reassembler (§1.3 drop rules)─▶ request ─RM_CODECS decode─▶ rm.call ─encode─▶
 *   reply [err][data] ─fragmentMessage─▶ fragments (the request's msg id and seq echoed)
 *
 * A message that is not a REQUEST is dropped (the RM dispatches only requests, §1.3). A request the
 * RM has no codec or handler for is answered UNIMPLEMENTED (§1.5); a payload that fails to decode is
 * answered with the decoder's MSG_INVALID or NORESOURCE (§3.1) and changes nothing.
 *
 * The reply carries only the RM error code (§1.4), so every refusal is also reported with the rule
 * that fired (`onRefusal`), for the service's per-caller counters: the byte face says why.
 */
import {
  RM_CODECS,
  Reassembler,
  codecMessageId,
  codecsForId,
  encodeReply,
  fragmentMessage,
  type CallName,
  type Codec,
  type DropRule,
  type RmErrorName,
  type RmMessage,
} from '@hypmesh/rm-wire';
import { ResourceManager, type RmNotification } from './resource-manager.js';

/** One refused request: the RM error its reply carried and the rule that fired. */
export interface MsgqRefusal {
  readonly rmError: string;
  readonly rule: string;
  /** The refused message's name, when its id is one the RM knows. */
  readonly call?: string;
  /** The RM's reason (the msgq reply carries only the error code, §1.4: this is for the RM's log). */
  readonly message?: string;
}

export interface MsgqStats {
  readonly requests: number;
  readonly replies: number;
  readonly notifications: number;
  /** Fragments the reassembler dropped, by §1.3 rule. */
  readonly drops: ReadonlyMap<DropRule | 'not_a_request', number>;
}

/**
 * Runs one decoded-enough request's dispatch: the service's fault hook (CLIENT_TO_RM per msgq
 * message). It may call `dispatch` once, twice (a duplicate) or not at all, and answer its own
 * reply payload, or `undefined` for no reply (a lost or dropped message: the client times out).
 */
export type RequestHook = (request: { readonly name: string; readonly msgId: number; readonly seq: number; readonly caller: number }, dispatch: () => Promise<Uint8Array>) => Promise<Uint8Array | undefined>;

export class MsgqEndpoint {
  private readonly reassembler = new Reassembler();
  private requests = 0;
  private replies = 0;
  private notificationsSent = 0;
  private notRequest = 0;

  constructor(
    private readonly rm: ResourceManager,
    /** The client VM this queue pair belongs to (the RM learns it from the message queue). */
    readonly caller: number,
    /** Told of every dropped fragment or non-request message, as it happens (service counters). */
    private readonly onDrop: (rule: DropRule | 'not_a_request') => void = () => {},
    /** Told of every request answered with an RM error, with the rule that fired. */
    private readonly onRefusal: (r: MsgqRefusal) => void = () => {},
    /** Around every request's dispatch (default: dispatch it); see RequestHook. */
    private readonly onRequest?: RequestHook,
  ) {}

  /** Feeds one fragment; resolves with the reply fragments of every request it completed. */
  async receive(fragment: Uint8Array): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const ev of this.reassembler.push(fragment)) {
      if (ev.kind !== 'message') {
        this.onDrop(ev.rule);
        continue;
      }
      if (ev.message.type !== 'REQUEST') {
        this.notRequest++;
        this.onDrop('not_a_request');
        continue;
      }
      this.requests++;
      const m = ev.message;
      const payload = this.onRequest === undefined ? await this.dispatch(m) : await this.onRequest({ name: codecsForId(m.msgId)?.name ?? `0x${m.msgId.toString(16)}`, msgId: m.msgId, seq: m.seq, caller: this.caller }, () => this.dispatch(m));
      if (payload === undefined) continue;
      const frags = fragmentMessage({ type: 'REPLY', msgId: ev.message.msgId, seq: ev.message.seq, payload });
      if (!frags.ok) throw new Error(`bug: reply to 0x${ev.message.msgId.toString(16)} does not fit: ${frags.error.reason}`);
      this.replies++;
      out.push(...frags.value);
    }
    return out;
  }

  /**
   * Reply payload `[err][data]` for one reassembled request. Never rejects: a bug (a handler that
   * throws) is recorded in `rm.bugs` and answered NORESOURCE, so the client is not left waiting.
   */
  private async dispatch(m: RmMessage): Promise<Uint8Array> {
    const found = codecsForId(m.msgId);
    const refuse = (rmError: RmErrorName, rule: string, message?: string): Uint8Array => {
      this.onRefusal({ rmError, rule, ...(found !== undefined && { call: found.name }), ...(message !== undefined && { message }) });
      return encodeReply(rmError);
    };
    if (found === undefined || found.codecs.kind !== 'request' || !ResourceManager.handles(found.name)) return refuse('UNIMPLEMENTED', 'message_unhandled');
    const name = found.name as CallName;
    const codecs = RM_CODECS[name];
    const request = (codecs.request as Codec<unknown>).decode(m.payload);
    if (!request.ok) return refuse(request.error.rmError, request.error.rule, request.error.reason);
    try {
      const result = await this.rm.call(this.caller, name, request.value as never);
      if (!result.ok) return refuse(result.error.rmError, result.error.rule, result.error.message);
      return encodeReply('OK', (codecs.reply as Codec<unknown>).encode(result.value));
    } catch (e) {
      this.rm.bugs.push(e);
      return refuse('NORESOURCE', 'bug');
    }
  }

  /** Fragments for the caller's pending notifications, oldest first (drains its queue). */
  drainNotifications(): Uint8Array[] {
    return this.rm
      .queue(this.caller)
      .drain()
      .flatMap((n) => this.encodeNotification(n));
  }

  encodeNotification(n: RmNotification): Uint8Array[] {
    const codec = RM_CODECS[n.name].notification as Codec<unknown>;
    const frags = fragmentMessage({ type: 'NOTIFICATION', msgId: codecMessageId(n.name), seq: n.seq, payload: codec.encode(n.payload) });
    if (!frags.ok) throw new Error(`bug: ${n.name} does not fit: ${frags.error.reason}`);
    this.notificationsSent++;
    return frags.value;
  }

  stats(): MsgqStats {
    const drops = new Map<DropRule | 'not_a_request', number>(this.reassembler.dropCounts());
    if (this.notRequest > 0) drops.set('not_a_request', this.notRequest);
    return { requests: this.requests, replies: this.replies, notifications: this.notificationsSent, drops };
  }
}
