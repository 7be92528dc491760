/**
 * The byte-exact face (DESIGN.md §3, gunyah-rm.md §1): RmService.Exchange carries the client's pair
 * of message queues as one bidirectional stream of raw msgq messages.
 *
 * Each stream is one MsgqEndpoint (@hypmesh/rm), the RM's own byte face: reassembly with the §1.3
 * drop rules (counted per rule here: ByteFaceStats, GetStats and the `x-hypmesh-rm-drops`
 * trailer), decoding, the RM's dispatcher, and replies fragmented with the request's msg_id and
 * seq echoed. A request answered with an RM error is counted per caller VMID with the rule that
 * fired (GetStats caller_refusals, the `x-hypmesh-rm-refusals` trailer), since the byte reply carries
 * only the code. Fragments are handled strictly in arrival order, so replies come back in request
 * order; the real RM keeps one buffered reply per client, here the stream's flow control holds
 * them, so a client may pipeline. The caller's notifications go out as NOTIFICATION fragments.
 *
 * Nothing a client writes ends the stream with an error: bad bytes are drops or RM error replies.
 * Only a missing or bad caller VMID fails it (INVALID_ARGUMENT), before any byte is read.
 *
 * Faults (DESIGN.md §7): the server interceptor passes streams through, so CLIENT_TO_RM faults on
 * this face are decided here, per reassembled request (the point names the RM message, so one rule
 * on "MEM_APPEND" covers the typed MemAppend RPC and the byte message alike), applied with
 * @hypmesh/fault's applyAt. A msgq reply carries only an RM error code (§1.4), so `fail_before`
 * with an RM error is that reply; any other failure, and every lost reply (fail_after, crash that
 * returns), is no reply at all: the client's wait for that seq times out, as on a real queue.
 * RM_TO_CLIENT_FRAGMENT faults are decided per reply fragment (named by the msg_id in its header)
 * and stepped with fragmentStep, as the VMM's msgq client steps its own fragments; a fragment held
 * for reorder goes out after the next one of the same reply batch, at the latest at its end.
 */

import { Metadata, type ServerDuplexStream } from '@grpc/grpc-js';
import { UnreachedKind, type DependencyUnreached, type ExchangeRequest, type ExchangeResponse, type GetStatsResponse } from '@hypmesh/proto/rm';
import { fromThrown, inDependencyScope, OUTCOME_UNKNOWN_RULE, principalOf, type BugLog, type Principal, type Unreached } from '@hypmesh/rpc';
import { withRemoteParent } from '@hypmesh/rpc';
import { MsgqEndpoint, type MsgqRefusal, type RequestHook, type ResourceManager } from '@hypmesh/rm';
import { FragmentReorder, applyAt, fragmentStep, type FaultEngine, type FaultEvent } from '@hypmesh/fault';
import { decodeHeader, decodeReply, encodeReply, messageName } from '@hypmesh/rm-wire';
import { madeByReply, type RmAdmission } from './admission.js';
import type { Notifier } from './notifier.js';

/** Trailer naming a finished Exchange stream's drops: `rule=count,rule=count` (empty when none). */
export const DROPS_TRAILER_KEY = 'x-hypmesh-rm-drops';

/** Trailer naming a finished Exchange stream's refusals: `ERROR:rule=count,…` (empty when none). */
export const REFUSALS_TRAILER_KEY = 'x-hypmesh-rm-refusals';

const bump = (m: Map<string, number>, key: string): void => {
  m.set(key, (m.get(key) ?? 0) + 1);
};
const perCaller = (m: Map<number, Map<string, number>>, vmid: number): Map<string, number> => {
  let c = m.get(vmid);
  if (c === undefined) m.set(vmid, (c = new Map()));
  return c;
};

/** Counters of the byte face over every Exchange stream since the service started, and per caller VMID. */
export class ByteFaceStats {
  fragmentsReceived = 0;
  requestsDispatched = 0;
  fragmentsSent = 0;
  readonly drops = new Map<string, number>();
  /** Replies sent, by `msgId:NAME:RM_ERROR` (the error word of gunyah-rm.md §1.4; OK included). */
  readonly answers = new Map<string, number>();
  private readonly callerDrops = new Map<number, Map<string, number>>();
  /** Per caller: `ERROR:rule` → count. */
  private readonly callerRefusals = new Map<number, Map<string, number>>();

