/**
 * `gh_rm_call` as the seed-002 driver relies on it (Linux rsc_mgr.c, v13 series): send one request,
 * wait for its reply; a reply whose RM error is not OK returns the remapped negative errno
 * (gunyah-rm.md §1.5, @hypmesh/rm-wire `linuxErrnoOf`); an OK reply hands the caller the data after
 * the error word as a heap buffer and its size, and it is the caller's job to check that size.
 *
 * The buffer is modelled as a slab object (`ReplyBuffer`), because that is where seed 002's
 * `p->mem_handle = le32_to_cpu(*resp)` reads, whatever `resp_size` says:
 *   - no data (resp_size 0): Linux hands back no buffer; dereferencing it is an oops (NULL, or
 *     ZERO_SIZE_PTR from kzalloc(0)). `readLe32` then reports `oops`;
 *   - fewer than 4 bytes: the read runs past the reply into the rest of the slab object. What is
 *     there depends on the kernel's slab debugging; the model fills it with `staleByte`, by default
 *     0x6b (POISON_FREE, include/linux/poison.h: the bytes of an object freed before), so a 2-byte
 *     reply carrying handle 0x0000 reads as 0x6b6b0000. The seed itself does not say; the byte is a
 *     parameter, and the scenario reports which bytes came from beyond the reply.
 */
import { linuxErrnoOf } from '@hypmesh/rm-wire';
import type { MsgqClient } from './msgq-client.js';

/** Linux errno numbers the driver returns besides the RM's (asm-generic/errno*.h). */
export const ERRNO = { EINVAL: 22, ENOMEM: 12, EIO: 5, ETIMEDOUT: 110 } as const;

/** kmalloc's smallest size class (mm/slab_common.c kmalloc-8): a reply buffer is at least this big. */
const SLAB_OBJECT_BYTES_MIN = 8;
export const POISON_FREE = 0x6b;

/** A reply's data as Linux's heap holds it: `size` bytes of reply inside a larger slab object. */
export class ReplyBuffer {
  private readonly object: Uint8Array;

  constructor(
    readonly data: Uint8Array,
    staleByte: number = POISON_FREE,
  ) {
    this.object = new Uint8Array(Math.max(SLAB_OBJECT_BYTES_MIN, data.length + 8)).fill(staleByte);
    this.object.set(data);
  }

  get size(): number {
    return this.data.length;
  }

  /** `le32_to_cpu(*(__le32 *)resp)`: four bytes from the start of the object, checked or not. */
  readLe32(): { readonly value: number; readonly bytesBeyondReply: number } {
    const o = this.object;
    return { value: (o[0]! | (o[1]! << 8) | (o[2]! << 16) | (o[3]! << 24)) >>> 0, bytesBeyondReply: Math.max(0, 4 - this.data.length) };
  }
}

export interface GhRmCallResult {
  /** 0 or a negative errno. */
  readonly ret: number;
  /** The reply's data (OK replies with data only; Linux's NULL otherwise). */
  readonly resp: ReplyBuffer | null;
}

/** What rsc-mgr-rpc.ts calls: `struct gh_rm *rm` reduced to gh_rm_call. */
export interface GhRmPort {
  call(messageId: number, req: Uint8Array): Promise<GhRmCallResult>;
}

/** The driver's view of the RM: one `gh_rm_call`, and the bytes stale heap memory holds. */
export class GhRm implements GhRmPort {
  constructor(
    private readonly msgq: MsgqClient,
    private readonly staleByte: number = POISON_FREE,
  ) {}

  /** gh_rm_call(rm, message_id, req, req_size, resp_buf, resp_buf_size). */
  async call(messageId: number, req: Uint8Array): Promise<GhRmCallResult> {
    const o = await this.msgq.call(messageId, req);
    if (o.kind === 'timeout') return { ret: -ERRNO.ETIMEDOUT, resp: null };
    if (o.kind === 'short_reply') return { ret: -ERRNO.EIO, resp: null };
    const ret = linuxErrnoOf(o.reply.rmError);
    if (ret !== 0) return { ret, resp: null };
    return { ret: 0, resp: o.reply.data.length === 0 ? null : new ReplyBuffer(o.reply.data, this.staleByte) };
  }

  close(): void {
    this.msgq.close();
  }
}
