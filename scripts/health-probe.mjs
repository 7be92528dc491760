#!/usr/bin/env node
/**
 * A tiny grpc.health.v1 probe, the container healthcheck of every hypmesh service (exec form, no
 * shell needed): calls Health/Check once and exits like grpc_health_probe (grpc-ecosystem.md §5):
 *
 *   0  the service answered SERVING
 *   2  could not connect within the connect timeout
 *   3  the RPC failed (or timed out)
 *   4  the service answered, but not SERVING (NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN)
 *   1  bad usage
 *
 * Usage: node health-probe.mjs --addr=HOST:PORT [--service=NAME] [--connect-timeout-ms=1000]
 *        [--rpc-timeout-ms=1000]
 * The address defaults to $HYPMESH_PROBE_ADDR, then 127.0.0.1:50051; the service to '' (the whole
 * server). Needs only @grpc/grpc-js (resolved from /app/node_modules in the images): the two tiny
 * messages are encoded by hand, so no .proto loading happens on every probe.
 */

import * as grpc from '@grpc/grpc-js';

const args = new Map();
for (const a of process.argv.slice(2)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(a);
  if (!m) {
    console.error(`health-probe: bad argument ${a}`);
    process.exit(1);
  }
  args.set(m[1], m[2]);
}
const addr = args.get('addr') ?? process.env.HYPMESH_PROBE_ADDR ?? '127.0.0.1:50051';
const service = args.get('service') ?? '';
const connectTimeoutMs = Number(args.get('connect-timeout-ms') ?? 1000);
const rpcTimeoutMs = Number(args.get('rpc-timeout-ms') ?? 1000);

/** HealthCheckRequest { string service = 1; } */
function encodeRequest(name) {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0) return Buffer.alloc(0);
  const len = [];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x0a, ...len]), bytes]);
}

/** HealthCheckResponse { ServingStatus status = 1; }: UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3. */
function decodeResponse(buf) {
  let status = 0;
  for (let i = 0; i < buf.length; ) {
    const tag = buf[i++];
    if (tag !== 0x08) return status; // only field 1 (varint) is expected; stop at anything else
    let v = 0;
    for (let shift = 0; i < buf.length; shift += 7) {
      const b = buf[i++];
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
    }
    status = v;
  }
  return status;
}

const STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

const client = new grpc.Client(addr, grpc.credentials.createInsecure());
const done = (code, message) => {
  (code === 0 ? console.log : console.error)(`health-probe ${addr}${service ? ` ${service}` : ''}: ${message}`);
  client.close();
  process.exit(code);
};

client.waitForReady(Date.now() + connectTimeoutMs, (err) => {
  if (err) return done(2, `cannot connect: ${err.message}`);
  client.makeUnaryRequest(
    '/grpc.health.v1.Health/Check',
    encodeRequest,
    decodeResponse,
    service,
    { deadline: Date.now() + rpcTimeoutMs },
    (e, status) => {
      if (e) return done(3, `rpc failed: ${grpc.status[e.code] ?? e.code} ${e.details}`);
      const name = STATUS_NAMES[status] ?? String(status);
      return status === 1 ? done(0, 'status SERVING') : done(4, `status ${name}`);
    },
  );
});
