package grpcx

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// A unary call without a deadline gets ServerTimeout; one with a deadline keeps its own.
func TestUnaryCallsAreBounded(t *testing.T) {
	var got time.Duration
	handler := func(ctx context.Context, _ any) (any, error) {
		d, ok := ctx.Deadline()
		if !ok {
			t.Fatal("handler ran without a deadline")
		}
		got = time.Until(d)
		return nil, nil
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/test/Call"}
	if _, err := boundUnary(context.Background(), nil, info, handler); err != nil {
		t.Fatal(err)
	}
	if got <= ServerTimeout-time.Second || got > ServerTimeout {
		t.Errorf("a call without a deadline got %s, want about %s", got, ServerTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := boundUnary(ctx, nil, info, handler); err != nil {
		t.Fatal(err)
	}
	if got > 2*time.Second {
		t.Errorf("a call's own 2 s deadline became %s", got)
	}
}
