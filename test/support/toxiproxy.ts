/**
 * Toxiproxy (Shopify's network-fault proxy) for the cross-service tests: its server as a child
 * process on loopback, and a small typed client of its HTTP API (fetch on 127.0.0.1 only). A
 * proxy is one TCP listener in front of one upstream; a toxic acts on every connection through it,
 * so on a gRPC channel it hits every multiplexed call at once (the point: a real link fault).
 *
 * The server is the project-local build scripts/install-toxiproxy.sh makes (.tools/bin); when it
 * is missing the tests skip, unless HYPMESH_REQUIRE_TOXIPROXY is set (CI), where they fail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT } from './processes.js';

export const TOXIPROXY_BIN = join(ROOT, '.tools/bin/toxiproxy-server');
const START_TIMEOUT_MS = 10_000;

/** Why the Toxiproxy tests cannot run here, or undefined when they can (or must: CI). */
export function toxiproxyMissing(): string | undefined {
  if (existsSync(TOXIPROXY_BIN) || process.env['HYPMESH_REQUIRE_TOXIPROXY']) return undefined;
  return `${TOXIPROXY_BIN} is missing: run scripts/install-toxiproxy.sh (needs Go and the Go module proxy)`;
}

export type ToxicType = 'latency' | 'bandwidth' | 'slow_close' | 'timeout' | 'reset_peer' | 'limit_data' | 'slicer';

/** One toxic; `attributes` per type as Toxiproxy documents them (latency/jitter ms, rate KB/s, timeout ms, ...). */
export interface Toxic {
  readonly name: string;
  readonly type: ToxicType;
  /** upstream: client → server bytes; downstream: server → client. */
  readonly stream: 'upstream' | 'downstream';
  readonly toxicity: number;
  readonly attributes: Readonly<Record<string, number>>;
}

export interface ProxyInfo {
  readonly name: string;
  /** host:port it listens on (an ephemeral port resolved by Toxiproxy). */
  readonly listen: string;
  readonly upstream: string;
  readonly enabled: boolean;
  readonly toxics: readonly Toxic[];
}

/** A free loopback TCP port (bound and released: Toxiproxy's API takes no port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** The HTTP API of one Toxiproxy server. */
export class ToxiproxyClient {
  constructor(readonly api: string) {}

  private async req<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`http://${this.api}${path}`, {
      method,
      ...(body !== undefined && { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(5_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** A proxy listening on an ephemeral loopback port in front of `upstream`. */
  createProxy(name: string, upstream: string): Promise<ProxyInfo> {
    return this.req('POST', '/proxies', { name, listen: '127.0.0.1:0', upstream, enabled: true });
  }

  addToxic(proxy: string, toxic: Omit<Toxic, 'name' | 'toxicity'> & { name?: string; toxicity?: number }): Promise<Toxic> {
    return this.req('POST', `/proxies/${proxy}/toxics`, { toxicity: 1, ...toxic });
  }

  removeToxic(proxy: string, toxic: string): Promise<void> {
    return this.req('DELETE', `/proxies/${proxy}/toxics/${toxic}`);
  }

  /** Disabled: the listener is closed and every connection through it cut (a partition); enabled again: it listens on the same address. */
  setEnabled(proxy: string, enabled: boolean): Promise<ProxyInfo> {
    return this.req('POST', `/proxies/${proxy}`, { enabled });
  }

  proxies(): Promise<Record<string, ProxyInfo>> {
    return this.req('GET', '/proxies');
  }

  /** Every proxy enabled and every toxic removed (between scenarios). */
  reset(): Promise<void> {
    return this.req('POST', '/reset');
  }
}

/** A Toxiproxy server on 127.0.0.1 and a chosen free port, as a child process. */
export class ToxiproxyServer {
  private constructor(
    readonly child: ChildProcess,
    readonly client: ToxiproxyClient,
  ) {}

  static async start(): Promise<ToxiproxyServer> {
    const port = await freePort();
    const child = spawn(TOXIPROXY_BIN, ['-host', '127.0.0.1', '-port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)));
    // A binary that cannot be run (missing under HYPMESH_REQUIRE_TOXIPROXY) fails the test, not the worker.
    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));
    const client = new ToxiproxyClient(`127.0.0.1:${port}`);
    const until = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (spawnError !== undefined) throw new Error(`toxiproxy could not start (${TOXIPROXY_BIN}): ${spawnError.message}`);
      if (child.exitCode !== null) throw new Error(`toxiproxy exited (${child.exitCode}): ${stderr}`);
      if (await client.proxies().then(() => true, () => false)) return new ToxiproxyServer(child, client);
      if (Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`toxiproxy not answering on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }
}
