/**
 * The one dispatcher both faces end in (STYLE "Thin services": the RM's typed and byte faces share
 * one table indexed by message ID). Its table is rm-wire's RM_CODECS (message ID → name → codecs)
 * in front of the ResourceManager's call table (name → handler, @hypmesh/rm): a message ID with no
 * codecs, or one the RM does not handle, is answered UNIMPLEMENTED as the real RM answers unknown
 * IDs (§1.5); a payload that does not decode gets the decoder's MSG_INVALID or NORESOURCE (§3.1).
 *
 * The typed face reaches the same place through `checkedRequest`: a typed request is encoded to
 * its wire payload and decoded again, so it meets exactly the decoder rules its bytes would (a list
 * over 512 entries is NORESOURCE on both faces).
 */

import type { BugLog, RmDomainError } from '@hypmesh/rpc';
import { ResourceManager } from '@hypmesh/rm';
import {
  RM_CODECS,
  codecsForId,
  encodeReply,
  type CallName,
  type Codec,
  type Decoded,
  type ReplyOf,
  type RequestOf,
  type WireError,
} from '@hypmesh/rm-wire';

/** A wire decode failure as the RM error the RM answers with. */
export const wireRefusal = (e: WireError): RmDomainError => ({ family: 'rm', rmError: e.rmError, rule: e.rule, message: e.reason });

/** The typed request value as its wire payload decodes it (see the header). */
export function checkedRequest<N extends CallName>(name: N, value: RequestOf<N>): Decoded<RequestOf<N>> {
  const codec = RM_CODECS[name].request as Codec<RequestOf<N>>;
  return codec.decode(codec.encode(value));
}

/**
 * One whole request payload from `caller` → the whole reply payload, `[err u32][data]` (§1.4).
 * Never rejects: a bug (an encoder refusing a value the RM produced) is logged and answered
 * NORESOURCE, so a client never waits forever and the service keeps running.
 */
export async function dispatchPayload(rm: ResourceManager, caller: number, msgId: number, payload: Uint8Array, log: BugLog): Promise<Uint8Array> {
  const found = codecsForId(msgId);
  if (found === undefined || found.codecs.kind !== 'request' || !ResourceManager.handles(found.name)) return encodeReply('UNIMPLEMENTED');
  const name = found.name as CallName;
  try {
    const codecs = RM_CODECS[name] as { request: Codec<RequestOf<CallName>>; reply: Codec<ReplyOf<CallName>> };
    const request = codecs.request.decode(payload);
    if (!request.ok) return encodeReply(request.error.rmError);
    const outcome = await rm.call(caller, name, request.value);
    return outcome.ok ? encodeReply('OK', codecs.reply.encode(outcome.value)) : encodeReply(outcome.error.rmError);
  } catch (e) {
    log.error({ err: e, msgId, name }, `bug: dispatching ${name} threw`);
    return encodeReply('NORESOURCE');
  }
}
