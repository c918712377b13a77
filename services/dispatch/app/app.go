// Package app wires the dispatch service: configuration, the database and broker through
// servicekit, the order client (calling as SYSTEM "dispatch" for the person it serves), the gRPC
// server with its authorization, the outbox relay and the consumer of what couriers report
// (picked up, delivered, failed).
// It is not internal because the dev stack runs every service in one process through Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/auth"
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
	// StreamReplicas of the event streams this service provisions (3 on a JetStream cluster).
	StreamReplicas int `env:"NATS_STREAM_REPLICAS" envDefault:"1"`
	// MetricsPort serves Prometheus metrics (outbox backlog, publish rate, consumer lag, dead
	// letters) on /metrics; 0 turns them off.
	MetricsPort int `env:"DISPATCH_METRICS_PORT" envDefault:"9053"`
	// AuthKey verifies the signed identity of every call and signs the service's own calls to the
	// order service (shared by all services, at least 32 bytes).
	AuthKey string `env:"DOORSTEP_AUTH_KEY"`

	Listener net.Listener `env:"-"` // when set (tests, dev stack) used instead of Port
	// Now is the service's clock (rounds, cutoffs, and identities verified and minted); nil means
	// time.Now; tests inject a clock.
	Now func() time.Time `env:"-"`
}

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
	// Identities are verified by the clock the gateway mints them with (cfg.Now in the dev stack
	// and its tests, the wall clock in production).
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), cfg.Now)
	if err != nil {
		return err
	}
	kit, err := servicekit.Open(ctx, servicekit.Options{Name: "dispatch", Schema: "dispatch", DatabaseURL: cfg.DatabaseURL,
		NATSURL: cfg.NATSURL, Migrations: postgres.Migrations(), StreamReplicas: cfg.StreamReplicas, Log: log})
	if err != nil {
		return err
	}
	defer kit.Close()

	// GetParcel at check-in goes as SYSTEM "dispatch", naming the dispatcher it checks in for.
	conn, err := grpcx.Dial(cfg.OrderAddr, keys.DialOption("dispatch"))
	if err != nil {
		return fmt.Errorf("dial order %s: %w", cfg.OrderAddr, err)
	}
	defer conn.Close()

	svc := dispatch.NewService(postgres.Store{Pool: kit.Pool}, orderclient.Client{Orders: orderv1.NewOrderServiceClient(conn)},
		cfg.Now)
	srv := grpcx.NewServer(log, keys.ServerOptions(grpcapi.Policy)...)
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
		return kit.Consumer(OutcomesPurpose, OutcomesSubjects, OutcomesHandler(svc)).Run(ctx)
	})
	return g.Wait()
}

// OutcomesPurpose names the consumer of parcel outcomes: durable "dispatch-outcomes".
const OutcomesPurpose = "outcomes"

// OutcomesSubjects are the couriers' reports: parcels picked up at the gate, and what happened at
// each door.
var OutcomesSubjects = []string{"doorstep.*.parcel.out_for_delivery", "doorstep.*.parcel.delivered", "doorstep.*.parcel.failed"}

// OutcomesHandler records pick-ups (a picked-up stop stays with its courier), deliveries (a
// delivered stop no longer moves; a round is done when all its parcels are delivered or failed)
// and puts each failed parcel back at the gate for the next open round.
func OutcomesHandler(svc *dispatch.Service) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		psc := ev.GetParcelStateChanged()
		if psc == nil || psc.GetParcelId() == "" {
			return fmt.Errorf("%w: event %s is not a parcel outcome", inbox.ErrPermanent, ev.GetEventId())
		}
		var err error
		switch psc.GetState() {
		case typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY:
			err = svc.ParcelPickedUp(ctx, postgres.Bind(tx), dispatch.PickedUp{ParcelID: psc.GetParcelId(),
				RoundID: psc.GetRoundId(), RouteID: psc.GetRouteId()})
		case typesv1.ParcelState_PARCEL_STATE_DELIVERED:
			err = svc.ParcelDelivered(ctx, postgres.Bind(tx), psc.GetParcelId())
		case typesv1.ParcelState_PARCEL_STATE_FAILED:
			err = svc.ParcelFailed(ctx, postgres.Bind(tx), dispatch.FailedParcel{ParcelID: psc.GetParcelId(), Reason: psc.GetReason()})
		default:
			return fmt.Errorf("%w: event %s is not a parcel outcome", inbox.ErrPermanent, ev.GetEventId())
		}
		if errors.Is(err, dispatch.ErrNotFound) {
			// Dispatch never had this parcel at its gate, so no later event can make it plannable.
			return fmt.Errorf("%w: %v", inbox.ErrPermanent, err)
		}
		return err
	}
}
