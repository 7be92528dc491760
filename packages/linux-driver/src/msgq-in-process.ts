/**
 * A MsgqTransport against @hypmesh/rm's MsgqEndpoint in the same process, with the fault engine at
 * the byte face's two boundaries, applied as the RM service applies them (DESIGN.md §7):
 *
 *   BOUNDARY_CLIENT_TO_RM           per whole request message (decided once its last fragment is in)
 *     fail_before  not delivered; an RM domain error is answered as the RM would, `[err]` with the
 *                  request's msg id and seq; a gRPC status gets no reply (the byte face has none)
 *     fail_after   delivered and applied; the reply is lost
 *     duplicate    delivered twice; the first reply is sent
 *     crash BEFORE_COMMIT   not delivered, no reply;  crash AFTER_COMMIT   applied, no reply
 *     (drop is not armed here: the validator keeps it to one-way boundaries)
 *     delay, pause delivered after the delay
 *   BOUNDARY_RM_TO_CLIENT_FRAGMENT  per reply fragment
 *     truncate, corrupt, drop, reorder, delay, pause: fragmentStep, as the RM service steps them
 *
 * Requests are delivered in order (one promise chain), as one queue pair is.
 */
import { FragmentReorder, fragmentStep, type FaultEngine } from '@hypmesh/fault';
import type { MsgqEndpoint } from '@hypmesh/rm';
import { Reassembler, decodeHeader, encodeReply, fragmentMessage, messageName } from '@hypmesh/rm-wire';
import type { MsgqTransport } from './msgq-client.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function inProcessTransport(endpoint: MsgqEndpoint, engine?: FaultEngine): MsgqTransport {
  const peek = new Reassembler();
  const reorder = new FragmentReorder<Uint8Array>();
  let pending: Uint8Array[] = [];
  let chain: Promise<void> = Promise.resolve();
  let listener: (f: Uint8Array) => void = () => {};
  let closed = false;

  const deliver = (f: Uint8Array): void => {
    if (!closed) listener(f);
  };

  async function sendReplies(frags: readonly Uint8Array[]): Promise<void> {
    for (const f of frags) {
      const h = decodeHeader(f);
      const rmMessage = h.ok ? messageName(h.value.msgId) : undefined;
      const d = engine?.decide({ boundary: 'RM_TO_CLIENT_FRAGMENT', ...(rmMessage === undefined ? {} : { rmMessage }), callerVmid: endpoint.caller });
      if (d === undefined) {
        deliver(f);
        continue;
      }
      // Stepped as the RM service steps its reply fragments; there is no process to end here, so a
      // crash is only its fragment lost (BEFORE_COMMIT) or sent (AFTER_COMMIT).
      const step = fragmentStep(d, f, reorder);
      if (step.holdMs > 0) await sleep(step.holdMs);
      step.send.forEach(deliver);
    }
    reorder.flush().forEach(deliver);
  }

  const receiveAll = async (frags: readonly Uint8Array[]): Promise<Uint8Array[]> => {
    const out: Uint8Array[] = [];
    for (const f of frags) out.push(...(await endpoint.receive(f)));
    return out;
  };

  async function request(frags: readonly Uint8Array[], msgId: number, seq: number): Promise<void> {
    const rmMessage = messageName(msgId);
    const d = engine?.decide({ boundary: 'CLIENT_TO_RM', ...(rmMessage === undefined ? {} : { rmMessage }), callerVmid: endpoint.caller });
    if (d === undefined || !d.fault) return sendReplies(await receiveAll(frags));
    const a = d.event.action;
    switch (a.kind) {
      case 'fail_before': {
        if (a.failure.kind !== 'domain' || a.failure.error.family !== 'rm') return;
        const reply = fragmentMessage({ type: 'REPLY', msgId, seq, payload: encodeReply(a.failure.error.rmError) });
        if (reply.ok) await sendReplies(reply.value);
        return;
      }
      case 'fail_after':
        await receiveAll(frags);
        return;
      case 'duplicate': {
        const first = await receiveAll(frags);
        await receiveAll(frags);
        return sendReplies(first);
      }
      case 'crash':
        if (a.point === 'AFTER_COMMIT') await receiveAll(frags);
        return;
      case 'delay':
        await sleep(a.delayMs);
        return sendReplies(await receiveAll(frags));
      case 'pause':
        await sleep(a.durationMs);
        return sendReplies(await receiveAll(frags));
      default:
        return; // drop (and fragment actions, which the validator keeps off this boundary)
    }
  }

  return {
    send(fragment) {
      pending.push(fragment);
      for (const ev of peek.push(fragment)) {
        const frags = pending;
        pending = [];
        if (ev.kind !== 'message') {
          // A fragment the RM would drop: let the RM drop it, so its counters see it.
          chain = chain.then(() => receiveAll(frags).then(() => undefined));
          continue;
        }
        chain = chain.then(() => request(frags, ev.message.msgId, ev.message.seq));
      }
    },
    onFragment(l) {
      listener = l;
    },
    close() {
      closed = true;
    },
  };
}
