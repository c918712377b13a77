// Package grpcx is the one place Doorstep's gRPC servers and clients are set up: slog request
// logging, panic recovery, health, reflection and a deadline for unary calls that bring none on
// every server; a default deadline and retries of UNAVAILABLE on every client; and
// INVALID_ARGUMENT errors that name their fields.
package grpcx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// ServerTimeout bounds a unary call that arrives without a deadline (a client that sets none,
// such as grpcurl): database transactions that conflict are retried until the deadline
// (pgkit), so with one they are retried, never answered with the conflict. Long enough for the
// slowest call (a roster import, a round's plan); streams are not bounded. The handler's own
// calls to peers inherit what is left of it (Dial's DefaultTimeout fills in only a missing
// deadline), so such a caller may wait up to this long for a peer that does not answer.
const ServerTimeout = 30 * time.Second

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// staticWindow is the HTTP/2 flow-control window of every stream and connection, on both ends.
// Setting one turns off gRPC's bandwidth-delay estimation, which otherwise has each end send a
// window update and a ping, which the other acknowledges, after nearly every call when calls come
// one at a time (TestSpacedCallsSendNoPings: 20 pings each way over 20 calls): on Doorstep's
// small calls it never grows the window, only adds frames, system calls and wake-ups. In the
// PlaceOrder benchmark the benchmark process made 24 % fewer read and 14 % fewer write system
// calls without it, about 33 per order. 1 MB is 16 times gRPC's starting window and above any
// message the services usually send; a larger one still goes, a window at a time.
const staticWindow = 1 << 20

// NewServer builds a server with logging, recovery, a deadline for unary calls without one
// (ServerTimeout), health (all services SERVING once Serve runs) and reflection. Extra options come after these, so interceptors they chain (authorization) run
// inside logging and recovery.
func NewServer(log *slog.Logger, extra ...grpc.ServerOption) *Server {
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	panics := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			switch c {
			case codes.OK, codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.Canceled:
				return logging.LevelDebug
			case codes.Internal, codes.Unknown, codes.DataLoss:
				return logging.LevelError
			default:
				return logging.LevelWarn
			}
		}),
	}
	s := grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(logging.UnaryServerInterceptor(logger, logOpts...), recovery.UnaryServerInterceptor(panics),
			boundUnary),
		grpc.ChainStreamInterceptor(logging.StreamServerInterceptor(logger, logOpts...), recovery.StreamServerInterceptor(panics)),
		grpc.InitialWindowSize(staticWindow), grpc.InitialConnWindowSize(staticWindow),
	}, extra...)...)
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
	return &Server{Server: s, Health: h}
}

// Serve marks every registered service SERVING and serves on lis until ctx is done, then drains
// in-flight calls for up to 10 seconds.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	for name := range s.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("grpc serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		s.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// boundUnary gives a unary call without a deadline ServerTimeout.
func boundUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ServerTimeout)
		defer cancel()
	}
	return handler(ctx, req)
}
