package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/views"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// Replicas apply events concurrently and in any order; the latest route version and the latest
// state win whatever the interleaving.
func TestConcurrentVersionsAndStatesLeaveTheLatest(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	store := &postgres.Store{Pool: pool}
	const round = "haixin-2022-04-10-am"
	at := time.Date(2022, 4, 10, 1, 0, 0, 0, time.UTC)
	parcels := make([]string, 12)
	for i := range parcels {
		parcels[i] = uuid.Must(uuid.NewV7()).String()
	}

	// Version v of the route carries parcels[v:v+3] to courier c<v>; version 10 wins.
	var facts []func(tx pgx.Tx) error
	for v := 1; v <= 10; v++ {
		r := views.Route{Compound: "haixin", RouteID: "route-1", RoundID: round, CourierID: fmt.Sprintf("c%d", v), Version: v,
			At: at.Add(time.Duration(v) * time.Minute), EventID: uuid.Must(uuid.NewV7()).String()}
		for _, p := range parcels[v-1 : v+2] {
			r.Parcels = append(r.Parcels, views.RouteParcel{ParcelID: p, Building: "1"})
		}
		facts = append(facts, func(tx pgx.Tx) error { _, err := postgres.ApplyRoute(ctx, tx, r); return err })
	}
	// Parcel 9 (on version 10) goes assigned → out → delivered; delivered wins.
	for i, state := range []string{"assigned", "out_for_delivery", "delivered"} {
		c := views.StateChange{Compound: "haixin", ParcelID: parcels[9], RoundID: round, State: state,
			At: at.Add(time.Duration(60+i) * time.Minute), EventID: uuid.Must(uuid.NewV7()).String()}
		facts = append(facts, func(tx pgx.Tx) error { _, err := postgres.Record(ctx, tx, postgres.Delivery{Change: &c}); return err })
	}
	rand.Shuffle(len(facts), func(i, j int) { facts[i], facts[j] = facts[j], facts[i] })
	var g errgroup.Group
	for _, f := range facts {
		g.Go(func() error { return pgkit.Tx(ctx, pool, f) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	got, err := store.RoundProgress(ctx, round)
	if err != nil {
		t.Fatal(err)
	}
	want := views.RoundProgress{RoundID: round, Total: views.Progress{Parcels: 3, Delivered: 1},
		Buildings: []views.Share{{Key: "1", Progress: views.Progress{Parcels: 3, Delivered: 1}}},
		Couriers:  []views.Share{{Key: "c10", Progress: views.Progress{Parcels: 3, Delivered: 1}}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("progress = %+v\nwant %+v", got, want)
	}
}

// A parcel's row ends the same whatever order its placement and state changes arrive in: who
// placed it from order.placed, the latest state by time. An event that changes nothing in the row
// does not write it.
func TestParcelRowIsTheSameInAnyOrderOfEvents(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	at := time.Date(2022, 4, 10, 1, 0, 0, 0, time.UTC)
	orderID, household, supplier := uuid.Must(uuid.NewV7()).String(), "hh-1-2-301", "sup-market"
	id := func() string { return uuid.Must(uuid.NewV7()).String() }

	type row struct {
		OrderID, Household, Supplier, State string
		At                                  time.Time
	}
	read := func(parcel string) (r row, xmin string) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT order_id::text, household_id, supplier_id, state, state_at, xmin::text FROM parcels WHERE parcel_id = $1`,
			parcel).Scan(&r.OrderID, &r.Household, &r.Supplier, &r.State, &r.At, &xmin); err != nil {
			t.Fatal(err)
		}
		r.At = r.At.UTC()
		return r, xmin
	}

	// Four events of one parcel; every one of their 24 orders, each on a parcel of its own.
	events := func(parcel string) []func(tx pgx.Tx) error {
		placement := views.Placement{Compound: "haixin", OrderID: orderID, HouseholdID: household, At: at, EventID: id(),
			Parcels: []views.PlacedParcel{{ParcelID: parcel, SupplierID: supplier}}}
		changes := []views.StateChange{
			{Compound: "haixin", ParcelID: parcel, OrderID: orderID, HouseholdID: household, State: "placed", At: at.Add(time.Millisecond), EventID: id()},
			{Compound: "haixin", ParcelID: parcel, OrderID: orderID, State: "confirmed", At: at.Add(time.Minute), EventID: id()},
			{Compound: "haixin", ParcelID: parcel, OrderID: orderID, HouseholdID: "someone else", State: "ready", At: at.Add(2 * time.Minute), EventID: id()},
		}
		fs := []func(tx pgx.Tx) error{func(tx pgx.Tx) error {
			_, err := postgres.Record(ctx, tx, postgres.Delivery{Placement: &placement})
			return err
		}}
		for _, c := range changes {
			fs = append(fs, func(tx pgx.Tx) error { _, err := postgres.Record(ctx, tx, postgres.Delivery{Change: &c}); return err })
		}
		return fs
	}
	want := row{OrderID: orderID, Household: household, Supplier: supplier, State: "ready", At: at.Add(2 * time.Minute)}
	for _, order := range permutations(4) {
		parcel := id()
		fs := events(parcel)
		for _, i := range order {
			if err := pgkit.Tx(ctx, pool, fs[i]); err != nil {
				t.Fatal(err)
			}
		}
		got, xmin := read(parcel)
		if got != want {
			t.Errorf("events in order %v: row = %+v, want %+v", order, got, want)
		}
		// Applying any of them again (a redelivery past the inbox, or an older state) changes nothing.
		if err := pgkit.Tx(ctx, pool, fs[2]); err != nil {
			t.Fatal(err)
		}
		if again, xminAgain := read(parcel); again != want || xminAgain != xmin {
			t.Errorf("events in order %v, then confirmed again: row = %+v (xmin %s -> %s), want it unwritten", order, again, xmin, xminAgain)
		}
	}

	// Before order.placed arrives, an older event still notes what a later one did not say.
	parcel := id()
	fs := events(parcel)
	for _, i := range []int{2, 1} { // confirmed (no household), then the older parcel.placed
		if err := pgkit.Tx(ctx, pool, fs[i]); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := read(parcel)
	if want := (row{OrderID: orderID, Household: household, State: "confirmed", At: at.Add(time.Minute)}); got != want {
		t.Errorf("confirmed, then an older parcel.placed: row = %+v, want %+v", got, want)
	}
	parcel = id()
	for _, c := range []views.StateChange{
		{Compound: "haixin", ParcelID: parcel, HouseholdID: household, State: "ready", At: at.Add(time.Hour), EventID: id()},
		{Compound: "haixin", ParcelID: parcel, OrderID: orderID, State: "confirmed", At: at, EventID: id()},
	} {
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error { _, err := postgres.Record(ctx, tx, postgres.Delivery{Change: &c}); return err }); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = read(parcel)
	if want := (row{OrderID: orderID, Household: household, State: "ready", At: at.Add(time.Hour)}); got != want {
		t.Errorf("ready (no order), then an older confirmed: row = %+v, want %+v", got, want)
	}
}

// permutations of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// Record says which rounds' progress a state change moved: a state within a round moves that
// round, one outside any round (a cancellation) every round the parcel is on, and an older
// state than the one recorded none.
func TestRecordSaysWhichRoundsMoved(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	at := time.Date(2022, 4, 10, 1, 0, 0, 0, time.UTC)
	parcel := uuid.Must(uuid.NewV7()).String()
	am, pm := "haixin-2022-04-10-am", "haixin-2022-04-10-pm"
	// The parcel failed on the morning round and was carried again in the afternoon.
	for i, round := range []string{am, pm} {
		r := views.Route{Compound: "haixin", RouteID: "route-" + round, RoundID: round, CourierID: "c1", Version: 1,
			At: at.Add(time.Duration(i) * time.Hour), EventID: uuid.Must(uuid.NewV7()).String(),
			Parcels: []views.RouteParcel{{ParcelID: parcel, Building: "1"}}}
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error { _, err := postgres.ApplyRoute(ctx, tx, r); return err }); err != nil {
			t.Fatal(err)
		}
	}
	record := func(round, state string, minutes int) []string {
		t.Helper()
		c := views.StateChange{Compound: "haixin", ParcelID: parcel, RoundID: round, State: state,
			At: at.Add(time.Duration(minutes) * time.Minute), EventID: uuid.Must(uuid.NewV7()).String()}
		var rec postgres.Recorded
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) (err error) {
			rec, err = postgres.Record(ctx, tx, postgres.Delivery{Change: &c})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return rec.Rounds
	}
	if got := record(pm, "out_for_delivery", 300); fmt.Sprint(got) != fmt.Sprint([]string{pm}) {
		t.Errorf("out for delivery in the afternoon moved %v; want [%s]", got, pm)
	}
	if got := record(pm, "assigned", 200); len(got) != 0 {
		t.Errorf("an older state moved %v; want none", got)
	}
	if got := record("", "cancelled", 400); fmt.Sprint(got) != fmt.Sprint([]string{am, pm}) {
		t.Errorf("a cancellation moved %v; want both rounds the parcel is on, [%s %s]", got, am, pm)
	}
}

// A placement that names a parcel twice stores it once, rather than failing the whole event
// (one statement cannot write a row twice).
func TestPlacementNamingAParcelTwice(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	store := &postgres.Store{Pool: pool}
	parcel := uuid.Must(uuid.NewV7()).String()
	p := views.Placement{Compound: "haixin", OrderID: uuid.Must(uuid.NewV7()).String(), HouseholdID: "haixin-3-2-502",
		Parcels: []views.PlacedParcel{{ParcelID: parcel, SupplierID: "fm"}, {ParcelID: parcel, SupplierID: "fm"}},
		At:      time.Date(2022, 4, 10, 1, 0, 0, 0, time.UTC), EventID: uuid.Must(uuid.NewV7()).String()}
	if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error {
		_, err := postgres.Record(ctx, tx, postgres.Delivery{Placement: &p})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	queue, err := store.SupplierQueue(ctx, "fm")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(queue) != fmt.Sprint([]views.StateCount{{State: views.StatePlaced, Parcels: 1}}) {
		t.Errorf("supplier queue %v; want the one parcel PLACED", queue)
	}
}
