/**
 * The core over gRPC against a bare echo of the same size: `Translate` of a host address (a cheap,
 * read-only domain call, so the figure is the service's own overhead), 64 calls in flight.
 */
import * as grpc from '@grpc/grpc-js';
import { startCoreServer } from '@hypmesh/core-service';
import { CoreServiceClient, TranslateRequest, TranslateResponse } from '@hypmesh/proto';
import { alternate, drive, echoClient, startEchoServer } from './grpc-bench.js';

export const RPC_CONCURRENCY = 64;
const ROUND_MS = 1500;
const ROUNDS = 3;

export async function coreRpcVersusEcho(): Promise<{ corePerS: number; echoPerS: number; requestBytes: number; responseBytes: number }> {
  const core = await startCoreServer({ address: '127.0.0.1:0' });
  const host = new grpc.Metadata();
  host.set('x-hypmesh-caller-vmid', '3');
  const req: TranslateRequest = { vmid: 3, ipa: 2n ** 31n + 0x1234_5000n };
  const client = new CoreServiceClient(`127.0.0.1:${core.port}`, grpc.credentials.createInsecure());
  const translate = (): Promise<TranslateResponse> =>
    new Promise((resolve, reject) => client.translate(req, host, (e, r) => (e ? reject(e) : resolve(r))));
  const sample = await translate();
  const requestBytes = TranslateRequest.encode(req).finish().length;
  const responseBytes = TranslateResponse.encode(sample).finish().length;

  const echo = await startEchoServer(responseBytes);
  const echoer = echoClient(echo.port, requestBytes, host);
  try {
    const [corePerS, echoPerS] = await alternate(
      ROUNDS,
      () => drive(RPC_CONCURRENCY, ROUND_MS, () => translate().then(() => undefined)),
      () => drive(RPC_CONCURRENCY, ROUND_MS, () => echoer.call()),
    );
    return { corePerS, echoPerS, requestBytes, responseBytes };
  } finally {
    client.close();
    echoer.close();
    echo.close();
    await core.shutdown(100);
  }
}
