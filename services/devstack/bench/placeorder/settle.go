package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// settler tells when the system has finished the work orders leave behind them: every outbox row
// published and every event taken and acknowledged by every consumer. A slice measured while the
// previous slice's events are still being applied would pay for them, so each slice starts settled.
type settler struct {
	db       *pgxpool.Pool
	nc       *nats.Conn
	js       jetstream.JetStream
	outboxes []string // schema-qualified outbox tables
}

func newSettler(ctx context.Context, dbURL, natsURL string) (*settler, error) {
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	rows, _ := db.Query(ctx, `SELECT quote_ident(table_schema) || '.outbox' FROM information_schema.tables
		WHERE table_name = 'outbox' AND table_schema NOT LIKE 'floor%' ORDER BY 1`)
	outboxes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("find outboxes: %w", err)
	}
	if len(outboxes) == 0 {
		db.Close()
		return nil, errors.New("find outboxes: none in the database")
	}
	nc, err := nats.Connect(natsURL, nats.Name("placeorder-bench"))
	if err != nil {
		db.Close()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		db.Close()
		return nil, err
	}
	return &settler{db: db, nc: nc, js: js, outboxes: outboxes}, nil
}

func (s *settler) close() {
	s.nc.Close()
	s.db.Close()
}

// backlog counts unpublished outbox rows and events not yet acknowledged by a consumer.
func (s *settler) backlog(ctx context.Context) (unpublished, unapplied int64, err error) {
	for _, t := range s.outboxes {
		var n int64
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM `+t+` WHERE published_at IS NULL`).Scan(&n); err != nil {
			return 0, 0, err
		}
		unpublished += n
	}
	streams := s.js.ListStreams(ctx)
	for st := range streams.Info() {
		stream, err := s.js.Stream(ctx, st.Config.Name)
		if err != nil {
			return 0, 0, err
		}
		consumers := stream.ListConsumers(ctx)
		for c := range consumers.Info() {
			unapplied += int64(c.NumPending) + int64(c.NumAckPending)
		}
		if err := consumers.Err(); err != nil {
			return 0, 0, err
		}
	}
	return unpublished, unapplied, streams.Err()
}

// wait polls until nothing is left, and says how long that took. The outboxes and the consumers
// are read one after the other, not at one instant: a consumer could write an outbox row and ack
// its event in between, so nothing left is believed only when two polls in a row say so.
func (s *settler) wait(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	clean := 0
	for {
		unpublished, unapplied, err := s.backlog(ctx)
		if err != nil {
			return 0, fmt.Errorf("settle: %w", err)
		}
		if unpublished == 0 && unapplied == 0 {
			clean++
			if clean == 2 {
				return time.Since(began), nil
			}
		} else {
			clean = 0
		}
		if time.Since(began) > timeout {
			return 0, fmt.Errorf("settle: %d outbox rows unpublished and %d events unapplied after %s", unpublished, unapplied, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
