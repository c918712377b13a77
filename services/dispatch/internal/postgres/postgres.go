// Package postgres stores the dispatch domain in PostgreSQL (schema "dispatch") with hand-written
// SQL, and turns the domain's events into outbox rows in the same transaction as the change.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/rounds"
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

// floorRange is a FloorRange as couriers.floor_ranges stores it.
type floorRange struct {
	Building string `json:"building"`
	MinFloor int    `json:"min_floor"`
	MaxFloor int    `json:"max_floor"`
}

func (t txn) UpsertCourier(ctx context.Context, c dispatch.Courier) error {
	buildings := c.Buildings
	if buildings == nil {
		buildings = []string{}
	}
	ranges := make([]floorRange, len(c.FloorRanges))
	for i, r := range c.FloorRanges {
		ranges[i] = floorRange(r)
	}
	fr, err := json.Marshal(ranges)
	if err != nil {
		return fmt.Errorf("encode floor ranges of %s: %w", c.ID, err)
	}
	_, err = t.tx.Exec(ctx, `
		INSERT INTO couriers (compound, courier_id, name, buildings, floor_ranges, max_parcels, max_grams, on_duty)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (compound, courier_id) DO UPDATE
		SET name = $3, buildings = $4, floor_ranges = $5, max_parcels = $6, max_grams = $7, on_duty = $8, updated_at = now()`,
		c.Compound, c.ID, c.Name, buildings, fr, c.MaxParcels, c.MaxGrams, c.OnDuty)
	if err != nil {
		return fmt.Errorf("upsert courier %s: %w", c.ID, err)
	}
	return nil
}

