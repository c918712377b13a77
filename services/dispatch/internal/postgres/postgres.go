// Package postgres stores the dispatch domain in PostgreSQL (schema "dispatch") with hand-written
// SQL, and turns the domain's events into outbox rows in the same transaction as the change.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the dispatch schema's own tables.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_dispatch", FS: sub}
}

// Store is the domain's Store over a pool.
type Store struct{ Pool *pgxpool.Pool }

// InTx runs fn in a transaction, retrying serialization failures and deadlocks.
func (s Store) InTx(ctx context.Context, fn func(dispatch.Tx) error) error {
	return pgkit.Tx(ctx, s.Pool, func(tx pgx.Tx) error { return fn(Bind(tx)) })
}

// Bind gives the domain a transaction someone else opened (the event consumer's).
func Bind(tx pgx.Tx) dispatch.Tx { return txn{tx} }

type txn struct{ tx pgx.Tx }

func (t txn) ClaimRequest(ctx context.Context, id string) (dispatch.Request, bool, error) {
	// An advisory lock, not a row lock: there is no row yet when the first attempt arrives, and two
	// attempts at once must not both run.
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('dispatch.request:' || $1, 0))`, id); err != nil {
		return dispatch.Request{}, false, fmt.Errorf("lock request %s: %w", id, err)
	}
	return t.LookRequest(ctx, id)
}

func (t txn) LookRequest(ctx context.Context, id string) (dispatch.Request, bool, error) {
	r := dispatch.Request{ID: id}
	err := t.tx.QueryRow(ctx, `SELECT method, fingerprint, response FROM requests WHERE request_id = $1`, id).
		Scan(&r.Method, &r.Fingerprint, &r.Response)
	if errors.Is(err, pgx.ErrNoRows) {
		return dispatch.Request{}, false, nil
	}
	if err != nil {
		return dispatch.Request{}, false, fmt.Errorf("read request %s: %w", id, err)
	}
	return r, true, nil
}

func (t txn) SaveRequest(ctx context.Context, r dispatch.Request) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO requests (request_id, method, fingerprint, response) VALUES ($1, $2, $3, $4)`,
		r.ID, r.Method, r.Fingerprint, r.Response)
	if err != nil {
		return fmt.Errorf("save request %s: %w", r.ID, err)
	}
	return nil
}

func (t txn) UpsertBuilding(ctx context.Context, b dispatch.Building) error {
	_, err := t.tx.Exec(ctx, `
		INSERT INTO buildings (compound, building, units, floors, has_lift, distance_m)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (compound, building) DO UPDATE
		SET units = $3, floors = $4, has_lift = $5, distance_m = $6, updated_at = now()`,
		b.Compound, b.Name, b.Units, b.Floors, b.HasLift, b.DistanceM)
	if err != nil {
		return fmt.Errorf("upsert building %s/%s: %w", b.Compound, b.Name, err)
	}
	return nil
}

func (t txn) Buildings(ctx context.Context, compound string) ([]dispatch.Building, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT compound, building, units, floors, has_lift, distance_m
		FROM buildings WHERE compound = $1 ORDER BY building`, compound)
	if err != nil {
		return nil, fmt.Errorf("list buildings: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Building, error) {
		var b dispatch.Building
		return b, r.Scan(&b.Compound, &b.Name, &b.Units, &b.Floors, &b.HasLift, &b.DistanceM)
	})
}

func (t txn) UpsertCourier(ctx context.Context, c dispatch.Courier) error {
	buildings := c.Buildings
	if buildings == nil {
		buildings = []string{}
	}
	_, err := t.tx.Exec(ctx, `
		INSERT INTO couriers (compound, courier_id, name, buildings, max_parcels, max_grams, on_duty)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (compound, courier_id) DO UPDATE
		SET name = $3, buildings = $4, max_parcels = $5, max_grams = $6, on_duty = $7, updated_at = now()`,
		c.Compound, c.ID, c.Name, buildings, c.MaxParcels, c.MaxGrams, c.OnDuty)
	if err != nil {
		return fmt.Errorf("upsert courier %s: %w", c.ID, err)
	}
	return nil
}

func (t txn) Couriers(ctx context.Context, compound string) ([]dispatch.Courier, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT compound, courier_id, name, buildings, max_parcels, max_grams, on_duty
		FROM couriers WHERE compound = $1 ORDER BY courier_id`, compound)
	if err != nil {
		return nil, fmt.Errorf("list couriers: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Courier, error) {
		var c dispatch.Courier
		err := r.Scan(&c.Compound, &c.ID, &c.Name, &c.Buildings, &c.MaxParcels, &c.MaxGrams, &c.OnDuty)
		if len(c.Buildings) == 0 {
			c.Buildings = nil
		}
		return c, err
	})
}

