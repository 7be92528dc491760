/**
 * The RM over gRPC, with the core as a second gRPC server in the same process (loopback):
 *
 * - rm_parcel_cycles_per_s: HLOS shares one page, the guest accepts it (RM-chosen IPA), releases
 *   it, HLOS reclaims it: 4 RM RPCs and 4 core RPCs per cycle, CYCLES_IN_FLIGHT cycles at once;
 * - rm_byte_face_msgs_per_s: VM_GET_VMID request/reply messages over the Exchange stream, with
 *   BYTE_FACE_IN_FLIGHT requests outstanding per stream;
 * - the bare grpc-js echo at the MemShare request/response size and the same concurrency (unary),
 *   and a bidi-stream echo at the fragment sizes and depth of the byte face, measured in the same run.
 */
import * as grpc from '@grpc/grpc-js';
import { startCoreServer } from '@hypmesh/core-service';
import { CoreServiceClient } from '@hypmesh/proto';
import {
  ExchangeRequest,
  MemAcceptRequest,
  MemReclaimRequest,
  MemReleaseRequest,
  MemShareRequest,
  MemShareResponse,
  MemType,
  RmServiceClient,
  TransType,
  VmAllocateRequest,
  VmAllocateResponse,
} from '@hypmesh/proto/rm';
import { grpcCore, startRmServer } from '@hypmesh/rm-service';
import { alternate, drive, echoClient, startEchoServer } from './grpc-bench.js';

export const CYCLES_IN_FLIGHT = 8;
export const BYTE_FACE_IN_FLIGHT = 32;
const ROUND_MS = 1500;
const ROUNDS = 3;
const GiB = 2 ** 30;
const HLOS = 3;

const meta = (vmid: number): grpc.Metadata => {
  const m = new grpc.Metadata();
  m.set('x-hypmesh-caller-vmid', String(vmid));
  return m;
};

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: Res) => void) => unknown;
const promised =
  <Req, Res>(client: object, fn: Unary<Req, Res>) =>
  (req: Req, md: grpc.Metadata): Promise<Res> =>
    new Promise((resolve, reject) => fn.call(client, req, md, (e, r) => (e ? reject(e) : resolve(r))));

export interface RmFigures {
  readonly parcelCyclesPerS: number;
  readonly unaryEchoPerS: number;
  readonly byteFaceMsgsPerS: number;
  readonly streamEchoMsgsPerS: number;
}

export async function rmFigures(): Promise<RmFigures> {
  const core = await startCoreServer({ address: '127.0.0.1:0' });
  const coreAddr = `127.0.0.1:${core.port}`;
  const rmServer = await startRmServer({ address: '127.0.0.1:0', core: grpcCore(coreAddr) });
  const rm = new RmServiceClient(`127.0.0.1:${rmServer.port}`, grpc.credentials.createInsecure());
  const coreClient = new CoreServiceClient(coreAddr, grpc.credentials.createInsecure());
  const echo = await startEchoServer(MemShareResponse.encode({ handle: 1 }).finish().length);
  try {
    // One guest per cycle slot: VM_ALLOCATE makes its core stage-2 (§4.2); the host tops the pool up.
    const guests: number[] = [];
    const ramPfn = (2 * GiB) / 4096;
    for (let i = 0; i < CYCLES_IN_FLIGHT; i++) {
      const a = await promised<VmAllocateRequest, VmAllocateResponse>(rm, rm.vmAllocate)(VmAllocateRequest.fromPartial({ vmid: 0 }), meta(HLOS));
      const vmid = a.vmid;
      await promised(coreClient, coreClient.topUpTablePool)({ vmid, frames: [{ base: BigInt(ramPfn + 0x1000 + i * 64), count: 64n }] }, meta(HLOS));
      guests.push(vmid);
    }
    const share = promised<MemShareRequest, MemShareResponse>(rm, rm.memShare);
    const accept = promised(rm, rm.memAccept);
    const release = promised(rm, rm.memRelease);
    const reclaim = promised(rm, rm.memReclaim);
    const shareReq = (slot: number) =>
      MemShareRequest.fromPartial({
        memType: MemType.MEM_TYPE_NORMAL,
        acl: [
          { vmid: guests[slot]!, rights: 6 },
          { vmid: HLOS, rights: 7 },
        ],
        sgl: [{ base: BigInt(2 * GiB + 0x1000_0000 + slot * 0x1000), size: 0x1000n }],
      });
    const cycle = async (i: number): Promise<void> => {
      const slot = i % CYCLES_IN_FLIGHT;
      const guest = guests[slot]!;
      const { handle } = await share(shareReq(slot), meta(HLOS));
      await accept(
        MemAcceptRequest.fromPartial({ handle, memType: MemType.MEM_TYPE_NORMAL, transType: TransType.TRANS_TYPE_SHARE, done: true }),
        meta(guest),
      );
      await release(MemReleaseRequest.fromPartial({ handle }), meta(guest));
      await reclaim(MemReclaimRequest.fromPartial({ handle }), meta(HLOS));
    };
    const shareBytes = MemShareRequest.encode(shareReq(0)).finish().length;
    const echoer = echoClient(echo.port, shareBytes, meta(HLOS));
    // A cycle is 4 RM calls; the echo comparison is per call at the same concurrency.
    const [cyclesPerS, unaryEchoPerS] = await alternate(
      ROUNDS,
      () => drive(CYCLES_IN_FLIGHT, ROUND_MS, (i) => cycle(i)),
      () => drive(CYCLES_IN_FLIGHT, ROUND_MS, () => echoer.call()),
    );
    echoer.close();

    const [byteFaceMsgsPerS, streamEchoMsgsPerS] = await alternate(
      ROUNDS,
      () => streamRate(rm, guests[0]!),
      () => streamEchoRate(),
    );
    return { parcelCyclesPerS: cyclesPerS, unaryEchoPerS, byteFaceMsgsPerS, streamEchoMsgsPerS };
  } finally {
    rm.close();
    coreClient.close();
    echo.close();
    await rmServer.shutdown(100);
    await core.shutdown(100);
  }
}

