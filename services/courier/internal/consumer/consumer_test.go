package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/internal/consumer"
	"github.com/doorstep/doorstep/services/courier/internal/postgres"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// seen records each announcement with the revision another connection could read when it was made.
type seen struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	got  []string
}

func (s *seen) Announce(ctx context.Context, revs ...route.Revision) {
	for _, r := range revs {
		var visible int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(revision), 0) FROM routes WHERE route_id = $1`, r.RouteID).Scan(&visible); err != nil {
			visible = -1
		}
		s.mu.Lock()
		s.got = append(s.got, fmt.Sprintf("%s %s announced %d visible %d", r.CourierID, r.RouteID, r.Revision, visible))
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

func routePlanned(routeID, courierID string, version int32, parcels ...string) *eventsv1.Event {
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_DISPATCHER, Id: "d"}, "", time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC))
	stop := &eventsv1.RouteStop{Sequence: 1, HouseholdId: "haixin-3-2-602", Address: &typesv1.Address{Compound: "haixin", Building: "3"}}
	for _, p := range parcels {
		stop.Parcels = append(stop.Parcels, &eventsv1.RouteParcel{ParcelId: p, OrderId: "order-" + p})
	}
	ev.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: &eventsv1.RoutePlanned{
		RouteId: routeID, RoundId: "round-am", CourierId: courierID, Version: version, Stops: []*eventsv1.RouteStop{stop}}}
	return ev
}

// A new version is announced once its transaction has committed, so a watcher re-reading on the
// announcement sees it; nothing is announced for a rolled-back transaction, a redelivery or a
// stale version.
func TestNewVersionsAreAnnouncedAfterTheyCommit(t *testing.T) {
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "courier")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgkit.Migrate(ctx, pool, outbox.Migrations(), inbox.Migrations(), postgres.Migrations()); err != nil {
		t.Fatal(err)
	}
	notifier := &seen{pool: pool}
	routes := consumer.Routes(postgres.New(pool), notifier, time.Now)
	failNext := false
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "courier-routes",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			if err := routes(ctx, tx, ev); err != nil {
				return err
			}
			if failNext {
				return errors.New("the commit never happens")
			}
			return nil
		}}

	apply := func(ev *eventsv1.Event, want ...string) {
		t.Helper()
		if err := c.Apply(ctx, ev); err != nil && !failNext {
			t.Fatal(err)
		}
		got := notifier.take()
		if len(got) != len(want) {
			t.Fatalf("announced %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("announced %v, want %v", got, want)
			}
		}
	}

	v1 := routePlanned("route-1", "c1", 1, "p1")
	apply(v1, "c1 route-1 announced 1 visible 1")
	apply(v1) // a redelivery
	failNext = true
	apply(routePlanned("route-1", "c1", 2, "p1", "p2")) // rolled back
	failNext = false
	apply(routePlanned("route-1", "c1", 1, "p9")) // stale
	// Handed over to c2 under version 2: both couriers' watchers are told, once it is visible.
	apply(routePlanned("route-1", "c2", 2, "p1"), "c2 route-1 announced 2 visible 2", "c1 route-1 announced 2 visible 2")
}
