/** One unary call to a hypmesh service as the CLI makes it: the caller VMID in metadata, a refusal printed and exit 1. */
import * as grpc from '@grpc/grpc-js';
import { decodeStatusDetails, type DecodedStatus } from '@hypmesh/rpc';

export const meta = (vmid: number): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('x-hypmesh-caller-vmid', String(vmid));
  return md;
};

type Callback<Res> = (e: grpc.ServiceError | null, r: Res) => void;
export type UnaryFn<Req, Res> = (req: Req, md: grpc.Metadata, cb: Callback<Res>) => unknown;

/** The call's outcome without exiting: the response, or the decoded refusal. */
export function tryCall<Req, Res>(client: grpc.Client, fn: UnaryFn<Req, Res>, req: Req, vmid: number): Promise<{ ok: true; value: Res } | { ok: false; error: DecodedStatus }> {
  return new Promise((resolve) =>
    fn.call(client, req, meta(vmid), (e, r) =>
      resolve(e === null ? { ok: true, value: r } : { ok: false, error: decodeStatusDetails({ code: e.code, details: e.details, metadata: e.metadata }) }),
    ),
  );
}

/** Prints a refusal (gRPC code, message, domain error and rule) to stderr and exits 1. */
export function refused(d: DecodedStatus): never {
  process.stderr.write(`hypmesh: ${grpc.status[d.code]}: ${d.message}\n`);
  const detail = d.errorDetail;
  if (detail !== undefined) process.stderr.write(`  ${detail.domain} ${detail.codeName} (${detail.code}), rule ${detail.rule}\n`);
  process.exit(1);
}

/** One unary call; a refusal is printed with its domain detail and ends the process with 1. */
export async function call<Req, Res>(client: grpc.Client, fn: UnaryFn<Req, Res>, req: Req, vmid: number): Promise<Res> {
  const r = await tryCall(client, fn, req, vmid);
  return r.ok ? r.value : refused(r.error);
}
