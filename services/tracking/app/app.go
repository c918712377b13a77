// Package app wires the tracking service: its PostgreSQL schema, the timeline consumer and the
// gRPC server. cmd/trackingd and the dev stack both run it.
package app

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/servicekit"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/grpcapi"
	"github.com/doorstep/doorstep/services/tracking/internal/ingest"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"golang.org/x/sync/errgroup"
)

// Config is the tracking service's configuration.
type Config struct {
	Port        int    `env:"TRACKING_PORT" envDefault:"50055"`
	DatabaseURL string `env:"DATABASE_URL"`
	NATSURL     string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// MetricsPort serves Prometheus metrics (outbox backlog, publish rate, consumer lag, dead
	// letters) on /metrics; 0 turns them off.
	MetricsPort int `env:"TRACKING_METRICS_PORT" envDefault:"9055"`
	// StreamReplicas of the event streams this service provisions (3 on a JetStream cluster).
	StreamReplicas int `env:"NATS_STREAM_REPLICAS" envDefault:"1"`
	// Listener, when set (tests, dev stack), is used instead of Port.
	Listener net.Listener `env:"-"`
	// Now is unused so far (every time comes from the events) but kept for the shared contract.
	Now func() time.Time `env:"-"`
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() (Config, error) {
	return env.ParseAs[Config]()
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "tracking")
	kit, err := servicekit.Open(ctx, servicekit.Options{
		Name:        "tracking",
		Schema:      "tracking",
		DatabaseURL: cfg.DatabaseURL,
		NATSURL:     cfg.NATSURL,
		Migrations:  postgres.Migrations(), StreamReplicas: cfg.StreamReplicas,
		Log: log,
	})
	if err != nil {
		return err
	}
	defer kit.Close()

	lis, err := servicekit.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		return err
	}
	srv := grpcx.NewServer(log)
	trackingv1.RegisterTrackingServiceServer(srv, &grpcapi.Server{Timelines: &postgres.Store{Pool: kit.Pool}, Log: log})

	consumer := kit.Consumer("timeline", ingest.Subjects, ingest.Handler(log))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, lis) })
	// The tracking service publishes nothing today, but the relay keeps the shared contract: any
	// event it adds later goes out through the outbox.
	g.Go(func() error { return kit.Relay().Run(ctx) })
	g.Go(func() error { return kit.ServeMetrics(ctx, cfg.MetricsPort) })
	g.Go(func() error { return consumer.Run(ctx) })
	log.Info("tracking service started", "addr", lis.Addr().String())
	return g.Wait()
}
