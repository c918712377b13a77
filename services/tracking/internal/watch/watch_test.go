package watch_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{watch.OrderSubject("019a0000-0000-7000-8000-000000000001"), "trackingwatch.order.019a0000-0000-7000-8000-000000000001"},
		{watch.RoundSubject("haixin-2022-04-10-am"), "trackingwatch.round.haixin-2022-04-10-am"},
		// Dots and wildcards would split the subject or match others: encoded into one token.
		{watch.RoundSubject("a.b"), "trackingwatch.round.x.612e62"},
		{watch.RoundSubject(">"), "trackingwatch.round.x.3e"},
		{watch.RoundSubject("a b"), "trackingwatch.round.x.612062"},
	} {
		if tc.got != tc.want {
			t.Errorf("subject %q, want %q", tc.got, tc.want)
		}
	}
}

// The Announcer publishes an event's subjects only once the transaction that recorded the event
// in the inbox has committed, and never for one that rolled back.
func TestAnnouncerWaitsForTheCommit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "tracking")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, inbox.Migrations()); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(testkit.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	a := watch.NewAnnouncer(pool, nc, "tracking-test", log)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	heard := make(chan string, 16)
	sub, err := nc.Subscribe(watch.Prefix+">", func(m *nats.Msg) { heard <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		select {
		case s := <-heard:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no announcement within 10s")
			return ""
		}
	}
	// apply records an event in the inbox in a transaction that announces it, and leaves the
	// transaction open for the caller to end.
	apply := func(subject string) pgx.Tx {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ('tracking-test', $1)`, id); err != nil {
			t.Fatal(err)
		}
		a.Announce(id, subject)
		return tx
	}

	open := apply(watch.OrderSubject("open"))
	rolledBack := apply(watch.OrderSubject("rolled-back"))
	if err := rolledBack.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Announced after the other two and committed: by the time it is heard, the Announcer has
	// looked for all three, and must have found only this one.
	if err := apply(watch.RoundSubject("committed")).Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != watch.RoundSubject("committed") {
		t.Fatalf("heard %s first, want the committed event's subject", got)
	}
	if err := open.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != watch.OrderSubject("open") {
		t.Fatalf("heard %s after the open transaction committed, want its subject", got)
	}
}
