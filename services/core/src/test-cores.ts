/**
 * Cores on 127.0.0.1:0 for this service's in-process tests (durable.test.ts, keys.test.ts): a
 * small configuration, in memory or on a temporary data dir, each with a client; `closeAll` stops
 * them and removes the dirs. `call` makes one CoreService call as a caller, with a request id if
 * given, and resolves with the outcome instead of throwing.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoreServiceClient } from '@hypmesh/proto';
import { CALLER_VMID_KEY, REQUEST_ID_KEY, type BugLog } from '@hypmesh/rpc';
import type { Stage2Config } from '@hypmesh/stage2';
import { openCoreJournal, startCoreServer, type CoreServer, type CoreServerOptions } from './server.js';

const GiB = 2 ** 30;
export const CONFIG: Stage2Config = { memory: { paBits: 40, ram: [{ base: 2 * GiB, sizeBytes: GiB }], mmio: [] } };
export const RAM_PFN = (2 * GiB) / 4096;
export const GUEST = 0x80;

export class TestCores {
  private readonly running: { core: CoreServer; client: CoreServiceClient }[] = [];
  private readonly dirs: string[] = [];

  constructor(private readonly log: BugLog = { error: () => {} }) {}

  dataDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'hypmesh-core-data-'));
    this.dirs.push(d);
    return d;
  }

  async start(options: Partial<CoreServerOptions> = {}): Promise<{ core: CoreServer; client: CoreServiceClient }> {
    const core = await startCoreServer({ address: '127.0.0.1:0', stage2Config: CONFIG, log: this.log, ...options });
    const client = new CoreServiceClient(`127.0.0.1:${core.port}`, grpc.credentials.createInsecure());
    this.running.push({ core, client });
    return { core, client };
  }

  /** A durable core on `dir`, images every `snapshotEvery` records (0: never). */
  async startDurable(dir: string, config: Stage2Config = CONFIG, snapshotEvery = 0) {
    // One boot generation for every new data dir here, so two dirs given the same calls hold the same core.
    const opened = openCoreJournal(dir, config, 'normal', 7);
    if (!opened.ok) throw new Error(opened.error);
    const started = await this.start({ stage2Config: opened.value.config, journal: opened.value.journal, snapshotEvery });
    return { ...started, journal: opened.value.journal };
  }

  async stopLast(): Promise<void> {
    const r = this.running.pop()!;
    r.client.close();
    await r.core.shutdown(100);
  }

  async closeAll(): Promise<void> {
    while (this.running.length > 0) await this.stopLast();
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export type Unary<Req, Res> = (req: Req, md: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown;
export type Outcome<Res> = { ok: true; value: Res } | { ok: false; code: number; details?: string };

export function call<Req, Res>(client: CoreServiceClient, fn: Unary<Req, Res>, req: Req, caller = '3', requestId?: string): Promise<Outcome<Res>> {
  const md = new grpc.Metadata();
  md.set(CALLER_VMID_KEY, caller);
  if (requestId !== undefined) md.set(REQUEST_ID_KEY, requestId);
  return new Promise((resolve) => fn.call(client, req, md, {}, (e, r) => resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true, value: r })));
}
