// Package postgres keeps the courier service's routes in PostgreSQL (schema courier) and writes
// each parcel transition's event into the outbox in the same transaction.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

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
func (s *Store) Route(ctx context.Context, courierID, roundID, compound string) (route.Route, error) {
	var r route.Route
	// One snapshot, so the route, its stops and their parcels agree with each other.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `
			SELECT route_id FROM routes
			WHERE courier_id = $1 AND ($2 = '' OR round_id = $2) AND ($3 = '' OR compound = $3)
			ORDER BY planned_at DESC, route_id DESC LIMIT 1`, courierID, roundID, compound).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return route.NoRoute(courierID, roundID)
		}
		if err != nil {
			return fmt.Errorf("find route: %w", err)
		}
		r, err = load(ctx, tx, id, courierID, compound, false)
		return err
	})
	return r, err
}

// RoundPlanned implements route.Repository.
func (s *Store) RoundPlanned(ctx context.Context, roundID string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM routes WHERE round_id = $1)`, roundID).Scan(&ok); err != nil {
		return false, fmt.Errorf("is round %s planned: %w", roundID, err)
	}
	return ok, nil
}

// pruneBatch bounds one DELETE, so pruning a large backlog never holds many locks for long.
const pruneBatch = 5000

// PruneKeys implements route.Repository.
func (s *Store) PruneKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM requests WHERE request_id IN
			(SELECT request_id FROM requests WHERE created_at < $1 LIMIT $2)`, cutoff.UTC(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune request keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}

// claim records key unless it is there already; false means the request was seen before.
// A concurrent request with the same id blocks here until it commits (then we answer as a retry)
// or rolls back (then the key is ours).
func claim(ctx context.Context, tx pgx.Tx, key route.Key) (bool, error) {
	at := key.At
	if at.IsZero() {
		at = time.Now()
	}
	tag, err := tx.Exec(ctx, `INSERT INTO requests (request_id, op, fingerprint, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (request_id) DO NOTHING`, key.RequestID, key.Op, key.Fingerprint, at.UTC())
	if err != nil {
		return false, fmt.Errorf("claim request %s: %w", key.RequestID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Update implements route.Repository.
func (s *Store) Update(ctx context.Context, key route.Key, t route.Target, fn func(*route.Route) ([]route.Change, error)) (route.Route, []route.Revision, error) {
	var out route.Route
	var revs []route.Revision
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		out, revs = route.Route{}, nil
		claimed, err := claim(ctx, tx, key)
		if err != nil {
			return err
		}
		if !claimed {
			out, err = replay(ctx, tx, key, t)
			return err
		}
		routeID := t.RouteID
		if routeID == "" {
			if routeID, err = newestRouteWith(ctx, tx, t); err != nil {
				return err
			}
		}
		r, err := load(ctx, tx, routeID, t.CourierID, t.Compound, true)
		if err != nil {
			return err
		}
		changes, err := fn(&r)
		if err != nil {
			return err
		}
		if revs, err = apply(ctx, tx, changes); err != nil {
			return err
		}
		for _, rv := range revs {
			if rv.RouteID == r.ID {
				r.Revision = rv.Revision
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE requests SET route_id = $2 WHERE request_id = $1`, key.RequestID, r.ID); err != nil {
			return fmt.Errorf("record request %s: %w", key.RequestID, err)
		}
		out = r
		return nil
	})
	if err != nil {
		return route.Route{}, nil, err
	}
	return out, revs, nil
}

// replay answers a request id seen before: the route it acted on, as it is now (if t's caller
// may still see it).
func replay(ctx context.Context, tx pgx.Tx, key route.Key, t route.Target) (route.Route, error) {
	var op, fingerprint string
	var routeID *string
	if err := tx.QueryRow(ctx, `SELECT op, fingerprint, route_id FROM requests WHERE request_id = $1`,
		key.RequestID).Scan(&op, &fingerprint, &routeID); err != nil {
		return route.Route{}, fmt.Errorf("read request %s: %w", key.RequestID, err)
	}
	if op != key.Op || fingerprint != key.Fingerprint || routeID == nil {
		return route.Route{}, fmt.Errorf("%w: request_id %s", route.ErrRequestReused, key.RequestID)
	}
	return load(ctx, tx, *routeID, t.CourierID, t.Compound, false)
}

