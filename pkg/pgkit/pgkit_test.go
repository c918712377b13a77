package pgkit_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/localpg"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "kit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE counters (name text PRIMARY KEY, n int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return pool
}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM counters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The batch's statements run inside the transaction: fn sees what they read, and what they wrote
// commits or rolls back with fn's own writes and those fn queued on commit. Every path gives the
// connection back to the pool.
func TestBatchTx(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)

	t.Run("commits the batch, fn and what fn queued on commit together", func(t *testing.T) {
		var got, returned int
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			b.Queue(`INSERT INTO counters VALUES ('a', 1)`)
			b.Queue(`SELECT n FROM counters WHERE name = 'a'`).QueryRow(func(r pgx.Row) error { return r.Scan(&got) })
		}, func(tx pgx.Tx, commit *pgx.Batch) error {
			if _, err := tx.Exec(ctx, `INSERT INTO counters VALUES ('b', $1)`, got+1); err != nil {
				return err
			}
			commit.Queue(`UPDATE counters SET n = n + 10 WHERE name = 'b' RETURNING n`).QueryRow(func(r pgx.Row) error { return r.Scan(&returned) })
			return nil
		})
		if err != nil || got != 1 || returned != 12 || count(t, pool) != 2 {
			t.Fatalf("err %v, read %d, returned %d, rows %d; want nil, 1, 12, 2", err, got, returned, count(t, pool))
		}
	})

	t.Run("fn's error rolls back the batch's writes", func(t *testing.T) {
		boom := errors.New("boom")
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			b.Queue(`INSERT INTO counters VALUES ('c', 1)`)
		}, func(_ pgx.Tx, commit *pgx.Batch) error {
			commit.Queue(`INSERT INTO counters VALUES ('c2', 1)`)
			return boom
		})
		if !errors.Is(err, boom) || count(t, pool) != 2 {
			t.Fatalf("err %v, rows %d; want boom, 2", err, count(t, pool))
		}
	})

	t.Run("a failing statement of the batch fails the transaction before fn", func(t *testing.T) {
		ran := false
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			b.Queue(`INSERT INTO counters VALUES ('d', 1)`)
			b.Queue(`INSERT INTO counters VALUES ('a', 1)`) // duplicate key
		}, func(pgx.Tx, *pgx.Batch) error { ran = true; return nil })
		if !pgkit.IsUniqueViolation(err) || ran || count(t, pool) != 2 {
			t.Fatalf("err %v, fn ran %v, rows %d; want a unique violation, false, 2", err, ran, count(t, pool))
		}
	})

	t.Run("a failing statement queued on commit rolls back everything", func(t *testing.T) {
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			b.Queue(`INSERT INTO counters VALUES ('f', 1)`)
		}, func(tx pgx.Tx, commit *pgx.Batch) error {
			if _, err := tx.Exec(ctx, `INSERT INTO counters VALUES ('g', 1)`); err != nil {
				return err
			}
			commit.Queue(`INSERT INTO counters VALUES ('h', 1)`)
			commit.Queue(`INSERT INTO counters VALUES ('a', 1)`) // duplicate key
			commit.Queue(`INSERT INTO counters VALUES ('i', 1)`)
			return nil
		})
		if !pgkit.IsUniqueViolation(err) || count(t, pool) != 2 {
			t.Fatalf("err %v, rows %d; want a unique violation, 2", err, count(t, pool))
		}
	})

	t.Run("a transaction fn let fail is not reported committed", func(t *testing.T) {
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			b.Queue(`INSERT INTO counters VALUES ('j', 1)`)
		}, func(tx pgx.Tx, _ *pgx.Batch) error {
			_, _ = tx.Exec(ctx, `SELECT 1 / 0`) // fails, and fn goes on regardless
			return nil
		})
		if !errors.Is(err, pgx.ErrTxCommitRollback) || count(t, pool) != 2 {
			t.Fatalf("err %v, rows %d; want ErrTxCommitRollback, 2", err, count(t, pool))
		}
	})

	t.Run("a callback queued on commit that fails reports the commit", func(t *testing.T) {
		boom := errors.New("boom")
		err := pgkit.BatchTx(ctx, pool, func(*pgx.Batch) {}, func(_ pgx.Tx, commit *pgx.Batch) error {
			commit.Queue(`INSERT INTO counters VALUES ('l', 1) RETURNING n`).QueryRow(func(pgx.Row) error { return boom })
			return nil
		})
		if !errors.Is(err, pgkit.ErrCommitted) || !errors.Is(err, boom) || count(t, pool) != 3 {
			t.Fatalf("err %v, rows %d; want ErrCommitted and boom, 3", err, count(t, pool))
		}
		if _, err := pool.Exec(ctx, `DELETE FROM counters WHERE name = 'l'`); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a serialization failure is retried, batch and all", func(t *testing.T) {
		attempts := 0
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			attempts++
			b.Queue(`INSERT INTO counters VALUES ('e', 1)`)
			if attempts == 1 {
				b.Queue(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
			}
		}, func(pgx.Tx, *pgx.Batch) error { return nil })
		if err != nil || attempts != 2 || count(t, pool) != 3 {
			t.Fatalf("err %v, attempts %d, rows %d; want nil, 2, 3", err, attempts, count(t, pool))
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			t.Fatalf("retried failure surfaced: %v", pgErr)
		}
	})

	t.Run("a serialization failure on commit is retried too", func(t *testing.T) {
		attempts := 0
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			attempts++
		}, func(_ pgx.Tx, commit *pgx.Batch) error {
			commit.Queue(`INSERT INTO counters VALUES ('k', 1)`)
			if attempts == 1 {
				commit.Queue(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
			}
			return nil
		})
		if err != nil || attempts != 2 || count(t, pool) != 4 {
			t.Fatalf("err %v, attempts %d, rows %d; want nil, 2, 4", err, attempts, count(t, pool))
		}
	})

	t.Run("a call with a deadline retries a conflict until the deadline, never answering with it", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		attempts := 0
		err := pgkit.BatchTx(cctx, pool, func(b *pgx.Batch) {
			attempts++
			if attempts <= 15 { // more than a context without a deadline is given
				b.Queue(`DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$`)
			}
		}, func(pgx.Tx, *pgx.Batch) error { return nil })
		if err != nil || attempts != 16 {
			t.Fatalf("err %v, attempts %d; want nil, 16", err, attempts)
		}

		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		err = pgkit.BatchTx(short, pool, func(b *pgx.Batch) {
			b.Queue(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
		}, func(pgx.Tx, *pgx.Batch) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a conflict outlasting the deadline answered %v, want the deadline", err)
		}
	})

	t.Run("without a deadline a conflict is retried ten times", func(t *testing.T) {
		attempts := 0
		err := pgkit.BatchTx(ctx, pool, func(b *pgx.Batch) {
			attempts++
			b.Queue(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
		}, func(pgx.Tx, *pgx.Batch) error { return nil })
		if !pgkit.Retryable(err) || attempts != 10 {
			t.Fatalf("err %v, attempts %d; want the conflict after 10", err, attempts)
		}
	})

	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still held after every transaction ended", n)
	}
}

