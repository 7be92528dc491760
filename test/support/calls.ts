/**
 * Client side of the end-to-end tests: a unary call as a given caller VMID with a deadline, its
 * gRPC code, a VMM session held by an OpenSession stream, and `hypmesh check --live` as its own
 * process.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { OpenSessionResponse, VmmServiceClient } from '@hypmesh/proto/vmm';
import { CALLER_VMID_KEY } from '@hypmesh/rpc';
import { ROOT, type Addresses } from './processes.js';

export const CLI = join(ROOT, 'tools/cli/dist/main.js');
export const HOST = 3;
const CALL_TIMEOUT_MS = 20_000;

type Unary = (req: object, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;

/** One unary call as `vmid` (default HOST) within `deadlineMs`; rejects with the grpc-js ServiceError. */
export function ask<Res>(client: grpc.Client, method: unknown, req: object, vmid = HOST, deadlineMs = CALL_TIMEOUT_MS): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, String(vmid));
  return new Promise((resolve, reject) => (method as Unary).call(client, req, md, { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(e) : resolve(r as Res))));
}

/** The call's gRPC code name: 'OK' or e.g. 'PERMISSION_DENIED'. */
export const code = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (e: grpc.ServiceError) => grpc.status[e.code],
  );

/** A session held by an OpenSession stream (cancel the stream to end it) and its id. */
export async function openSession(vmm: VmmServiceClient): Promise<{ stream: grpc.ClientReadableStream<OpenSessionResponse>; sessionId: string }> {
  const stream = vmm.openSession({});
  stream.on('error', () => {}); // cancelled by the test
  const sessionId = await new Promise<string>((resolve, reject) => {
    stream.once('data', (m: OpenSessionResponse) => (m.sessionId ? resolve(m.sessionId) : reject(new Error('first message is not the session id'))));
    stream.once('error', reject);
  });
  return { stream, sessionId };
}

/** `hypmesh check --live ...extra` as its own process, against `at`. */
export function checkLive(at: Addresses, ...extra: string[]): Promise<{ code: number; out: string; err: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
  const env = { ...clean, HYPMESH_CORE_ADDR: at.core, HYPMESH_RM_ADDR: at.rm, HYPMESH_VMM_ADDR: at.vmm };
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, 'check', '--live', ...extra], { cwd: ROOT, env, timeout: 30_000 }, (e, out, err) =>
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out, err }),
    ),
  );
}