// Complete implements route.Repository.
func (s *Store) Complete(ctx context.Context, key route.Key, courierID, compound string, parcelIDs []string,
	fn func(map[string]*route.Route) ([]route.Change, []route.Result)) ([]route.Result, []route.Revision, error) {
	var results []route.Result
	var revs []route.Revision
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		results, revs = nil, nil
		claimed, err := claim(ctx, tx, key)
		if err != nil {
			return err
		}
		if !claimed {
			results, err = replayResults(ctx, tx, key)
			return err
		}
		holding, err := routesHolding(ctx, tx, courierID, compound, parcelIDs)
		if err != nil {
			return err
		}
		// Lock the routes in one order, so two batches over the same routes cannot deadlock.
		ids := make([]string, 0, len(holding))
		for _, id := range holding {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		loaded := map[string]*route.Route{}
		for _, id := range slices.Compact(ids) {
			r, err := load(ctx, tx, id, courierID, compound, true)
			if err != nil {
				return err
			}
			loaded[id] = &r
		}
		byParcel := make(map[string]*route.Route, len(holding))
		for p, id := range holding {
			byParcel[p] = loaded[id]
		}
		changes, res := fn(byParcel)
		if revs, err = apply(ctx, tx, changes); err != nil {
			return err
		}
		data, err := encodeResults(res)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE requests SET result = $2 WHERE request_id = $1`, key.RequestID, data); err != nil {
			return fmt.Errorf("record request %s: %w", key.RequestID, err)
		}
		results = res
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return results, revs, nil
}

// replayResults answers a CompleteStops request id seen before with its first results.
func replayResults(ctx context.Context, tx pgx.Tx, key route.Key) ([]route.Result, error) {
	var op, fingerprint string
	var data []byte
	if err := tx.QueryRow(ctx, `SELECT op, fingerprint, result FROM requests WHERE request_id = $1`,
		key.RequestID).Scan(&op, &fingerprint, &data); err != nil {
		return nil, fmt.Errorf("read request %s: %w", key.RequestID, err)
	}
	if op != key.Op || fingerprint != key.Fingerprint || data == nil {
		return nil, fmt.Errorf("%w: request_id %s", route.ErrRequestReused, key.RequestID)
	}
	return decodeResults(data)
}

// newestRouteOrder is how a parcel's routes rank: the one planned last is the one acted on.
const newestRouteOrder = `r.planned_at DESC, r.route_id DESC`

// newestRouteWith is the target courier's newest route (in its compound, when set) holding the
// target parcel.
func newestRouteWith(ctx context.Context, tx pgx.Tx, t route.Target) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `
		SELECT r.route_id FROM stop_parcels p JOIN routes r ON r.route_id = p.route_id
		WHERE p.parcel_id = $1 AND r.courier_id = $2 AND ($3 = '' OR r.compound = $3)
		ORDER BY `+newestRouteOrder+` LIMIT 1`, t.ParcelID, t.CourierID, t.Compound).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", route.ParcelNotOnRoutes(t.CourierID, t.ParcelID)
	}
	if err != nil {
		return "", fmt.Errorf("find route of parcel %s: %w", t.ParcelID, err)
	}
	return id, nil
}

// routesHolding maps each of parcelIDs on one of the courier's routes (in compound, when set)
// to the newest such route.
func routesHolding(ctx context.Context, tx pgx.Tx, courierID, compound string, parcelIDs []string) (map[string]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT ON (p.parcel_id) p.parcel_id, r.route_id
		FROM stop_parcels p JOIN routes r ON r.route_id = p.route_id
		WHERE p.parcel_id = ANY($1) AND r.courier_id = $2 AND ($3 = '' OR r.compound = $3)
		ORDER BY p.parcel_id, `+newestRouteOrder, parcelIDs, courierID, compound)
	if err != nil {
		return nil, fmt.Errorf("find routes of parcels: %w", err)
	}
	out := map[string]string{}
	var parcel, id string
	if _, err := pgx.ForEachRow(rows, []any{&parcel, &id}, func() error { out[parcel] = id; return nil }); err != nil {
		return nil, fmt.Errorf("find routes of parcels: %w", err)
	}
	return out, nil
}

