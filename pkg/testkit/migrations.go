package testkit

import (
	"context"
	"testing"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// MigrationsRoundTrip checks a service's migrations both ways on a fresh database: every set up
// (as the service applies them), every down migration back to nothing (the last set first), and up
// again, with the schema left empty in between. A down migration that fails, or leaves a table
// behind, fails the test.
func MigrationsRoundTrip(t *testing.T, schema string, sets ...pgkit.Migrations) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, Postgres(t), schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgkit.Migrate(ctx, pool, sets...); err != nil {
		t.Fatalf("up: %v", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	for i := len(sets) - 1; i >= 0; i-- {
		p, err := goose.NewProvider(goose.DialectPostgres, db, sets[i].FS, goose.WithTableName(sets[i].Table))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.DownTo(ctx, 0); err != nil {
			t.Fatalf("down %s: %v", sets[i].Table, err)
		}
	}
	var left []string
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		left = append(left, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// goose keeps its version tables, at version 0.
	for _, name := range left {
		known := false
		for _, s := range sets {
			known = known || name == s.Table
		}
		if !known {
			t.Errorf("after every down migration, table %s.%s is left", schema, name)
		}
	}
	if err := pgkit.Migrate(ctx, pool, sets...); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
