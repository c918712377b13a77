package testkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// MigrationsRoundTrip applies every migration of sets one at a time, noting the schema after
// each, then takes them back one at a time (the last set first) and checks each down migration
// leaves the schema exactly as it was before its up migration (relations, columns, constraints,
// indexes, types, functions, triggers); then applies everything again. The tables are empty
// throughout: a down migration that depends on data (or refuses it) is not exercised here.
func MigrationsRoundTrip(t *testing.T, schema string, sets ...pgkit.Migrations) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, Postgres(t), schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	var versionTables []string
	for _, s := range sets {
		versionTables = append(versionTables, s.Table)
	}
	type step struct {
		p       *goose.Provider
		set     string
		version int64
		before  string
	}
	var steps []step
	for _, s := range sets {
		p, err := goose.NewProvider(goose.DialectPostgres, db, s.FS, goose.WithTableName(s.Table))
		if err != nil {
			t.Fatal(err)
		}
		for {
			before := snapshot(t, ctx, pool, schema, versionTables)
			r, err := p.UpByOne(ctx)
			if errors.Is(err, goose.ErrNoNextVersion) {
				break
			}
			if err != nil {
				t.Fatalf("up %s: %v", s.Table, err)
			}
			steps = append(steps, step{p, s.Table, r.Source.Version, before})
		}
	}
	for i := len(steps) - 1; i >= 0; i-- {
		st := steps[i]
		if _, err := st.p.Down(ctx); err != nil {
			t.Fatalf("down %s %d: %v", st.set, st.version, err)
		}
		if got := snapshot(t, ctx, pool, schema, versionTables); got != st.before {
			t.Errorf("down %s %d does not undo its up:\n%s", st.set, st.version, diff(st.before, got))
		}
	}
	if err := pgkit.Migrate(ctx, pool, sets...); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

func snapshot(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string, skip []string) string {
	t.Helper()
	rows, err := pool.Query(ctx, `
SELECT 'rel ' || c.relname || ' ' || c.relkind::text FROM pg_class c
 WHERE c.relnamespace = $1::text::regnamespace
   AND NOT c.relname LIKE ANY (SELECT t || '%' FROM unnest($2::text[]) t)
UNION ALL
SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
       CASE WHEN a.attnotnull THEN ' not null' ELSE '' END || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r','p','v','m','f') AND a.attnum > 0 AND NOT a.attisdropped
   AND NOT c.relname = ANY($2)
UNION ALL
SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = $1::text::regnamespace AND NOT conrelid::regclass::text = ANY($2)
UNION ALL
SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = $1::text AND NOT tablename = ANY($2)
UNION ALL
SELECT 'type ' || typname FROM pg_type WHERE typnamespace = $1::text::regnamespace AND typrelid = 0 AND typelem = 0
UNION ALL
SELECT 'func ' || p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = $1::text::regnamespace
UNION ALL
SELECT 'trg ' || tgname || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
   AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = $1::text::regnamespace)
ORDER BY 1`, schema, skip)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func diff(before, after string) string {
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	var out []string
	for _, l := range b {
		if l != "" && !slices.Contains(a, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range a {
		if l != "" && !slices.Contains(b, l) {
			out = append(out, "+ "+l)
		}
	}
	return fmt.Sprint(strings.Join(out, "\n"))
}
