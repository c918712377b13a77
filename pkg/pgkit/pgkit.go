// Package pgkit connects a service to PostgreSQL the way every Doorstep service does it: one schema
// per service (so services share a server but never a table), embedded migrations applied at start,
// and transactions that are retried when PostgreSQL reports a serialization failure or deadlock.
package pgkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Open connects to url with search_path set to schema, creating the schema if needed.
func Open(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if err := createSchema(ctx, cfg.ConnConfig.Copy(), schema); err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// Names the schema's connections in pg_stat_activity, so that an operator sees whose they are.
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "doorstep-" + schema
	}
	// pgx defaults to max(4, CPUs) connections, which on a small machine queues concurrent
	// requests behind four transactions; ?pool_max_conns= in the URL still overrides this.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 12
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return pool, nil
}

func createSchema(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	// Two replicas starting together can both pass IF NOT EXISTS; the loser sees a unique violation
	// on the catalog, which means the schema is there.
	if err != nil && !isCode(err, "23505", "42P06") {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// Migrations is one set of embedded goose migrations with its own version table, so the shared
// outbox and inbox tables and a service's own tables migrate independently.
type Migrations struct {
	Table string
	FS    fs.FS
}

// Migrate applies every set in order. A PostgreSQL session lock keeps two replicas of a service
// from migrating at the same time; its id is derived from the schema and the set, so different
// services sharing one database migrate side by side instead of queueing behind one lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, sets ...Migrations) error {
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	for _, set := range sets {
		if err := migrate(ctx, db, schema, set); err != nil {
			return fmt.Errorf("migrate %s.%s: %w", schema, set.Table, err)
		}
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB, schema string, set Migrations) error {
	h := fnv.New64a()
	_, _ = h.Write([]byte(schema + "." + set.Table))
	// Poll the lock every second (goose's default is every five) for up to five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, set.FS,
		goose.WithTableName(set.Table), goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// Tx runs fn in a transaction and commits it. A serialization failure or deadlock is retried with
// jittered backoff, so callers never see one; fn must therefore be safe to run again.
func Tx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return TxWith(ctx, pool, pgx.TxOptions{}, fn)
}

// TxWith is Tx with explicit transaction options (isolation level).
func TxWith(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	return retry(ctx, func() error { return pgx.BeginTxFunc(ctx, pool, opts, fn) })
}

// BatchTx is Tx for a transaction that starts with statements known before it begins and ends
// with writes that need no check before the commit. queue adds the first to b, with callbacks that
// read their results, and they go to the server with the BEGIN in one round trip. fn then runs in
// the transaction and may queue its last writes on commit, which go with the COMMIT in one round
// trip. A transaction that reads, decides and writes thus costs two round trips rather than one
// per statement (once its statements are prepared: pgx prepares each on a connection's first use
// of it), and holds its row locks for one round trip after deciding rather than two.
//
// A statement queued on commit must be one whose failure PostgreSQL reports as an error (a
// constraint, a conflict): the server then skips the COMMIT and the transaction rolls back. Its
// callbacks run after the COMMIT, too late to veto it, so a write whose result decides whether to
// commit (rows affected, a value returned) is run on tx inside fn instead. Should one of those
// callbacks fail, the transaction has committed all the same: the error then wraps ErrCommitted.
// queue and fn must be safe to run again, like Tx's fn.
func BatchTx(ctx context.Context, pool *pgxpool.Pool, queue func(b *pgx.Batch), fn func(tx pgx.Tx, commit *pgx.Batch) error) error {
	return retry(ctx, func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		// The pool takes the connection back only outside a transaction; one left in a transaction
		// or a batch (a lost connection, a cancelled call) is closed, never reused.
		defer conn.Release()
		b := &pgx.Batch{}
		b.BeginTx(pgx.TxOptions{})
		queue(b)
		br := conn.SendBatch(ctx, b)
		tx := br.Tx()
		committed := false
		defer func() {
			if !committed {
				_ = tx.Rollback(ctx)
			}
		}()
		if err := br.Close(); err != nil {
			return err
		}
		last := &pgx.Batch{}
		if err := fn(tx, last); err != nil {
			return err
		}
		// A transaction that a failed statement aborted earlier (one fn ran and then ignored)
		// answers COMMIT with ROLLBACK, and no error.
		last.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
			if tag.String() == "ROLLBACK" {
				return pgx.ErrTxCommitRollback
			}
			return nil
		})
		err = tx.SendBatch(ctx, last).Close()
		// Whatever the batch answered, a connection outside a transaction has nothing to roll back:
		// the COMMIT ran (or the server ended the transaction with its failure).
		committed = conn.Conn().PgConn().TxStatus() == 'I'
		var pgErr *pgconn.PgError
		if err != nil && committed && !errors.As(err, &pgErr) && !errors.Is(err, pgx.ErrTxCommitRollback) {
			// Not the server's failure but a callback's, after the server ran every statement and
			// the COMMIT (none of Doorstep's constraints is deferred to the COMMIT).
			return fmt.Errorf("%w, but reading a result failed: %w", ErrCommitted, err)
		}
		return err
	})
}

// ErrCommitted is wrapped by BatchTx's error when the transaction committed and a callback of a
// statement queued on commit then failed: what the statements wrote is stored, what the callback
// should have read is not known. It is not retried.
var ErrCommitted = errors.New("transaction committed")

// retry runs attempt until it succeeds or fails in a way a retry cannot resolve. A serialization
// failure or deadlock is retried after a jittered backoff that grows to 64 ms: until ctx is done
// where ctx has a deadline (a call's, so its caller is answered DEADLINE_EXCEEDED when time runs
// out, never told of the conflict), else up to ten times (a background loop, whose own redelivery
// or next poll is the further retry).
func retry(ctx context.Context, attempt func() error) error {
	const undeadlined = 10
	_, bounded := ctx.Deadline()
	var err error
	for i := 0; bounded || i < undeadlined; i++ {
		err = attempt()
		if err == nil || !Retryable(err) {
			return err
		}
		backoff := time.Duration(1<<min(i, 6)) * time.Millisecond
		select {
		case <-time.After(backoff + rand.N(backoff)):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
	return fmt.Errorf("transaction still conflicting after %d attempts: %w", undeadlined, err)
}

// Retryable reports whether err is a serialization failure or deadlock, which a retry resolves.
func Retryable(err error) bool {
	return isCode(err, "40001", "40P01")
}

// IsUniqueViolation reports whether err is a unique-constraint violation.
func IsUniqueViolation(err error) bool {
	return isCode(err, "23505")
}

func isCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}

// DatabaseURL is serverURL (a postgres:// URL) with its database replaced by name: the URL of
// another database on the same server, as the same user.
func DatabaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("database URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}
