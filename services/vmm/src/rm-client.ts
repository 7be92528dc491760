/**
 * The VMM's RmPort over the RM's gRPC byte face: HLOS's pair of message queues (gunyah-rm.md §1.1)
 * as one RmService.Exchange stream, made as caller VMID 3 (`x-hypmesh-caller-vmid: 3`), exactly as
 * Linux's rsc_mgr driver owns the host's msgq pair.
 *
 * Why the byte face and not the typed RPCs: `rmPortOver` takes one generic call (message name and
 * wire payload), which is what a msgq carries; the RM's own codecs (@hypmesh/rm-wire) encode each
 * request and decode each reply, so no per-call proto mapping exists on this side. Notifications
 * (VM_STATUS, VM_EXITED) arrive on the same stream, interleaved with replies, as on the real RX
 * queue. Requests carry a 16-bit seq; replies are matched by it (the RM echoes msg_id and seq),
 * so calls may be in flight together.
 *
 * HLOS's subscriber. The RM keeps one notification queue per VM, drained by the oldest stream for
 * that VM with room; later ones get copies (services/rm notifier.ts), so another HLOS subscriber
 * (a grpcurl Subscribe, a second VMM) no longer steals the VM_STATUS notices the VMM waits for.
 *
 * Failures are refusals, never throws: a broken stream, an RM that is down, or no reply before
 * the deadline refuses the call with RM error BUSY and rule `msgq_<why>` (@hypmesh/vmm's
 * MSGQ_FAILED_RULE_PREFIX), which the VM manager reports as EIO. A broken stream is reopened after a
 * back-off; notifications queued at the RM meanwhile are delivered when it reattaches. The RM's
 * reply carries only its error code, so a refusal's rule is `rm_reply` (the RM's own rule stays in
 * its logs), as Linux sees only the code.
 *
 * Faults (DESIGN.md §7), with a fault engine: every call is a point at VMM_TO_RM (the RM message
 * name and the typed RPC's name, caller HLOS) and every fragment a point at VMM_TO_RM_FRAGMENT.
 * A msgq is one FIFO queue, so holding a message or fragment holds every one behind it.
 *   delay, pause  the queue holds delayMs / durationMs before the message's first fragment
 *   fail_before   nothing is sent; an RM error is answered exactly as a real RM reply with that code
 *                 is read (rule rm_reply); a gRPC status as the stream failing would be (BUSY, rule
 *                 msgq_unavailable, msgq_timeout for DEADLINE_EXCEEDED, else msgq_<code>)
 *   fail_after    sent and answered by the RM (the effect happened); the reply is discarded and the
 *                 call fails as if the stream broke (UNAVAILABLE) or it timed out (DEADLINE_EXCEEDED)
 *   duplicate     the fragments are sent twice with the same seq; the caller gets the first reply
 *                 once the second has arrived (the RM applied both)
 *   drop          nothing is sent; the call times out after the client's deadline (--rm-timeout-ms)
 *   crash         the process exits before sending, or after the reply arrives and before the caller
 *                 sees it (the crash port; if it returns, tests, the call fails as unavailable)
 * Fragments go through @hypmesh/fault's fragmentStep (delay, pause, duplicate, drop, corrupt,
 * reorder, crash); a reordered fragment is held until the next one goes or the queue is idle.
 */

import * as grpc from '@grpc/grpc-js';
import { ExchangeRequest, RmServiceClient, UnreachedKind, type DependencyUnreached, type ExchangeResponse } from '@hypmesh/proto/rm';
import { FragmentReorder, NO_FAULT, faultMessage, fragmentStep, rmMessageMethod, type FaultEngine, type FaultEvent, type FragmentStep } from '@hypmesh/fault';
import { CALLER_VMID_KEY, CLIENT_KEY, DEPENDENCY_TIMEOUT_MS, dependencyNoter, SERVICE_CLIENT_OPTIONS, type Unreached } from '@hypmesh/rpc';
import { carrierSpan } from '@hypmesh/rpc';
import { VMID_HLOS, type RmError, type RmOutcome } from '@hypmesh/rm';
import {
  LINUX_RM_SEND_PAYLOAD_MAX,
  RM_CODECS,
  Reassembler,
  codecMessageId,
  codecsForId,
  decodeCallReply,
  fragmentMessage,
  type CallName,
  type Codec,
  type ReplyOf,
  type RequestOf,
  type RmErrorName,
  type RmMessage,
  rmErrorCode,
} from '@hypmesh/rm-wire';
import { MSGQ_FAILED_RULE_PREFIX, noticeOf, rmPortOver, type RmNotice, type RmPort } from '@hypmesh/vmm';
import { withPlantedBug } from './planted-bug.js';

