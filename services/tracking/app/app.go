// Package app wires the tracking service: its PostgreSQL schema, the timeline, views and notices
// consumers, the watch announcements and the gRPC server with its authorization. cmd/trackingd and
// the dev stack both run it.
package app

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/servicekit"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/grpcapi"
	"github.com/doorstep/doorstep/services/tracking/internal/ingest"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
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
	// AuthKey verifies the signed identity of every call (shared by all services, at least 32 bytes).
	AuthKey string `env:"DOORSTEP_AUTH_KEY"`
	// WatchResync is how often a watch re-reads unprompted, in case an announcement was lost (a
	// broker reconnect); 0 means 30 s.
	WatchResync time.Duration `env:"TRACKING_WATCH_RESYNC" envDefault:"30s"`
	// WatchOnly runs a replica that serves reads and watches but consumes no events, leaving that to
	// the other replicas (watches hear their commits through NATS all the same).
	WatchOnly bool `env:"TRACKING_WATCH_ONLY"`
	// Listener, when set (tests, dev stack), is used instead of Port.
	Listener net.Listener `env:"-"`
	// Now is the clock identities are verified by (every time of the read models comes from the
	// events); nil means time.Now.
	Now func() time.Time `env:"-"`
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() (Config, error) {
	return env.ParseAs[Config]()
}

// Consumer purposes: durables tracking-deliveries and tracking-notices.
const (
	deliveriesConsumer = "deliveries"
	noticesConsumer    = "notices"
)

// retiredDurables were the deliveries consumer's work until it did both in one transaction per
// event group: half the acknowledgements, inbox rows and commits.
var retiredDurables = []string{"tracking-timeline", "tracking-views"}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "tracking")
	// Identities are verified by the same clock the gateway mints them with (cfg.Now in the dev
	// stack and its tests, the wall clock in production).
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), cfg.Now)
	if err != nil {
		return err
	}
	kit, err := servicekit.Open(ctx, servicekit.Options{
		Name:           "tracking",
		Schema:         "tracking",
		DatabaseURL:    cfg.DatabaseURL,
		NATSURL:        cfg.NATSURL,
		Migrations:     postgres.Migrations(),
		StreamReplicas: cfg.StreamReplicas,
		Log:            log,
	})
	if err != nil {
		return err
	}
	defer kit.Close()

	lis, err := servicekit.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		return err
	}
	srv := grpcx.NewServer(log,
		grpc.ChainUnaryInterceptor(keys.UnaryServerInterceptor(grpcapi.Policy)),
		grpc.ChainStreamInterceptor(keys.StreamServerInterceptor(grpcapi.Policy)))
	g, ctx := errgroup.WithContext(ctx)
	store := &postgres.Store{Pool: kit.Pool}
	trackingv1.RegisterTrackingServiceServer(srv, &grpcapi.Server{
		Timelines: store,
		Views:     store,
		Notices:   store,
		Changes:   &watch.Subscriber{NC: kit.NC},
		Stopping:  ctx.Done(),
		Resync:    cfg.WatchResync,
		Log:       log,
	})

	g.Go(func() error { return srv.Serve(ctx, lis) })
	// The tracking service publishes no events today, but the relay keeps the shared contract: any
	// event it adds later goes out through the outbox.
	g.Go(func() error { return kit.Relay().Run(ctx) })
	g.Go(func() error { return kit.ServeMetrics(ctx, cfg.MetricsPort) })
	if !cfg.WatchOnly {
		// The handlers announce what they changed through inbox.AfterCommit, so every replica's
		// watchers re-read only once the change is visible to them.
		announcer := &watch.Publisher{NC: kit.NC, Log: log.With("component", "watch")}
		deliveries := kit.Consumer(deliveriesConsumer, ingest.Subjects, nil)
		deliveries.Handle = ingest.Deliveries(deliveries.Log, announcer)
		deliveries.Replaces = retiredDurables
		// Notices have a durable of their own, filtered to notice subjects: it starts from the
		// stream's first notice wherever the deliveries consumer stands, reads none of the parcel
		// traffic, and a notice it cannot apply yet holds up no parcel.
		notices := kit.Consumer(noticesConsumer, ingest.NoticeSubjects, nil)
		notices.Handle = ingest.Notices(notices.Log, announcer)
		for _, c := range []*inbox.Consumer{deliveries, notices} {
			g.Go(func() error { return c.Run(ctx) })
		}
	}
	log.Info("tracking service started", "addr", lis.Addr().String(), "watch_only", cfg.WatchOnly)
	return g.Wait()
}
