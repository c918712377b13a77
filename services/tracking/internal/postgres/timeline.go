// Package postgres stores the tracking service's timelines and read models in the tracking schema
// with hand-written SQL. The write functions run inside the consumers' inbox transactions.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the tracking schema's own tables.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_tracking", FS: sub}
}

// queueEntry adds to b the statements that note the order o (with its household once an event
// names it) and store e on its timeline; once b has run, inserted says whether the entry is new:
// an event already stored changes nothing.
func queueEntry(b *pgx.Batch, o timeline.Order, e timeline.Entry, inserted *bool) {
	var parcelID *string
	if e.ParcelID != "" {
		parcelID = &e.ParcelID
	}
	b.Queue(`
		INSERT INTO orders (order_id, compound, household_id) VALUES ($1, $2, $3)
		ON CONFLICT (order_id) DO UPDATE SET household_id = EXCLUDED.household_id
		WHERE orders.household_id = '' AND EXCLUDED.household_id <> ''`,
		o.ID, o.Compound, o.HouseholdID)
	b.Queue(`
		INSERT INTO timeline_entries
			(event_id, compound, order_id, occurred_at, kind, parcel_id, state, actor_role, actor_id, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (event_id) DO NOTHING`,
		e.EventID, e.Compound, e.OrderID, e.OccurredAt.UTC(), e.Kind, parcelID, e.State,
		e.Actor.Role, e.Actor.ID, e.Detail).Exec(func(tag pgconn.CommandTag) error {
		*inserted = tag.RowsAffected() == 1
		return nil
	})
}

// Store reads timelines and read models.
type Store struct {
	Pool *pgxpool.Pool
}

var _ timeline.Reader = (*Store)(nil)

// Order implements timeline.Reader.
func (s *Store) Order(ctx context.Context, orderID string) (timeline.Order, error) {
	o := timeline.Order{ID: orderID}
	err := s.Pool.QueryRow(ctx, `SELECT compound, household_id FROM orders WHERE order_id = $1`, orderID).
		Scan(&o.Compound, &o.HouseholdID)
	if errors.Is(err, pgx.ErrNoRows) {
		return timeline.Order{}, fmt.Errorf("order %s: %w", orderID, timeline.ErrNotFound)
	}
	if err != nil {
		return timeline.Order{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	return o, nil
}

// OrderTimeline implements timeline.Reader.
func (s *Store) OrderTimeline(ctx context.Context, orderID string) ([]timeline.Entry, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT event_id::text, compound, order_id::text, occurred_at, kind, coalesce(parcel_id::text, ''),
		       state, actor_role, actor_id, detail
		FROM timeline_entries
		WHERE order_id = $1
		ORDER BY occurred_at, event_id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("query timeline of order %s: %w", orderID, err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (timeline.Entry, error) {
		var e timeline.Entry
		err := row.Scan(&e.EventID, &e.Compound, &e.OrderID, &e.OccurredAt, &e.Kind, &e.ParcelID,
			&e.State, &e.Actor.Role, &e.Actor.ID, &e.Detail)
		e.OccurredAt = e.OccurredAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read timeline of order %s: %w", orderID, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("order %s: %w", orderID, timeline.ErrNotFound)
	}
	return entries, nil
}