/** VM_GET_VMID request fragment (header only: the request has no payload). */
const GET_VMID = (seq: number): Buffer => Buffer.from([0x21, 0x01, seq & 0xff, (seq >> 8) & 0xff, 0x24, 0x00, 0x00, 0x56]);

/** A bidi stream as the pump sees it: write a request, hear each reply, end, and know it closed. */
interface Duplex {
  write(fragment: Buffer): void;
  onReply(listener: () => void): void;
  end(): void;
  readonly closed: Promise<void>;
}

/** Keeps BYTE_FACE_IN_FLIGHT requests outstanding on one stream for ROUND_MS; replies per second. */
async function pump(stream: Duplex): Promise<{ callsPerS: number }> {
  let replies = 0;
  let sent = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ROUND_MS) * 1_000_000n;
  await new Promise<void>((resolve) => {
    stream.onReply(() => {
      replies++;
      if (process.hrtime.bigint() < end) stream.write(GET_VMID(sent++));
      else if (replies === sent) resolve();
    });
    for (let i = 0; i < BYTE_FACE_IN_FLIGHT; i++) stream.write(GET_VMID(sent++));
  });
  const rate = replies / (Number(process.hrtime.bigint() - t0) / 1e9);
  stream.end();
  await stream.closed;
  return { callsPerS: rate };
}

const duplex = (s: grpc.ClientDuplexStream<never, unknown>, wrap: (b: Buffer) => unknown): Duplex => ({
  write: (b) => s.write(wrap(b) as never),
  onReply: (l) => void s.on('data', l),
  end: () => s.end(),
  closed: new Promise<void>((resolve) => s.on('status', () => resolve()).on('error', () => resolve())),
});

/** Request/reply messages per second over one Exchange stream. */
const streamRate = (rm: RmServiceClient, vmid: number): Promise<{ callsPerS: number }> =>
  pump(duplex(rm.exchange(meta(vmid)) as never, (fragment) => ExchangeRequest.fromPartial({ fragment })));

/** The same exchange against a bare bidi echo of the same fragment sizes (8 B in, 16 B out). */
async function streamEchoRate(): Promise<{ callsPerS: number }> {
  const identity = (b: Buffer): Buffer => b;
  const path = '/hypmesh.bench.Echo/Stream';
  const server = new grpc.Server();
  const reply = Buffer.alloc(16, 1);
  server.addService(
    { Stream: { path, requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    { Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => call.on('data', () => call.write(reply)).on('end', () => call.end()) },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    return await pump(duplex(client.makeBidiStreamRequest(path, identity, identity, meta(0x80)) as never, (b) => b));
  } finally {
    client.close();
    server.forceShutdown();
  }
}
