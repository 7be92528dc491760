/**
 * Undecodable request bytes are the caller's mistake, so INVALID_ARGUMENT (issue 10). grpc-js
 * answers INTERNAL ("server bug") whenever a method's deserializer throws, and ts-proto's decode
 * throws on bytes that are no protobuf of the type. So serveGrpc registers every service through
 * `guardDecoding`: the deserializer returns an Undecodable instead of throwing, and the handler
 * answers it with INVALID_ARGUMENT before anything else (faults included) sees the call.
 */

import type * as grpc from '@grpc/grpc-js';
import { StatusError } from './status-details.js';
import { invalidArgument } from './status.js';

/** What a deserializer returns for bytes it cannot decode. */
class Undecodable {
  constructor(readonly status: StatusError) {}
}

const refusal = (path: string, e: unknown): Undecodable =>
  new Undecodable(invalidArgument('request', `the bytes sent to ${path} do not decode as its request message: ${e instanceof Error ? e.message : String(e)}`));

type AnyHandler = (call: never, callback?: never) => void;
const asHandler = (h: AnyHandler): grpc.UntypedHandleCall => h as unknown as grpc.UntypedHandleCall;
type StreamCall = grpc.ServerReadableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** `definition` and `implementation` with every method's decode failure answered INVALID_ARGUMENT. */
export function guardDecoding(
  definition: grpc.ServiceDefinition,
  implementation: grpc.UntypedServiceImplementation,
): [grpc.ServiceDefinition, grpc.UntypedServiceImplementation] {
  const defs: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const impls: Record<string, grpc.UntypedHandleCall> = {};
  for (const [name, d] of Object.entries(definition) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    const decode = d.requestDeserialize;
    defs[name] = {
      ...d,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (e) {
          return refusal(d.path, e);
        }
      },
    };
    const handler = implementation[name] as AnyHandler | undefined;
    if (handler === undefined) continue;
    impls[name] = asHandler(d.requestStream ? guardStream(handler) : guardSingle(handler, d.responseStream));
  }
  return [defs, { ...implementation, ...impls }];
}

/** Unary and server-streaming calls: the one request is decoded before the handler runs. */
function guardSingle(handler: AnyHandler, responseStream: boolean): AnyHandler {
  return ((call: { request: unknown; emit(e: 'error', s: StatusError): void }, callback?: grpc.sendUnaryData<unknown>) => {
    if (!(call.request instanceof Undecodable)) return handler(call as never, callback as never);
    if (responseStream) call.emit('error', call.request.status);
    else callback?.(call.request.status);
  }) as AnyHandler;
}

/** Client- and bidi-streaming calls: a message that does not decode ends the call, unseen by the handler. */
function guardStream(handler: AnyHandler): AnyHandler {
  return ((call: StreamCall, callback?: grpc.sendUnaryData<unknown>) => {
    const on = call.on.bind(call);
    let refused = false;
    call.on = ((event: string, listener: (...args: unknown[]) => void) => {
      if (event !== 'data') return on(event, listener);
      return on('data', (message: unknown) => {
        if (!(message instanceof Undecodable)) return listener(message);
        if (refused) return;
        refused = true;
        if (callback !== undefined) callback(message.status);
        else call.emit('error', message.status);
      });
    }) as typeof call.on;
    handler(call as never, callback as never);
  }) as AnyHandler;
}
