package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
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
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "tracking")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, postgres.Migrations()); err != nil {
		t.Fatal(err)
	}
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
		facts = append(facts, func(tx pgx.Tx) error { _, err := postgres.ApplyStateChange(ctx, tx, c); return err })
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