// A transaction that reads, decides and writes is two batches: the BEGIN with the reads, and the
// writes with the COMMIT; no other query or batch is sent (pgx's preparing of a statement on its
// first use, which the tracer does not see, aside), and the connection goes back to the pool
// outside a transaction, to be used again. One that fails sends a ROLLBACK.
func TestBatchTxRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	cfg := pool.Config().Copy()
	sent := &recorder{}
	cfg.ConnConfig.Tracer = sent
	cfg.MaxConns = 1
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer traced.Close()
	if err := traced.Ping(ctx); err != nil { // connects, so that only the transactions are recorded
		t.Fatal(err)
	}
	sent.reset()

	var n int
	err = pgkit.BatchTx(ctx, traced, func(b *pgx.Batch) {
		b.Queue(`SELECT count(*) FROM counters`).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
	}, func(_ pgx.Tx, commit *pgx.Batch) error {
		commit.Queue(`INSERT INTO counters VALUES ('x', $1)`, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"batch: begin; SELECT count(*) FROM counters", "batch: INSERT INTO counters VALUES ('x', $1); COMMIT"}
	if got := sent.reset(); !slices.Equal(got, want) {
		t.Errorf("a committed transaction sent\n%q\nwant\n%q", got, want)
	}
	if count(t, pool) != 1 {
		t.Errorf("%d rows after the commit, want 1", count(t, pool))
	}
	if s := traced.Stat(); s.TotalConns() != 1 || s.AcquiredConns() != 0 {
		t.Errorf("after the commit the pool holds %d connections, %d of them acquired; want its one connection back", s.TotalConns(), s.AcquiredConns())
	}

	boom := errors.New("boom")
	err = pgkit.BatchTx(ctx, traced, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO counters VALUES ('y', 1)`)
	}, func(_ pgx.Tx, commit *pgx.Batch) error {
		commit.Queue(`INSERT INTO counters VALUES ('z', 1)`)
		return boom
	})
	want = []string{"batch: begin; INSERT INTO counters VALUES ('y', 1)", "query: rollback"}
	if got := sent.reset(); !errors.Is(err, boom) || !slices.Equal(got, want) {
		t.Errorf("a failed transaction answered %v and sent\n%q\nwant boom and\n%q", err, got, want)
	}
	if count(t, pool) != 1 {
		t.Errorf("%d rows after the rollback, want 1", count(t, pool))
	}
}

// recorder notes what a connection sends: each query, and each batch with its statements.
type recorder struct {
	mu   sync.Mutex
	sent []string
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

func (r *recorder) reset() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := r.sent
	r.sent = nil
	return sent
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.note("query: " + d.SQL)
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var sqls []string
	for _, q := range d.Batch.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	r.note("batch: " + strings.Join(sqls, "; "))
	return ctx
}

func (r *recorder) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// A pool's connections carry the schema's name, unless the URL names them otherwise.
func TestOpenNamesTheConnections(t *testing.T) {
	t.Setenv("PGAPPNAME", "") // pgx would take a name from the environment first
	ctx := context.Background()
	url := testkit.Postgres(t)
	for _, tc := range []struct{ url, want string }{
		{url, "doorstep-kit"},
		{url + sep(url) + "application_name=ops-console", "ops-console"},
	} {
		pool, err := pgkit.Open(ctx, tc.url, "kit")
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = pool.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&got)
		pool.Close()
		if err != nil || got != tc.want {
			t.Errorf("application_name = %q, %v; want %q", got, err, tc.want)
		}
	}
}

func sep(url string) string {
	if strings.Contains(url, "?") {
		return "&"
	}
	return "?"
}

// DatabaseURL changes only the database: the host (a private cluster's socket directory, or a
// TCP address), the port and the options survive.
func TestDatabaseURL(t *testing.T) {
	for _, server := range []string{
		localpg.URL("/tmp/doorstep data/postgres", 55432, "postgres"),
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	} {
		got, err := pgkit.DatabaseURL(server, "doorstep")
		if err != nil {
			t.Fatal(err)
		}
		want, err := pgx.ParseConfig(server)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if cfg.Database != "doorstep" || cfg.Host != want.Host || cfg.Port != want.Port || cfg.User != "postgres" {
			t.Errorf("DatabaseURL(%s) = %s: database %q on %s:%d as %s; want doorstep on %s:%d as postgres",
				server, got, cfg.Database, cfg.Host, cfg.Port, cfg.User, want.Host, want.Port)
		}
	}
	for _, dir := range []string{"/var/lib/doorstep/postgres", "/tmp/doorstep data/postgres", "/tmp/a+b&c=d%20/postgres"} {
		if got := mustParse(t, localpg.URL(dir, 55432, "postgres")).Host; got != dir {
			t.Errorf("localpg.URL(%q) reaches the socket directory %q", dir, got)
		}
	}
	if _, err := pgkit.DatabaseURL("postgres://[::1", "doorstep"); err == nil {
		t.Error("a malformed server URL was accepted")
	}
}

func mustParse(t *testing.T, u string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	return cfg
}