func (t txn) Couriers(ctx context.Context, compound string) ([]dispatch.Courier, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT compound, courier_id, name, buildings, floor_ranges, max_parcels, max_grams, on_duty
		FROM couriers WHERE compound = $1 ORDER BY courier_id`, compound)
	if err != nil {
		return nil, fmt.Errorf("list couriers: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Courier, error) {
		var c dispatch.Courier
		var fr []byte
		if err := r.Scan(&c.Compound, &c.ID, &c.Name, &c.Buildings, &fr, &c.MaxParcels, &c.MaxGrams, &c.OnDuty); err != nil {
			return c, err
		}
		if len(c.Buildings) == 0 {
			c.Buildings = nil
		}
		var ranges []floorRange
		if err := json.Unmarshal(fr, &ranges); err != nil {
			return c, fmt.Errorf("decode floor ranges of %s: %w", c.ID, err)
		}
		for _, x := range ranges {
			c.FloorRanges = append(c.FloorRanges, dispatch.FloorRange(x))
		}
		return c, nil
	})
}

func (t txn) Duty(ctx context.Context, roundID string) (map[string]bool, error) {
	rows, err := t.tx.Query(ctx, `SELECT courier_id, on_duty FROM round_duty WHERE round_id = $1`, roundID)
	if err != nil {
		return nil, fmt.Errorf("read duty of %s: %w", roundID, err)
	}
	out := map[string]bool{}
	var id string
	var on bool
	_, err = pgx.ForEachRow(rows, []any{&id, &on}, func() error { out[id] = on; return nil })
	if err != nil {
		return nil, fmt.Errorf("read duty of %s: %w", roundID, err)
	}
	return out, nil
}

func (t txn) SetDuty(ctx context.Context, roundID, courierID string, onDuty bool) error {
	if _, err := t.tx.Exec(ctx, `
		INSERT INTO round_duty (round_id, courier_id, on_duty) VALUES ($1, $2, $3)
		ON CONFLICT (round_id, courier_id) DO UPDATE SET on_duty = $3, updated_at = now()`,
		roundID, courierID, onDuty); err != nil {
		return fmt.Errorf("set duty of %s in %s: %w", courierID, roundID, err)
	}
	return nil
}

// slot is a rounds.Slot as compound_settings.slots stores it.
type slot struct {
	Slot    string `json:"slot"`
	Cutoff  string `json:"cutoff"`
	Departs string `json:"departs"`
}

func (t txn) Settings(ctx context.Context, compound string) (dispatch.Settings, bool, error) {
	st := dispatch.Settings{Compound: compound}
	var raw []byte
	err := t.tx.QueryRow(ctx, `SELECT slots, round_capacity FROM compound_settings WHERE compound = $1`, compound).
		Scan(&raw, &st.RoundCapacity)
	if errors.Is(err, pgx.ErrNoRows) {
		return dispatch.Settings{}, false, nil
	}
	if err != nil {
		return dispatch.Settings{}, false, fmt.Errorf("read settings of %s: %w", compound, err)
	}
	var slots []slot
	if err := json.Unmarshal(raw, &slots); err != nil {
		return dispatch.Settings{}, false, fmt.Errorf("decode settings of %s: %w", compound, err)
	}
	for _, sl := range slots {
		cutoff, err1 := rounds.ParseClock(sl.Cutoff)
		departs, err2 := rounds.ParseClock(sl.Departs)
		if err := errors.Join(err1, err2); err != nil {
			return dispatch.Settings{}, false, fmt.Errorf("decode settings of %s: %w", compound, err)
		}
		st.Schedule = append(st.Schedule, rounds.Slot{Name: sl.Slot, Cutoff: cutoff, Departs: departs})
	}
	return st, true, nil
}

func (t txn) SaveSettings(ctx context.Context, st dispatch.Settings) error {
	slots := make([]slot, len(st.Schedule))
	for i, sl := range st.Schedule {
		slots[i] = slot{Slot: sl.Name, Cutoff: rounds.FormatClock(sl.Cutoff), Departs: rounds.FormatClock(sl.Departs)}
	}
	raw, err := json.Marshal(slots)
	if err != nil {
		return fmt.Errorf("encode settings of %s: %w", st.Compound, err)
	}
	if _, err := t.tx.Exec(ctx, `
		INSERT INTO compound_settings (compound, slots, round_capacity) VALUES ($1, $2, $3)
		ON CONFLICT (compound) DO UPDATE SET slots = $2, round_capacity = $3, updated_at = now()`,
		st.Compound, raw, st.RoundCapacity); err != nil {
		return fmt.Errorf("save settings of %s: %w", st.Compound, err)
	}
	return nil
}

func (t txn) EnsureRounds(ctx context.Context, rounds []dispatch.Round) error {
	for _, r := range rounds {
		if _, err := t.tx.Exec(ctx, `
			INSERT INTO rounds (round_id, compound, day, slot, cutoff, departs, state) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT DO NOTHING`,
			r.ID, r.Compound, r.Date, r.Slot, r.Cutoff, r.Departs, string(r.State)); err != nil {
			return fmt.Errorf("create round %s: %w", r.ID, err)
		}
	}
	return nil
}

func (t txn) CloseDueRounds(ctx context.Context, compound string, at time.Time) error {
	if _, err := t.tx.Exec(ctx, `
		UPDATE rounds SET state = 'closed', closed_at = cutoff
		WHERE compound = $1 AND state = 'open' AND cutoff <= $2`, compound, at); err != nil {
		return fmt.Errorf("close rounds due: %w", err)
	}
	return nil
}

// roundColumns read a round with its parcel counts: those it carries (withdrawn ones not) and
// every one that ever joined it.
const roundColumns = `r.round_id, r.compound, to_char(r.day, 'YYYY-MM-DD'), r.slot, r.cutoff, r.departs, r.state,
	r.cost_metres, r.cost_floors, r.cost_trips, r.lower_metres, r.lower_floors, r.lower_trips,
	(SELECT count(*) FROM round_parcels rp WHERE rp.round_id = r.round_id AND rp.outcome IS DISTINCT FROM 'withdrawn'),
	(SELECT count(*) FROM round_parcels rp WHERE rp.round_id = r.round_id)`

func scanRound(row pgx.Row) (dispatch.Round, error) {
	var r dispatch.Round
	var state string
	err := row.Scan(&r.ID, &r.Compound, &r.Date, &r.Slot, &r.Cutoff, &r.Departs, &state,
		&r.Cost.Metres, &r.Cost.Floors, &r.Cost.Trips, &r.LowerBound.Metres, &r.LowerBound.Floors, &r.LowerBound.Trips,
		&r.Parcels, &r.Joined)
	r.State = dispatch.RoundState(state)
	r.Cutoff, r.Departs = r.Cutoff.UTC(), r.Departs.UTC()
	return r, err
}

func (t txn) rounds(ctx context.Context, query string, args ...any) ([]dispatch.Round, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+roundColumns+` FROM rounds r `+query, args...)
	if err != nil {
		return nil, fmt.Errorf("list rounds: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (dispatch.Round, error) { return scanRound(row) })
}

func (t txn) RoundsOn(ctx context.Context, compound, date string) ([]dispatch.Round, error) {
	return t.rounds(ctx, `WHERE r.compound = $1 AND r.day = $2 ORDER BY r.cutoff`, compound, date)
}

func (t txn) OpenRoundsAfter(ctx context.Context, compound string, after time.Time) ([]dispatch.Round, error) {
	return t.rounds(ctx, `WHERE r.compound = $1 AND r.state = 'open' AND r.cutoff > $2 ORDER BY r.cutoff`, compound, after)
}

func (t txn) OpenRoundIDs(ctx context.Context, compound, date string, after time.Time) ([]string, error) {
	// Ids only, and no lock: the caller locks each candidate and reads it again, so a round
	// planned or filled while it waited shows as such and is passed over.
	rows, err := t.tx.Query(ctx, `
		SELECT round_id FROM rounds
		WHERE compound = $1 AND day = $2 AND state = 'open' AND cutoff > $3
		ORDER BY cutoff`, compound, date, after)
	if err != nil {
		return nil, fmt.Errorf("find open rounds: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find open rounds: %w", err)
	}
	return ids, nil
}

func (t txn) LockRound(ctx context.Context, id string) (dispatch.Round, error) {
	return t.round(ctx, id, "FOR NO KEY UPDATE OF r")
}

func (t txn) ShareRound(ctx context.Context, id string) (dispatch.Round, error) {
	return t.round(ctx, id, "FOR SHARE OF r")
}

func (t txn) Round(ctx context.Context, id string) (dispatch.Round, error) {
	return t.round(ctx, id, "")
}

func (t txn) round(ctx context.Context, id, lock string) (dispatch.Round, error) {
	r, err := scanRound(t.tx.QueryRow(ctx, `SELECT `+roundColumns+` FROM rounds r WHERE r.round_id = $1 `+lock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return dispatch.Round{}, fmt.Errorf("round %s: %w", id, dispatch.ErrNotFound)
	}
	if err != nil {
		return dispatch.Round{}, fmt.Errorf("read round %s: %w", id, err)
	}
	return r, nil
}

func (t txn) SetRoundState(ctx context.Context, id string, state dispatch.RoundState, at time.Time) error {
	if _, err := t.tx.Exec(ctx, `
		UPDATE rounds SET state = $2,
			closed_at = CASE WHEN $2 IN ('closed', 'planned', 'done') THEN coalesce(closed_at, $3) END,
			planned_at = CASE WHEN $2 IN ('planned', 'done') THEN coalesce(planned_at, $3) END,
			done_at = CASE WHEN $2 = 'done' THEN coalesce(done_at, $3) END
		WHERE round_id = $1`, id, string(state), at); err != nil {
		return fmt.Errorf("mark round %s %s: %w", id, state, err)
	}
	return nil
}

func (t txn) RescheduleRound(ctx context.Context, id string, cutoff, departs time.Time) error {
	if _, err := t.tx.Exec(ctx, `UPDATE rounds SET cutoff = $2, departs = $3 WHERE round_id = $1`, id, cutoff, departs); err != nil {
		return fmt.Errorf("reschedule round %s: %w", id, err)
	}
	return nil
}

func (t txn) DeleteRound(ctx context.Context, id string) error {
	if _, err := t.tx.Exec(ctx, `DELETE FROM rounds WHERE round_id = $1`, id); err != nil {
		return fmt.Errorf("delete round %s: %w", id, err)
	}
	return nil
}

func (t txn) SetRoundCost(ctx context.Context, id string, cost, lb dispatch.Cost) error {
	if _, err := t.tx.Exec(ctx, `
		UPDATE rounds SET cost_metres = $2, cost_floors = $3, cost_trips = $4, lower_metres = $5, lower_floors = $6,
			lower_trips = $7
		WHERE round_id = $1`, id, cost.Metres, cost.Floors, cost.Trips, lb.Metres, lb.Floors, lb.Trips); err != nil {
		return fmt.Errorf("record cost of round %s: %w", id, err)
	}
	return nil
}

func (t txn) FinishRound(ctx context.Context, id string, at time.Time) (bool, error) {
	tag, err := t.tx.Exec(ctx, `
		UPDATE rounds SET state = 'done', done_at = $2
		WHERE round_id = $1 AND state = 'planned'
		  AND NOT EXISTS (SELECT 1 FROM round_parcels WHERE round_id = $1 AND outcome IS NULL)`, id, at)
	if err != nil {
		return false, fmt.Errorf("finish round %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

const parcelColumns = `parcel_id, order_id, compound, household_id, building, unit, floor, room, priority,
	contactless, weight_grams, round_id, status, coalesce(route_id::text, ''), coalesce(courier_id, ''), reason,
	checked_in_at, pinned, picked_up`

func scanParcel(row pgx.Row) (dispatch.Parcel, error) {
	var p dispatch.Parcel
	var status string
	err := row.Scan(&p.ID, &p.OrderID, &p.Address.Compound, &p.HouseholdID, &p.Address.Building, &p.Address.Unit,
		&p.Address.Floor, &p.Address.Room, &p.Priority, &p.Contactless, &p.WeightGrams, &p.RoundID, &status,
		&p.RouteID, &p.CourierID, &p.Reason, &p.CheckedInAt, &p.Pinned, &p.PickedUp)
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
			pinned = false, picked_up = false, updated_at = now()
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

func (t txn) LiveParcels(ctx context.Context, roundID string) ([]dispatch.Parcel, error) {
	return t.parcels(ctx, `WHERE round_id = $1 AND status = 'assigned' ORDER BY parcel_id FOR UPDATE`, roundID)
}

func (t txn) HouseholdParcels(ctx context.Context, roundID, householdID string) ([]dispatch.Parcel, error) {
	return t.parcels(ctx, `
		WHERE household_id = $2 AND parcel_id IN (SELECT parcel_id FROM round_parcels WHERE round_id = $1)
		ORDER BY parcel_id`, roundID, householdID)
}

func (t txn) SetPinned(ctx context.Context, ids []string, pinned bool) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.tx.Exec(ctx, `UPDATE parcels SET pinned = $2, updated_at = now() WHERE parcel_id = ANY($1)`,
		ids, pinned); err != nil {
		return fmt.Errorf("pin parcels: %w", err)
	}
	return nil
}

func (t txn) MarkPickedUp(ctx context.Context, id string) error {
	if _, err := t.tx.Exec(ctx, `UPDATE parcels SET picked_up = true, updated_at = now() WHERE parcel_id = $1`, id); err != nil {
		return fmt.Errorf("mark parcel %s picked up: %w", id, err)
	}
	return nil
}

func (t txn) WithdrawParcel(ctx context.Context, id, reason string) error {
	if _, err := t.tx.Exec(ctx, `UPDATE parcels SET status = 'withdrawn', reason = $2, updated_at = now() WHERE parcel_id = $1`,
		id, reason); err != nil {
		return fmt.Errorf("withdraw parcel %s: %w", id, err)
	}
	if _, err := t.tx.Exec(ctx, `UPDATE round_parcels SET outcome = 'withdrawn' WHERE parcel_id = $1 AND outcome IS NULL`,
		id); err != nil {
		return fmt.Errorf("withdraw parcel %s from its round: %w", id, err)
	}
	return nil
}

func (t txn) LastFailure(ctx context.Context, parcelID string) (string, error) {
	var round string
	err := t.tx.QueryRow(ctx, `
		SELECT rp.round_id FROM round_parcels rp JOIN rounds r ON r.round_id = rp.round_id
		WHERE rp.parcel_id = $1 AND rp.outcome = 'failed'
		ORDER BY r.cutoff DESC LIMIT 1`, parcelID).Scan(&round)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the last failure of parcel %s: %w", parcelID, err)
	}
	return round, nil
}

func (t txn) RecordOutcome(ctx context.Context, id string, delivered bool) error {
	outcome := "failed"
	if delivered {
		outcome = "delivered"
		if _, err := t.tx.Exec(ctx, `UPDATE parcels SET status = 'delivered', updated_at = now() WHERE parcel_id = $1`,
			id); err != nil {
			return fmt.Errorf("mark parcel %s delivered: %w", id, err)
		}
	}
	if _, err := t.tx.Exec(ctx, `UPDATE round_parcels SET outcome = $2 WHERE parcel_id = $1 AND outcome IS NULL`,
		id, outcome); err != nil {
		return fmt.Errorf("record parcel %s %s: %w", id, outcome, err)
	}
	return nil
}

func (t txn) SaveShortages(ctx context.Context, shortages []dispatch.Shortage) error {
	for _, s := range shortages {
		if _, err := t.tx.Exec(ctx, `
			INSERT INTO shortages (parcel_id, item_id, missing_quantity, damaged_quantity, note) VALUES ($1, $2, $3, $4, $5)`,
			s.ParcelID, s.ItemID, s.Missing, s.Damaged, s.Note); err != nil {
			return fmt.Errorf("record shortage of %s in %s: %w", s.ItemID, s.ParcelID, err)
		}
	}
	return nil
}

func (t txn) Shortages(ctx context.Context, ids []string) ([]dispatch.Shortage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := t.tx.Query(ctx, `
		SELECT parcel_id, item_id, missing_quantity, damaged_quantity, note FROM shortages
		WHERE parcel_id = ANY($1) ORDER BY parcel_id, item_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("read shortages: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Shortage, error) {
		var s dispatch.Shortage
		return s, r.Scan(&s.ParcelID, &s.ItemID, &s.Missing, &s.Damaged, &s.Note)
	})
}

