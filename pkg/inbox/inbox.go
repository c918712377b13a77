// Package inbox consumes events from JetStream exactly once in effect: each event's handler runs in
// a database transaction that also records the event id, and the message is acknowledged only
// after that transaction commits. A redelivery (crash between commit and ack, broker restart)
// finds the id recorded and changes nothing.
package inbox

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/metrics"
	"github.com/doorstep/doorstep/pkg/pgkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the inbox table in the service's schema.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_inbox", FS: sub}
}

// ErrPermanent marks a handler error that no retry can fix (a malformed or impossible event);
// the event goes straight to the dead-letter stream.
var ErrPermanent = errors.New("permanent failure")

// Handler applies one event inside tx.
type Handler func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error

type afterCommitKey struct{}

// AfterCommit runs f once the transaction of the event being handled has committed (not at all if
// it rolls back, nor for a redelivery, which never reaches the handler). Handlers call it with the ctx they were given, e.g. to
// tell watchers on other replicas that the change is visible; elsewhere it does nothing.
func AfterCommit(ctx context.Context, f func()) {
	if hooks, ok := ctx.Value(afterCommitKey{}).(*[]func()); ok {
		*hooks = append(*hooks, f)
	}
}

// Consumer is one durable pull consumer whose effects live in Pool.
type Consumer struct {
	Pool    *pgxpool.Pool
	JS      jetstream.JetStream
	Log     *slog.Logger
	Durable string
	// Subjects filters the stream, e.g. "doorstep.*.parcel.>".
	Subjects []string
	Handle   Handler
	// MaxDeliver bounds redelivery before the event is dead-lettered; default 8.
	MaxDeliver int
	// Metrics, when set, receives applied, retried and dead-lettered counts and the lag.
	Metrics *metrics.Pipeline
}

// backoff is the redelivery schedule for handler errors, indexed by delivery attempt.
var backoff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}

// Run consumes until ctx is done. Replicas of a service share one durable consumer, so JetStream
// hands each message to one of them.
func (c *Consumer) Run(ctx context.Context) error {
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 8
	}
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = c.JS.CreateOrUpdateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{
			Durable:        c.Durable,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        30 * time.Second,
			MaxDeliver:     c.MaxDeliver,
			FilterSubjects: c.Subjects,
			MaxAckPending:  1024,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		})
		if err == nil {
			break
		}
		// The broker may still be starting or restarting; keep trying rather than exit.
		c.Log.Warn("consumer: provisioning failed; retrying", "durable", c.Durable, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	nextSample := time.Now()
	for ctx.Err() == nil {
		if c.Metrics != nil && time.Now().After(nextSample) {
			if info, err := cons.Info(ctx); err == nil {
				c.Metrics.ConsumerLag.WithLabelValues(c.Durable).Set(float64(info.NumPending))
			}
			nextSample = time.Now().Add(2 * time.Second)
		}
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() == nil {
				c.Log.Warn("consumer: fetch failed", "durable", c.Durable, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			continue
		}
		for msg := range batch.Messages() {
			c.process(ctx, msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			c.Log.Debug("consumer: batch ended", "durable", c.Durable, "err", err)
		}
	}
	return nil
}

func (c *Consumer) process(ctx context.Context, msg jetstream.Msg) {
	ev := &eventsv1.Event{}
	if err := proto.Unmarshal(msg.Data(), ev); err != nil || ev.GetEventId() == "" {
		c.deadLetter(ctx, msg, fmt.Sprintf("undecodable event: %v", err))
		return
	}
	err := c.Apply(ctx, ev)
	if err == nil {
		if err := msg.Ack(); err != nil {
			// The effect is committed; a redelivery will be recognised by the inbox.
			c.Log.Warn("consumer: ack failed", "durable", c.Durable, "event", ev.GetEventId(), "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	meta, _ := msg.Metadata()
	delivered := 1
	if meta != nil {
		delivered = int(meta.NumDelivered)
	}
	if errors.Is(err, ErrPermanent) || delivered >= c.MaxDeliver {
		c.deadLetter(ctx, msg, err.Error())
		return
	}
	delay := backoff[min(delivered-1, len(backoff)-1)]
	if c.Metrics != nil {
		c.Metrics.ConsumerRetried.WithLabelValues(c.Durable).Inc()
	}
	c.Log.Warn("consumer: handler failed; will retry", "durable", c.Durable, "subject", msg.Subject(),
		"event", ev.GetEventId(), "attempt", delivered, "in", delay, "err", err)
	_ = msg.NakWithDelay(delay)
}

// Apply runs the handler for ev once: in a transaction that first records the event id. It is
// exported so tests and replays can drive a handler without a broker.
func (c *Consumer) Apply(ctx context.Context, ev *eventsv1.Event) error {
	applied := false
	var hooks []func()
	hctx := context.WithValue(ctx, afterCommitKey{}, &hooks)
	err := pgkit.Tx(ctx, c.Pool, func(tx pgx.Tx) error {
		applied, hooks = false, hooks[:0]
		tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			c.Durable, ev.GetEventId())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // applied before: a redelivery
		}
		if err := c.Handle(hctx, tx, ev); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err == nil && applied && c.Metrics != nil {
		c.Metrics.ConsumerApplied.WithLabelValues(c.Durable).Inc()
	}
	if err == nil {
		for _, f := range hooks {
			f()
		}
	}
	return err
}

// deadLetter parks msg on the dead-letter stream with the reason, then terminates it so the
// consumer moves on. If the dead-letter publish fails the message is left for redelivery.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, reason string) {
	dl := &nats.Msg{Subject: events.DeadLetterSubject + msg.Subject(), Data: msg.Data(), Header: nats.Header{}}
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	dl.Header.Set(jetstream.MsgIDHeader, c.Durable+":"+id)
	dl.Header.Set("Doorstep-Original-Msg-Id", id)
	dl.Header.Set("Doorstep-Consumer", c.Durable)
	dl.Header.Set("Doorstep-Reason", reason)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.JS.PublishMsg(pctx, dl); err != nil {
		c.Log.Error("consumer: dead-letter publish failed", "durable", c.Durable, "err", err)
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	if c.Metrics != nil {
		c.Metrics.ConsumerDead.WithLabelValues(c.Durable).Inc()
	}
	c.Log.Error("consumer: event dead-lettered", "durable", c.Durable, "subject", msg.Subject(), "msg_id", id, "reason", reason)
	_ = msg.TermWithReason(reason)
}