/** Deadline of one RM call, from send to reply (--rm-timeout-ms). */
export const RM_CALL_TIMEOUT_MS = DEPENDENCY_TIMEOUT_MS.rm;
/** Back-off before reopening a broken stream: doubles from min to max. */
export const RM_RECONNECT_MS_MIN = 100;
export const RM_RECONNECT_MS_MAX = 2_000;
/** The §1.2 seq field is 16 bits. */
const SEQ_LIMIT = 0x1_0000;

interface Pending {
  readonly name: CallName;
  readonly msgId: number;
  readonly resolve: (r: RmOutcome<unknown>) => void;
  /** Notes, in the calling request's scope, that a dependency was not reached (the RM's core, from the reply's annotation). */
  readonly unreached: (u: Unreached, message: string) => void;
  readonly timer: NodeJS.Timeout;
  /** Replies still to come for this seq (2 for a duplicated request). */
  repliesLeft: number;
  /** The first reply, what the caller gets. */
  first?: RmOutcome<unknown>;
  /** What the caller gets instead, once every reply is in (a lost reply; a crash). */
  readonly replace?: () => RmOutcome<unknown>;
}

/** An RM error reply, read as the VM manager reads every one (rule rm_reply: the wire carries only the code). */
const rmReplied = (name: string, code: Exclude<RmErrorName, 'OK'>, errorCode: number): RmOutcome<never> => ({
  ok: false,
  error: { family: 'rm', rmError: code, rule: 'rm_reply', message: `${name}: RM replied ${code} (0x${errorCode.toString(16)})` } satisfies RmError,
});

const msgqFailed = (why: string, message: string): RmOutcome<never> => ({
  ok: false,
  error: { family: 'rm', rmError: 'BUSY', rule: `${MSGQ_FAILED_RULE_PREFIX}${why}`, message },
});

/** How a gRPC status refusing a message looks to the VM manager (module header). */
const statusRule = (code: string): string => (code === 'UNAVAILABLE' ? 'unavailable' : code === 'DEADLINE_EXCEEDED' ? 'timeout' : code.toLowerCase());

/** The msgq failures that mean the RM was not reached, as @hypmesh/rpc's dependency scope notes them. */
const UNREACHED_RULES: Readonly<Record<string, Unreached>> = {
  [`${MSGQ_FAILED_RULE_PREFIX}unavailable`]: 'UNAVAILABLE',
  [`${MSGQ_FAILED_RULE_PREFIX}not_sent`]: 'UNAVAILABLE',
  [`${MSGQ_FAILED_RULE_PREFIX}closed`]: 'UNAVAILABLE',
  [`${MSGQ_FAILED_RULE_PREFIX}timeout`]: 'DEADLINE_EXCEEDED',
};

