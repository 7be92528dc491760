"""Every failed hypmesh call as one exception type, ``HypmeshError``.

A refused call's status carries, in the ``grpc-status-details-bin`` trailer, a google.rpc.Status
whose details are google.protobuf.Any messages (README "Errors"; packages/rpc/src/status.ts). A
client meets these shapes:

1. a domain error: ``hypmesh.common.v1.ErrorDetail`` (domain errno / rmi / rm / vmm, the code's
   name and number, the rule, RMI index and x0 and output registers, the Linux errno of an RM
   error) and a ``google.rpc.ErrorInfo``;
2. a malformed request: ``google.rpc.BadRequest`` naming each field;
3. an ErrorInfo alone: admission refusals (domain ``admission.hypmesh``, reason = the quota rule)
   and dependency outages (reason ``DEPENDENCY_UNAVAILABLE``, ``metadata["dependency"]``, possibly
   with the domain's ErrorDetail beside it);
4. a bare status: code and message only (PERMISSION_DENIED for a caller the RPC does not allow,
   INTERNAL, or anything grpc itself produced: UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED).

``decode_error`` turns any of them into a HypmeshError. The google.rpc messages come from
googleapis-common-protos and the trailer is read by grpcio-status, as for any gRPC service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from hypmesh.common.v1 import error_detail_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


# eq=False: an exception compares and hashes by identity, as every other exception does.
@dataclass(eq=False)
class HypmeshError(Exception):
    """A failed call. ``domain`` is "errno", "rmi", "rm", "vmm" for a domain error, the ErrorInfo
    domain ("admission.hypmesh", "hypmesh" for an outage) when only ErrorInfo came, and "" for a
    BadRequest or a bare status."""

    grpc_code: grpc.StatusCode
    message: str
    domain: str = ""
    code_name: str = ""
    """The spec's name: "EPERM", "RMI_ERROR_INPUT", "HANDLE_INVALID"; else ErrorInfo.reason."""
    code: int = 0
    """The spec's number: the positive errno, the RMI status, or the RM error (u32 read as int32)."""
    rule: str = ""
    rmi_index: int = 0
    rmi_x0: int = 0
    outputs: Dict[str, int] = field(default_factory=dict)
    linux_errno_name: str = ""
    linux_errno: int = 0
    reason: str = ""
    """ErrorInfo.reason (the code name, or DEPENDENCY_UNAVAILABLE, or an admission rule)."""
    info_domain: str = ""
    """ErrorInfo.domain: errno.hypmesh, rmi.hypmesh, rm.hypmesh, vmm.hypmesh, admission.hypmesh, hypmesh."""
    metadata: Dict[str, str] = field(default_factory=dict)
    field_violations: List[FieldViolation] = field(default_factory=list)

    def __post_init__(self) -> None:
        Exception.__init__(self, str(self))

    def __str__(self) -> str:
        what = f" {self.domain} {self.code_name}" if self.code_name else ""
        rule = f" ({self.rule})" if self.rule else ""
        return f"{self.grpc_code.name}{what}{rule}: {self.message}"

    @property
    def errno(self) -> Optional[int]:
        """The Linux errno (positive): the core's errno, the VMM's ioctl errno, or for an RM error
        the errno the Linux driver returns for it. None for RMI and non-domain errors."""
        if self.domain in ("errno", "vmm"):
            return self.code
        if self.domain == "rm":
            return self.linux_errno
        return None

    @property
    def errno_name(self) -> Optional[str]:
        if self.domain in ("errno", "vmm"):
            return self.code_name
        if self.domain == "rm":
            return self.linux_errno_name
        return None

    @property
    def rm_error(self) -> Optional[Tuple[str, int]]:
        """(name, u32 code) of an RM error (gunyah-rm.md §1.5), else None."""
        return (self.code_name, self.code & 0xFFFFFFFF) if self.domain == "rm" else None

    @property
    def rmi_status(self) -> Optional[Tuple[str, int]]:
        """(name, status number) of an RMI error (stage2-models.md §B1), else None."""
        return (self.code_name, self.code) if self.domain == "rmi" else None


def _status_of(e: grpc.RpcError) -> Optional[status_pb2.Status]:
    try:
        return rpc_status.from_call(e)  # type: ignore[arg-type]
    except ValueError:
        # grpcio-status insists that the trailer agree with the call's own code and message; a
        # proxy may rewrite the message. The details are still the service's: read them directly.
        for key, value in e.trailing_metadata() or ():  # type: ignore[attr-defined]
            if key == STATUS_DETAILS_KEY:
                return status_pb2.Status.FromString(value)
        return None


def decode_error(e: grpc.RpcError) -> HypmeshError:
    """The one decoder: any grpc.RpcError of a hypmesh call (or of the channel) → HypmeshError."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    message = (e.details() if hasattr(e, "details") else None) or str(e)  # type: ignore[attr-defined]
    err = HypmeshError(grpc_code=code, message=message)
    status = _status_of(e) if hasattr(e, "trailing_metadata") else None
    if status is None:
        return err
    err.message = status.message or message
    detail = error_detail_pb2.ErrorDetail()
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    for any_ in status.details:
        if any_.Is(detail.DESCRIPTOR):
            any_.Unpack(detail)
            err.domain = detail.domain
            err.code_name = detail.code_name
            err.code = detail.code
            err.rule = detail.rule
            err.rmi_index = detail.rmi_index
            err.rmi_x0 = detail.rmi_x0
            err.outputs = {o.name: o.value for o in detail.outputs}
            err.linux_errno_name = detail.linux_errno_name
            err.linux_errno = detail.linux_errno
        elif any_.Is(info.DESCRIPTOR):
            any_.Unpack(info)
            err.reason = info.reason
            err.info_domain = info.domain
            err.metadata = dict(info.metadata)
        elif any_.Is(bad.DESCRIPTOR):
            any_.Unpack(bad)
            err.field_violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    if not err.domain and err.info_domain:
        # ErrorInfo alone (admission, outage): its domain and reason are what there is to branch on.
        err.domain = err.info_domain
        err.code_name = err.reason
        err.rule = err.metadata.get("rule", err.reason)
    elif not err.rule:
        err.rule = err.metadata.get("rule", "")
    err.__post_init__()
    return err


def call(method, request, **kwargs):
    """``method(request, **kwargs)``, raising HypmeshError (chained to the RpcError) on failure."""
    try:
        return method(request, **kwargs)
    except grpc.RpcError as e:
        raise decode_error(e) from e
