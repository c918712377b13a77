package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// openStore is a migrated order store on a fresh database with one household, h1 of haixin.
func openStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "orders")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, outbox.Migrations(), postgres.Migrations()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO households (household_id, compound, building, unit, floor, room, residents)
		VALUES ('h1', 'haixin', '1', '1', 3, '301', 2)`); err != nil {
		t.Fatal(err)
	}
	return postgres.New(pool, nil), pool
}

// newOrder is the order that attempt of request requestID of household h1 would store: one
// parcel at each of two suppliers.
func newOrder(requestID string, attempt int) (order.Order, order.RequestKey) {
	id := order.OrderID("h1", requestID)
	hash := []byte("basket of " + requestID)
	at := time.Now().UTC().Truncate(time.Microsecond)
	resident := order.Actor{Role: order.RoleResident, ID: "h1"}
	o := order.Order{ID: id, HouseholdID: "h1", Compound: "haixin", RequestID: requestID, RequestHash: hash,
		Channel: order.ChannelApp, PlacedBy: resident, PlacedAt: at}
	for _, sup := range []string{"freshmart", "kangjian"} {
		o.Parcels = append(o.Parcels, order.Parcel{ID: order.ParcelID(id, sup, attempt), OrderID: id, SupplierID: sup,
			HouseholdID: "h1", State: order.Placed, UpdatedAt: at, TotalFen: 1200, WeightGrams: 500,
			Address: order.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 3, Room: "301"},
			Lines: []order.Line{{ItemID: sup + "-rice", Name: "rice", Unit: "bag", Quantity: 1, UnitPriceFen: 1200,
				AmountFen: 1200, UnitWeightGrams: 500}}})
	}
	return o, order.RequestKey{Kind: "place", Scope: "h1", ID: requestID, Hash: hash}
}

// count is how many rows of table the order store holds.
func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// CreateOrder stores the order of the request's current attempt once, with its parcels and
// events; a second call answers with the stored order; a stale attempt or a forgotten request
// stores nothing and is told to retry.
func TestCreateOrderOnlyForTheCurrentAttempt(t *testing.T) {
	ctx := context.Background()
	store, pool := openStore(t)

	o, key := newOrder("r1", 0)
	if _, c, err := store.ClaimPlacement(ctx, "h1", "haixin", key); err != nil || c.Attempt != 0 {
		t.Fatalf("claim: attempt %d, %v", c.Attempt, err)
	}
	stored, created, err := store.CreateOrder(ctx, o, key, 0)
	if err != nil || !created || stored.ID != o.ID || len(stored.Parcels) != 2 {
		t.Fatalf("create: created %v, %d parcels, %v", created, len(stored.Parcels), err)
	}
	read, err := store.Order(ctx, o.ID)
	if err != nil || len(read.Parcels) != 2 || read.Parcels[0].Lines[0].ItemID == "" {
		t.Fatalf("read back: %+v, %v", read, err)
	}
	// order.placed and one parcel.placed per parcel.
	if n := count(t, pool, "outbox"); n != 3 {
		t.Fatalf("%d events queued, want 3", n)
	}

	again, created, err := store.CreateOrder(ctx, o, key, 0)
	if err != nil || created || again.ID != o.ID || len(again.Parcels) != 2 {
		t.Fatalf("again: created %v, %d parcels, %v", created, len(again.Parcels), err)
	}

	// The first attempt of r2 failed and was ended: its order may not be stored any more.
	stale, key2 := newOrder("r2", 0)
	if _, _, err := store.ClaimPlacement(ctx, "h1", "haixin", key2); err != nil {
		t.Fatal(err)
	}
	if _, err := store.EndAttempt(ctx, key2, 0, stale.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateOrder(ctx, stale, key2, 0); !errors.Is(err, order.ErrAborted) {
		t.Fatalf("stale attempt: %v, want %v", err, order.ErrAborted)
	}
	// Its retry, the second attempt, is stored.
	current, _ := newOrder("r2", 1)
	if _, created, err := store.CreateOrder(ctx, current, key2, 1); err != nil || !created {
		t.Fatalf("second attempt: created %v, %v", created, err)
	}

	// A request forgotten meanwhile (pruned) stores nothing either.
	lost, key3 := newOrder("r3", 0)
	if _, _, err := store.ClaimPlacement(ctx, "h1", "haixin", key3); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM requests WHERE request_id = 'r3'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateOrder(ctx, lost, key3, 0); !errors.Is(err, order.ErrAborted) {
		t.Fatalf("forgotten request: %v, want %v", err, order.ErrAborted)
	}

	// r1 and r2's second attempt only: two orders, four parcels, their transitions and six events.
	for table, want := range map[string]int{"orders": 2, "parcels": 4, "parcel_lines": 4, "parcel_transitions": 4, "outbox": 6} {
		if n := count(t, pool, table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
}

// Concurrent copies of one attempt store one order, and every copy answers with it.
func TestCreateOrderConcurrentCopies(t *testing.T) {
	ctx := context.Background()
	store, pool := openStore(t)
	o, key := newOrder("r1", 0)
	if _, _, err := store.ClaimPlacement(ctx, "h1", "haixin", key); err != nil {
		t.Fatal(err)
	}
	const copies = 20
	type answer struct {
		o       order.Order
		created bool
		err     error
	}
	answers := make(chan answer, copies)
	for range copies {
		go func() {
			stored, created, err := store.CreateOrder(ctx, o, key, 0)
			answers <- answer{stored, created, err}
		}()
	}
	created := 0
	for range copies {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.o.ID != o.ID || len(a.o.Parcels) != 2 {
			t.Errorf("answered order %s with %d parcels", a.o.ID, len(a.o.Parcels))
		}
		if a.created {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d copies created the order, want 1", created)
	}
	if n := count(t, pool, "parcels"); n != 2 {
		t.Errorf("%d parcels stored, want 2", n)
	}
}
