/**
 * The gRPC rich-error wire format: a google.rpc.Status, serialized into the `grpc-status-details-bin`
 * trailer, whose details are google.protobuf.Any messages (hypmesh.common.v1.ErrorDetail,
 * google.rpc.ErrorInfo, google.rpc.BadRequest). Go, Java and Python clients decode it natively;
 * `decodeStatusDetails` is the TypeScript side.
 *
 * This module only encodes and decodes. Which gRPC code a domain error gets is decided in
 * status.ts, and nowhere else.
 */

import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { Any, BadRequest, ErrorDetail, ErrorInfo, Status, TYPE_URL_PREFIX, type MessageFns } from '@hypmesh/proto';

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

/** Fully qualified names of the detail messages hypmesh sends. */
export const DETAIL_TYPES = {
  errorDetail: 'hypmesh.common.v1.ErrorDetail',
  errorInfo: 'google.rpc.ErrorInfo',
  badRequest: 'google.rpc.BadRequest',
} as const;

/**
 * Longest status message sent, in UTF-8 bytes. The message travels twice in the trailers
 * (grpc-message, percent-encoded, and inside grpc-status-details-bin); trailers over grpc-js's
 * 8 KiB metadata limit are never delivered, and the client hangs to its deadline (issue 10: a
 * 40 KB caller header echoed back stalled the connection).
 */
export const STATUS_MESSAGE_MAX_BYTES = 1024;

/**
 * `text` (shown by `show`, e.g. quoted) cut to `maxBytes` of UTF-8 at a character boundary, saying
 * it was cut and how long it was.
 */
export function boundText(text: string, maxBytes: number, show: (s: string) => string = (s) => s): string {
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return show(text);
  const head = new TextDecoder().decode(Buffer.from(text).subarray(0, maxBytes)).replace(/\uFFFD+$/, '');
  return `${show(head)}… (truncated, ${bytes} bytes)`;
}

/**
 * A coded gRPC error, ready for a grpc-js callback: `code`, `details` (the status message) and
 * `metadata` (the trailers, holding the serialized google.rpc.Status). Handlers throw it for a
 * malformed request; unary() sends it unchanged. The original error, if any, is kept as `cause`.
 */
export class StatusError extends Error implements ServiceError {
  override readonly name = 'StatusError';
  readonly details: string;
  readonly metadata: Metadata;

  constructor(
    readonly code: status,
    message: string,
    readonly detailMessages: readonly Any[] = [],
    options?: { cause?: unknown },
  ) {
    // Every status is built here, so this is the one place a message is bounded.
    message = boundText(message, STATUS_MESSAGE_MAX_BYTES);
    super(message, options);
    this.details = message;
    this.metadata = new Metadata();
    const body = Status.encode({ code, message, details: [...detailMessages] }).finish();
    this.metadata.set(STATUS_DETAILS_KEY, Buffer.from(body));
  }
}

/** Packs a message into a google.protobuf.Any. */
export const packAny = <T>(typeName: string, fns: MessageFns<T>, message: T): Any => ({
  typeUrl: TYPE_URL_PREFIX + typeName,
  value: Buffer.from(fns.encode(message).finish()),
});

const unpack = <T>(any: Any, typeName: string, fns: MessageFns<T>): T | undefined =>
  any.typeUrl === TYPE_URL_PREFIX + typeName ? fns.decode(any.value) : undefined;

/** What a client learns from a failed call. */
export interface DecodedStatus {
  readonly code: status;
  readonly message: string;
  readonly errorDetail?: ErrorDetail;
  readonly errorInfo?: ErrorInfo;
  readonly badRequest?: BadRequest;
  /** Details of other types, undecoded. */
  readonly others: readonly Any[];
}

/**
 * Decodes the google.rpc.Status of a failed call (a grpc-js ServiceError, or anything with `code`,
 * `details` and trailers). Without the trailer, only code and message are known.
 */
export function decodeStatusDetails(e: { code: status; details: string; metadata?: Metadata }): DecodedStatus {
  const raw = e.metadata?.get(STATUS_DETAILS_KEY)[0];
  if (raw === undefined || typeof raw === 'string') return { code: e.code, message: e.details, others: [] };
  const body = Status.decode(raw);
  let errorDetail: ErrorDetail | undefined;
  let errorInfo: ErrorInfo | undefined;
  let badRequest: BadRequest | undefined;
  const others: Any[] = [];
  for (const any of body.details) {
    const d = unpack(any, DETAIL_TYPES.errorDetail, ErrorDetail);
    const i = d ? undefined : unpack(any, DETAIL_TYPES.errorInfo, ErrorInfo);
    const b = d || i ? undefined : unpack(any, DETAIL_TYPES.badRequest, BadRequest);
    if (d) errorDetail = d;
    else if (i) errorInfo = i;
    else if (b) badRequest = b;
    else others.push(any);
  }
  return {
    code: body.code as status,
    message: body.message,
    ...(errorDetail && { errorDetail }),
    ...(errorInfo && { errorInfo }),
    ...(badRequest && { badRequest }),
    others,
  };
}
