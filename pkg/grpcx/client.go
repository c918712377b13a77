package grpcx

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultTimeout bounds every outbound call that arrives without a deadline of its own.
const DefaultTimeout = 5 * time.Second

// retryPolicy retries calls the server never started (UNAVAILABLE). Every Doorstep mutation is
// idempotent or carries a request id, so a retry cannot apply a change twice.
const retryPolicy = `{
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Dial creates a client connection to target (host:port). Service-to-service traffic inside the
// compound's cluster is plaintext; TLS belongs to the mesh or ingress in production.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(retryPolicy),
		grpc.WithChainUnaryInterceptor(defaultDeadline),
		grpc.WithInitialWindowSize(staticWindow), grpc.WithInitialConnWindowSize(staticWindow),
	}, opts...)
	return grpc.NewClient(target, opts...)
}

func defaultDeadline(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
