"""The RM's byte face: msgq fragments built and read by hand (docs/gunyah-rm.md §1).

``RmService.Exchange`` carries a caller's pair of message queues as one bidirectional stream of raw
msgq messages (README "The resource manager"). Each fragment is an 8-byte header and at most 232
payload bytes (§1.2, §1.3), little-endian:

    byte 0      0x21 (API version 1, header length 2 words)
    byte 1      bits 1:0 type (0 continuation, 1 request, 2 reply, 3 notification),
                bits 7:2 how many continuation fragments follow the first (0..62)
    bytes 2..3  sequence number (u16)
    bytes 4..7  message ID (u32)

A reply's payload is ``[err u32][data]`` (§1.4); ``err`` is an RM error code (§1.5).
"""

from __future__ import annotations

import queue
import struct
import threading
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import grpc

from hypmesh.identity import caller_metadata
from hypmesh.rm.v1 import msgq_pb2, rm_service_pb2_grpc

HEADER_BYTE0 = 0x21
HEADER_SIZE = 8
MESSAGE_SIZE = 240
"""RM_RPC_MESSAGE_SIZE (§1.1)."""
FRAGMENT_PAYLOAD_MAX = MESSAGE_SIZE - HEADER_SIZE
CONTINUATIONS_MAX = 62

TYPE_CONTINUATION, TYPE_REQUEST, TYPE_REPLY, TYPE_NOTIFICATION = 0, 1, 2, 3

# Message IDs used by the clients and their tests (§2.1; the full table is in the RM proto's
# (hypmesh.rm.v1.message_id) option of each RPC).
MSG = {
    "MEM_QCOM_LOOKUP_SGL": 0x5100001A,
    "VM_ALLOCATE": 0x56000001,
    "VM_DEALLOCATE": 0x56000002,
    "VM_GET_STATE": 0x56000017,
    "VM_GET_VMID": 0x56000024,
}

# RM error codes (§1.5), u32.
RM_ERRORS: Dict[int, str] = {
    0x0: "OK",
    0xFFFFFFFF: "UNIMPLEMENTED",
    0x1: "NOMEM",
    0x2: "NORESOURCE",
    0x3: "DENIED",
    0x4: "MSG_INVALID",
    0x5: "BUSY",
    0x6: "ARGUMENT_INVALID",
    0x7: "HANDLE_INVALID",
    0x8: "VALIDATE_FAILED",
    0x9: "MAP_FAILED",
    0xA: "MEM_INVALID",
    0xB: "MEM_INUSE",
    0xC: "MEM_RELEASED",
    0xD: "VMID_INVALID",
    0xE: "LOOKUP_FAILED",
    0xF: "IRQ_INVALID",
    0x10: "IRQ_INUSE",
    0x11: "IRQ_RELEASED",
    0x12: "IN_USE",
    0x13: "IRQ_NOT_MAPPED",
    0x14: "VM_STATE",
}


@dataclass(frozen=True)
class Header:
    type: int
    continuations: int
    seq: int
    msg_id: int


def encode_header(h: Header) -> bytes:
    if not 0 <= h.type <= 3 or not 0 <= h.continuations <= CONTINUATIONS_MAX:
        raise ValueError(f"bad header {h}")
    return struct.pack("<BBHI", HEADER_BYTE0, h.type | h.continuations << 2, h.seq & 0xFFFF, h.msg_id & 0xFFFFFFFF)


def decode_header(fragment: bytes) -> Header:
    if len(fragment) < HEADER_SIZE or fragment[0] != HEADER_BYTE0:
        raise ValueError(f"not a msgq fragment: {fragment[:HEADER_SIZE].hex()}")
    _, b1, seq, msg_id = struct.unpack_from("<BBHI", fragment)
    return Header(type=b1 & 3, continuations=b1 >> 2, seq=seq, msg_id=msg_id)


def fragments(msg_type: int, msg_id: int, seq: int, payload: bytes) -> List[bytes]:
    """One RM message as its msgq fragments (§1.3): the first with the real type, the rest type 0
    repeating the ID, seq and continuation count; ceil(len / 232) - 1 continuations (0 if empty)."""
    chunks = [payload[i : i + FRAGMENT_PAYLOAD_MAX] for i in range(0, len(payload), FRAGMENT_PAYLOAD_MAX)] or [b""]
    continuations = len(chunks) - 1
    if continuations > CONTINUATIONS_MAX:
        raise ValueError(f"payload of {len(payload)} bytes needs {continuations} continuations (max {CONTINUATIONS_MAX})")
    return [
        encode_header(Header(msg_type if i == 0 else TYPE_CONTINUATION, continuations, seq, msg_id)) + chunk
        for i, chunk in enumerate(chunks)
    ]


def request_fragments(msg_id: int, seq: int, payload: bytes = b"") -> List[bytes]:
    return fragments(TYPE_REQUEST, msg_id, seq, payload)


# Payload pieces (§3.1): a list is u16 count, u16 reserved, then entries; the next list starts 4-aligned.
def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def vmid_req(vmid: int) -> bytes:
    """"vmid req" (§4.2): vmid u16, reserved u16."""
    return struct.pack("<HH", vmid, 0)