// load reads a route of courierID (in compound, when set) with its stops and parcels; forUpdate
// locks the route row so that updates to one route (and a new version of it) take turns.
func load(ctx context.Context, q querier, routeID, courierID, compound string, forUpdate bool) (route.Route, error) {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	r := route.Route{}
	err := q.QueryRow(ctx, `SELECT route_id, round_id, courier_id, compound, planned_at, version, revision FROM routes
		WHERE route_id = $1 AND courier_id = $2 AND ($3 = '' OR compound = $3)`+lock, routeID, courierID, compound).
		Scan(&r.ID, &r.RoundID, &r.CourierID, &r.Compound, &r.PlannedAt, &r.Version, &r.Revision)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, route.NoSuchRoute(courierID, routeID)
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
		SELECT p.sequence, p.parcel_id, p.order_id, p.status, p.method, p.reason, p.photo_ref, p.changed_at,
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
	var changedAt *time.Time
	_, err = pgx.ForEachRow(rows, []any{&seq, &p.ID, &p.OrderID, &status, &method, &p.Reason, &p.PhotoRef, &changedAt, &p.Superseded}, func() error {
		var err error
		if p.Status, err = route.ParseStatus(status); err != nil {
			return err
		}
		if p.Method, err = route.ParseMethod(method); err != nil {
			return err
		}
		p.ChangedAt = time.Time{}
		if changedAt != nil {
			p.ChangedAt = changedAt.UTC()
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

// apply stores parcel transitions, writes their events to the outbox and moves the revision of
// every route they touched.
func apply(ctx context.Context, tx pgx.Tx, changes []route.Change) ([]route.Revision, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	var routeIDs []string
	for _, c := range changes {
		b.Queue(`UPDATE stop_parcels SET status = $3, method = $4, reason = $5, photo_ref = $6, changed_at = $7
			WHERE route_id = $1 AND parcel_id = $2`,
			c.RouteID, c.ParcelID, c.To.String(), c.Method.String(), c.Reason, c.PhotoRef, c.At)
		routeIDs = append(routeIDs, c.RouteID)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("store parcel transitions: %w", err)
	}
	evs, err := parcelEvents(changes)
	if err != nil {
		return nil, err
	}
	if err := outbox.Add(ctx, tx, evs...); err != nil {
		return nil, err
	}
	slices.Sort(routeIDs)
	rows, err := tx.Query(ctx, `UPDATE routes SET revision = revision + 1 WHERE route_id = ANY($1)
		RETURNING compound, courier_id, route_id, revision`, slices.Compact(routeIDs))
	if err != nil {
		return nil, fmt.Errorf("move route revisions: %w", err)
	}
	revs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[route.Revision])
	if err != nil {
		return nil, fmt.Errorf("move route revisions: %w", err)
	}
	return revs, nil
}

// SavePlanned stores a planned route inside tx (the inbox's transaction) and returns the
// revisions to announce once it commits. A route seen before is replaced only by a higher version (route.Replan
// says what stays); a lower or equal one is ignored and changes nothing.
func (s *Store) SavePlanned(ctx context.Context, tx pgx.Tx, next route.Route) ([]route.Revision, error) {
	var version int
	var courierID string
	var current route.Route
	err := tx.QueryRow(ctx, `SELECT version, courier_id FROM routes WHERE route_id = $1 FOR UPDATE`, next.ID).
		Scan(&version, &courierID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read route %s: %w", next.ID, err)
	case next.Version <= version:
		return nil, nil // stale or repeated version
	default:
		if current, err = load(ctx, tx, next.ID, courierID, "", false); err != nil {
			return nil, err
		}
	}
	r := route.Replan(current, next)
	r.Revision++
	if current.ID == "" {
		// Two replicas may store the first version of one route at once; the loser's unique
		// violation is retried by the inbox and then compares versions.
		_, err = tx.Exec(ctx, `INSERT INTO routes (route_id, round_id, courier_id, compound, planned_at, version, revision)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, r.RoundID, r.CourierID, r.Compound, r.PlannedAt.UTC(), r.Version, r.Revision)
	} else {
		_, err = tx.Exec(ctx, `UPDATE routes SET round_id = $2, courier_id = $3, compound = $4, version = $5, revision = $6
			WHERE route_id = $1`, r.ID, r.RoundID, r.CourierID, r.Compound, r.Version, r.Revision)
		if err == nil {
			// Stops cascade to their parcels; the new set is written whole below.
			_, err = tx.Exec(ctx, `DELETE FROM stops WHERE route_id = $1`, r.ID)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store route %s: %w", r.ID, err)
	}
	b := &pgx.Batch{}
	for _, st := range r.Stops {
		a := st.Address
		b.Queue(`INSERT INTO stops (route_id, sequence, trip, household_id, compound, building, unit, floor, room, priority, contactless)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			r.ID, st.Sequence, st.Trip, st.HouseholdID, a.Compound, a.Building, a.Unit, a.Floor, a.Room, st.Priority, st.Contactless)
	}
	for _, st := range r.Stops {
		for i, p := range st.Parcels {
			var changedAt *time.Time
			if !p.ChangedAt.IsZero() {
				changedAt = &p.ChangedAt
			}
			b.Queue(`INSERT INTO stop_parcels (route_id, parcel_id, sequence, position, order_id, status, method, reason, photo_ref, changed_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				r.ID, p.ID, st.Sequence, i, p.OrderID, p.Status.String(), p.Method.String(), p.Reason, p.PhotoRef, changedAt)
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("store stops of route %s: %w", r.ID, err)
	}
	revs := []route.Revision{{Compound: r.Compound, CourierID: r.CourierID, RouteID: r.ID, Revision: r.Revision}}
	if current.ID != "" && current.CourierID != r.CourierID {
		// The route changed hands: its former courier's watchers must see it go.
		revs = append(revs, route.Revision{Compound: r.Compound, CourierID: current.CourierID, RouteID: r.ID, Revision: r.Revision})
	}
	return revs, nil
}
