// Package app wires the dispatch service: configuration, the database and broker through
// servicekit, the order client, the gRPC server, the outbox relay and the failed-parcel consumer.
// It is not internal because the dev stack runs every service in one process through Run.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/servicekit"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
	"github.com/doorstep/doorstep/services/dispatch/internal/grpcapi"
	"github.com/doorstep/doorstep/services/dispatch/internal/orderclient"
	"github.com/doorstep/doorstep/services/dispatch/internal/postgres"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// Config is the dispatch service's configuration.
type Config struct {
	Port        int    `env:"DISPATCH_PORT" envDefault:"50053"`
	DatabaseURL string `env:"DATABASE_URL"`
	NATSURL     string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	OrderAddr   string `env:"ORDER_ADDR" envDefault:"127.0.0.1:50051"`
	// Round cutoffs, HH:MM Asia/Shanghai; empty means the default.
	AMCutoff string `env:"DISPATCH_AM_CUTOFF" envDefault:"09:00"`
	PMCutoff string `env:"DISPATCH_PM_CUTOFF" envDefault:"15:00"`
	// StreamReplicas of the event streams this service provisions (3 on a JetStream cluster).
	StreamReplicas int `env:"NATS_STREAM_REPLICAS" envDefault:"1"`
	// MetricsPort serves Prometheus metrics (outbox backlog, publish rate, consumer lag, dead
	// letters) on /metrics; 0 turns them off.
	MetricsPort int `env:"DISPATCH_METRICS_PORT" envDefault:"9053"`

	Listener net.Listener     `env:"-"` // when set (tests, dev stack) used instead of Port
	Now      func() time.Time `env:"-"` // nil means time.Now; tests inject a clock
}

// Default round cutoffs, used when the Config leaves them empty.
const (
	DefaultAMCutoff = "09:00"
	DefaultPMCutoff = "15:00"
)

// ConfigFromEnv reads Config from the environment.
func ConfigFromEnv() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("dispatch config: %w", err)
	}
	return cfg, nil
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "dispatch")
	schedule, err := dispatch.NewSchedule(cmp.Or(cfg.AMCutoff, DefaultAMCutoff), cmp.Or(cfg.PMCutoff, DefaultPMCutoff))
	if err != nil {
		return fmt.Errorf("dispatch config: %w", err)
	}
	kit, err := servicekit.Open(ctx, servicekit.Options{Name: "dispatch", Schema: "dispatch", DatabaseURL: cfg.DatabaseURL,
		NATSURL: cfg.NATSURL, Migrations: postgres.Migrations(), StreamReplicas: cfg.StreamReplicas, Log: log})
	if err != nil {
		return err
	}
	defer kit.Close()

	conn, err := grpcx.Dial(cfg.OrderAddr)
	if err != nil {
		return fmt.Errorf("dial order %s: %w", cfg.OrderAddr, err)
	}
	defer conn.Close()

	svc := dispatch.NewService(postgres.Store{Pool: kit.Pool}, orderclient.Client{Orders: orderv1.NewOrderServiceClient(conn)},
		schedule, cfg.Now)
	srv := grpcx.NewServer(log)
	dispatchv1.RegisterDispatchServiceServer(srv, grpcapi.New(svc, log))
	lis, err := servicekit.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		return err
	}
	log.Info("dispatch service listening", "addr", lis.Addr().String())

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, lis) })
	g.Go(func() error { return kit.Relay().Run(ctx) })
	g.Go(func() error { return kit.ServeMetrics(ctx, cfg.MetricsPort) })
	g.Go(func() error {
		return kit.Consumer(FailedPurpose, FailedSubjects, FailedHandler(svc)).Run(ctx)
	})
	return g.Wait()
}

// The failed-parcel consumer: durable "dispatch-failed".
const FailedPurpose = "failed"

// FailedSubjects are the couriers' reports of parcels that could not be delivered.
var FailedSubjects = []string{"doorstep.*.parcel.failed"}

// FailedHandler puts each failed parcel back at the gate for the next open round.
func FailedHandler(svc *dispatch.Service) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		psc := ev.GetParcelStateChanged()
		if psc == nil || psc.GetState() != typesv1.ParcelState_PARCEL_STATE_FAILED || psc.GetParcelId() == "" {
			return fmt.Errorf("%w: event %s is not a parcel failure", inbox.ErrPermanent, ev.GetEventId())
		}
		err := svc.ParcelFailed(ctx, postgres.Bind(tx), dispatch.FailedParcel{ParcelID: psc.GetParcelId(), Reason: psc.GetReason()})
		if errors.Is(err, dispatch.ErrNotFound) {
			// Dispatch never had this parcel at its gate, so no later event can make it plannable.
			return fmt.Errorf("%w: %v", inbox.ErrPermanent, err)
		}
		return err
	}
}