def acl_list(entries: Sequence[Tuple[int, int]]) -> bytes:
    """ACL list of (vmid, rights) with rights X=1, W=2, R=4."""
    return struct.pack("<HH", len(entries), 0) + b"".join(struct.pack("<HBB", v, r, 0) for v, r in entries)


def sgl_list(entries: Sequence[Tuple[int, int]]) -> bytes:
    """SGL list of (base, size) in bytes."""
    return struct.pack("<HH", len(entries), 0) + b"".join(struct.pack("<QQ", b, s) for b, s in entries)


def attr_list(entries: Sequence[Tuple[int, int]] = ()) -> bytes:
    return struct.pack("<HH", len(entries), 0) + b"".join(struct.pack("<HH", a, v) for a, v in entries)


@dataclass(frozen=True)
class Message:
    """A reassembled message from the RM."""

    type: int
    seq: int
    msg_id: int
    payload: bytes

    @property
    def error(self) -> int:
        """A reply's RM error code (§1.4)."""
        return struct.unpack_from("<I", self.payload)[0]

    @property
    def error_name(self) -> str:
        return RM_ERRORS.get(self.error, f"0x{self.error:x}")

    @property
    def data(self) -> bytes:
        """A reply's data after the error word."""
        return self.payload[4:]


class Reassembler:
    """Joins the RM's fragments into messages (§1.3, as Linux receives them: a new first fragment
    abandons a half-assembled message; a continuation that does not match is an error)."""

    def __init__(self) -> None:
        self._first: Optional[Header] = None
        self._parts: List[bytes] = []

    def push(self, fragment: bytes) -> Optional[Message]:
        h = decode_header(fragment)
        body = fragment[HEADER_SIZE:]
        if h.type != TYPE_CONTINUATION:
            self._first, self._parts = h, [body]
        else:
            f = self._first
            if f is None or (h.seq, h.msg_id, h.continuations) != (f.seq, f.msg_id, f.continuations):
                self._first, self._parts = None, []
                raise ValueError(f"continuation {h} matches no pending message")
            self._parts.append(body)
        f = self._first
        assert f is not None
        if len(self._parts) < f.continuations + 1:
            return None
        self._first = None
        return Message(f.type, f.seq, f.msg_id, b"".join(self._parts))


class Exchange:
    """One ``RmService.Exchange`` stream as caller ``vmid``: send requests as fragments, read
    replies matched by seq and msg_id; notifications (type 3) are kept in ``notifications``.

    Use as a context manager; ``send_raw`` writes any bytes (a fuzzer's, a captured trace's).
    """

    def __init__(self, channel: grpc.Channel, vmid: int, timeout: float = 10.0) -> None:
        self._requests: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._stub = rm_service_pb2_grpc.RmServiceStub(channel)
        self._call = self._stub.Exchange(self._iter(), metadata=caller_metadata(vmid))
        self._timeout = timeout
        self._seq = 0
        self._reassembler = Reassembler()
        self._messages: "queue.Queue[object]" = queue.Queue()
        self.notifications: List[Message] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _iter(self) -> Iterator[msgq_pb2.ExchangeRequest]:
        while True:
            fragment = self._requests.get()
            if fragment is None:
                return
            yield msgq_pb2.ExchangeRequest(fragment=fragment)

    def _read(self) -> None:
        try:
            for response in self._call:
                m = self._reassembler.push(response.fragment)
                if m is not None:
                    self._messages.put(m)
        except grpc.RpcError as e:
            self._messages.put(e)
        self._messages.put(None)

    def send_raw(self, fragment: bytes) -> None:
        self._requests.put(bytes(fragment))

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def request(self, msg_id: int, payload: bytes = b"") -> Message:
        """Sends one request (fragmented as needed) and returns its reply."""
        seq = self.next_seq()
        for f in request_fragments(msg_id, seq, payload):
            self.send_raw(f)
        return self.reply(seq, msg_id)

    def reply(self, seq: int, msg_id: int) -> Message:
        while True:
            try:
                m = self._messages.get(timeout=self._timeout)
            except queue.Empty:
                raise TimeoutError(f"no reply to seq {seq} msg 0x{msg_id:08x} within {self._timeout} s") from None
            if m is None:
                raise EOFError("the Exchange stream ended")
            if isinstance(m, grpc.RpcError):
                from hypmesh.errors import decode_error

                raise decode_error(m) from m
            assert isinstance(m, Message)
            if m.type == TYPE_NOTIFICATION:
                self.notifications.append(m)
            elif m.type == TYPE_REPLY and m.seq == seq and m.msg_id == msg_id:
                return m

    def close(self) -> Tuple[Tuple[str, str], ...]:
        """Half-closes the stream and returns its trailers (``x-hypmesh-rm-refusals``, ``-drops``)."""
        self._requests.put(None)
        self._reader.join(timeout=self._timeout)
        try:
            return tuple(self._call.trailing_metadata() or ())
        except grpc.RpcError:
            return ()

    def __enter__(self) -> "Exchange":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
