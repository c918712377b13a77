package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/doorstep/doorstep/pkg/grpcx"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Expected failures never surface as INTERNAL, and wrapped sentinels keep their code and message.
func TestToStatus(t *testing.T) {
	s := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("round haixin-2026-03-02-am: %w", dispatch.ErrNotFound), codes.NotFound, "round haixin-2026-03-02-am: not found"},
		{fmt.Errorf("%w haixin-2026-03-02-am: no on-duty courier serves building 7", dispatch.ErrCannotPlan), codes.FailedPrecondition,
			"cannot plan round haixin-2026-03-02-am: no on-duty courier serves building 7"},
		{fmt.Errorf("%w: compound haixin", dispatch.ErrNoOpenRound), codes.FailedPrecondition, "no open round: compound haixin"},
		{fmt.Errorf("%w: request_id r1", dispatch.ErrRequestConflict), codes.AlreadyExists, ""},
		{fmt.Errorf("%w: GetParcel p: boom", dispatch.ErrPeerUnavailable), codes.Unavailable, ""},
		{fmt.Errorf("%w: date", dispatch.ErrInvalid), codes.InvalidArgument, ""},
		{fmt.Errorf("%w: round haixin-2026-03-02-am is open, not planned yet", dispatch.ErrIllegalTransition), codes.FailedPrecondition,
			"illegal transition: round haixin-2026-03-02-am is open, not planned yet"},
		{fmt.Errorf("%w: courier haixin-courier-03 in round haixin-2026-03-02-am", dispatch.ErrOffDuty), codes.FailedPrecondition, ""},
		{fmt.Errorf("check in: %w", &dispatch.FieldError{Field: "shortages[0].item_id", Reason: "parcel p has no item x"}),
			codes.InvalidArgument, "invalid request: shortages[0].item_id: parcel p has no item x"},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{fmt.Errorf("query: %w", context.Canceled), codes.Canceled, ""},
		{fmt.Errorf("connection reset"), codes.Internal, "internal error"},
	}
	for _, tc := range tests {
		st := status.Convert(s.toStatus(context.Background(), tc.err))
		if st.Code() != tc.code || tc.msg != "" && st.Message() != tc.msg {
			t.Errorf("toStatus(%v) = %s %q, want %s %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
		var fe *dispatch.FieldError
		if errors.As(tc.err, &fe) && grpcx.FieldViolations(st.Err())[fe.Field] != fe.Reason {
			t.Errorf("toStatus(%v) does not name %s", tc.err, fe.Field)
		}
	}
}

// A method missing from the policy is refused to everyone, so every RPC of the service must be in
// it; and nothing else is.
func TestPolicyCoversEveryRPC(t *testing.T) {
	desc := dispatchv1.DispatchService_ServiceDesc
	for _, m := range desc.Methods {
		name := "/" + desc.ServiceName + "/" + m.MethodName
		if len(Policy[name]) == 0 {
			t.Errorf("%s is not in the policy", name)
		}
	}
	if len(Policy) != len(desc.Methods)+len(desc.Streams) {
		t.Errorf("policy names %d methods, the service has %d", len(Policy), len(desc.Methods)+len(desc.Streams))
	}
}
