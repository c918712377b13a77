// Package natsx connects services to NATS JetStream, provisions Doorstep's streams idempotently,
// and runs an in-process JetStream server for `make run` and tests.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. It must outlast the outbox
// relay's longest retry, so a row republished after a crash is still recognised as a duplicate.
const DuplicateWindow = 10 * time.Minute

// Connect dials url and keeps reconnecting for ever: a broker restart must not take a service down.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// EventMaxAge is how long the event stream keeps an event: how far back a new durable starts.
const EventMaxAge = 30 * 24 * time.Hour

// DeadLetterMaxAge is how long a dead letter can be listed and replayed.
const DeadLetterMaxAge = 90 * 24 * time.Hour

// EnsureStreams creates the event and dead-letter streams, or updates them where their settings
// differ from Doorstep's. Safe to call from every replica at every start.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas < 1 {
		replicas = 1
	}
	for _, cfg := range []jetstream.StreamConfig{{
		Name:       events.Stream,
		Subjects:   []string{events.StreamSubjects},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     EventMaxAge,
		Duplicates: DuplicateWindow,
		Replicas:   replicas,
	}, {
		Name:      events.DeadLetterStream,
		Subjects:  []string{events.DeadLetterSubject + ">"},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxAge:    DeadLetterMaxAge,
		Replicas:  replicas,
	}} {
		if err := ensureStream(ctx, js, cfg); err != nil {
			return fmt.Errorf("provision stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// ensureStream creates the stream, or updates it only when a setting cfg names differs. An update
// that changes nothing is not harmless: it rewrites the stream's metadata, and nats-server 2.15.3
// reads that metadata without its lock while it creates a consumer, so services starting together
// (each provisioning the streams, then its consumers) raced inside the server at every start.
// A real change of settings can still meet a consumer being created; that is now the rare case.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// A replica starting at the same moment may create it first: with the same settings
		// that is success, with others the stream is read again and updated below.
		if _, err = js.CreateStream(ctx, cfg); !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		s, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return err
	}
	if hasSettings(s.CachedInfo().Config, cfg) {
		return nil
	}
	_, err = js.UpdateStream(ctx, cfg)
	return err
}

// hasSettings reports whether have holds every setting want names (a zero duplicate window leaves
// the server's default).
func hasSettings(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Storage == want.Storage &&
		have.Retention == want.Retention && have.MaxAge == want.MaxAge && have.Replicas == want.Replicas &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates)
}

// EmbeddedOptions configure an in-process server.
type EmbeddedOptions struct {
	Host     string
	Port     int // -1 picks a free port
	StoreDir string
}

// RunEmbedded starts an in-process NATS server with JetStream and waits until it takes clients.
func RunEmbedded(opts EmbeddedOptions) (*server.Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "doorstep-embedded",
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on %s:%d not ready within 15s", opts.Host, opts.Port)
	}
	return s, nil
}
