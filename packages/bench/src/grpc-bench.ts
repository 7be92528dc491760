/**
 * gRPC throughput: a hypmesh RPC against a bare grpc-js echo that moves the same bytes (request and
 * response sizes, metadata) at the same concurrency, measured in the same process and run, so the
 * ratio shows what hypmesh adds over the transport (DESIGN.md §6: ≥ 80%).
 */
import * as grpc from '@grpc/grpc-js';

export interface Throughput {
  readonly callsPerS: number;
}

/** Keeps `concurrency` calls in flight for `durationMs`; `issue` starts one call and resolves when it ends. */
export async function drive(concurrency: number, durationMs: number, issue: (i: number) => Promise<void>): Promise<Throughput> {
  // Warm-up: connection, JIT.
  await Promise.all(Array.from({ length: concurrency }, (_, i) => issue(i)));
  let done = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(durationMs) * 1_000_000n;
  const worker = async (w: number): Promise<void> => {
    for (let i = w; process.hrtime.bigint() < end; i += concurrency) {
      await issue(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { callsPerS: done / seconds };
}

const identity = (b: Buffer): Buffer => b;
const ECHO_PATH = '/hypmesh.bench.Echo/Echo';

export interface EchoServer {
  readonly port: number;
  close(): void;
}

/** A bare echo service that answers every request with `responseBytes` bytes. */
export async function startEchoServer(responseBytes: number): Promise<EchoServer> {
  const server = new grpc.Server();
  const reply = Buffer.alloc(responseBytes, 7);
  server.addService(
    {
      Echo: {
        path: ECHO_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, reply) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { port, close: () => server.forceShutdown() };
}

/** A client issuing echo calls of `requestBytes` bytes with `metadata`. */
export function echoClient(port: number, requestBytes: number, metadata: grpc.Metadata): { call: () => Promise<void>; close: () => void } {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const body = Buffer.alloc(requestBytes, 3);
  return {
    call: () =>
      new Promise<void>((resolve, reject) => {
        client.makeUnaryRequest(ECHO_PATH, identity, identity, body, metadata, (e) => (e ? reject(e) : resolve()));
      }),
    close: () => client.close(),
  };
}

/** Median of `rounds` alternating measurements of a and b (drift hits both alike). */
export async function alternate(rounds: number, a: () => Promise<Throughput>, b: () => Promise<Throughput>): Promise<[number, number]> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    as.push((await a()).callsPerS);
    bs.push((await b()).callsPerS);
  }
  const median = (xs: number[]): number => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return [median(as), median(bs)];
}
