"""hypmesh's Python client (README "Clients").

- ``connect(address, caller_vmid=3)``: a channel whose calls name their caller; ``stub(StubClass,
  address, caller_vmid=3)`` a generated stub on one; both take ``tls_cert=, tls_key=, tls_ca=``
  for mTLS, where the certificate names the caller (``tls_credentials`` is the credentials alone);
- ``decode_error`` / ``HypmeshError``: every error shape of every service as one exception;
- ``Vmm``, ``Rm``: typed helpers for the VM life cycle and parcels;
- ``hypmesh.msgq``: msgq fragments for the RM's byte face (``Exchange``).

The generated stubs are ``hypmesh.<core|rm|vmm|fault|common>.v1.*_pb2`` and ``*_pb2_grpc``.
"""

from hypmesh.errors import FieldViolation, HypmeshError, call, decode_error
from hypmesh.flows import RW, RWX, Bind, Rm, Session, Vmm
from hypmesh.identity import CALLER_VMID_KEY, HLOS, HOST, CallerInterceptor, caller_metadata, connect, stub, tls_credentials

__all__ = [
    "CALLER_VMID_KEY",
    "HLOS",
    "HOST",
    "RW",
    "RWX",
    "Bind",
    "CallerInterceptor",
    "FieldViolation",
    "HypmeshError",
    "Rm",
    "Session",
    "Vmm",
    "call",
    "caller_metadata",
    "connect",
    "decode_error",
    "stub",
    "tls_credentials",
]
