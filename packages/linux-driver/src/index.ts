/**
 * @hypmesh/linux-driver: the seed-002 Linux Gunyah RM driver's memory-parcel calls as a client of
 * the RM's byte face, and the scenarios in which hypmesh finds its bugs (issue 8 item 5).
 *
 *   rsc-mgr-rpc.ts       gh_rm_mem_lend/share/reclaim, ported from seed 002 line for line
 *   gh-rm-call.ts        gh_rm_call: errno remap and the reply buffer as a slab object
 *   msgq-client.ts       requests → fragments → replies matched by seq (gunyah-rm.md §1)
 *   msgq-in-process.ts   transport to @hypmesh/rm's MsgqEndpoint, faults at the byte face
 *   msgq-grpc.ts         transport over RmService.Exchange
 *   scenarios.ts         linux-append-orphan, linux-unchecked-reply-size
 */
export * from './rsc-mgr-rpc.js';
export { ERRNO, GhRm, POISON_FREE, ReplyBuffer, type GhRmCallResult, type GhRmPort } from './gh-rm-call.js';
export { MsgqClient, type CallOutcome, type MsgqTransport, type RawReply } from './msgq-client.js';
export { inProcessTransport } from './msgq-in-process.js';
export { grpcTransport } from './msgq-grpc.js';
export * from './scenarios.js';