func (t txn) EnsureRounds(ctx context.Context, rounds []dispatch.Round) error {
	for _, r := range rounds {
		if _, err := t.tx.Exec(ctx, `
			INSERT INTO rounds (round_id, compound, day, slot, cutoff, state) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT DO NOTHING`,
			r.ID, r.Compound, r.Date, r.Slot, r.Cutoff, string(r.State)); err != nil {
			return fmt.Errorf("create round %s: %w", r.ID, err)
		}
	}
	return nil
}

const roundColumns = `r.round_id, r.compound, to_char(r.day, 'YYYY-MM-DD'), r.slot, r.cutoff, r.state,
	r.cost_metres, r.cost_floors, r.cost_trips, r.lower_metres, r.lower_floors, r.lower_trips`

func scanRound(row pgx.Row, extra ...any) (dispatch.Round, error) {
	var r dispatch.Round
	var state string
	dest := append([]any{&r.ID, &r.Compound, &r.Date, &r.Slot, &r.Cutoff, &state,
		&r.Cost.Metres, &r.Cost.Floors, &r.Cost.Trips, &r.LowerBound.Metres, &r.LowerBound.Floors, &r.LowerBound.Trips}, extra...)
	err := row.Scan(dest...)
	r.State = dispatch.RoundState(state)
	r.Cutoff = r.Cutoff.UTC()
	return r, err
}

