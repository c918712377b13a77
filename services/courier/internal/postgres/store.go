// Package postgres keeps the courier service's routes in PostgreSQL (schema courier) and writes
// each parcel transition's event into the outbox in the same transaction.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the service's tables.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_courier", FS: sub}
}

// Store implements route.Repository.
type Store struct {
	pool *pgxpool.Pool
}

var _ route.Repository = (*Store)(nil)

// New returns a store on pool, whose search_path is the courier schema.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Route implements route.Repository.
func (s *Store) Route(ctx context.Context, courierID, roundID string) (route.Route, error) {
	var r route.Route
	// One snapshot, so the route, its stops and their parcels agree with each other.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `
			SELECT route_id FROM routes
			WHERE courier_id = $1 AND ($2 = '' OR round_id = $2)
			ORDER BY planned_at DESC, route_id DESC LIMIT 1`, courierID, roundID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			if roundID == "" {
				return fmt.Errorf("%w: courier %s has no route yet", route.ErrNotFound, courierID)
			}
			return fmt.Errorf("%w: courier %s has no route in round %s", route.ErrNotFound, courierID, roundID)
		}
		if err != nil {
			return fmt.Errorf("find route: %w", err)
		}
		r, err = load(ctx, tx, id, courierID, false)
		return err
	})
	return r, err
}

// Update implements route.Repository.
func (s *Store) Update(ctx context.Context, key route.Key, t route.Target, fn func(*route.Route) ([]route.Change, error)) (route.Route, error) {
	var out route.Route
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		// Claim the key first. A concurrent request with the same id blocks here until it commits
		// (then we answer as a retry) or rolls back (then the key is ours).
		tag, err := tx.Exec(ctx, `INSERT INTO requests (request_id, op, fingerprint) VALUES ($1, $2, $3)
			ON CONFLICT (request_id) DO NOTHING`, key.RequestID, key.Op, key.Fingerprint)
		if err != nil {
			return fmt.Errorf("claim request %s: %w", key.RequestID, err)
		}
		if tag.RowsAffected() == 0 {
			out, err = replay(ctx, tx, key, t.CourierID)
			return err
		}
		routeID := t.RouteID
		if routeID == "" {
			if routeID, err = newestRouteWith(ctx, tx, t.CourierID, t.ParcelID); err != nil {
				return err
			}
		}
		r, err := load(ctx, tx, routeID, t.CourierID, true)
		if err != nil {
			return err
		}
		changes, err := fn(&r)
		if err != nil {
			return err
		}
		if err := apply(ctx, tx, changes); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE requests SET route_id = $2 WHERE request_id = $1`, key.RequestID, r.ID); err != nil {
			return fmt.Errorf("record request %s: %w", key.RequestID, err)
		}
		out = r
		return nil
	})
	return out, err
}

// replay answers a request id seen before: the route it acted on, as it is now.
func replay(ctx context.Context, tx pgx.Tx, key route.Key, courierID string) (route.Route, error) {
	var op, fingerprint string
	var routeID *string
	if err := tx.QueryRow(ctx, `SELECT op, fingerprint, route_id FROM requests WHERE request_id = $1`,
		key.RequestID).Scan(&op, &fingerprint, &routeID); err != nil {
		return route.Route{}, fmt.Errorf("read request %s: %w", key.RequestID, err)
	}
	if op != key.Op || fingerprint != key.Fingerprint || routeID == nil {
		return route.Route{}, fmt.Errorf("%w: request_id %s", route.ErrRequestReused, key.RequestID)
	}
	return load(ctx, tx, *routeID, courierID, false)
}

func newestRouteWith(ctx context.Context, tx pgx.Tx, courierID, parcelID string) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `
		SELECT r.route_id FROM stop_parcels p JOIN routes r ON r.route_id = p.route_id
		WHERE p.parcel_id = $1 AND r.courier_id = $2
		ORDER BY r.planned_at DESC, r.route_id DESC LIMIT 1`, parcelID, courierID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: parcel %s is on none of courier %s's routes", route.ErrNotFound, parcelID, courierID)
	}
	if err != nil {
		return "", fmt.Errorf("find route of parcel %s: %w", parcelID, err)
	}
	return id, nil
}

