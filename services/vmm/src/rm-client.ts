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
 * HLOS's only subscriber. The RM keeps one notification queue per VM and hands each notification
 * to the first stream that drains it (services/rm notifier.ts). The VMM must therefore be the only
 * Exchange or Subscribe stream open as VMID 3: another HLOS subscriber (a grpcurl Subscribe, a
 * second VMM) would steal VM_STATUS notices and stall the VMM's waits (stop, reset) until waitMs.
 *
 * Failures are refusals, never throws: a broken stream, an RM that is down, or no reply before
 * the deadline refuses the call with RM error BUSY and rule `msgq_<why>` (@hypmesh/vmm's
 * MSGQ_FAILED_RULE_PREFIX), which the VM manager reports as EIO. A broken stream is reopened after a
 * back-off; notifications queued at the RM meanwhile are delivered when it reattaches. The RM's
 * reply carries only its error code, so a refusal's rule is `rm_reply` (the RM's own rule stays in
 * its logs), as Linux sees only the code.
 */

import * as grpc from '@grpc/grpc-js';
import { ExchangeRequest, RmServiceClient, type ExchangeResponse } from '@hypmesh/proto/rm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
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
  type RmMessage,
} from '@hypmesh/rm-wire';
import { MSGQ_FAILED_RULE_PREFIX, noticeOf, rmPortOver, type RmNotice, type RmPort } from '@hypmesh/vmm';
import { withPlantedBug } from './planted-bug.js';

/** Deadline of one RM call, from send to reply. */
export const RM_CALL_TIMEOUT_MS = 10_000;
/** Back-off before reopening a broken stream: doubles from min to max. */
export const RM_RECONNECT_MS_MIN = 100;
export const RM_RECONNECT_MS_MAX = 2_000;
/** The §1.2 seq field is 16 bits. */
const SEQ_LIMIT = 0x1_0000;

interface Pending {
  readonly name: CallName;
  readonly msgId: number;
  readonly resolve: (r: RmOutcome<unknown>) => void;
  readonly timer: NodeJS.Timeout;
}

const msgqFailed = (why: string, message: string): RmOutcome<never> => ({
  ok: false,
  error: { family: 'rm', rmError: 'BUSY', rule: `${MSGQ_FAILED_RULE_PREFIX}${why}`, message },
});

export interface GrpcRmPort extends RmPort {
  /** Whether the Exchange stream is open now. */
  connected(): boolean;
  /** Ends the stream; calls in flight and later calls are refused. */
  close(): void;
}

/** An RmPort talking to the RM at `address` (host:port) as HLOS. */
export function grpcRm(address: string, timeoutMs = RM_CALL_TIMEOUT_MS): GrpcRmPort {
  const client = new RmServiceClient(address, grpc.credentials.createInsecure());
  const listeners = new Set<(n: RmNotice) => void>();
  const pending = new Map<number, Pending>();
  let stream: grpc.ClientDuplexStream<ExchangeRequest, ExchangeResponse> | undefined;
  let reconnect: NodeJS.Timeout | undefined;
  let backoffMs = RM_RECONNECT_MS_MIN;
  let nextSeq = 1;
  let closed = false;

  function settle(seq: number, r: RmOutcome<unknown>): void {
    const p = pending.get(seq);
    if (p === undefined) return;
    pending.delete(seq);
    clearTimeout(p.timer);
    p.resolve(r);
  }

  function received(m: RmMessage): void {
    if (m.type === 'REPLY') {
      const p = pending.get(m.seq);
      if (p === undefined || p.msgId !== m.msgId) return; // late reply of a call that timed out
      const reply = decodeCallReply(p.name, m.payload);
      if (!reply.ok) return settle(m.seq, msgqFailed('reply_invalid', `${p.name} reply: ${reply.error.reason}`));
      if (reply.value.rmError === 'OK') return settle(m.seq, { ok: true, value: reply.value.value });
      const code = reply.value.rmError;
      if (code === undefined) return settle(m.seq, msgqFailed('reply_invalid', `${p.name} reply: unknown RM error 0x${reply.value.errorCode.toString(16)}`));
      const error: RmError = { family: 'rm', rmError: code, rule: 'rm_reply', message: `${p.name}: RM replied ${code} (0x${reply.value.errorCode.toString(16)})` };
      return settle(m.seq, { ok: false, error });
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
    const s = client.exchange(md);
    const rx = new Reassembler();
    stream = s;
    s.on('data', (res: ExchangeResponse) => {
      backoffMs = RM_RECONNECT_MS_MIN;
      for (const ev of rx.push(new Uint8Array(res.fragment.buffer, res.fragment.byteOffset, res.fragment.byteLength))) {
        if (ev.kind === 'message') received(ev.message);
      }
    });
    const broken = (why: string): void => {
      if (stream !== s) return;
      stream = undefined;
      for (const seq of [...pending.keys()]) settle(seq, msgqFailed('unavailable', `the RM stream ended (${why})`));
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
    new Promise((resolve) => {
      if (closed) return resolve(msgqFailed('closed', `${name}: the RM client is closed`));
      if (stream === undefined) return resolve(msgqFailed('unavailable', `${name}: no stream to the RM at ${address} (reconnecting)`));
      const seq = freeSeq();
      if (seq === undefined) return resolve(msgqFailed('busy', `${name}: ${SEQ_LIMIT} calls in flight`));
      const msgId = codecMessageId(name);
      const payload = (RM_CODECS[name].request as Codec<RequestOf<N>>).encode(request);
      const fragments = fragmentMessage({ type: 'REQUEST', msgId, seq, payload }, LINUX_RM_SEND_PAYLOAD_MAX);
      if (!fragments.ok) return resolve({ ok: false, error: { family: 'rm', rmError: 'MSG_INVALID', rule: fragments.error.rule, message: `${name}: ${fragments.error.reason}` } });
      const timer = setTimeout(() => settle(seq, msgqFailed('timeout', `${name}: no reply within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      pending.set(seq, { name, msgId, resolve: resolve as (r: RmOutcome<unknown>) => void, timer });
      for (const f of fragments.value) stream.write(ExchangeRequest.fromPartial({ fragment: Buffer.from(f.buffer, f.byteOffset, f.byteLength) }));
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
