package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/postgres"
	"github.com/jackc/pgx/v5"
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

// newOrder is the order that the given attempt of request requestID of household h1 would store:
// one parcel at each of two suppliers, with the parcel ids that attempt reserves under.
func newOrder(requestID string, attempt int) (order.Order, order.RequestKey) {
	id := order.OrderID("h1", requestID)
	hash := []byte("basket of " + requestID)
	at := time.Now().UTC().Truncate(time.Microsecond) // what PostgreSQL keeps
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

// claim claims key as PlaceOrder does and returns the attempt it is at.
func claim(t *testing.T, store *postgres.Store, key order.RequestKey) int {
	t.Helper()
	_, c, err := store.ClaimPlacement(context.Background(), "h1", "haixin", key)
	if err != nil {
		t.Fatalf("claim %s: %v", key.ID, err)
	}
	return c.Attempt
}

// sameOrder reports how got differs from want in what CreateOrder stores: the order's own fields
// and each parcel's id, supplier, state, totals and lines. It only reports (never stops the
// test), so goroutines may call it.
func sameOrder(t *testing.T, got, want order.Order) {
	t.Helper()
	if got.ID != want.ID || got.HouseholdID != want.HouseholdID || got.RequestID != want.RequestID ||
		string(got.RequestHash) != string(want.RequestHash) || got.Channel != want.Channel ||
		got.PlacedBy != want.PlacedBy || !got.PlacedAt.Equal(want.PlacedAt) {
		t.Errorf("order %+v, want %+v", got, want)
	}
	if len(got.Parcels) != len(want.Parcels) {
		t.Errorf("%d parcels, want %d", len(got.Parcels), len(want.Parcels))
		return
	}
	for i, p := range got.Parcels {
		w := want.Parcels[i]
		if p.ID != w.ID || p.SupplierID != w.SupplierID || p.State != w.State || p.TotalFen != w.TotalFen ||
			p.WeightGrams != w.WeightGrams || !slices.Equal(p.Lines, w.Lines) {
			t.Errorf("parcel %d: %+v, want %+v", i, p, w)
		}
	}
}

// subjects are the subjects of the events queued in the outbox, in the order queued.
func subjects(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT subject FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// placedSubjects are the events a new order of two parcels announces.
var placedSubjects = []string{"doorstep.haixin.order.placed", "doorstep.haixin.parcel.placed", "doorstep.haixin.parcel.placed"}

// CreateOrder stores the order of the request's current attempt with its parcels and events,
// and answers a second call with the stored order, storing nothing more.
func TestCreateOrderStoresTheCurrentAttemptsOrderOnce(t *testing.T) {
	ctx := context.Background()
	store, pool := openStore(t)
	o, key := newOrder("r1", 0)
	if a := claim(t, store, key); a != 0 {
		t.Fatalf("a new request is at attempt %d, want 0", a)
	}
	if _, created, err := store.CreateOrder(ctx, o, key, 0); err != nil || !created {
		t.Fatalf("create: created %v, %v", created, err)
	}
	read, err := store.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, read, o)
	if got := subjects(t, pool); !slices.Equal(got, placedSubjects) {
		t.Errorf("events %v, want %v", got, placedSubjects)
	}

	again, created, err := store.CreateOrder(ctx, o, key, 0)
	if err != nil || created {
		t.Fatalf("again: created %v, %v", created, err)
	}
	sameOrder(t, again, o)
	if n := countRows(t, pool, "outbox"); n != 3 {
		t.Errorf("%d events after the second call, want the first call's 3", n)
	}
}

// An attempt ended by a failure (its reservations given back) may no longer store its order;
// the retry's next attempt, with parcel ids of its own, does.
func TestCreateOrderRefusesAnEndedAttempt(t *testing.T) {
	ctx := context.Background()
	store, pool := openStore(t)
	stale, key := newOrder("r1", 0)
	claim(t, store, key)
	if _, err := store.EndAttempt(ctx, key, 0, stale.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateOrder(ctx, stale, key, 0); !errors.Is(err, order.ErrAborted) {
		t.Fatalf("ended attempt: %v, want %v", err, order.ErrAborted)
	}
	for _, table := range []string{"orders", "parcels", "parcel_lines", "parcel_transitions", "outbox"} {
		if n := countRows(t, pool, table); n != 0 {
			t.Errorf("%s: %d rows after the refusal, want none", table, n)
		}
	}

	a := claim(t, store, key)
	if a != 1 {
		t.Fatalf("the retry claims attempt %d, want 1", a)
	}
	current, _ := newOrder("r1", a)
	if _, created, err := store.CreateOrder(ctx, current, key, a); err != nil || !created {
		t.Fatalf("attempt %d: created %v, %v", a, created, err)
	}
	read, err := store.Order(ctx, current.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, read, current) // the second attempt's parcel ids, not the first's
}

// A request pruned while its placement ran (it would have to run for days) stores nothing: the
// client is told to retry. The first attempt is 0, the attempt a missing row would read as, so
// only the check that the row is there refuses it.
func TestCreateOrderRefusesAForgottenRequest(t *testing.T) {
	ctx := context.Background()
	store, pool := openStore(t)
	o, key := newOrder("r1", 0)
	claim(t, store, key)
	if n, err := store.PruneRequests(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("pruned %d requests, %v", n, err)
	}
	if _, _, err := store.CreateOrder(ctx, o, key, 0); !errors.Is(err, order.ErrAborted) {
		t.Fatalf("forgotten request: %v, want %v", err, order.ErrAborted)
	}
	if n := countRows(t, pool, "orders"); n != 0 {
		t.Errorf("%d orders stored, want none", n)
	}
}

// Concurrent copies of one attempt (retries of a request whose answer was slow) store one order
// with its events once, and every copy answers with it.
func TestCreateOrderConcurrentCopies(t *testing.T) {
	ctx := context.Background()
	store, pool := openStore(t)
	o, key := newOrder("r1", 0)
	claim(t, store, key)
	const copies = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	start := make(chan struct{})
	for range copies {
		wg.Go(func() {
			<-start
			stored, c, err := store.CreateOrder(ctx, o, key, 0)
			if err != nil {
				t.Error(err)
				return
			}
			sameOrder(t, stored, o)
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if created != 1 {
		t.Errorf("%d copies created the order, want 1", created)
	}
	for _, c := range []struct {
		table string
		want  int
	}{{"orders", 1}, {"parcels", 2}, {"outbox", 3}} {
		if n := countRows(t, pool, c.table); n != c.want {
			t.Errorf("%s: %d rows, want %d", c.table, n, c.want)
		}
	}
}
