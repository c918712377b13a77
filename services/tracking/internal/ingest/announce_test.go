package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const round = "haixin-2022-04-10-am"

// seen records each announcement with what another connection could read when it was made: the
// order's number of timeline entries, or the round's parcels and how many are assigned.
type seen struct {
	store *postgres.Store
	mu    sync.Mutex
	got   []string
}

func (s *seen) Announce(subjects ...string) {
	ctx := context.Background()
	for _, subject := range subjects {
		var visible string
		switch subject {
		case watch.OrderSubject(orderID):
			entries, err := s.store.OrderTimeline(ctx, orderID)
			visible = fmt.Sprintf("order: %d entries (%v)", len(entries), err)
		case watch.RoundSubject(round):
			p, err := s.store.RoundProgress(ctx, round)
			visible = fmt.Sprintf("round: %d parcels, %d assigned (%v)", p.Total.Parcels, p.Total.Assigned, err)
		default:
			visible = "unexpected subject " + subject
		}
		s.mu.Lock()
		s.got = append(s.got, visible)
		s.mu.Unlock()
	}
}

func (s *seen) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

// The deliveries consumer announces what an event changed once its transaction has committed, so the
// re-read an announcement prompts on any replica sees the change; nothing is announced for a
// transaction that rolled back, for a redelivery, or for an event that changed nothing watched.
func TestChangesAreAnnouncedAfterTheyCommit(t *testing.T) {
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "tracking")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, inbox.Migrations(), postgres.Migrations()); err != nil {
		t.Fatal(err)
	}
	announced := &seen{store: &postgres.Store{Pool: pool}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	failNext := false
	consumer := func(durable string, handle inbox.Handler) *inbox.Consumer {
		return &inbox.Consumer{Pool: pool, Log: log, Durable: durable,
			Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
				if err := handle(ctx, tx, ev); err != nil {
					return err
				}
				if failNext {
					return errors.New("the commit never happens")
				}
				return nil
			}}
	}
	deliveries := consumer("tracking-deliveries", Deliveries(log, announced))

	// apply runs ev through the consumer, as JetStream delivers it, and wants exactly the
	// announcements want, in order: the order's first.
	apply := func(ev *eventsv1.Event, want ...string) {
		t.Helper()
		if err := deliveries.Apply(ctx, ev); (err != nil) != failNext {
			t.Fatalf("Apply = %v with failNext %v", err, failNext)
		}
		if got := announced.take(); !slices.Equal(got, want) {
			t.Fatalf("announced\n %q\nwant\n %q", got, want)
		}
	}

	placed := events.New("haixin", nil, orderID, at)
	placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{HouseholdId: "haixin-1-1-101",
		Parcels: []*eventsv1.EventParcel{{ParcelId: parcelA}, {ParcelId: parcelB}}}}
	// The order's timeline changes; no round has its parcels yet.
	apply(placed, "order: 1 entries (<nil>)")
	apply(placed) // a redelivery

	planned := routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1", RoundId: round, CourierId: "c1", Version: 1,
		Stops: []*eventsv1.RouteStop{{Parcels: []*eventsv1.RouteParcel{{ParcelId: parcelA}, {ParcelId: parcelB}}}}})
	planned = withTime(planned, at.Add(time.Minute))
	// A route belongs to no order: the round changes, no timeline.
	apply(planned, "round: 2 parcels, 0 assigned (<nil>)")
	apply(planned)

	assigned := parcelEvent(typesv1.ParcelState_PARCEL_STATE_ASSIGNED, nil, func(p *eventsv1.ParcelStateChanged) {
		p.RoundId, p.CourierId = round, "c1"
	})
	assigned = withTime(assigned, at.Add(2*time.Minute))
	failNext = true
	apply(assigned) // rolled back
	failNext = false
	apply(assigned, "order: 2 entries (<nil>)", "round: 2 parcels, 1 assigned (<nil>)") // its retry
	apply(assigned)

	// A late state of the past is news to the timeline, but the round already has a later one.
	late := parcelEvent(typesv1.ParcelState_PARCEL_STATE_AT_GATE, nil, func(p *eventsv1.ParcelStateChanged) { p.RoundId = round })
	late = withTime(late, at.Add(90*time.Second))
	apply(late, "order: 3 entries (<nil>)")
}

func withTime(ev *eventsv1.Event, t time.Time) *eventsv1.Event {
	fresh := events.New(ev.GetCompound(), ev.GetActor(), ev.GetOrderId(), t)
	fresh.Payload = ev.GetPayload()
	return fresh
}

// Applied as one group, the events' writes go with the group's COMMIT: the views end as they do
// when each event's writes run at once in a transaction of its own, and every change is
// announced once the group has committed.
func TestAGroupRecordsAsEventsAloneDo(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	placed := events.New("haixin", nil, orderID, at)
	placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{HouseholdId: "haixin-1-1-101",
		Parcels: []*eventsv1.EventParcel{{ParcelId: parcelA}, {ParcelId: parcelB}}}}
	planned := withTime(routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1", RoundId: round, CourierId: "c1", Version: 1,
		Stops: []*eventsv1.RouteStop{{Parcels: []*eventsv1.RouteParcel{{ParcelId: parcelA}, {ParcelId: parcelB}}}}}), at.Add(time.Minute))
	assigned := withTime(parcelEvent(typesv1.ParcelState_PARCEL_STATE_ASSIGNED, nil, func(p *eventsv1.ParcelStateChanged) {
		p.RoundId, p.CourierId = round, "c1"
	}), at.Add(2*time.Minute))
	evs := []*eventsv1.Event{placed, planned, assigned}

	// state applies evs to a new database, alone or as one group, and reads what they left.
	state := func(together bool) (final, announced []string) {
		pool, err := pgkit.Open(ctx, testkit.Postgres(t), "tracking")
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if err := pgkit.Migrate(ctx, pool, inbox.Migrations(), postgres.Migrations()); err != nil {
			t.Fatal(err)
		}
		seen := &seen{store: &postgres.Store{Pool: pool}}
		handle := Deliveries(log, seen)
		if together {
			queued := 0
			c := &inbox.Consumer{Pool: pool, Log: log, Durable: "tracking-deliveries",
				Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
					if inbox.WithCommit(ctx) != nil {
						queued++
					}
					return handle(ctx, tx, ev)
				}}
			if errs := c.ApplyAll(ctx, evs); errors.Join(errs...) != nil {
				t.Fatal(errs)
			}
			if queued != len(evs) {
				t.Fatalf("%d of %d events applied with a COMMIT to queue on, want all: the group was applied as a whole", queued, len(evs))
			}
		} else {
			// Outside the inbox the writes run at once (postgres.Record), and nothing is announced.
			for _, ev := range evs {
				if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error { return handle(ctx, tx, ev) }); err != nil {
					t.Fatal(err)
				}
			}
		}
		announced = seen.take()
		seen.Announce(watch.OrderSubject(orderID), watch.RoundSubject(round))
		return seen.take(), announced
	}
	alone, _ := state(false)
	together, announced := state(true)
	if !slices.Equal(together, alone) {
		t.Errorf("applied as a group the views read\n %q\nalone\n %q", together, alone)
	}
	// Each announcement is made after the group's commit, so each sees the whole group.
	want := []string{"order: 2 entries (<nil>)", "round: 2 parcels, 1 assigned (<nil>)", "order: 2 entries (<nil>)", "round: 2 parcels, 1 assigned (<nil>)"}
	if !slices.Equal(announced, want) {
		t.Errorf("a group announced\n %q\nwant\n %q", announced, want)
	}
}
