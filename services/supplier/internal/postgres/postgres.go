// Package postgres stores the supplier service's suppliers, catalogs, parcels, transitions and
// idempotency keys in its PostgreSQL schema with hand-written SQL. Every change commits together
// with its transition record, its idempotency key and its outbox event.
package postgres

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the supplier tables.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_supplier", FS: sub}
}

// Repo implements supply.Repository.
type Repo struct {
	Pool *pgxpool.Pool
}

var _ supply.Repository = (*Repo)(nil)

// idempotent runs fn under key inside tx. The key is claimed first, so a concurrent duplicate
// waits for this transaction and then finds the stored response; a request that fails rolls its
// key back with everything else and may be retried afresh.
func idempotent[T any](ctx context.Context, tx pgx.Tx, key *supply.IdempotencyKey, fn func() (T, error)) (T, error) {
	var zero T
	if key == nil || key.RequestID == "" {
		return fn()
	}
	at := key.At
	if at.IsZero() {
		at = time.Now()
	}
	// A key stored before keys had scopes (scope '') still answers for its id, whoever retries.
	tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (scope, request_id, method, request_hash, created_at)
		SELECT $1, $2, $3, $4, $5
		WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE scope = '' AND request_id = $2)
		ON CONFLICT (scope, request_id) DO NOTHING`, key.Scope, key.RequestID, key.Method, key.Hash, at)
	if err != nil {
		return zero, fmt.Errorf("claim request %s: %w", key.RequestID, err)
	}
	if tag.RowsAffected() == 0 {
		var method string
		var hash, response []byte
		if err := tx.QueryRow(ctx, `SELECT method, request_hash, response FROM idempotency_keys
			WHERE scope IN ($1, '') AND request_id = $2 ORDER BY scope DESC LIMIT 1`,
			key.Scope, key.RequestID).Scan(&method, &hash, &response); err != nil {
			return zero, fmt.Errorf("read request %s: %w", key.RequestID, err)
		}
		if method != key.Method || !bytes.Equal(hash, key.Hash) {
			return zero, fmt.Errorf("request_id %s was used for a different request: %w", key.RequestID, supply.ErrAlreadyExists)
		}
		var out T
		if err := json.Unmarshal(response, &out); err != nil {
			return zero, fmt.Errorf("stored response of request %s: %w", key.RequestID, err)
		}
		return out, nil
	}
	out, err := fn()
	if err != nil {
		return zero, err
	}
	response, err := json.Marshal(out)
	if err != nil {
		return zero, fmt.Errorf("encode response of request %s: %w", key.RequestID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE idempotency_keys SET response = $3 WHERE scope = $1 AND request_id = $2`,
		key.Scope, key.RequestID, response); err != nil {
		return zero, fmt.Errorf("store response of request %s: %w", key.RequestID, err)
	}
	return out, nil
}

// PruneKeys implements supply.Repository.
func (r *Repo) PruneKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := r.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, supply.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
