// Package servicekit opens what every Doorstep service stands on, in one order: its PostgreSQL
// schema with migrations applied (the outbox and inbox tables, then its own), a JetStream
// connection with the streams provisioned, and the gRPC listener. Each service's app package
// builds on it so that start-up reads the same everywhere.
package servicekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/metrics"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options name a service and where its infrastructure is.
type Options struct {
	// Name is the service's name, used for logs, the NATS connection and consumer names.
	Name string
	// Schema is the PostgreSQL schema the service owns.
	Schema      string
	DatabaseURL string
	NATSURL     string
	// Migrations are the service's own embedded migrations.
	Migrations pgkit.Migrations
	// StreamReplicas is the replica count of the streams this service provisions (1 on one machine,
	// 3 on a JetStream cluster).
	StreamReplicas int
	Log            *slog.Logger
}

// Kit is an opened service's infrastructure.
type Kit struct {
	Name string
	Log  *slog.Logger
	Pool *pgxpool.Pool
	NC   *nats.Conn
	JS   jetstream.JetStream
	// Metrics is the service's event-pipeline metrics; ServeMetrics exposes them.
	Metrics *metrics.Pipeline
}

// Open connects to PostgreSQL and NATS and applies migrations.
func Open(ctx context.Context, o Options) (*Kit, error) {
	if o.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	if o.NATSURL == "" {
		return nil, errors.New("NATS_URL is not set")
	}
	pool, err := pgkit.Open(ctx, o.DatabaseURL, o.Schema)
	if err != nil {
		return nil, err
	}
	if err := pgkit.Migrate(ctx, pool, outbox.Migrations(), inbox.Migrations(), o.Migrations); err != nil {
		pool.Close()
		return nil, err
	}
	nc, js, err := natsx.Connect(o.NATSURL, "doorstep-"+o.Name, o.Log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := natsx.EnsureStreams(ctx, js, o.StreamReplicas); err != nil {
		// The broker may be down right now; the relay and consumers retry, so start anyway.
		o.Log.Warn("streams not provisioned yet; publishing will retry", "err", err)
	}
	return &Kit{Name: o.Name, Log: o.Log, Pool: pool, NC: nc, JS: js, Metrics: metrics.NewPipeline(o.Name)}, nil
}

// Close releases the connections; call it after everything using them has stopped.
func (k *Kit) Close() {
	if k.NC != nil {
		_ = k.NC.Drain()
	}
	k.Pool.Close()
}

// Relay is the outbox relay for the service's schema.
func (k *Kit) Relay() *outbox.Relay {
	return &outbox.Relay{Pool: k.Pool, JS: k.JS, Log: k.Log.With("component", "outbox"), Metrics: k.Metrics}
}

// Consumer is a durable consumer named after the service and purpose, applying h per event.
// DOORSTEP_FAULT_EXIT_AFTER_COMMIT=n (fault tests only) makes the process exit right after its
// n-th committed event, before acknowledging it; see inbox.Consumer.ExitAfterCommit.
func (k *Kit) Consumer(purpose string, subjects []string, h inbox.Handler) *inbox.Consumer {
	c := &inbox.Consumer{Pool: k.Pool, JS: k.JS, Log: k.Log.With("component", "consumer", "purpose", purpose),
		Durable: k.Name + "-" + purpose, Subjects: subjects, Handle: h, Metrics: k.Metrics}
	if n, err := strconv.ParseInt(os.Getenv("DOORSTEP_FAULT_EXIT_AFTER_COMMIT"), 10, 64); err == nil && n > 0 {
		c.ExitAfterCommit = n
		k.Log.Warn("fault injection armed: exiting after a commit, before its ack", "durable", c.Durable, "after", n)
	}
	return c
}

// ServeMetrics serves the service's Prometheus metrics on port (0: not served) until ctx is done.
func (k *Kit) ServeMetrics(ctx context.Context, port int) error {
	if port == 0 {
		return nil
	}
	lis, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return fmt.Errorf("metrics port %d: %w", port, err)
	}
	return metrics.Serve(ctx, lis, k.Metrics.Registry)
}

// Listen returns l if set, else listens on port on all interfaces.
func Listen(l net.Listener, port int) (net.Listener, error) {
	if l != nil {
		return l, nil
	}
	lis, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("listen on port %d: %w", port, err)
	}
	return lis, nil
}
