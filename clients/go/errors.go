package hypmesh

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/common/v1"
)

// FieldViolation is one field a google.rpc.BadRequest names.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is every failed hypmesh call (README "Errors"; packages/rpc/src/status.ts). A status
// carries, in the grpc-status-details-bin trailer, one of:
//
//  1. a domain error: hypmesh.common.v1.ErrorDetail (domain errno / rmi / rm / vmm, the code's
//     name and number, the rule, RMI index, x0 and outputs, an RM error's Linux errno) and a
//     google.rpc.ErrorInfo;
//  2. a malformed request: google.rpc.BadRequest naming each field;
//  3. an ErrorInfo alone: admission refusals (domain admission.hypmesh) and dependency outages
//     (reason DEPENDENCY_UNAVAILABLE, Metadata["dependency"], maybe with the domain's ErrorDetail);
//  4. a bare status: code and message (PERMISSION_DENIED for a caller the RPC does not allow,
//     INTERNAL, or what gRPC itself produced: UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED).
//
// Domain is "errno", "rmi", "rm" or "vmm" for a domain error, the ErrorInfo domain when only an
// ErrorInfo came, and "" for a BadRequest or a bare status.
type Error struct {
	Code     codes.Code
	Message  string
	Domain   string
	CodeName string // the spec's name: EPERM, RMI_ERROR_INPUT, HANDLE_INVALID; else ErrorInfo.Reason
	Number   int32  // the positive errno, the RMI status, or the RM error (u32 read as int32)
	Rule     string
	RmiIndex uint32
	RmiX0    uint64
	Outputs  map[string]uint64
	// An RM error's errno as the Linux driver returns it (gunyah-rm.md §1.5).
	LinuxErrnoName  string
	LinuxErrno      int32
	Reason          string // ErrorInfo.reason
	InfoDomain      string // ErrorInfo.domain
	Metadata        map[string]string
	FieldViolations []FieldViolation
	cause           error
}

func (e *Error) Error() string {
	what, rule := "", ""
	if e.CodeName != "" {
		what = " " + e.Domain + " " + e.CodeName
	}
	if e.Rule != "" {
		rule = " (" + e.Rule + ")"
	}
	return fmt.Sprintf("%s%s%s: %s", e.Code, what, rule, e.Message)
}

// Unwrap gives the gRPC status error it was decoded from.
func (e *Error) Unwrap() error { return e.cause }

// Errno is the Linux errno (positive) of an errno, VMM or RM error (for an RM error, the errno the
// Linux driver returns for it), and false for RMI and non-domain errors.
func (e *Error) Errno() (string, int32, bool) {
	switch e.Domain {
	case "errno", "vmm":
		return e.CodeName, e.Number, true
	case "rm":
		return e.LinuxErrnoName, e.LinuxErrno, true
	}
	return "", 0, false
}

// RmError is an RM error's name and u32 code (gunyah-rm.md §1.5).
func (e *Error) RmError() (string, uint32, bool) {
	if e.Domain != "rm" {
		return "", 0, false
	}
	return e.CodeName, uint32(e.Number), true
}

// RmiStatus is an RMI error's name and status number (stage2-models.md §B1).
func (e *Error) RmiStatus() (string, int32, bool) {
	if e.Domain != "rmi" {
		return "", 0, false
	}
	return e.CodeName, e.Number, true
}

// Decode turns any error of a hypmesh call into an *Error (nil for nil). An error that is not a
// gRPC status becomes codes.Unknown with its text.
func Decode(err error) *Error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	st, _ := status.FromError(err)
	e := &Error{Code: st.Code(), Message: st.Message(), cause: err}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *commonv1.ErrorDetail:
			e.Domain, e.CodeName, e.Number, e.Rule = d.GetDomain(), d.GetCodeName(), d.GetCode(), d.GetRule()
			e.RmiIndex, e.RmiX0 = d.GetRmiIndex(), d.GetRmiX0()
			e.LinuxErrnoName, e.LinuxErrno = d.GetLinuxErrnoName(), d.GetLinuxErrno()
			if len(d.GetOutputs()) > 0 {
				e.Outputs = map[string]uint64{}
				for _, o := range d.GetOutputs() {
					e.Outputs[o.GetName()] = o.GetValue()
				}
			}
		case *errdetails.ErrorInfo:
			e.Reason, e.InfoDomain, e.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		}
	}
	if e.Domain == "" && e.InfoDomain != "" {
		// ErrorInfo alone (admission, outage): its domain and reason are what there is to branch on.
		e.Domain, e.CodeName = e.InfoDomain, e.Reason
		if e.Rule = e.Metadata["rule"]; e.Rule == "" {
			e.Rule = e.Reason
		}
	} else if e.Rule == "" {
		e.Rule = e.Metadata["rule"]
	}
	return e
}