  drop(rule: string, caller?: number): void {
    bump(this.drops, rule);
    if (caller !== undefined) bump(perCaller(this.callerDrops, caller), rule);
  }

  /** A reply to message `msgId` went out with `payload` (its head is the §1.4 error word). */
  answered(msgId: number, name: string, payload: Uint8Array): void {
    const reply = decodeReply(payload);
    const error = reply.ok ? (reply.value.rmError ?? `0x${reply.value.errorCode.toString(16)}`) : 'MSG_INVALID';
    bump(this.answers, `${msgId}:${name}:${error}`);
  }

  /** Replies by message and RM error, for the metrics (rm_msgq_replies). */
  answerCounts(): { msgId: number; message: string; rmError: string; count: number }[] {
    return [...this.answers].map(([k, count]) => {
      const [id, message, rmError] = k.split(':') as [string, string, string];
      return { msgId: Number(id), message, rmError, count };
    });
  }

  refusal(caller: number, r: MsgqRefusal): void {
    bump(perCaller(this.callerRefusals, caller), `${r.rmError}:${r.rule}`);
  }

  /** The caller's own drops and refusals (GetStats caller_drops / caller_refusals). */
  forCaller(vmid: number): Pick<GetStatsResponse, 'callerDrops' | 'callerRefusals'> {
    const drops = [...(this.callerDrops.get(vmid) ?? [])].sort(([a], [b]) => a.localeCompare(b));
    const refusals = [...(this.callerRefusals.get(vmid) ?? [])].map(([k, count]) => {
      const at = k.indexOf(':');
      return { rmError: k.slice(0, at), rule: k.slice(at + 1), count: BigInt(count) };
    });
    refusals.sort((a, b) => a.rule.localeCompare(b.rule) || a.rmError.localeCompare(b.rmError));
    return { callerDrops: drops.map(([rule, count]) => ({ rule, count: BigInt(count) })), callerRefusals: refusals };
  }

  snapshot(): Pick<GetStatsResponse, 'fragmentsReceived' | 'requestsDispatched' | 'fragmentsSent' | 'drops'> {
    return {
      fragmentsReceived: BigInt(this.fragmentsReceived),
      requestsDispatched: BigInt(this.requestsDispatched),
      fragmentsSent: BigInt(this.fragmentsSent),
      drops: [...this.drops].sort(([a], [b]) => a.localeCompare(b)).map(([rule, count]) => ({ rule, count: BigInt(count) })),
    };
  }
}

/**
 * How loud a refusal is logged: a refusal answers the caller and is its business (debug, and a
 * client retrying a refused call makes many); a core call whose outcome stayed unknown means the
 * core is failing and the call is settled later in the background (warn).
 */
const refusalLevel = (rule: string): 'warn' | 'debug' => (rule === `core_${OUTCOME_UNKNOWN_RULE}` ? 'warn' : 'debug');

export interface ByteFace {
  readonly rm: ResourceManager;
  /** Quotas of both faces (admission.ts). */
  readonly admission: RmAdmission;
  readonly notifier: Notifier;
  readonly stats: ByteFaceStats;
  readonly log: BugLog;
  /** Streams still open, so shutdown can end them. */
  readonly open: Set<{ end(): void }>;
  /** The process's fault engine, at CLIENT_TO_RM per msgq request. */
  readonly faults?: ByteFaceFaults;
}

