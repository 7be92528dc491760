"""Caller identity and channels.

Every hypmesh call names its caller in the request metadata ``x-hypmesh-caller-vmid``, in one
spelling only: decimal without sign or leading zeros, 0..65535 (README "Calling the core";
packages/rpc/src/caller.ts). HOST and HLOS are VMID 3.

``connect`` returns a channel whose interceptor adds the header to every call (unary and
streaming) that does not already carry one, so a single channel can act as HOST by default and as
a guest for one call (``metadata=caller_metadata(0x80)``).

With mTLS (``connect(..., tls_cert=, tls_key=, tls_ca=)``, README "Security") the caller is the
client certificate's ``spiffe://hypmesh/vmid/<n>`` URI: no header is added by default, and one
that disagrees with the certificate is refused PERMISSION_DENIED.
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


_DEFAULT: Any = object()
"""``caller_vmid`` not given: HOST in plaintext, none (the certificate's) with mTLS."""


def stub(stub_class: Callable[[grpc.Channel], Any], address: str, caller_vmid: Optional[int] = _DEFAULT, **tls: Optional[str]) -> Any:
    """A generated stub (e.g. ``core_service_pb2_grpc.CoreServiceStub``) on ``connect(address, caller_vmid, **tls)``."""
    return stub_class(connect(address, caller_vmid, **tls))


def tls_credentials(tls_cert: str, tls_key: str, tls_ca: str) -> grpc.ChannelCredentials:
    """mTLS channel credentials from PEM files: the client certificate and its key (whose URI SAN
    names the caller), and the CA the services' certificates must chain to (README "Security";
    scripts/make-test-ca.sh makes a test set). OSError naming the file if one cannot be read."""
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(root_certificates=read(tls_ca), private_key=read(tls_key), certificate_chain=read(tls_cert))


def connect(
    address: str,
    caller_vmid: Optional[int] = _DEFAULT,
    *,
    tls_cert: Optional[str] = None,
    tls_key: Optional[str] = None,
    tls_ca: Optional[str] = None,
) -> grpc.Channel:
    """A channel to ``address`` (host:port) whose calls name ``caller_vmid``.

    Plaintext unless ``tls_cert``, ``tls_key`` and ``tls_ca`` are given (all three, or ValueError):
    then mTLS, and the caller is the certificate's (``caller_vmid`` defaults to no header; one given
    must agree with the certificate, except for the VMM's and the RM's certificates, which may act
    for guests). Plaintext identity is declared: insecure local use only. ``caller_vmid=None`` adds
    no header (in plaintext each call must then carry its own, or the service answers
    INVALID_ARGUMENT with a BadRequest naming the header).
    """
    files = (tls_cert, tls_key, tls_ca)
    if any(f is not None for f in files) and not all(f is not None for f in files):
        raise ValueError("mTLS needs tls_cert, tls_key and tls_ca together")
    secure = tls_cert is not None
    if caller_vmid is _DEFAULT:
        caller_vmid = None if secure else HOST
    if secure:
        channel = grpc.secure_channel(address, tls_credentials(tls_cert, tls_key, tls_ca))  # type: ignore[arg-type]
    else:
        channel = grpc.insecure_channel(address)
    if caller_vmid is None:
        return channel
    return grpc.intercept_channel(channel, CallerInterceptor(caller_vmid))
