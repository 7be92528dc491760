/**
 * A MsgqTransport over RmService.Exchange (proto/hypmesh/rm/v1/msgq.proto): one bidirectional
 * stream is the client VM's queue pair; the caller VMID goes in metadata (x-hypmesh-caller-vmid).
 * Faults, if any, are the RM service's to inject (its FaultService); this side only carries bytes.
 */
import * as grpc from '@grpc/grpc-js';
import { RmServiceClient, type ExchangeResponse } from '@hypmesh/proto/rm';
import type { MsgqTransport } from './msgq-client.js';

export function grpcTransport(address: string, callerVmid: number): MsgqTransport {
  const client = new RmServiceClient(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('x-hypmesh-caller-vmid', String(callerVmid));
  const stream = client.exchange(md);
  let listener: (f: Uint8Array) => void = () => {};
  stream.on('data', (r: ExchangeResponse) => listener(r.fragment));
  // The stream ends when the RM goes away or the test closes it; calls then time out (-ETIMEDOUT).
  stream.on('error', () => {});
  return {
    send(fragment) {
      stream.write({ fragment: Buffer.from(fragment.buffer, fragment.byteOffset, fragment.byteLength) });
    },
    onFragment(l) {
      listener = l;
    },
    close() {
      stream.end();
      client.close();
    },
  };
}
