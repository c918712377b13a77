package postgres_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/postgres"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Households stored before the roster kept reasons keep what they meant: occupied flats stay
// occupied, quarantined ones stay contactless for the usual 14 days, priority ones stay served
// first.
func TestRosterMigrationKeepsExistingHouseholds(t *testing.T) {
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	all := postgres.Migrations()
	first, err := fs.ReadFile(all.FS, "00001_orders.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := pgkit.Migrate(ctx, pool, pgkit.Migrations{Table: all.Table, FS: fstest.MapFS{"00001_orders.sql": {Data: first}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO households (household_id, compound, building, unit, floor, room, residents, priority, quarantined, occupied)
		VALUES ('h-plain', 'haixin', '1', '1', 1, '101', 2, false, false, true),
		       ('h-unset', 'haixin', '1', '1', 1, '102', 0, false, false, false),
		       ('h-priority', 'haixin', '1', '1', 1, '103', 1, true, false, true),
		       ('h-quarantined', 'haixin', '1', '1', 1, '104', 3, false, true, true);
		INSERT INTO requests (kind, scope, request_id, request_hash) VALUES ('household', 'h-plain', 'r1', '\x00'), ('place', 'h-plain', 'r2', '\x00')`); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := pgkit.Migrate(ctx, pool, all); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	store := postgres.New(pool, nil)
	read := func(id string) order.Household {
		h, err := store.Household(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := read("h-plain"); h.Occupancy != order.OccupancyOccupied || h.Residents != 2 || h.Priority(now) || h.Quarantined(now) {
		t.Errorf("plain household %+v", h)
	}
	if h := read("h-unset"); h.Occupancy != order.OccupancyUnknown {
		t.Errorf("unoccupied household became %s, want UNKNOWN", h.Occupancy)
	}
	if h := read("h-priority"); !h.UnstatedPriority || !h.Priority(now) || h.Over80 || h.LivesAlone || h.ChronicallyIll {
		t.Errorf("priority household %+v", h)
	}
	h := read("h-quarantined")
	// The migration reads the date from the database's clock, somewhere between before and now:
	// at Shanghai's midnight the two can be a day apart.
	if want, or := before.In(rounds.Shanghai).AddDate(0, 0, 14).Format(rounds.DateLayout),
		now.In(rounds.Shanghai).AddDate(0, 0, 14).Format(rounds.DateLayout); h.QuarantinedUntil != want && h.QuarantinedUntil != or {
		t.Errorf("quarantined until %q, want %q", h.QuarantinedUntil, or)
	}
	if !h.Quarantined(now) || !h.Quarantined(now.AddDate(0, 0, 13)) || h.Quarantined(now.AddDate(0, 0, 15)) {
		t.Errorf("quarantine of %+v does not last 14 days", h)
	}
	var keys []string
	rows, err := pool.Query(ctx, `SELECT kind FROM requests ORDER BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 || keys[0] != "place" {
		t.Errorf("request keys after the migration: %v, want the placement's only", keys)
	}
}

// Every migration of the service's own tables, one at a time, goes down to exactly where it began.
func TestMigrationsRoundTrip(t *testing.T) {
	testkit.MigrationsRoundTrip(t, "orders", postgres.Migrations())
}
