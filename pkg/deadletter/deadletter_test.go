package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/deadletter"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// With nothing parked, the usual case, the list is empty rather than an error (make deadletter
// once failed with "bad request" on a stream that never held a letter).
func TestListWithNothingParked(t *testing.T) {
	ctx := context.Background()
	nc, js, err := natsx.Connect(testkit.NATS(t), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if letters, err := deadletter.List(ctx, js, 10); err != nil || len(letters) != 0 {
		t.Fatalf("List of an empty dead-letter stream: %v, %v; want none and no error", letters, err)
	}
}

// A handler that keeps failing parks the event with its reason after MaxDeliver attempts; after
// the "fix", replaying it applies it once.
func TestDeadLetterThenReplay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgkit.Migrate(ctx, pool, outbox.Migrations(), inbox.Migrations()); err != nil {
		t.Fatal(err)
	}
	nc, js, err := natsx.Connect(testkit.NATS(t), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}

	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "order-1", time.Now())
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{ParcelId: "p1", State: typesv1.ParcelState_PARCEL_STATE_READY}}
	data, _ := proto.Marshal(ev)
	msg := &nats.Msg{Subject: "doorstep.haixin.parcel.ready", Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, ev.GetEventId())
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	var broken atomic.Bool
	broken.Store(true)
	var applied atomic.Int32
	c := &inbox.Consumer{Pool: pool, JS: js, Log: log, Durable: "flaky", Subjects: []string{"doorstep.*.parcel.>"}, MaxDeliver: 2,
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			if broken.Load() {
				return errors.New("parcel p1 unknown here")
			}
			applied.Add(1)
			return nil
		}}
	go c.Run(ctx)

	var letters []deadletter.Letter
	testkit.Eventually(t, 20*time.Second, func() error {
		letters, err = deadletter.List(ctx, js, 10)
		if err != nil {
			return err
		}
		if len(letters) != 1 {
			return fmt.Errorf("%d dead letters", len(letters))
		}
		return nil
	})
	l := letters[0]
	if l.Subject != "doorstep.haixin.parcel.ready" || l.Consumer != "flaky" || l.OriginalMsgID != ev.GetEventId() || l.Reason == "" {
		t.Fatalf("dead letter %+v", l)
	}

	broken.Store(false) // the fix
	if _, err := deadletter.Replay(ctx, js, l.Seq); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if applied.Load() != 1 {
			return fmt.Errorf("applied %d times", applied.Load())
		}
		return nil
	})
	if left, _ := deadletter.List(ctx, js, 10); len(left) != 0 {
		t.Fatalf("replayed letter still listed: %+v", left)
	}
	// Replaying again (an operator's double click) cannot apply it twice: the inbox has it.
	if err := c.Apply(ctx, ev); err != nil || applied.Load() != 1 {
		t.Fatalf("second apply: err %v, applied %d", err, applied.Load())
	}
}
