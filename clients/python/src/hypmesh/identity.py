"""Caller identity and channels.

Every hypmesh call names its caller in the request metadata ``x-hypmesh-caller-vmid``, in one
spelling only: decimal without sign or leading zeros, 0..65535 (README "Calling the core";
packages/rpc/src/caller.ts). HOST and HLOS are VMID 3.

``connect`` returns a channel whose interceptor adds the header to every call (unary and
streaming) that does not already carry one, so a single channel can act as HOST by default and as
a guest for one call (``metadata=caller_metadata(0x80)``).
"""

from __future__ import annotations

import collections
import re
from typing import Any, Callable, Optional, Sequence, Tuple

import grpc

CALLER_VMID_KEY = "x-hypmesh-caller-vmid"
HOST = 3
"""HOST (pKVM) and HLOS (the RM's name for the host VM) are the same VMID."""
HLOS = 3
VMID_MAX = 0xFFFF

_VMID_TEXT = re.compile(r"^(?:0|[1-9][0-9]{0,4})$")

Metadata = Sequence[Tuple[str, Any]]


def caller_text(vmid: int) -> str:
    """The one spelling the services accept for ``vmid``; ValueError for anything else."""
    if isinstance(vmid, bool) or not isinstance(vmid, int) or not 0 <= vmid <= VMID_MAX:
        raise ValueError(f"caller VMID must be an int in 0..{VMID_MAX}, got {vmid!r}")
    text = str(vmid)
    assert _VMID_TEXT.match(text)
    return text


def caller_metadata(vmid: int) -> Tuple[Tuple[str, str], ...]:
    """Call metadata naming ``vmid`` as the caller (pass as ``metadata=`` to any stub method)."""
    return ((CALLER_VMID_KEY, caller_text(vmid)),)


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class CallerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``x-hypmesh-caller-vmid: <vmid>`` to each call that does not name a caller itself."""

    def __init__(self, vmid: int) -> None:
        self._header = (CALLER_VMID_KEY, caller_text(vmid))

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(d.metadata or ())
        if not any(k == CALLER_VMID_KEY for k, _ in metadata):
            metadata.append(self._header)
        return _Details(
            d.method,
            d.timeout,
            metadata,
            d.credentials,
            getattr(d, "wait_for_ready", None),
            getattr(d, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def stub(stub_class: Callable[[grpc.Channel], Any], address: str, caller_vmid: Optional[int] = HOST) -> Any:
    """A generated stub (e.g. ``core_service_pb2_grpc.CoreServiceStub``) on ``connect(address, caller_vmid)``."""
    return stub_class(connect(address, caller_vmid))


def connect(address: str, caller_vmid: Optional[int] = HOST) -> grpc.Channel:
    """An insecure channel to ``address`` (host:port) whose calls name ``caller_vmid``.

    ``caller_vmid=None`` adds no header (each call must carry its own, or the service answers
    INVALID_ARGUMENT with a BadRequest naming the header). The services speak plain gRPC on
    loopback (no TLS yet, issue 11 item 5).
    """
    channel = grpc.insecure_channel(address)
    if caller_vmid is None:
        return channel
    return grpc.intercept_channel(channel, CallerInterceptor(caller_vmid))
