/**
 * How the typed face reaches the RM's one dispatcher (ResourceManager.call, whose table is indexed by
 * message name; the byte face gets there through MsgqEndpoint): `checkedRequest` encodes a typed
 * request to its wire payload and decodes it again, so it meets exactly the decoder rules its bytes
 * would (a list over 512 entries is NORESOURCE on both faces).
 */

import type { RmDomainError } from '@hypmesh/rpc';
import { RM_CODECS, type CallName, type Codec, type Decoded, type RequestOf, type WireError } from '@hypmesh/rm-wire';

/** A wire decode failure as the RM error the RM answers with. */
export const wireRefusal = (e: WireError): RmDomainError => ({ family: 'rm', rmError: e.rmError, rule: e.rule, message: e.reason });

/** The typed request value as its wire payload decodes it (see the header). */
export function checkedRequest<N extends CallName>(name: N, value: RequestOf<N>): Decoded<RequestOf<N>> {
  const codec = RM_CODECS[name].request as Codec<RequestOf<N>>;
  return codec.decode(codec.encode(value));
}
