package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/doorstep/doorstep/services/courier/internal/route"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("%w: courier c has no route yet", route.ErrNotFound), codes.NotFound},
		{fmt.Errorf("load: %w", fmt.Errorf("%w: parcel p is DELIVERED", route.ErrIllegalTransition)), codes.FailedPrecondition},
		{fmt.Errorf("%w: request_id r", route.ErrRequestReused), codes.AlreadyExists},
		{fmt.Errorf("%w: a note is required", route.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("%w: watch courier c: nats: connection closed", route.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("connection refused"), codes.Internal},
	}
	for _, tt := range tests {
		st := status.Convert(toStatus(tt.err))
		if st.Code() != tt.code {
			t.Errorf("toStatus(%v) = %s, want %s", tt.err, st.Code(), tt.code)
		}
		if st.Message() != tt.err.Error() {
			t.Errorf("toStatus(%v) message = %q, want the error's text", tt.err, st.Message())
		}
	}
}
