package outbox_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func parcelEvent(i int) *eventsv1.Event {
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "test"}, fmt.Sprintf("order-%d", i), time.Now())
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
		ParcelId: fmt.Sprintf("parcel-%d", i), State: typesv1.ParcelState_PARCEL_STATE_CONFIRMED}}
	return ev
}

func setup(t *testing.T) (context.Context, *pgxpool.Pool, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, outbox.Migrations(), inbox.Migrations()); err != nil {
		t.Fatal(err)
	}
	nc, js, err := natsx.Connect(testkit.NATS(t), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	return ctx, pool, js
}

// Rows committed out of id order must still be published: a transaction that took a lower id but
// committed after a higher one was published is not skipped.
func TestRelayPublishesOutOfOrderCommitsExactlyOnce(t *testing.T) {
	ctx, pool, js := setup(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	slow, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Add(ctx, slow, parcelEvent(0)); err != nil { // takes the lowest id, commits last
		t.Fatal(err)
	}
	const n = 200
	for i := 1; i < n; i++ {
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, parcelEvent(i)) }); err != nil {
			t.Fatal(err)
		}
	}
	// Two relays at once: no double work, no loss.
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			(&outbox.Relay{Pool: pool, JS: js, Log: log, Batch: 17, Idle: 10 * time.Millisecond}).Run(rctx)
		}()
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		return streamHas(ctx, js, n-1)
	})
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error { return streamHas(ctx, js, n) })
	// A relay marks its batch published in the commit after the broker's acks: the stream can hold
	// the last event a moment before its row is marked, so the relays run on until every row is.
	testkit.Eventually(t, 10*time.Second, func() error {
		var unpublished int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&unpublished); err != nil {
			return err
		}
		if unpublished != 0 {
			return fmt.Errorf("%d rows left unpublished", unpublished)
		}
		return nil
	})
	stop()
	wg.Wait()
	if err := streamHas(ctx, js, n); err != nil { // each event still once
		t.Fatal(err)
	}
}

// Republishing a row (the relay crashed after publishing, before marking) must not duplicate the
// event in the stream, and a consumer that sees an event twice applies it once.
func TestDuplicatesAreDroppedByBrokerAndInbox(t *testing.T) {
	ctx, pool, js := setup(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range 10 {
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, parcelEvent(i)) }); err != nil {
			t.Fatal(err)
		}
	}
	relay := &outbox.Relay{Pool: pool, JS: js, Log: log, Idle: 10 * time.Millisecond}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { relay.Run(rctx); close(done) }()
	testkit.Eventually(t, 10*time.Second, func() error { return streamHas(ctx, js, 10) })
	// Simulate the crash window: forget that the rows were published.
	if _, err := pool.Exec(ctx, `UPDATE outbox SET published_at = NULL`); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return fmt.Errorf("%d unpublished", left)
		}
		return nil
	})
	stop()
	<-done
	if err := streamHas(ctx, js, 10); err != nil {
		t.Fatal(err)
	}

	if _, err := pool.Exec(ctx, `CREATE TABLE applied (event_id text)`); err != nil {
		t.Fatal(err)
	}
	c := &inbox.Consumer{Pool: pool, JS: js, Log: log, Durable: "test", Subjects: []string{"doorstep.*.parcel.>"},
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			_, err := tx.Exec(ctx, `INSERT INTO applied VALUES ($1)`, ev.GetEventId())
			return err
		}}
	cctx, cstop := context.WithCancel(ctx)
	cdone := make(chan struct{})
	go func() { c.Run(cctx); close(cdone) }()
	testkit.Eventually(t, 10*time.Second, func() error { return countIs(ctx, pool, 10) })
	// A redelivery after commit but before ack is modelled by applying every event again.
	rows, err := pool.Query(ctx, `SELECT event_id FROM applied`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		ev := parcelEvent(0)
		ev.EventId = id
		if err := c.Apply(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	cstop()
	<-cdone
	if err := countIs(ctx, pool, 10); err != nil {
		t.Fatal(err)
	}
}

func countIs(ctx context.Context, pool *pgxpool.Pool, want int) error {
	var got int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM applied`).Scan(&got); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("applied %d events, want %d", got, want)
	}
	return nil
}

func streamHas(ctx context.Context, js jetstream.JetStream, want uint64) error {
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != want {
		return fmt.Errorf("stream has %d messages, want %d", info.State.Msgs, want)
	}
	return nil
}
