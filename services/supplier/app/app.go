// Package app wires the supplier service: PostgreSQL schema "supplier", the outbox relay to
// JetStream and the doorstep.supplier.v1.SupplierService gRPC server. It is not internal because
// the dev stack runs every service in one process and starts this one through Run.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/servicekit"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/grpcapi"
	"github.com/doorstep/doorstep/services/supplier/internal/postgres"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"golang.org/x/sync/errgroup"
)

// Config is the supplier service's configuration.
type Config struct {
	Port        int    `env:"SUPPLIER_PORT" envDefault:"50052"`
	DatabaseURL string `env:"DATABASE_URL"`
	NATSURL     string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// MetricsPort serves Prometheus metrics (outbox backlog, publish rate, consumer lag, dead
	// letters) on /metrics; 0 turns them off.
	MetricsPort int `env:"SUPPLIER_METRICS_PORT" envDefault:"9052"`
	// StreamReplicas of the event streams this service provisions (3 on a JetStream cluster).
	StreamReplicas int `env:"NATS_STREAM_REPLICAS" envDefault:"1"`

	Listener net.Listener     `env:"-"` // when set (tests, dev stack) used instead of Port
	Now      func() time.Time `env:"-"` // nil means time.Now; tests inject a clock
}

// ConfigFromEnv reads Config from the environment.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	if err := env.Parse(&cfg); err != nil {
		return Config{}, fmt.Errorf("supplier config: %w", err)
	}
	return cfg, nil
}

// Run serves until ctx is done, then stops accepting calls, drains those in flight, stops the
// relay and closes the connections.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "supplier")
	kit, err := servicekit.Open(ctx, servicekit.Options{
		Name:        "supplier",
		Schema:      "supplier",
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
	supplierv1.RegisterSupplierServiceServer(srv, &grpcapi.Server{
		Svc: &supply.Service{Repo: &postgres.Repo{Pool: kit.Pool}, Now: cfg.Now},
		Log: log,
	})
	log.Info("supplier service listening", "addr", lis.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, lis) })
	g.Go(func() error { return kit.Relay().Run(gctx) })
	g.Go(func() error { return kit.ServeMetrics(gctx, cfg.MetricsPort) })
	return g.Wait()
}
