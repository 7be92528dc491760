/**
 * One unary call to a hypmesh service as the CLI makes it: the caller VMID in metadata, a deadline
 * (`--timeout`, DESIGN.md §8: every client call has one), a refusal printed and a non-zero exit.
 * A service that does not answer in time, or cannot be reached, is named with its address and the
 * process exits 2 (as `check --live` does for a service it could not ask); other refusals exit 1.
 */
import * as grpc from '@grpc/grpc-js';
import { BadRequest, ErrorDetail, ErrorInfo } from '@hypmesh/proto';
import { clientCredentials, decodeStatusDetails, loadTls, STATUS_DETAILS_KEY, tlsConfigFrom, type DecodedStatus } from '@hypmesh/rpc';
import { jsonError, jsonOutput } from './output.js';

/** Default deadline of one CLI call (`--timeout`). */
export const CLI_TIMEOUT_MS_DEFAULT = 10_000;
let timeoutMs = CLI_TIMEOUT_MS_DEFAULT;

/** Sets the deadline of every later call (the global `--timeout`). */
export function setCallTimeout(ms: number): void {
  timeoutMs = ms;
}

let credentials: grpc.ChannelCredentials | undefined;

/**
 * Sets the channel credentials of every later client from the global `--tls-cert/--tls-key/--tls-ca`
 * (README "Security"): mTLS with that certificate, whose URI SAN is the caller the services see;
 * none: plaintext (insecure local use). Throws Error naming a missing flag or a bad file.
 */
export function setTls(flags: { readonly tlsCert?: string; readonly tlsKey?: string; readonly tlsCa?: string }): void {
  const config = tlsConfigFrom({ certFile: flags.tlsCert, keyFile: flags.tlsKey, caFile: flags.tlsCa });
  credentials = config === undefined ? undefined : clientCredentials(loadTls(config));
}

/** The credentials every CLI client connects with (setTls). */
export const cliCredentials = (): grpc.ChannelCredentials => credentials ?? grpc.credentials.createInsecure();

/** The deadline of one call, ms (`--timeout`). */
export const callTimeoutMs = (): number => timeoutMs;

/** Call options with the CLI's deadline. */
export const deadline = (): grpc.CallOptions => ({ deadline: Date.now() + timeoutMs });

export const meta = (vmid: number): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('x-hypmesh-caller-vmid', String(vmid));
  return md;
};

type Callback<Res> = (e: grpc.ServiceError | null, r: Res) => void;
export type UnaryFn<Req, Res> = (req: Req, md: grpc.Metadata, options: grpc.CallOptions, cb: Callback<Res>) => unknown;

/** What the CLI reports of a call the service never answered: the service by name and address. */
export interface Unreached {
  readonly service: string;
  readonly address: string;
  readonly why: string;
}

export type CallError = DecodedStatus & { readonly unreached?: Unreached };

/**
 * A failure that did not come from the service (no google.rpc.Status from it): the deadline
 * passed, or the connection failed. A service answering UNAVAILABLE for its own dependency sends
 * its status, and is reported as the refusal it is.
 */
function unreached(client: grpc.Client, e: grpc.ServiceError): Unreached | undefined {
  if (e.code !== grpc.status.DEADLINE_EXCEEDED && e.code !== grpc.status.UNAVAILABLE) return undefined;
  if (e.metadata?.get(STATUS_DETAILS_KEY).length) return undefined;
  const service = (client.constructor as { serviceName?: string }).serviceName ?? 'the service';
  const address = client.getChannel().getTarget().replace(/^dns:/, '');
  const why = e.code === grpc.status.DEADLINE_EXCEEDED ? `did not answer within ${timeoutMs} ms (--timeout); is it stopped or overloaded?` : `cannot be reached: ${e.details}`;
  return { service, address, why };
}

/** The call's outcome without exiting: the response, or the decoded refusal. */
export function tryCall<Req, Res>(client: grpc.Client, fn: UnaryFn<Req, Res>, req: Req, vmid: number): Promise<{ ok: true; value: Res } | { ok: false; error: CallError }> {
  return new Promise((resolve) =>
    fn.call(client, req, meta(vmid), deadline(), (e, r) => {
      if (e === null) return resolve({ ok: true, value: r });
      const u = unreached(client, e);
      resolve({ ok: false, error: { ...decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata }), ...(u && { unreached: u }) } });
    }),
  );
}

/** Prints a refusal (gRPC code, message, domain error and rule) to stderr and exits 1; a service that did not answer, 2. */
export function refused(d: CallError): never {
  if (jsonOutput()) {
    jsonError({
      error: {
        code: grpc.status[d.code],
        message: d.message,
        ...(d.errorDetail && { errorDetail: ErrorDetail.toJSON(d.errorDetail) }),
        ...(d.errorInfo && { errorInfo: ErrorInfo.toJSON(d.errorInfo) }),
        ...(d.badRequest && { badRequest: BadRequest.toJSON(d.badRequest) }),
        ...(d.unreached && { unreached: d.unreached }),
      },
    });
    process.exit(d.unreached === undefined ? 1 : 2);
  }
  if (d.unreached !== undefined) {
    const u = d.unreached;
    process.stderr.write(`hypmesh: ${grpc.status[d.code]}: ${u.service} at ${u.address} ${u.why}\n`);
    process.exit(2);
  }
  process.stderr.write(`hypmesh: ${grpc.status[d.code]}: ${d.message}\n`);
  const detail = d.errorDetail;
  if (detail !== undefined) process.stderr.write(`  ${detail.domain} ${detail.codeName} (${detail.code}), rule ${detail.rule}\n`);
  const dependency = d.errorInfo?.metadata['dependency'];
  if (dependency !== undefined) process.stderr.write(`  its dependency ${dependency} was not reached (${d.errorInfo?.reason}); retry later\n`);
  process.exit(1);
}

/** One unary call; a refusal is printed with its domain detail and ends the process (refused). */
export async function call<Req, Res>(client: grpc.Client, fn: UnaryFn<Req, Res>, req: Req, vmid: number): Promise<Res> {
  const r = await tryCall(client, fn, req, vmid);
  return r.ok ? r.value : refused(r.error);
}