export interface ByteFaceFaults {
  readonly engine: FaultEngine;
  /** Exit the process (default `process.exit(137)`, as kill -9 reports). */
  readonly crash?: (event: FaultEvent) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The reply side of one Exchange stream under RM_TO_CLIENT_FRAGMENT faults (module header). */
function replyFragmentFaults(faults: ByteFaceFaults, caller: number, write: (fragments: readonly Uint8Array[]) => void): (fragments: readonly Uint8Array[]) => Promise<void> {
  const crash = faults.crash ?? (() => process.exit(137));
  const reorder = new FragmentReorder<Uint8Array>();
  return async (fragments) => {
    for (const fragment of fragments) {
      const header = decodeHeader(fragment);
      const rmMessage = header.ok ? messageName(header.value.msgId) : undefined;
      const decision = faults.engine.decide({ boundary: 'RM_TO_CLIENT_FRAGMENT', ...(rmMessage === undefined ? {} : { rmMessage }), callerVmid: caller });
      const step = fragmentStep(decision, fragment, reorder);
      if (step.holdMs > 0) await sleep(step.holdMs);
      write(step.send);
      if (step.crash !== undefined) crash(step.crash);
    }
    write(reorder.flush());
  };
}

/** The fault hook of one Exchange stream (module header). */
export function byteFaceFaultHook(faults: ByteFaceFaults): RequestHook {
  const crash = faults.crash ?? (() => process.exit(137));
  return ({ name, caller }, dispatch) =>
    applyAt<Uint8Array | undefined>(
      faults.engine.decide({ boundary: 'CLIENT_TO_RM', rmMessage: name, callerVmid: caller }),
      dispatch,
      {
        refused: (failure) => (failure.kind === 'domain' && failure.error.family === 'rm' ? encodeReply(failure.error.rmError) : undefined),
        lost: () => undefined,
      },
      // Requests on one stream are handled in order, so a pause here stops this queue pair's service.
      { sleep, crash },
    );
}

type Exchange = ServerDuplexStream<ExchangeRequest, ExchangeResponse>;

const UNREACHED_KINDS = {
  UNAVAILABLE: UnreachedKind.UNREACHED_KIND_UNAVAILABLE,
  DEADLINE_EXCEEDED: UnreachedKind.UNREACHED_KIND_DEADLINE_EXCEEDED,
} as const satisfies Record<Unreached, UnreachedKind>;

/** The outage of the reply `fragment` opens (its first fragment), taken off the map; else undefined. */
function outageOf(fragment: Uint8Array, outages: Map<number, DependencyUnreached>): DependencyUnreached | undefined {
  const h = decodeHeader(fragment);
  if (!h.ok || h.value.type !== 'REPLY') return undefined;
  const outage = outages.get(h.value.seq);
  outages.delete(h.value.seq);
  return outage;
}

export function exchangeHandler(face: ByteFace): (call: Exchange) => void {
  return (call) => {
    let who: Principal;
    let release: () => void;
    try {
      who = principalOf(call);
      const admitted = face.admission.openStream(who);
      if (!admitted.ok) throw admitted.status;
      release = admitted.release;
    } catch (e) {
      call.emit('error', fromThrown(e, face.log, 'Exchange'));
      return;
    }
    // Headers at once: the client then knows the stream reached the RM, so a request it sent on a
    // stream that ends without them cannot have been dispatched (the VMM's rm-client: not sent).
    call.sendMetadata(new Metadata());
    const caller = who.vmid;
    let released = false;
    const releaseOnce = (): void => {
      if (!released) release();
      released = true;
    };
    const streamDrops = new Map<string, number>();
    const streamRefusals = new Map<string, number>();
    // Requests whose dispatch could not reach the core, by seq: their reply's first fragment says so.
    const outages = new Map<number, DependencyUnreached>();
    const faultHook = face.faults === undefined ? undefined : byteFaceFaultHook(face.faults);
    // The trace context that came beside the latest first fragment (msgq.proto ExchangeRequest.traceparent),
    // taken by the request it starts: fragments are handled in order, so that is the next one dispatched.
    let traceparent = '';
    /** One reassembled request: quotas, then faults, in the dependency scope (so an unreached core is noted). */
    const handleRequest: RequestHook = async (request, dispatch) => {
      // Quotas first (admission.ts): a refused request answers the RM's own error for an empty pool.
      const admitted = async (): Promise<Uint8Array> => {
        const r = await face.admission.around(who, request.name, dispatch, (payload) => madeByReply(request.name, payload));
        if (r.ok) return r.value;
        const refusal = { rmError: r.refusal.rmError, rule: r.refusal.rule };
        face.stats.refusal(caller, refusal);
        bump(streamRefusals, `${refusal.rmError}:${refusal.rule}`);
        return encodeReply(refusal.rmError);
      };
      const { result, failure } = inDependencyScope(() => (faultHook === undefined ? admitted() : faultHook(request, admitted)));
      const payload = await result;
      if (payload !== undefined) face.stats.answered(request.msgId, request.name, payload);
      const f = failure();
      // No payload: no reply goes out (a lost or dropped message), so nothing to annotate.
      if (f !== undefined && payload !== undefined) outages.set(request.seq, { seq: request.seq, dependency: f.dependency, kind: UNREACHED_KINDS[f.unreached], message: f.message });
      return payload;
    };
    const endpoint = new MsgqEndpoint(
      face.rm,
      caller,
      (rule) => {
        face.stats.drop(rule, caller);
        bump(streamDrops, rule);
      },
      (r) => {
        face.stats.refusal(caller, r);
        face.log[refusalLevel(r.rule)]?.({ caller, call: r.call, rmError: r.rmError, rule: r.rule, reason: r.message }, 'msgq request refused');
        bump(streamRefusals, `${r.rmError}:${r.rule}`);
      },
      (request, dispatch) => {
        const parent = traceparent;
        traceparent = '';
        // The RM's span for this message, child of the sender's (README "Tracing"); its core calls are its children.
        return withRemoteParent(parent, `rm.msgq ${request.name}`, { 'rpc.system': 'hypmesh.msgq', 'hypmesh.rm.message': request.name, 'hypmesh.caller_vmid': caller }, () => handleRequest(request, dispatch));
      },
    );
    let closed = false;
    let replies: Promise<void> = Promise.resolve();

    /** Writes the fragments; false when the stream's buffer is full (notifications wait in the queue). */
    const write = (fragments: readonly Uint8Array[]): boolean => {
      if (closed) return true;
      let room = true;
      for (const f of fragments) {
        const outage = outages.size === 0 ? undefined : outageOf(f, outages);
        room = call.write({ fragment: Buffer.from(f.buffer, f.byteOffset, f.byteLength), ...(outage && { dependencyUnreached: outage }) });
        face.stats.fragmentsSent++;
      }
      return room;
    };

    const sendReplies = face.faults === undefined ? async (fragments: readonly Uint8Array[]): Promise<void> => void write(fragments) : replyFragmentFaults(face.faults, caller, write);

    const notify = face.notifier.attach(caller, (n) => {
      try {
        return write(endpoint.encodeNotification(n));
      } catch (e) {
        face.log.error({ err: e, name: n.name }, 'bug: notification payload did not encode');
        return true;
      }
    });
    call.on('drain', () => notify.resume());

    const handle = { end: () => finish() };
    face.open.add(handle);

    function finish(): void {
      if (closed) return;
      closed = true;
      notify.stop();
      face.open.delete(handle);
      releaseOnce();
      const trailers = new Metadata();
      trailers.set(DROPS_TRAILER_KEY, [...streamDrops].map(([rule, n]) => `${rule}=${n}`).join(','));
      trailers.set(REFUSALS_TRAILER_KEY, [...streamRefusals].map(([key, n]) => `${key}=${n}`).join(','));
      call.end(trailers);
    }

    const stop = (): void => {
      closed = true;
      notify.stop();
      face.open.delete(handle);
      releaseOnce();
    };

    call.on('data', (req: ExchangeRequest) => {
      face.stats.fragmentsReceived++;
      const bytes = req.fragment instanceof Uint8Array ? req.fragment : new Uint8Array(0);
      const carried = req.traceparent ?? '';
      // Counted around this fragment's own turn on the chain: a count taken when the fragment
      // arrived would include every pipelined request still queued before it.
      replies = replies
        .then(async () => {
          if (carried !== '') traceparent = carried;
          const before = endpoint.stats().requests;
          const fragments = await endpoint.receive(bytes);
          face.stats.requestsDispatched += endpoint.stats().requests - before;
          return sendReplies(fragments);
        })
        .catch((e: unknown) => face.log.error({ err: e }, 'bug: byte-face reply failed'));
    });
    // The client half-closed: answer what is in flight, then end with the drop trailer.
    call.on('end', () => void replies.then(finish));
    call.on('cancelled', stop);
    call.on('error', stop);
  };
}