/** The RM's annotation of a reply, as the dependency scope notes it (the RM's one dependency is the core). */
const UNREACHED_OF_KIND: Readonly<Partial<Record<UnreachedKind, Unreached>>> = {
  [UnreachedKind.UNREACHED_KIND_UNAVAILABLE]: 'UNAVAILABLE',
  [UnreachedKind.UNREACHED_KIND_DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
};

export interface RmClientFaultPorts {
  /** Exit the process (default `process.exit(137)`, as kill -9 reports). */
  readonly crash?: (event: FaultEvent) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface GrpcRmPort extends RmPort {
  /** Whether the Exchange stream is open now. */
  connected(): boolean;
  /** Ends the stream; calls in flight and later calls are refused. */
  close(): void;
}

/** An RmPort talking to the RM at `address` (host:port) as HLOS. */
export function grpcRm(address: string, timeoutMs = RM_CALL_TIMEOUT_MS, faults?: FaultEngine, faultPorts: RmClientFaultPorts = {}, credentials = grpc.credentials.createInsecure()): GrpcRmPort {
  const crash = faultPorts.crash ?? (() => process.exit(137));
  const client = new RmServiceClient(address, credentials, SERVICE_CLIENT_OPTIONS);
  const listeners = new Set<(n: RmNotice) => void>();
  const pending = new Map<number, Pending>();
  let stream: grpc.ClientDuplexStream<ExchangeRequest, ExchangeResponse> | undefined;
  let reconnect: NodeJS.Timeout | undefined;
  let backoffMs = RM_RECONNECT_MS_MIN;
  let nextSeq = 1;
  let closed = false;
  /** Streams that reached the RM (a LINK up is sent from the second on). */
  let opened = 0;

  function settle(seq: number, r: RmOutcome<unknown>): void {
    const p = pending.get(seq);
    if (p === undefined) return;
    pending.delete(seq);
    clearTimeout(p.timer);
    p.resolve(r);
  }

  /** A reply for `seq` arrived: settle once the last expected one is in (duplicates), with the first. */
  function replied(seq: number, r: RmOutcome<unknown>): void {
    const p = pending.get(seq);
    if (p === undefined) return;
    p.first ??= r;
    if (--p.repliesLeft > 0) return;
    settle(seq, p.replace === undefined ? p.first : p.replace());
  }

  // The TX queue. Writes go out at once unless a fault holds the queue; then everything after the
  // hold waits behind it, in order (a msgq is FIFO).
  const reorder = new FragmentReorder<Uint8Array>();
  let holding = 0;
  let queue: Promise<void> = Promise.resolve();
  /** Bumped per fragment pushed, so an idle flush knows nothing came after it. */
  let pushed = 0;
  /** A message's first fragment → its trace context, written beside it (msgq.proto ExchangeRequest.traceparent). */
  const traceparents = new WeakMap<Uint8Array, string>();
  const writeNow = (fragments: readonly Uint8Array[]): void => {
    for (const f of fragments) {
      const traceparent = traceparents.get(f);
      stream?.write(ExchangeRequest.fromPartial({ fragment: Buffer.from(f.buffer, f.byteOffset, f.byteLength), ...(traceparent !== undefined && { traceparent }) }));
    }
  };
  function writeStep(step: FragmentStep): void {
    if (holding === 0 && step.holdMs === 0) {
      writeNow(step.send);
      if (step.crash !== undefined) crash(step.crash);
      return;
    }
    holding++;
    queue = queue
      .then(async () => {
        if (step.holdMs > 0) await sleep(step.holdMs);
        writeNow(step.send);
        if (step.crash !== undefined) crash(step.crash);
      })
      .finally(() => void holding--);
  }
  /** A message's fragments onto the queue, each through the engine at VMM_TO_RM_FRAGMENT. */
  function sendFragments(name: CallName, fragments: readonly Uint8Array[], traceparent: string): void {
    if (traceparent !== '' && fragments[0] !== undefined) traceparents.set(fragments[0], traceparent);
    for (const f of fragments) {
      pushed++;
      const decision = faults === undefined ? NO_FAULT : faults.decide({ boundary: 'VMM_TO_RM_FRAGMENT', rmMessage: name, callerVmid: VMID_HLOS });
      writeStep(fragmentStep(decision, f, reorder));
    }
    // A fragment held for reordering goes when the queue is idle (nothing pushed since) at the latest.
    const mark = pushed;
    setImmediate(() => {
      if (pushed === mark) {
        const held = reorder.flush();
        if (held.length > 0) writeStep({ send: held, holdMs: 0 });
      }
    });
  }

  /** Replies the RM sent while it could not reach the core, by seq (ExchangeResponse.dependency_unreached). */
  const outages = new Map<number, DependencyUnreached>();

  function received(m: RmMessage): void {
    if (m.type === 'REPLY') {
      const p = pending.get(m.seq);
      const outage = outages.get(m.seq);
      outages.delete(m.seq);
      if (p === undefined || p.msgId !== m.msgId) return; // late reply of a call that timed out
      const kind = outage === undefined ? undefined : UNREACHED_OF_KIND[outage.kind];
      if (kind !== undefined) p.unreached(kind, `via the RM at ${address}: ${outage!.message}`);
      const reply = decodeCallReply(p.name, m.payload);
      if (!reply.ok) return replied(m.seq, msgqFailed('reply_invalid', `${p.name} reply: ${reply.error.reason}`));
      if (reply.value.rmError === 'OK') return replied(m.seq, { ok: true, value: reply.value.value });
      const code = reply.value.rmError;
      if (code === undefined) return replied(m.seq, msgqFailed('reply_invalid', `${p.name} reply: unknown RM error 0x${reply.value.errorCode.toString(16)}`));
      return replied(m.seq, rmReplied(p.name, code, reply.value.errorCode));
    }
    if (m.type === 'NOTIFICATION') {
      const c = codecsForId(m.msgId);
      if (c === undefined || c.codecs.kind !== 'notification') return;
      const payload = (c.codecs.notification as Codec<unknown>).decode(m.payload);
      if (!payload.ok) return;
      const notice = noticeOf(c.name, payload.value);
      if (notice !== undefined) for (const l of [...listeners]) l(notice);
    }
  }

  function open(): void {
    reconnect = undefined;
    if (closed) return;
    const md = new grpc.Metadata();
    md.set(CALLER_VMID_KEY, String(VMID_HLOS));
    // The RM's quotas count the VMM as client `vmm` (services/rm/src/admission.ts overrides).
    md.set(CLIENT_KEY, 'vmm');
    const s = client.exchange(md);
    const rx = new Reassembler();
    stream = s;
    // The RM sends its headers as its Exchange handler starts (services/rm byte-face.ts): until they
    // arrive nothing written here reached it, so a stream that breaks before them failed its calls
    // unsent (no outcome in doubt: the RM down answers at once, not after a settling query).
    let reached = false;
    s.on('metadata', () => {
      reached = true;
      // A stream reopened after a break: notices sent meanwhile may be lost; the VM manager re-reads (LINK).
      if (opened++ > 0) for (const l of [...listeners]) l({ kind: 'LINK', up: true });
    });
    s.on('data', (res: ExchangeResponse) => {
      reached = true;
      backoffMs = RM_RECONNECT_MS_MIN;
      if (res.dependencyUnreached !== undefined) outages.set(res.dependencyUnreached.seq, res.dependencyUnreached);
      for (const ev of rx.push(new Uint8Array(res.fragment.buffer, res.fragment.byteOffset, res.fragment.byteLength))) {
        if (ev.kind === 'message') received(ev.message);
      }
    });
    const broken = (why: string): void => {
      if (stream !== s) return;
      stream = undefined;
      if (reached) for (const l of [...listeners]) l({ kind: 'LINK', up: false });
      for (const seq of [...pending.keys()]) settle(seq, msgqFailed(reached ? 'unavailable' : 'not_sent', `the RM stream ended (${why})`));
      if (!closed) {
        reconnect = setTimeout(open, backoffMs);
        reconnect.unref();
        backoffMs = Math.min(backoffMs * 2, RM_RECONNECT_MS_MAX);
      }
    };
    s.on('error', (e: grpc.ServiceError) => broken(`${grpc.status[e.code] ?? e.code}: ${e.details}`));
    s.on('end', () => broken('ended by the RM'));
  }

  function freeSeq(): number | undefined {
    for (let i = 0; i < SEQ_LIMIT; i++) {
      const seq = nextSeq;
      nextSeq = (nextSeq + 1) % SEQ_LIMIT;
      if (!pending.has(seq)) return seq;
    }
    return undefined;
  }

  const call = <N extends CallName>(name: N, request: RequestOf<N>): Promise<RmOutcome<ReplyOf<N>>> =>
    new Promise((settled) => {
      const rmUnreached = dependencyNoter('rm');
      const coreUnreached = dependencyNoter('core');
      // One span per RM message, child of the caller's (README "Tracing"); the RM's span for it is its child.
      const span = carrierSpan(`rm.msgq ${name}`, { 'rpc.system': 'hypmesh.msgq', 'hypmesh.rm.message': name });
      const resolve = (r: RmOutcome<ReplyOf<N>>): void => {
        span.end(r.ok ? undefined : `${r.error.rmError} (${r.error.rule}): ${r.error.message}`);
        const u = r.ok ? undefined : UNREACHED_RULES[r.error.rule];
        if (u !== undefined && !r.ok) rmUnreached(u, `${address}: ${r.error.message}`);
        settled(r);
      };
      // Decide first, even when the call is then refused for want of a stream: every call gets its op index.
      const decision = faults === undefined ? NO_FAULT : faults.decide({ boundary: 'VMM_TO_RM', method: rmMessageMethod(name), rmMessage: name, callerVmid: VMID_HLOS });
      const event = decision.fault ? decision.event : undefined;
      const a = event?.action;
      if (event !== undefined && a?.kind === 'fail_before') {
        const f = a.failure;
        if (f.kind === 'domain' && f.error.family === 'rm') return resolve(rmReplied(name, f.error.rmError, rmErrorCode(f.error.rmError)) as RmOutcome<never>);
        const code = f.kind === 'grpc' ? f.code : 'UNAVAILABLE';
        return resolve(msgqFailed(statusRule(code), f.kind === 'grpc' && f.message !== undefined ? f.message : faultMessage(event, `${name} refused`)));
      }
      if (event !== undefined && a?.kind === 'crash' && a.point === 'BEFORE_COMMIT') {
        crash(event);
        return resolve(msgqFailed('not_sent', faultMessage(event, `crashed before sending ${name}`)));
      }
      if (closed) return resolve(msgqFailed('closed', `${name}: the RM client is closed`));
      if (stream === undefined) return resolve(msgqFailed('not_sent', `${name}: no stream to the RM at ${address} (reconnecting)`));
      const seq = freeSeq();
      if (seq === undefined) return resolve(msgqFailed('busy', `${name}: ${SEQ_LIMIT} calls in flight`));
      const msgId = codecMessageId(name);
      const payload = (RM_CODECS[name].request as Codec<RequestOf<N>>).encode(request);
      const fragments = fragmentMessage({ type: 'REQUEST', msgId, seq, payload }, LINUX_RM_SEND_PAYLOAD_MAX);
      if (!fragments.ok) return resolve({ ok: false, error: { family: 'rm', rmError: 'MSG_INVALID', rule: fragments.error.rule, message: `${name}: ${fragments.error.reason}` } });
      const timer = setTimeout(() => {
        const p = pending.get(seq);
        settle(seq, p?.first ?? msgqFailed('timeout', `${name}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      const replace =
        event === undefined
          ? undefined
          : a?.kind === 'fail_after'
            ? () => msgqFailed(statusRule(a.code), a.message ?? faultMessage(event, `${name} reply lost`))
            : a?.kind === 'crash'
              ? () => {
                  crash(event);
                  return msgqFailed('unavailable', faultMessage(event, `crashed after ${name} was applied`));
                }
              : undefined;
      pending.set(seq, { name, msgId, resolve: resolve as (r: RmOutcome<unknown>) => void, unreached: coreUnreached, timer, repliesLeft: a?.kind === 'duplicate' ? 2 : 1, ...(replace && { replace }) });
      if (a?.kind === 'drop') return; // never sent: the timer answers
      if (a?.kind === 'delay' || a?.kind === 'pause') writeStep({ send: [], holdMs: a.kind === 'delay' ? a.delayMs : a.durationMs });
      sendFragments(name, fragments.value, span.traceparent);
      if (a?.kind === 'duplicate') sendFragments(name, fragments.value, span.traceparent);
    });

  open();
  const port = rmPortOver(call, (l) => {
    listeners.add(l);
    return () => listeners.delete(l);
  });
  return withPlantedBug({
    ...port,
    connected: () => stream !== undefined,
    close: () => {
      closed = true;
      if (reconnect !== undefined) clearTimeout(reconnect);
      const s = stream;
      stream = undefined;
      for (const seq of [...pending.keys()]) settle(seq, msgqFailed('closed', 'the RM client closed'));
      s?.cancel();
      client.close();
    },
  });
}
