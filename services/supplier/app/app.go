// Package app wires the supplier service: PostgreSQL schema "supplier", the outbox relay to
// JetStream, the doorstep.supplier.v1.SupplierService gRPC server with its authorization, the
// dispatch client for round times and the background jobs (reservation expiry, idempotency key
// pruning). It is not internal because
// the dev stack runs every service in one process and starts this one through Run.
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
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/grpcapi"
	"github.com/doorstep/doorstep/services/supplier/internal/postgres"
	"github.com/doorstep/doorstep/services/supplier/internal/schedule"
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
	// DispatchAddr is the dispatch service, which owns each compound's round times. Empty: use
	// the default rounds (am 09:00, pm 15:00) without asking.
	DispatchAddr string `env:"DISPATCH_ADDR" envDefault:"127.0.0.1:50053"`
	// ConfirmLead is the least time between a reservation and the cutoff of the round it is due
	// for; 0 means 30 minutes.
	ConfirmLead time.Duration `env:"SUPPLIER_CONFIRM_LEAD" envDefault:"30m"`
	// AuthKey verifies the signed identity of every call and signs the service's own calls to
	// dispatch (shared by all services, at least 32 bytes; required).
	AuthKey string `env:"DOORSTEP_AUTH_KEY"`

	Listener net.Listener `env:"-"` // when set (tests, dev stack) used instead of Port
	// Now is the service's clock, by which identities are also minted and verified (the dev stack
	// gives every service and the gateway the same one); nil means time.Now.
	Now func() time.Time `env:"-"`
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
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), cfg.Now)
	if err != nil {
		return fmt.Errorf("supplier: %w", err)
	}
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

	var dispatch dispatchv1.DispatchServiceClient
	if cfg.DispatchAddr != "" {
		// Round times are the service's own question, asked as itself (SYSTEM "supplier").
		conn, err := grpcx.Dial(cfg.DispatchAddr, keys.DialOption("supplier"))
		if err != nil {
			return fmt.Errorf("dispatch at %s: %w", cfg.DispatchAddr, err)
		}
		defer conn.Close()
		dispatch = dispatchv1.NewDispatchServiceClient(conn)
	} else {
		log.Info("no dispatch address: reservations are due for the default rounds")
	}
	svc := &supply.Service{
		Repo:        &postgres.Repo{Pool: kit.Pool},
		Schedules:   schedule.New(ctx, dispatch, log, cfg.Now),
		ConfirmLead: cfg.ConfirmLead,
		Now:         cfg.Now,
	}

	srv := grpcx.NewServer(log, keys.ServerOptions(grpcapi.Policy)...)
	supplierv1.RegisterSupplierServiceServer(srv, &grpcapi.Server{Svc: svc, Log: log})
	log.Info("supplier service listening", "addr", lis.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, lis) })
	g.Go(func() error { return kit.Relay().Run(gctx) })
	g.Go(func() error { return kit.ServeMetrics(gctx, cfg.MetricsPort) })
	g.Go(func() error { maintain(gctx, svc, log); return nil })
	return g.Wait()
}

// How often the background jobs run. Expiry is frequent so a reservation is released within
// half a minute of its cutoff; pruning keys is housekeeping.
const (
	expireEvery = 30 * time.Second
	pruneEvery  = time.Hour
)

// maintain expires reservations past their cutoff and prunes old idempotency keys until ctx is
// done. Failures are logged and retried on the next tick: a database hiccup must not stop the
// service, and every job is safe to run again (or on several replicas at once).
func maintain(ctx context.Context, svc *supply.Service, log *slog.Logger) {
	expire := func() {
		if n, err := svc.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			log.Error("expiring reservations", "err", err, "expired", n)
		} else if n > 0 {
			log.Info("reservations expired at their cutoff", "expired", n)
		}
	}
	prune := func() {
		if n, err := svc.PruneKeys(ctx); err != nil && ctx.Err() == nil {
			log.Error("pruning idempotency keys", "err", err)
		} else if n > 0 {
			log.Info("idempotency keys pruned", "deleted", n)
		}
	}
	expire()
	prune()
	expireTick, pruneTick := time.NewTicker(expireEvery), time.NewTicker(pruneEvery)
	defer expireTick.Stop()
	defer pruneTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expireTick.C:
			expire()
		case <-pruneTick.C:
			prune()
		}
	}
}
