package hypmesh

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	commonv1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/common/v1"
)

// Decode on the shapes a running system does not produce on demand: an ErrorInfo alone (an
// admission refusal), an outage with the domain's ErrorDetail beside it, a bare status, and an
// error that is not a status at all.

func withDetails(t *testing.T, c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	t.Helper()
	st, err := status.New(c, msg).WithDetails(details...)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestErrorInfoAloneIsAnAdmissionRefusal(t *testing.T) {
	e := Decode(withDetails(t, codes.ResourceExhausted, "quota_address_spaces: 4 of 4 held",
		&errdetails.ErrorInfo{Reason: "quota_address_spaces", Domain: "admission.hypmesh", Metadata: map[string]string{"limit": "4"}}))
	if e.Code != codes.ResourceExhausted || e.Domain != "admission.hypmesh" || e.CodeName != "quota_address_spaces" || e.Rule != "quota_address_spaces" || e.Metadata["limit"] != "4" {
		t.Fatalf("%+v", e)
	}
	if _, _, ok := e.Errno(); ok {
		t.Fatal("an admission refusal has no errno")
	}
}

func TestAnOutageKeepsTheDomainErrorAndNamesTheDependency(t *testing.T) {
	e := Decode(withDetails(t, codes.Unavailable, "core is unreachable",
		&errdetails.ErrorInfo{Reason: "DEPENDENCY_UNAVAILABLE", Domain: "hypmesh", Metadata: map[string]string{"dependency": "core"}},
		&commonv1.ErrorDetail{Domain: "rm", CodeName: "NORESOURCE", Code: 2, Rule: "core_grpc_unavailable", LinuxErrnoName: "ENODEV", LinuxErrno: 19}))
	name, code, ok := e.RmError()
	if !ok || name != "NORESOURCE" || code != 2 || e.Reason != "DEPENDENCY_UNAVAILABLE" || e.Metadata["dependency"] != "core" || e.Rule != "core_grpc_unavailable" {
		t.Fatalf("%+v", e)
	}
}

func TestBareStatusAndNonStatusErrors(t *testing.T) {
	e := Decode(status.Error(codes.Unavailable, "connection refused"))
	if e.Code != codes.Unavailable || e.Message != "connection refused" || e.Domain != "" || e.CodeName != "" || e.FieldViolations != nil {
		t.Fatalf("%+v", e)
	}
	plain := errors.New("boom")
	if e := Decode(plain); e.Code != codes.Unknown || !errors.Is(e, plain) {
		t.Fatalf("%+v", e)
	}
	if Decode(nil) != nil {
		t.Fatal("Decode(nil) is not nil")
	}
	if again := Decode(e); again != e {
		t.Fatal("Decode of an *Error is not itself")
	}
}
