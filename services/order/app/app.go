// Package app wires the order service: configuration, the database and broker through
// servicekit, the supplier and dispatch clients (calling as the order service, for the person
// whose request it serves), the gRPC server with its authorization, the outbox relay, the parcel
// consumer, the pruning of old request keys and the campaign launcher.
// It is not internal because the dev stack runs every service in one process through Run.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/servicekit"
	"github.com/doorstep/doorstep/services/order/internal/consumer"
	"github.com/doorstep/doorstep/services/order/internal/dispatchclient"
	"github.com/doorstep/doorstep/services/order/internal/grpcapi"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/postgres"
	"github.com/doorstep/doorstep/services/order/internal/supplierclient"
	"golang.org/x/sync/errgroup"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
)

// Config is the order service's configuration.
type Config struct {
	Port         int    `env:"ORDER_PORT" envDefault:"50051"`
	DatabaseURL  string `env:"DATABASE_URL"`
	NATSURL      string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	SupplierAddr string `env:"SUPPLIER_ADDR" envDefault:"127.0.0.1:50052"`
	// DispatchAddr serves the site plan imports and notices are checked against, and withdraws
	// a cancelled parcel that failed at the door from the gate pool.
	DispatchAddr string `env:"DISPATCH_ADDR" envDefault:"127.0.0.1:50053"`
	// MetricsPort serves Prometheus metrics (outbox backlog, publish rate, consumer lag, dead
	// letters) on /metrics; 0 turns them off.
	MetricsPort int `env:"ORDER_METRICS_PORT" envDefault:"9051"`
	// StreamReplicas of the event streams this service provisions (3 on a JetStream cluster).
	StreamReplicas int `env:"NATS_STREAM_REPLICAS" envDefault:"1"`
	// PruneEvery is how often request keys older than order.KeepRequests (48 h) are deleted.
	PruneEvery time.Duration `env:"ORDER_PRUNE_EVERY" envDefault:"1h"`
	// LaunchEvery is how often the campaign launcher looks for packs still to make, besides being
	// woken by each launch: the net under a launch interrupted by a crash or made on a replica.
	LaunchEvery time.Duration `env:"ORDER_LAUNCH_EVERY" envDefault:"5s"`
	// AuthKey verifies the signed identity of every call and signs the order service's own calls
	// to its peers (shared by all services, at least 32 bytes).
	AuthKey string `env:"DOORSTEP_AUTH_KEY"`

	Listener net.Listener `env:"-"` // when set (tests, dev stack) used instead of Port
	// Now is the service's clock, by which identities are verified and minted too (the gateway's
	// clock in the dev stack); nil means time.Now; tests inject a clock.
	Now func() time.Time `env:"-"`
}

// ConfigFromEnv reads Config from the environment.
func ConfigFromEnv() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("order config: %w", err)
	}
	return cfg, nil
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "order")
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), cfg.Now)
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	kit, err := servicekit.Open(ctx, servicekit.Options{Name: "order", Schema: "orders", DatabaseURL: cfg.DatabaseURL,
		NATSURL: cfg.NATSURL, Migrations: postgres.Migrations(), StreamReplicas: cfg.StreamReplicas, Log: log})
	if err != nil {
		return err
	}
	defer kit.Close()

	// Calls to the peers carry the order service's own identity, naming the person it acts for.
	supConn, err := grpcx.Dial(cfg.SupplierAddr, keys.DialOption("order"))
	if err != nil {
		return fmt.Errorf("dial supplier %s: %w", cfg.SupplierAddr, err)
	}
	defer supConn.Close()
	dispConn, err := grpcx.Dial(cfg.DispatchAddr, keys.DialOption("order"))
	if err != nil {
		return fmt.Errorf("dial dispatch %s: %w", cfg.DispatchAddr, err)
	}
	defer dispConn.Close()

	store := postgres.New(kit.Pool, cfg.Now)
	svc := order.NewService(store, supplierclient.New(supplierv1.NewSupplierServiceClient(supConn)),
		dispatchclient.New(dispatchv1.NewDispatchServiceClient(dispConn)), cfg.Now, log)
	srv := grpcx.NewServer(log, keys.ServerOptions(grpcapi.Policy)...)
	orderv1.RegisterOrderServiceServer(srv, grpcapi.New(svc, log))
	lis, err := servicekit.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		return err
	}
	log.Info("order service listening", "addr", lis.Addr().String())

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, lis) })
	g.Go(func() error { return kit.Relay().Run(ctx) })
	g.Go(func() error { return kit.ServeMetrics(ctx, cfg.MetricsPort) })
	g.Go(func() error {
		return kit.Consumer(consumer.Purpose, consumer.Subjects, consumer.Handler(store)).Run(ctx)
	})
	g.Go(func() error { prune(ctx, svc, cfg.PruneEvery, log); return nil })
	g.Go(func() error { svc.RunLauncher(ctx, cmp.Or(cfg.LaunchEvery, 5*time.Second)); return nil })
	return g.Wait()
}

// prune deletes old request keys at start and then every interval until ctx is done. A failed
// round is logged and left to the next: the keys only take space.
func prune(ctx context.Context, svc *order.Service, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		switch n, err := svc.PruneRequests(ctx); {
		case err != nil && ctx.Err() == nil:
			log.Warn("prune request keys", "err", err)
		case n > 0:
			log.Info("pruned request keys", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