func (t txn) RoundsOn(ctx context.Context, compound, date string) ([]dispatch.Round, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT `+roundColumns+`, (SELECT count(*) FROM round_parcels rp WHERE rp.round_id = r.round_id)
		FROM rounds r WHERE r.compound = $1 AND r.day = $2 ORDER BY r.cutoff`, compound, date)
	if err != nil {
		return nil, fmt.Errorf("list rounds: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (dispatch.Round, error) {
		var n int
		r, err := scanRound(row, &n)
		r.Parcels = n
		return r, err
	})
}

func (t txn) FirstOpenRound(ctx context.Context, compound, date string, after time.Time) (dispatch.Round, bool, error) {
	// Candidates first, then each one locked FOR SHARE and read again: planning takes the round's
	// row exclusively, so a round cannot be planned while a parcel is joining it, and a round
	// planned while we waited for its lock shows up as planned and is passed over for the next.
	rows, err := t.tx.Query(ctx, `
		SELECT round_id FROM rounds
		WHERE compound = $1 AND day = $2 AND state = 'open' AND cutoff > $3
		ORDER BY cutoff`, compound, date, after)
	if err != nil {
		return dispatch.Round{}, false, fmt.Errorf("find open rounds: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return dispatch.Round{}, false, fmt.Errorf("find open rounds: %w", err)
	}
	for _, id := range ids {
		r, err := t.round(ctx, id, "FOR SHARE OF r")
		if err != nil {
			return dispatch.Round{}, false, err
		}
		if r.State == dispatch.RoundOpen {
			return r, true, nil
		}
	}
	return dispatch.Round{}, false, nil
}

func (t txn) LockRound(ctx context.Context, id string) (dispatch.Round, error) {
	return t.round(ctx, id, "FOR NO KEY UPDATE OF r")
}

func (t txn) Round(ctx context.Context, id string) (dispatch.Round, error) {
	return t.round(ctx, id, "")
}

func (t txn) round(ctx context.Context, id, lock string) (dispatch.Round, error) {
	var n int
	r, err := scanRound(t.tx.QueryRow(ctx, `SELECT `+roundColumns+`,
		(SELECT count(*) FROM round_parcels rp WHERE rp.round_id = r.round_id)
		FROM rounds r WHERE r.round_id = $1 `+lock, id), &n)
	r.Parcels = n
	if errors.Is(err, pgx.ErrNoRows) {
		return dispatch.Round{}, fmt.Errorf("round %s: %w", id, dispatch.ErrNotFound)
	}
	if err != nil {
		return dispatch.Round{}, fmt.Errorf("read round %s: %w", id, err)
	}
	return r, nil
}

const parcelColumns = `parcel_id, order_id, compound, household_id, building, unit, floor, room, priority,
	contactless, weight_grams, round_id, status, coalesce(route_id::text, ''), coalesce(courier_id, ''), reason, checked_in_at`

func scanParcel(row pgx.Row) (dispatch.Parcel, error) {
	var p dispatch.Parcel
	var status string
	err := row.Scan(&p.ID, &p.OrderID, &p.Address.Compound, &p.HouseholdID, &p.Address.Building, &p.Address.Unit,
		&p.Address.Floor, &p.Address.Room, &p.Priority, &p.Contactless, &p.WeightGrams, &p.RoundID, &status,
		&p.RouteID, &p.CourierID, &p.Reason, &p.CheckedInAt)
	p.Status = dispatch.ParcelStatus(status)
	p.CheckedInAt = p.CheckedInAt.UTC()
	return p, err
}

func (t txn) parcels(ctx context.Context, query string, args ...any) ([]dispatch.Parcel, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+parcelColumns+` FROM parcels `+query, args...)
	if err != nil {
		return nil, fmt.Errorf("read parcels: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Parcel, error) { return scanParcel(r) })
}

func (t txn) Parcels(ctx context.Context, ids []string) ([]dispatch.Parcel, error) {
	return t.parcels(ctx, `WHERE parcel_id = ANY($1) ORDER BY parcel_id`, ids)
}

func (t txn) InsertParcel(ctx context.Context, p dispatch.Parcel) (bool, error) {
	a := p.Address
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO parcels (parcel_id, order_id, compound, household_id, building, unit, floor, room, priority,
			contactless, weight_grams, round_id, status, checked_in_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (parcel_id) DO NOTHING`,
		p.ID, p.OrderID, a.Compound, p.HouseholdID, a.Building, a.Unit, a.Floor, a.Room, p.Priority,
		p.Contactless, p.WeightGrams, p.RoundID, string(p.Status), p.CheckedInAt)
	if err != nil {
		return false, fmt.Errorf("check in parcel %s: %w", p.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO round_parcels (round_id, parcel_id) VALUES ($1, $2)`, p.RoundID, p.ID); err != nil {
		return false, fmt.Errorf("add parcel %s to round %s: %w", p.ID, p.RoundID, err)
	}
	return true, nil
}

func (t txn) LockParcel(ctx context.Context, id string) (dispatch.Parcel, error) {
	p, err := scanParcel(t.tx.QueryRow(ctx, `SELECT `+parcelColumns+` FROM parcels WHERE parcel_id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return dispatch.Parcel{}, fmt.Errorf("parcel %s: %w", id, dispatch.ErrNotFound)
	}
	if err != nil {
		return dispatch.Parcel{}, fmt.Errorf("read parcel %s: %w", id, err)
	}
	return p, nil
}