// load reads a route of courierID with its stops and parcels; forUpdate locks the route row so
// that updates to one route (and a re-plan of it) take turns.
func load(ctx context.Context, q querier, routeID, courierID string, forUpdate bool) (route.Route, error) {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	r := route.Route{}
	err := q.QueryRow(ctx, `SELECT route_id, round_id, courier_id, compound, planned_at FROM routes
		WHERE route_id = $1 AND courier_id = $2`+lock, routeID, courierID).
		Scan(&r.ID, &r.RoundID, &r.CourierID, &r.Compound, &r.PlannedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("%w: courier %s has no route %s", route.ErrNotFound, courierID, routeID)
	}
	if err != nil {
		return r, fmt.Errorf("load route %s: %w", routeID, err)
	}
	rows, err := q.Query(ctx, `SELECT sequence, trip, household_id, compound, building, unit, floor, room, priority, contactless
		FROM stops WHERE route_id = $1 ORDER BY sequence`, routeID)
	if err != nil {
		return r, fmt.Errorf("load stops of %s: %w", routeID, err)
	}
	r.Stops, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (route.Stop, error) {
		var s route.Stop
		a := &s.Address
		err := row.Scan(&s.Sequence, &s.Trip, &s.HouseholdID, &a.Compound, &a.Building, &a.Unit, &a.Floor, &a.Room, &s.Priority, &s.Contactless)
		return s, err
	})
	if err != nil {
		return r, fmt.Errorf("load stops of %s: %w", routeID, err)
	}
	index := make(map[int]int, len(r.Stops))
	for i, s := range r.Stops {
		index[s.Sequence] = i
	}
	// A parcel is superseded when a newer route holds it too (whoever's it is).
	rows, err = q.Query(ctx, `
		SELECT p.sequence, p.parcel_id, p.order_id, p.status, p.method, p.reason, p.photo_ref,
		       EXISTS (SELECT 1 FROM stop_parcels o JOIN routes n ON n.route_id = o.route_id
		               WHERE o.parcel_id = p.parcel_id AND o.route_id <> p.route_id
		                 AND (n.planned_at, n.route_id) > ($2::timestamptz, p.route_id))
		FROM stop_parcels p WHERE p.route_id = $1 ORDER BY p.sequence, p.position`, routeID, r.PlannedAt)
	if err != nil {
		return r, fmt.Errorf("load parcels of %s: %w", routeID, err)
	}
	var seq int
	var p route.Parcel
	var status, method string
	_, err = pgx.ForEachRow(rows, []any{&seq, &p.ID, &p.OrderID, &status, &method, &p.Reason, &p.PhotoRef, &p.Superseded}, func() error {
		var err error
		if p.Status, err = route.ParseStatus(status); err != nil {
			return err
		}
		if p.Method, err = route.ParseMethod(method); err != nil {
			return err
		}
		i, ok := index[seq]
		if !ok {
			return fmt.Errorf("parcel %s of route %s has no stop %d", p.ID, routeID, seq)
		}
		r.Stops[i].Parcels = append(r.Stops[i].Parcels, p)
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("load parcels of %s: %w", routeID, err)
	}
	return r, nil
}

// apply stores parcel transitions and writes their events to the outbox.
func apply(ctx context.Context, tx pgx.Tx, changes []route.Change) error {
	if len(changes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, c := range changes {
		b.Queue(`UPDATE stop_parcels SET status = $3, method = $4, reason = $5, photo_ref = $6, changed_at = $7
			WHERE route_id = $1 AND parcel_id = $2`,
			c.RouteID, c.ParcelID, c.To.String(), c.Method.String(), c.Reason, c.PhotoRef, c.At)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store parcel transitions: %w", err)
	}
	evs, err := parcelEvents(changes)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, evs...)
}

// SavePlanned stores a planned route inside tx (the inbox's transaction). A route id seen before
// is a re-plan: its stops and parcels are replaced, keeping what already happened to parcels that
// stay on it; a re-plan older than what is stored is ignored.
func (s *Store) SavePlanned(ctx context.Context, tx pgx.Tx, r route.Route) error {
	var current bool
	err := tx.QueryRow(ctx, `
		INSERT INTO routes (route_id, round_id, courier_id, compound, planned_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (route_id) DO UPDATE SET round_id = EXCLUDED.round_id, courier_id = EXCLUDED.courier_id,
			compound = EXCLUDED.compound, planned_at = EXCLUDED.planned_at
		WHERE routes.planned_at <= EXCLUDED.planned_at
		RETURNING true`, r.ID, r.RoundID, r.CourierID, r.Compound, r.PlannedAt.UTC()).Scan(&current)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // stale re-plan
	}
	if err != nil {
		return fmt.Errorf("store route %s: %w", r.ID, err)
	}
	b := &pgx.Batch{}
	seqs := make([]int32, 0, len(r.Stops))
	parcels := []string{}
	for _, st := range r.Stops {
		a := st.Address
		b.Queue(`INSERT INTO stops (route_id, sequence, trip, household_id, compound, building, unit, floor, room, priority, contactless)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (route_id, sequence) DO UPDATE SET trip = EXCLUDED.trip, household_id = EXCLUDED.household_id,
				compound = EXCLUDED.compound, building = EXCLUDED.building, unit = EXCLUDED.unit, floor = EXCLUDED.floor,
				room = EXCLUDED.room, priority = EXCLUDED.priority, contactless = EXCLUDED.contactless`,
			r.ID, st.Sequence, st.Trip, st.HouseholdID, a.Compound, a.Building, a.Unit, a.Floor, a.Room, st.Priority, st.Contactless)
		seqs = append(seqs, int32(st.Sequence))
	}
	for _, st := range r.Stops {
		for i, p := range st.Parcels {
			b.Queue(`INSERT INTO stop_parcels (route_id, parcel_id, sequence, position, order_id, status)
				VALUES ($1, $2, $3, $4, $5, 'PENDING')
				ON CONFLICT (route_id, parcel_id) DO UPDATE SET sequence = EXCLUDED.sequence,
					position = EXCLUDED.position, order_id = EXCLUDED.order_id`,
				r.ID, p.ID, st.Sequence, i, p.OrderID)
			parcels = append(parcels, p.ID)
		}
	}
	b.Queue(`DELETE FROM stop_parcels WHERE route_id = $1 AND NOT (parcel_id = ANY($2))`, r.ID, parcels)
	b.Queue(`DELETE FROM stops WHERE route_id = $1 AND NOT (sequence = ANY($2))`, r.ID, seqs)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store stops of route %s: %w", r.ID, err)
	}
	return nil
}
