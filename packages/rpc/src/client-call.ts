/**
 * One unary call from a hypmesh process to a hypmesh service, as every client here makes it: the
 * caller's VMID in metadata (caller.ts), a deadline, and a refusal decoded (status-details.ts)
 * rather than thrown, so a service that calls another can turn it into its own answer.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_KEY } from './admission.js';
import { CALLER_VMID_KEY } from './caller.js';
import { decodeStatusDetails, type DecodedStatus } from './status-details.js';
import { traceClient, tracingEnabled } from './tracing.js';
import { clientCredentials, type TlsMaterial } from './tls.js';

/**
 * Channel options of every service-to-service client: grpc-js backs its reconnects off from 1 s to
 * 120 s by default, so a dependency back after a minute's outage went unused for up to two
 * minutes. Here the channel retries as the VMM's RM stream does (100 ms doubling to 2 s), so a
 * restarted service is reached within about 2 s (issue 9 §3).
 */
export const SERVICE_CLIENT_OPTIONS: grpc.ClientOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
};

/**
 * SERVICE_CLIENT_OPTIONS with `interceptors` (outermost first), behind the tracing interceptor when
 * tracing is on (tracing.ts), so every service-to-service call carries its trace context.
 */
export function serviceClientOptions(...interceptors: grpc.Interceptor[]): grpc.ClientOptions {
  const all = [...(tracingEnabled() ? [traceClient] : []), ...interceptors];
  return all.length === 0 ? SERVICE_CLIENT_OPTIONS : { ...SERVICE_CLIENT_OPTIONS, interceptors: all };
}

type Callback<Res> = (e: grpc.ServiceError | null, r?: Res) => void;
/** A generated client's unary method (ts-proto, outputServices=grpc-js). */
export type ClientUnaryFn<Req, Res> = (req: Req, md: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: Callback<Res>) => unknown;

export type CallOutcome<Res> = { readonly ok: true; readonly value: Res } | { readonly ok: false; readonly error: DecodedStatus };

/** A failure the client itself saw (no status from the service). */
const bare = (message: string): DecodedStatus => ({ code: grpc.status.INTERNAL, message, others: [] });

/** `clientName`, when given, goes in `x-hypmesh-client` (admission.ts): the principal quotas count against. */
export function callUnary<Req, Res>(client: grpc.Client, fn: ClientUnaryFn<Req, Res>, req: Req, callerVmid: number, deadlineMs: number, clientName?: string): Promise<CallOutcome<Res>> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(callerVmid));
  if (clientName !== undefined) md.set(CLIENT_KEY, clientName);
  return new Promise((resolve) => {
    try {
      fn.call(client, req, md, { deadline: Date.now() + deadlineMs }, (e, r) => {
        if (e === null && r !== undefined) resolve({ ok: true, value: r });
        else if (e === null) resolve({ ok: false, error: bare('the service sent no response') });
        else resolve({ ok: false, error: decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata }) });
      });
    } catch (e) {
      resolve({ ok: false, error: bare(e instanceof Error ? e.message : String(e)) });
    }
  });
}

/** A refusal in one line: `UNAVAILABLE: message (errno ENOENT, rule no_such_vm)`. */
export function describeRefusal(d: DecodedStatus): string {
  const detail = d.errorDetail === undefined ? '' : ` (${d.errorDetail.domain} ${d.errorDetail.codeName}, rule ${d.errorDetail.rule})`;
  return `${grpc.status[d.code] ?? d.code}: ${d.message}${detail}`;
}

/**
 * The credentials of a service-to-service client: mTLS from `tls` (tls.ts loadTls), else plaintext,
 * for insecure local use only (identity is then the declared metadata header, caller.ts).
 */
export function serviceCredentials(tls: TlsMaterial | undefined): grpc.ChannelCredentials {
  return tls === undefined ? grpc.credentials.createInsecure() : clientCredentials(tls);
}
