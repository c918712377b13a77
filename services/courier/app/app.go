// Package app wires the courier service together: database, broker, the routes consumer, the
// outbox relay, route-change announcements, idempotency-key pruning and the gRPC server with its
// authorization. It is not internal because the dev stack runs every service in one process and
// starts it through Run.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/servicekit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	"github.com/doorstep/doorstep/services/courier/internal/consumer"
	"github.com/doorstep/doorstep/services/courier/internal/grpcapi"
	"github.com/doorstep/doorstep/services/courier/internal/notify"
	"github.com/doorstep/doorstep/services/courier/internal/postgres"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"golang.org/x/sync/errgroup"
)

// Config is the courier service's configuration.
type Config struct {
	Port        int    `env:"COURIER_PORT" envDefault:"50054"`
	DatabaseURL string `env:"DATABASE_URL"`
	NATSURL     string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`

	// MetricsPort serves Prometheus metrics (outbox backlog, publish rate, consumer lag, dead
	// letters) on /metrics; 0 turns them off.
	MetricsPort int `env:"COURIER_METRICS_PORT" envDefault:"9054"`
	// StreamReplicas of the event streams this service provisions (3 on a JetStream cluster).
	StreamReplicas int `env:"NATS_STREAM_REPLICAS" envDefault:"1"`
	// PruneEvery is how often idempotency keys older than 48 hours are deleted; 0 means hourly.
	// Keys live at least 48 hours and at most that plus PruneEvery.
	PruneEvery time.Duration `env:"COURIER_PRUNE_EVERY" envDefault:"1h"`
	// WatchResync is how often a route watcher re-reads its route without being told of a
	// change (a net under announcements lost while the broker was away); 0 means 30 seconds.
	WatchResync time.Duration `env:"COURIER_WATCH_RESYNC" envDefault:"30s"`
	// AuthKey verifies the signed identity of every call (shared by all services, at least 32 bytes).
	AuthKey string `env:"DOORSTEP_AUTH_KEY"`
	// Listener, when set (tests, dev stack), is used instead of Port.
	Listener net.Listener `env:"-"`
	// Now is the clock, also the one identities are verified by (the gateway mints them by the
	// same one in the dev stack); nil means time.Now. Tests inject one.
	Now func() time.Time `env:"-"`
}

// ConfigFromEnv reads Config from the environment.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	if err := env.Parse(&cfg); err != nil {
		return cfg, fmt.Errorf("courier config: %w", err)
	}
	return cfg, nil
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "courier")
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), now)
	if err != nil {
		return err
	}
	kit, err := servicekit.Open(ctx, servicekit.Options{
		Name:        "courier",
		Schema:      "courier",
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
	store := postgres.New(kit.Pool)
	bus := &notify.Bus{NC: kit.NC, Log: log.With("component", "notify")}
	svc := &route.Service{Repo: store, Notifier: bus, Feed: bus, Resync: cfg.WatchResync, Now: now}
	routes := kit.Consumer(consumer.Purpose, consumer.Subjects, consumer.Routes(store, bus, now))

	log.Info("courier service starting", "addr", lis.Addr().String())
	g, ctx := errgroup.WithContext(ctx)
	srv := grpcx.NewServer(log, keys.ServerOptions(grpcapi.Policy)...)
	courierv1.RegisterCourierServiceServer(srv, grpcapi.New(svc, ctx.Done()))
	g.Go(func() error { return srv.Serve(ctx, lis) })
	g.Go(func() error { return kit.Relay().Run(ctx) })
	g.Go(func() error { return kit.ServeMetrics(ctx, cfg.MetricsPort) })
	g.Go(func() error { return routes.Run(ctx) })
	g.Go(func() error { return pruneKeys(ctx, svc, cfg.PruneEvery, log) })
	return g.Wait()
}

// pruneKeys deletes old idempotency keys now and then every period until ctx is done. Every
// replica does it; the deletes are idempotent, so they need no coordination.
func pruneKeys(ctx context.Context, svc *route.Service, every time.Duration, log *slog.Logger) error {
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := svc.PruneKeys(ctx); err != nil && ctx.Err() == nil {
			log.Warn("pruning request keys failed; will try again", "err", err)
		} else if n > 0 {
			log.Info("pruned request keys", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
