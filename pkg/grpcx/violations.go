package grpcx

import (
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Violations collects bad fields of a request. Err turns them into INVALID_ARGUMENT with a
// google.rpc.BadRequest detail, and a message that names every field for humans reading logs.
type Violations struct {
	list []*errdetails.BadRequest_FieldViolation
}

// Add records that field is wrong and why.
func (v *Violations) Add(field, why string) {
	v.list = append(v.list, &errdetails.BadRequest_FieldViolation{Field: field, Description: why})
}

// Check records a violation when ok is false.
func (v *Violations) Check(ok bool, field, why string) {
	if !ok {
		v.Add(field, why)
	}
}

// Required records a violation when s is empty.
func (v *Violations) Required(s, field string) {
	v.Check(strings.TrimSpace(s) != "", field, "is required")
}

// Any reports whether a violation was recorded.
func (v *Violations) Any() bool { return len(v.list) > 0 }

// Err is nil when nothing was recorded.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	parts := make([]string, len(v.list))
	for i, f := range v.list {
		parts[i] = f.Field + ": " + f.Description
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v.list}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// InvalidField is a one-violation INVALID_ARGUMENT error.
func InvalidField(field, why string) error {
	var v Violations
	v.Add(field, why)
	return v.Err()
}

// FieldViolations extracts the field violations of an error, for clients and tests. A field
// with more than one violation gets them all, joined with "; ".
func FieldViolations(err error) map[string]string {
	out := map[string]string{}
	st, ok := status.FromError(err)
	if !ok {
		return out
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, f := range br.GetFieldViolations() {
				if before, ok := out[f.GetField()]; ok {
					out[f.GetField()] = before + "; " + f.GetDescription()
					continue
				}
				out[f.GetField()] = f.GetDescription()
			}
		}
	}
	return out
}
