package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// openPool opens a migrated tracking schema in a database of the test's own.
func openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "tracking")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, postgres.Migrations()); err != nil {
		t.Fatal(err)
	}
	return pool
}

// The event_id key keeps an event once even if it reaches Record twice without the inbox
// (a replay under another consumer name, a manual re-import).
func TestRecordIsIdempotentAndReadOrdersByTimeThenID(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	store := &postgres.Store{Pool: pool}
	orderID := uuid.Must(uuid.NewV7()).String()
	at := time.Date(2022, 4, 10, 8, 0, 0, 0, time.UTC)
	first := timeline.Entry{EventID: uuid.Must(uuid.NewV7()).String(), Compound: "haixin", OrderID: orderID,
		OccurredAt: at, Kind: "order.placed", Actor: timeline.Actor{Role: "resident", ID: "haixin-1-1-101"}, Detail: "1 parcel"}
	second := first
	second.EventID = uuid.Must(uuid.NewV7()).String() // same instant, later id
	second.Kind, second.ParcelID, second.State = "parcel.placed", uuid.Must(uuid.NewV7()).String(), "placed"
	earlier := first
	earlier.EventID = uuid.Must(uuid.NewV7()).String() // later id, earlier time: time wins
	earlier.OccurredAt = at.Add(-time.Second)

	for i, e := range []timeline.Entry{second, first, first, earlier} {
		var rec postgres.Recorded
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) (err error) {
			rec, err = postgres.Record(ctx, tx, postgres.Delivery{
				Order: timeline.Order{ID: orderID, Compound: "haixin", HouseholdID: "haixin-1-1-101"}, Entry: &e})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if wantNew := i != 2; rec.NewEntry != wantNew {
			t.Errorf("record %d: NewEntry = %v, want %v", i, rec.NewEntry, wantNew)
		}
	}
	got, err := store.OrderTimeline(ctx, orderID)
	if err != nil {
		t.Fatal(err)
	}
	want := []timeline.Entry{earlier, first, second}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := store.OrderTimeline(ctx, uuid.Must(uuid.NewV7()).String()); !errors.Is(err, timeline.ErrNotFound) {
		t.Errorf("unknown order: err = %v, want ErrNotFound", err)
	}
}
