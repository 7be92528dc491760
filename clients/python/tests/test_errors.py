"""decode_error on the shapes a running system does not produce on demand: an ErrorInfo alone (an
admission refusal), an outage with the domain's ErrorDetail beside it, a bare status, and a
trailer whose message disagrees with the call's (grpcio-status refuses it; the details still count)."""

import grpc
from google.rpc import error_details_pb2, status_pb2

import hypmesh
from hypmesh.common.v1 import error_detail_pb2


class FakeCall(grpc.RpcError):
    def __init__(self, code, message, details=(), trailer_message=None):
        self._code, self._message = code, message
        self._metadata = ()
        if details or trailer_message is not None:
            st = status_pb2.Status(code=code.value[0], message=message if trailer_message is None else trailer_message)
            for d in details:
                st.details.add().Pack(d)
            self._metadata = (("grpc-status-details-bin", st.SerializeToString()),)

    def code(self):
        return self._code

    def details(self):
        return self._message

    def trailing_metadata(self):
        return self._metadata


def test_error_info_alone_is_an_admission_refusal():
    info = error_details_pb2.ErrorInfo(reason="quota_address_spaces", domain="admission.hypmesh", metadata={"limit": "4", "held": "4"})
    e = hypmesh.decode_error(FakeCall(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota_address_spaces: 4 of 4 held", [info]))
    assert (e.grpc_code, e.domain, e.code_name, e.rule, e.metadata["limit"]) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "admission.hypmesh", "quota_address_spaces", "quota_address_spaces", "4")
    assert e.errno is None and e.rm_error is None


def test_an_outage_keeps_the_domain_error_and_names_the_dependency():
    info = error_details_pb2.ErrorInfo(reason="DEPENDENCY_UNAVAILABLE", domain="hypmesh", metadata={"dependency": "core", "rule": "core_grpc_unavailable"})
    detail = error_detail_pb2.ErrorDetail(domain="rm", code_name="NORESOURCE", code=2, rule="core_grpc_unavailable", linux_errno_name="ENODEV", linux_errno=19)
    e = hypmesh.decode_error(FakeCall(grpc.StatusCode.UNAVAILABLE, "core is unreachable", [info, detail]))
    assert (e.domain, e.rm_error, e.errno_name, e.reason, e.metadata["dependency"]) == ("rm", ("NORESOURCE", 2), "ENODEV", "DEPENDENCY_UNAVAILABLE", "core")


def test_a_bare_status_has_code_and_message_only():
    e = hypmesh.decode_error(FakeCall(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert (e.grpc_code, e.message, e.domain, e.code_name, e.field_violations) == (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", "", "", [])


def test_a_trailer_that_disagrees_with_the_call_still_gives_its_details():
    bad = error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field="pfn", description="too big")])
    e = hypmesh.decode_error(FakeCall(grpc.StatusCode.INVALID_ARGUMENT, "rewritten by a proxy", [bad], trailer_message="pfn: too big"))
    assert [(v.field, v.description) for v in e.field_violations] == [("pfn", "too big")]
    assert e.message == "pfn: too big"