func (t txn) RepoolParcel(ctx context.Context, id, roundID, reason string) error {
	if _, err := t.tx.Exec(ctx, `
		UPDATE parcels SET round_id = $2, status = 'pooled', route_id = NULL, courier_id = NULL, reason = $3,
			updated_at = now()
		WHERE parcel_id = $1`, id, roundID, reason); err != nil {
		return fmt.Errorf("repool parcel %s: %w", id, err)
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO round_parcels (round_id, parcel_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		roundID, id); err != nil {
		return fmt.Errorf("add parcel %s to round %s: %w", id, roundID, err)
	}
	return nil
}

func (t txn) PooledParcels(ctx context.Context, roundID string) ([]dispatch.Parcel, error) {
	return t.parcels(ctx, `WHERE round_id = $1 AND status = 'pooled' ORDER BY parcel_id`, roundID)
}

func (t txn) SavePlan(ctx context.Context, p dispatch.Plan, at time.Time) error {
	r := p.Round
	if _, err := t.tx.Exec(ctx, `
		UPDATE rounds SET state = 'planned', planned_at = $2, cost_metres = $3, cost_floors = $4, cost_trips = $5,
			lower_metres = $6, lower_floors = $7, lower_trips = $8
		WHERE round_id = $1`,
		r.ID, at, p.Cost.Metres, p.Cost.Floors, p.Cost.Trips, p.LowerBound.Metres, p.LowerBound.Floors, p.LowerBound.Trips); err != nil {
		return fmt.Errorf("mark round %s planned: %w", r.ID, err)
	}
	for _, route := range p.Routes {
		if _, err := t.tx.Exec(ctx, `
			INSERT INTO routes (route_id, round_id, courier_id, metres, floors, trips) VALUES ($1, $2, $3, $4, $5, $6)`,
			route.ID, route.RoundID, route.CourierID, route.Cost.Metres, route.Cost.Floors, route.Cost.Trips); err != nil {
			return fmt.Errorf("save route of %s: %w", route.CourierID, err)
		}
		var parcelIDs []string
		batch := &pgx.Batch{}
		for _, s := range route.Stops {
			ids, orders := make([]string, len(s.Parcels)), make([]string, len(s.Parcels))
			for i, sp := range s.Parcels {
				ids[i], orders[i] = sp.ParcelID, sp.OrderID
			}
			parcelIDs = append(parcelIDs, ids...)
			a := s.Address
			batch.Queue(`
				INSERT INTO stops (route_id, sequence, trip, household_id, compound, building, unit, floor, room,
					parcel_ids, order_ids, priority, contactless, weight_grams)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
				route.ID, s.Sequence, s.Trip, s.HouseholdID, a.Compound, a.Building, a.Unit, a.Floor, a.Room,
				ids, orders, s.Priority, s.Contactless, s.WeightGrams)
		}
		if err := t.tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("save stops of %s: %w", route.CourierID, err)
		}
		if _, err := t.tx.Exec(ctx, `
			UPDATE parcels SET status = 'assigned', route_id = $2, courier_id = $3, updated_at = now()
			WHERE parcel_id = ANY($1)`, parcelIDs, route.ID, route.CourierID); err != nil {
			return fmt.Errorf("assign parcels to %s: %w", route.CourierID, err)
		}
	}
	return nil
}

func (t txn) Routes(ctx context.Context, roundID string) ([]dispatch.Route, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT route_id::text, round_id, courier_id, metres, floors, trips
		FROM routes WHERE round_id = $1 ORDER BY courier_id`, roundID)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	routes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Route, error) {
		var x dispatch.Route
		return x, r.Scan(&x.ID, &x.RoundID, &x.CourierID, &x.Cost.Metres, &x.Cost.Floors, &x.Cost.Trips)
	})
	if err != nil || len(routes) == 0 {
		return routes, err
	}
	index := make(map[string]int, len(routes))
	ids := make([]string, len(routes))
	for i, r := range routes {
		index[r.ID], ids[i] = i, r.ID
	}
	rows, err = t.tx.Query(ctx, `
		SELECT route_id::text, sequence, trip, household_id, compound, building, unit, floor, room,
			parcel_ids, order_ids, priority, contactless, weight_grams
		FROM stops WHERE route_id = ANY($1::uuid[]) ORDER BY route_id, sequence`, ids)
	if err != nil {
		return nil, fmt.Errorf("list stops: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var routeID string
		var s dispatch.Stop
		var parcelIDs, orderIDs []string
		a := &s.Address
		if err := rows.Scan(&routeID, &s.Sequence, &s.Trip, &s.HouseholdID, &a.Compound, &a.Building, &a.Unit,
			&a.Floor, &a.Room, &parcelIDs, &orderIDs, &s.Priority, &s.Contactless, &s.WeightGrams); err != nil {
			return nil, fmt.Errorf("read stop: %w", err)
		}
		for i, id := range parcelIDs {
			s.Parcels = append(s.Parcels, dispatch.StopParcel{ParcelID: id, OrderID: orderIDs[i]})
		}
		r := &routes[index[routeID]]
		r.Stops = append(r.Stops, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list stops: %w", err)
	}
	return routes, nil
}