func (t txn) SavePlan(ctx context.Context, p dispatch.Plan, at time.Time) error {
	r := p.Round
	if err := t.SetRoundState(ctx, r.ID, r.State, at); err != nil {
		return err
	}
	if err := t.SetRoundCost(ctx, r.ID, p.Cost, p.LowerBound); err != nil {
		return err
	}
	for _, route := range p.Routes {
		if err := t.SaveRoute(ctx, route); err != nil {
			return err
		}
	}
	return nil
}

func (t txn) SaveRoute(ctx context.Context, route dispatch.Route) error {
	if _, err := t.tx.Exec(ctx, `
		INSERT INTO routes (route_id, round_id, courier_id, metres, floors, trips, version) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (route_id) DO UPDATE SET metres = $4, floors = $5, trips = $6, version = $7, updated_at = now()`,
		route.ID, route.RoundID, route.CourierID, route.Cost.Metres, route.Cost.Floors, route.Cost.Trips,
		route.Version); err != nil {
		return fmt.Errorf("save route of %s: %w", route.CourierID, err)
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM stops WHERE route_id = $1`, route.ID); err != nil {
		return fmt.Errorf("replace stops of %s: %w", route.CourierID, err)
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
				parcel_ids, order_ids, priority, contactless, weight_grams, pinned)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			route.ID, s.Sequence, s.Trip, s.HouseholdID, a.Compound, a.Building, a.Unit, a.Floor, a.Room,
			ids, orders, s.Priority, s.Contactless, s.WeightGrams, s.Pinned)
	}
	if err := t.tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("save stops of %s: %w", route.CourierID, err)
	}
	if _, err := t.tx.Exec(ctx, `
		UPDATE parcels SET status = 'assigned', route_id = $2, courier_id = $3, updated_at = now()
		WHERE parcel_id = ANY($1)`, parcelIDs, route.ID, route.CourierID); err != nil {
		return fmt.Errorf("assign parcels to %s: %w", route.CourierID, err)
	}
	return nil
}

func (t txn) Routes(ctx context.Context, roundID string) ([]dispatch.Route, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT route_id::text, round_id, courier_id, metres, floors, trips, version
		FROM routes WHERE round_id = $1 ORDER BY courier_id`, roundID)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	routes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatch.Route, error) {
		var x dispatch.Route
		return x, r.Scan(&x.ID, &x.RoundID, &x.CourierID, &x.Cost.Metres, &x.Cost.Floors, &x.Cost.Trips, &x.Version)
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
			parcel_ids, order_ids, priority, contactless, weight_grams, pinned
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
			&a.Floor, &a.Room, &parcelIDs, &orderIDs, &s.Priority, &s.Contactless, &s.WeightGrams, &s.Pinned); err != nil {
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
