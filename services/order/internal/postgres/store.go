// Package postgres stores the order service's households, orders, parcels and their transitions
// in PostgreSQL with hand-written SQL, and writes the events announcing each change to the outbox
// in the same transaction.
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

	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the order schema's own tables.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_orders", FS: sub}
}

// Store implements order.Store.
type Store struct {
	pool *pgxpool.Pool
	// now judges households' quarantine and priority as parcels are read, and dates request keys.
	now func() time.Time
}

var _ order.Store = (*Store)(nil)

// New returns a store on pool, whose search_path is the order schema; now nil means time.Now.
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: func() time.Time { return now().UTC() }}
}

// querier is what both a pool and a transaction offer, so reads run inside or outside one.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UpsertHousehold implements order.Store.
func (s *Store) UpsertHousehold(ctx context.Context, h order.Household, key order.RequestKey, reaches func(order.Household) bool) (order.Household, error) {
	var out order.Household
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		current, err := scanHousehold(tx.QueryRow(ctx, `SELECT `+householdColumns+` FROM households h WHERE h.household_id = $1 FOR UPDATE`, h.ID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read household %s: %w", h.ID, err)
		case !reaches(current):
			return order.NotFound("household", h.ID)
		}
		if key.ID != "" {
			c, err := s.claim(ctx, tx, key)
			if err != nil {
				return err
			}
			if c.Done {
				out, err = household(ctx, tx, h.ID)
				return err
			}
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO households (`+householdWriteColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULLIF($13, '')::date, $14)
			ON CONFLICT (household_id) DO UPDATE SET
				compound = EXCLUDED.compound, building = EXCLUDED.building, unit = EXCLUDED.unit,
				floor = EXCLUDED.floor, room = EXCLUDED.room, residents = EXCLUDED.residents,
				occupancy = EXCLUDED.occupancy, phone = EXCLUDED.phone, over_80 = EXCLUDED.over_80,
				lives_alone = EXCLUDED.lives_alone, chronically_ill = EXCLUDED.chronically_ill,
				quarantined_until = EXCLUDED.quarantined_until, priority_unstated = EXCLUDED.priority_unstated,
				updated_at = now()`, householdArgs(h)...)
		if pgkit.IsUniqueViolation(err) {
			a := h.Address
			var other string
			_ = tx.QueryRow(ctx, `SELECT household_id FROM households WHERE compound = $1 AND building = $2 AND unit = $3 AND room = $4`,
				a.Compound, a.Building, a.Unit, a.Room).Scan(&other)
			return fmt.Errorf("%w: address %s/%s/%s/%s is household %s", order.ErrConflict, a.Compound, a.Building, a.Unit, a.Room, other)
		}
		if err != nil {
			return fmt.Errorf("upsert household %s: %w", h.ID, err)
		}
		if key.ID != "" {
			if err := finish(ctx, tx, key, nil); err != nil {
				return err
			}
		}
		out, err = household(ctx, tx, h.ID)
		return err
	})
	return out, err
}

const householdWriteColumns = `household_id, compound, building, unit, floor, room, residents, occupancy, phone,
	over_80, lives_alone, chronically_ill, quarantined_until, priority_unstated`

func householdArgs(h order.Household) []any {
	a := h.Address
	return []any{h.ID, a.Compound, a.Building, a.Unit, a.Floor, a.Room, h.Residents, h.Occupancy, h.Phone,
		h.Over80, h.LivesAlone, h.ChronicallyIll, h.QuarantinedUntil, h.UnstatedPriority}
}

// householdColumns are read in scanHousehold's order; h is the households table's alias.
const householdColumns = `h.household_id, h.compound, h.building, h.unit, h.floor, h.room, h.residents, h.occupancy,
	h.phone, h.over_80, h.lives_alone, h.chronically_ill, coalesce(to_char(h.quarantined_until, 'YYYY-MM-DD'), ''),
	h.priority_unstated`

func householdDest(h *order.Household) []any {
	a := &h.Address
	return []any{&h.ID, &a.Compound, &a.Building, &a.Unit, &a.Floor, &a.Room, &h.Residents, &h.Occupancy,
		&h.Phone, &h.Over80, &h.LivesAlone, &h.ChronicallyIll, &h.QuarantinedUntil, &h.UnstatedPriority}
}

func scanHousehold(row pgx.Row) (order.Household, error) {
	var h order.Household
	err := row.Scan(householdDest(&h)...)
	return h, err
}

func household(ctx context.Context, q querier, id string) (order.Household, error) {
	h, err := scanHousehold(q.QueryRow(ctx, `SELECT `+householdColumns+` FROM households h WHERE h.household_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return h, order.NotFound("household", id)
	}
	if err != nil {
		return h, fmt.Errorf("read household %s: %w", id, err)
	}
	return h, nil
}

// Household implements order.Store.
func (s *Store) Household(ctx context.Context, id string) (order.Household, error) {
	return household(ctx, s.pool, id)
}

// Households implements order.Store.
func (s *Store) Households(ctx context.Context, compound, after string, limit int) ([]order.Household, error) {
	return households(ctx, s.pool, `SELECT `+householdColumns+` FROM households h
		WHERE h.compound = $1 AND h.household_id > $2 ORDER BY h.household_id LIMIT $3`, compound, after, limit)
}

// Roster implements order.Store.
func (s *Store) Roster(ctx context.Context, compound string) ([]order.Household, error) {
	return households(ctx, s.pool, `SELECT `+householdColumns+` FROM households h WHERE h.compound = $1 ORDER BY h.household_id`, compound)
}

func households(ctx context.Context, q querier, sql string, args ...any) ([]order.Household, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list households: %w", err)
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Household, error) { return scanHousehold(r) })
	if err != nil {
		return nil, fmt.Errorf("list households: %w", err)
	}
	return hs, nil
}

// importResult is how an import's result is kept with its request key, for its retries.
type importResult struct {
	Rows      int        `json:"rows"`
	Created   int        `json:"created"`
	Updated   int        `json:"updated"`
	Unchanged int        `json:"unchanged"`
	Errors    []rowError `json:"errors,omitempty"`
	Applied   bool       `json:"applied"`
}

type rowError struct {
	Line    int    `json:"line"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

func encodeResult(r order.ImportResult) ([]byte, error) {
	out := importResult{Rows: r.Rows, Created: r.Created, Updated: r.Updated, Unchanged: r.Unchanged, Applied: r.Applied}
	for _, e := range r.Errors {
		out.Errors = append(out.Errors, rowError(e))
	}
	return json.Marshal(out)
}

func decodeResult(b []byte) (order.ImportResult, error) {
	var in importResult
	if err := json.Unmarshal(b, &in); err != nil {
		return order.ImportResult{}, fmt.Errorf("read stored import result: %w", err)
	}
	out := order.ImportResult{Rows: in.Rows, Created: in.Created, Updated: in.Updated, Unchanged: in.Unchanged, Applied: in.Applied}
	for _, e := range in.Errors {
		out.Errors = append(out.Errors, order.RowError(e))
	}
	return out, nil
}

// ImportResult implements order.Store.
func (s *Store) ImportResult(ctx context.Context, key order.RequestKey) (order.ImportResult, bool, error) {
	var (
		hash   []byte
		result []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT request_hash, result FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID).Scan(&hash, &result)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.ImportResult{}, false, nil
	}
	if err != nil {
		return order.ImportResult{}, false, fmt.Errorf("read request %s: %w", key.ID, err)
	}
	if !bytes.Equal(hash, key.Hash) {
		return order.ImportResult{}, false, fmt.Errorf("%w: request id %q was used for a different %s request", order.ErrConflict, key.ID, key.Kind)
	}
	if result == nil {
		return order.ImportResult{}, false, nil
	}
	res, err := decodeResult(result)
	return res, err == nil, err
}

// ImportRoster implements order.Store. The compound's households are locked for the import so
// that an upsert cannot slip in between the comparison and the writes.
func (s *Store) ImportRoster(ctx context.Context, compound string, key order.RequestKey,
	plan func([]order.Household) ([]order.Household, order.ImportResult)) (order.ImportResult, error) {
	var out order.ImportResult
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := s.claim(ctx, tx, key)
		if err != nil {
			return err
		}
		if c.Done {
			result, err := storedResult(ctx, tx, key)
			if err != nil {
				return err
			}
			out, err = decodeResult(result)
			return err
		}
		current, err := households(ctx, tx, `SELECT `+householdColumns+` FROM households h WHERE h.compound = $1
			ORDER BY h.household_id FOR UPDATE`, compound)
		if err != nil {
			return err
		}
		exists := make(map[string]bool, len(current))
		for _, h := range current {
			exists[h.ID] = true
		}
		writes, res := plan(current)
		b := &pgx.Batch{}
		for _, h := range writes {
			if exists[h.ID] {
				b.Queue(`UPDATE households SET (`+householdWriteColumns+`, updated_at)
					= ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULLIF($13, '')::date, $14, now())
					WHERE household_id = $1`, householdArgs(h)...)
			} else {
				b.Queue(`INSERT INTO households (`+householdWriteColumns+`)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULLIF($13, '')::date, $14)`, householdArgs(h)...)
			}
		}
		br := tx.SendBatch(ctx, b)
		for _, h := range writes {
			if _, err := br.Exec(); err != nil {
				br.Close()
				if pgkit.IsUniqueViolation(err) {
					return fmt.Errorf("%w: household %s at %s/%s/%s: %v", order.ErrConflict, h.ID, h.Address.Building, h.Address.Unit, h.Address.Room, err)
				}
				return fmt.Errorf("write household %s: %w", h.ID, err)
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("write households: %w", err)
		}
		result, err := encodeResult(res)
		if err != nil {
			return fmt.Errorf("finish request %s: %w", key.ID, err)
		}
		if err := finish(ctx, tx, key, result); err != nil {
			return err
		}
		out = res
		return nil
	})
	return out, err
}

// ClaimRequest implements order.Store. Its statements need no transaction around them (each is
// atomic, and claim's reasoning holds between them), which saves two round trips.
func (s *Store) ClaimRequest(ctx context.Context, key order.RequestKey) (order.Claim, error) {
	return s.claim(ctx, s.pool, key)
}

// ClaimPlacement implements order.Store. One statement reads the household within compound and
// writes the claim only from what it read (one snapshot for both: the household cannot appear
// between them); a second, in the same batch, reads the claim.
func (s *Store) ClaimPlacement(ctx context.Context, id, compound string, key order.RequestKey) (order.Household, order.Claim, error) {
	var (
		h                        order.Household
		found, claimed, recorded bool
		hash                     []byte
		doneAt                   *time.Time
		c                        order.Claim
	)
	b := &pgx.Batch{}
	b.Queue(`WITH reached AS (SELECT `+householdColumns+` FROM households h WHERE h.household_id = $1 AND ($2 = '' OR h.compound = $2)),
		claim AS (INSERT INTO requests (kind, scope, request_id, request_hash, created_at)
			SELECT $3, $4, $5, $6, $7 FROM reached ON CONFLICT DO NOTHING RETURNING true)
		SELECT reached.*, EXISTS (SELECT FROM claim) FROM reached`,
		id, compound, key.Kind, key.Scope, key.ID, key.Hash, s.now()).Query(func(rows pgx.Rows) error {
		if found = rows.Next(); found {
			return rows.Scan(append(householdDest(&h), &claimed)...)
		}
		return rows.Err()
	})
	// A concurrent claim of the same key waits on the first one's row lock in the insert, so by
	// the time this statement reads, the stored hash is committed.
	b.Queue(`SELECT request_hash, done_at, attempt FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID).Query(func(rows pgx.Rows) error {
		if recorded = rows.Next(); recorded {
			return rows.Scan(&hash, &doneAt, &c.Attempt)
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return h, c, fmt.Errorf("claim request %s for household %s: %w", key.ID, id, err)
	}
	if !found {
		return h, c, order.NotFound("household", id)
	}
	if !recorded {
		// An old claim pruned between the two statements (days old by then); a retry claims anew.
		return h, c, fmt.Errorf("%w: request %s was forgotten while it was claimed; retry", order.ErrAborted, key.ID)
	}
	if !bytes.Equal(hash, key.Hash) {
		return h, c, fmt.Errorf("%w: request id %q was used for a different %s request", order.ErrConflict, key.ID, key.Kind)
	}
	c.New, c.Done = claimed, doneAt != nil
	return h, c, nil
}

// claim records key. A concurrent claim of the same key waits on the first one's row lock, so by
// the time it reads, the stored hash is committed.
func (s *Store) claim(ctx context.Context, tx querier, key order.RequestKey) (order.Claim, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO requests (kind, scope, request_id, request_hash, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, key.Kind, key.Scope, key.ID, key.Hash, s.now())
	if err != nil {
		return order.Claim{}, fmt.Errorf("claim request %s: %w", key.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return order.Claim{New: true}, nil
	}
	var (
		hash   []byte
		doneAt *time.Time
		c      order.Claim
	)
	if err := tx.QueryRow(ctx, `SELECT request_hash, done_at, attempt FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID).Scan(&hash, &doneAt, &c.Attempt); err != nil {
		return order.Claim{}, fmt.Errorf("read request %s: %w", key.ID, err)
	}
	if !bytes.Equal(hash, key.Hash) {
		return order.Claim{}, fmt.Errorf("%w: request id %q was used for a different %s request", order.ErrConflict, key.ID, key.Kind)
	}
	c.Done = doneAt != nil
	return c, nil
}

// finish marks key done, keeping result (JSON, or nil) for the request's retries.
func finish(ctx context.Context, tx pgx.Tx, key order.RequestKey, result []byte) error {
	_, err := tx.Exec(ctx, `UPDATE requests SET done_at = now(), result = $4 WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID, result)
	if err != nil {
		return fmt.Errorf("finish request %s: %w", key.ID, err)
	}
	return nil
}

// storedResult is the result a finished request kept for its retries.
func storedResult(ctx context.Context, q querier, key order.RequestKey) ([]byte, error) {
	var result []byte
	if err := q.QueryRow(ctx, `SELECT result FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID).Scan(&result); err != nil {
		return nil, fmt.Errorf("read request %s: %w", key.ID, err)
	}
	return result, nil
}

// PruneRequests implements order.Store.
func (s *Store) PruneRequests(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM requests WHERE created_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune requests: %w", err)
	}
	return tag.RowsAffected(), nil
}

// lockAttempt reads the current attempt of a placement's request, locked: shared while an order
// is created, exclusive while an attempt is ended, so the two never interleave.
func lockAttempt(ctx context.Context, tx pgx.Tx, key order.RequestKey, mode string) (int, error) {
	var (
		attempt  int
		recorded bool
	)
	b := &pgx.Batch{}
	queueLockAttempt(b, key, mode, &attempt, &recorded)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	return attempt, attemptRecorded(key, recorded)
}

// queueLockAttempt adds lockAttempt's statement to b, reading the attempt into attempt and
// whether the request is recorded at all into recorded. (A missing request is not the batch's
// error: a failed batch would make pgx forget its prepared statements.)
func queueLockAttempt(b *pgx.Batch, key order.RequestKey, mode string, attempt *int, recorded *bool) {
	b.Queue(`SELECT attempt FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3 FOR `+mode,
		key.Kind, key.Scope, key.ID).Query(func(rows pgx.Rows) error {
		*recorded = false
		for rows.Next() {
			if err := rows.Scan(attempt); err != nil {
				return fmt.Errorf("read request %s: %w", key.ID, err)
			}
			*recorded = true
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read request %s: %w", key.ID, err)
		}
		return nil
	})
}

// attemptRecorded is the error for a request no longer recorded: pruned while the placement ran
// (it would have to run for days). The client may retry.
func attemptRecorded(key order.RequestKey, recorded bool) error {
	if !recorded {
		return fmt.Errorf("%w: request %q is no longer recorded; retry", order.ErrAborted, key.ID)
	}
	return nil
}

// EndAttempt implements order.Store.
func (s *Store) EndAttempt(ctx context.Context, key order.RequestKey, attempt int, orderID string) (*order.Order, error) {
	var stored *order.Order
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		stored = nil
		current, err := lockAttempt(ctx, tx, key, "UPDATE")
		if err != nil {
			return err
		}
		o, err := s.loadOrder(ctx, tx, orderID)
		if err == nil {
			stored = &o
			return nil
		}
		if !errors.Is(err, order.ErrNotFound) {
			return err
		}
		if current != attempt {
			return nil // a concurrent failure of this attempt has ended it already
		}
		if _, err := tx.Exec(ctx, `UPDATE requests SET attempt = attempt + 1 WHERE kind = $1 AND scope = $2 AND request_id = $3`,
			key.Kind, key.Scope, key.ID); err != nil {
			return fmt.Errorf("end attempt %d of request %s: %w", attempt, key.ID, err)
		}
		return nil
	})
	return stored, err
}

// CreateOrder implements order.Store.
func (s *Store) CreateOrder(ctx context.Context, o order.Order, key order.RequestKey, attempt int) (order.Order, bool, error) {
	var (
		stored   order.Order
		created  bool
		current  int
		recorded bool
	)
	// The request's attempt is read and the order row written with the BEGIN, in one round trip;
	// a stale attempt rolls the row back. The parcels, their lines and transitions and the events
	// go with the COMMIT in a second. An order with the id already there (a concurrent retry won)
	// is loaded instead.
	err := pgkit.BatchTx(ctx, s.pool, func(b *pgx.Batch) {
		queueLockAttempt(b, key, "SHARE", &current, &recorded)
		queueOrder(b, o, &created)
	}, func(tx pgx.Tx, commit *pgx.Batch) (err error) {
		if err := attemptRecorded(key, recorded); err != nil {
			return err
		}
		if current != attempt {
			return fmt.Errorf("%w: attempt %d of request %q failed meanwhile and gave its reservations back; retry", order.ErrAborted, attempt, key.ID)
		}
		if !created {
			stored, err = s.loadOrder(ctx, tx, o.ID)
			return err
		}
		// What is written is o itself: no need to read it back.
		stored = o
		return queueParcels(commit, o)
	})
	if err != nil {
		return order.Order{}, false, fmt.Errorf("create order %s: %w", o.ID, err)
	}
	return stored, created, nil
}

// insertOrder writes o with its parcels, unless an order with its id exists (created=false).
func insertOrder(ctx context.Context, tx pgx.Tx, o order.Order) (created bool, err error) {
	b := &pgx.Batch{}
	queueOrder(b, o, &created)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("insert order %s: %w", o.ID, err)
	}
	if !created {
		return false, nil
	}
	return true, insertParcels(ctx, tx, o)
}

// queueOrder adds to b the insert of o's row, which sets created once b has run. ON CONFLICT waits
// for a concurrent insert of the same id to commit, then does nothing, so a later statement of
// the transaction sees the winner's order.
func queueOrder(b *pgx.Batch, o order.Order, created *bool) {
	b.Queue(`INSERT INTO orders (order_id, household_id, compound, request_id, request_hash, channel,
			placed_by_role, placed_by_id, proxy, placed_at, campaign_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, '')::uuid) ON CONFLICT (order_id) DO NOTHING`,
		o.ID, o.HouseholdID, o.Compound, o.RequestID, o.RequestHash, o.Channel, o.PlacedBy.Role, o.PlacedBy.ID, o.Proxy,
		o.PlacedAt, o.CampaignID).Exec(func(tag pgconn.CommandTag) error {
		*created = tag.RowsAffected() == 1
		return nil
	})
}

// insertParcels writes the parcels of the new order o (PLACED), their creation transitions and
// the order.placed and parcel.placed events, all in one batch: a round trip for the lot rather
// than one per parcel, line, transition and event.
func insertParcels(ctx context.Context, tx pgx.Tx, o order.Order) error {
	b := &pgx.Batch{}
	if err := queueParcels(b, o); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("insert the parcels of order %s: %w", o.ID, err)
	}
	return nil
}

// queueParcels adds insertParcels' statements to b.
func queueParcels(b *pgx.Batch, o order.Order) error {
	for _, p := range o.Parcels {
		queueParcel(b, p)
		queueTransition(b, order.Transition{ParcelID: p.ID, To: order.Placed, Actor: o.PlacedBy, At: o.PlacedAt})
	}
	return outbox.Queue(b, placedEvents(o)...)
}

// queueParcel adds the inserts of a new parcel and its lines to b.
func queueParcel(b *pgx.Batch, p order.Parcel) {
	a := p.Address
	b.Queue(`INSERT INTO parcels (parcel_id, order_id, supplier_id, household_id, compound, state,
			total_fen, weight_grams, reason, updated_at, building, unit, floor, room, priority, contactless)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		p.ID, p.OrderID, p.SupplierID, p.HouseholdID, a.Compound, p.State, p.TotalFen, p.WeightGrams, p.Reason, p.UpdatedAt,
		a.Building, a.Unit, a.Floor, a.Room, p.Priority, p.Contactless)
	for i, l := range p.Lines {
		b.Queue(`INSERT INTO parcel_lines (parcel_id, line_no, item_id, name, unit, weighed, quantity,
				unit_price_fen, amount_fen, confirmed_quantity, confirmed_amount_fen, unit_weight_grams)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			p.ID, i, l.ItemID, l.Name, l.Unit, l.Weighed, l.Quantity, l.UnitPriceFen, l.AmountFen,
			l.ConfirmedQuantity, l.ConfirmedAmountFen, l.UnitWeightGrams)
	}
}

// saveParcel stores what a transition may change: state, totals, reason and confirmed lines.
func saveParcel(ctx context.Context, tx pgx.Tx, p order.Parcel) error {
	if _, err := tx.Exec(ctx, `UPDATE parcels SET state = $2, total_fen = $3, weight_grams = $4, reason = $5, updated_at = $6
		WHERE parcel_id = $1`, p.ID, p.State, p.TotalFen, p.WeightGrams, p.Reason, p.UpdatedAt); err != nil {
		return fmt.Errorf("update parcel %s: %w", p.ID, err)
	}
	for i, l := range p.Lines {
		if _, err := tx.Exec(ctx, `UPDATE parcel_lines SET confirmed_quantity = $3, confirmed_amount_fen = $4
			WHERE parcel_id = $1 AND line_no = $2`, p.ID, i, l.ConfirmedQuantity, l.ConfirmedAmountFen); err != nil {
			return fmt.Errorf("update parcel %s line %d: %w", p.ID, i, err)
		}
	}
	return nil
}

func insertTransition(ctx context.Context, tx pgx.Tx, t order.Transition) error {
	b := &pgx.Batch{}
	queueTransition(b, t)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record transition of parcel %s to %s: %w", t.ParcelID, t.To, err)
	}
	return nil
}

// queueTransition adds the record of a parcel's transition to b.
func queueTransition(b *pgx.Batch, t order.Transition) {
	var from, eventID *string
	if t.From != "" {
		f := string(t.From)
		from = &f
	}
	if t.EventID != "" {
		eventID = &t.EventID
	}
	b.Queue(`INSERT INTO parcel_transitions (parcel_id, from_state, to_state, actor_role, actor_id, at,
			reason, event_id, round_id, route_id, courier_id, delivery_method)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		t.ParcelID, from, t.To, t.Actor.Role, t.Actor.ID, t.At, t.Reason, eventID,
		t.RoundID, t.RouteID, t.CourierID, t.DeliveryMethod)
}

// Order implements order.Store.
func (s *Store) Order(ctx context.Context, id string) (order.Order, error) {
	return s.loadOrder(ctx, s.pool, id)
}

// Orders implements order.Store.
func (s *Store) Orders(ctx context.Context, householdID string, limit int) ([]order.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT order_id::text FROM orders WHERE household_id = $1
		ORDER BY placed_at DESC, order_id DESC LIMIT $2`, householdID, limit)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return s.loadOrders(ctx, s.pool, ids)
}

// Parcel implements order.Store.
func (s *Store) Parcel(ctx context.Context, id string) (order.Parcel, error) {
	if uuid.Validate(id) != nil {
		return order.Parcel{}, order.NotFound("parcel", id)
	}
	ps, err := s.loadParcels(ctx, s.pool, `WHERE p.parcel_id = $1 ORDER BY p.order_id, p.supplier_id`, id)
	if err != nil {
		return order.Parcel{}, err
	}
	if len(ps) == 0 {
		return order.Parcel{}, order.NotFound("parcel", id)
	}
	return ps[0], nil
}

// ParcelsToCheckIn implements order.Store, through the partial index parcels_to_check_in: a
// parcel's updated_at is the time it became READY until it moves on.
func (s *Store) ParcelsToCheckIn(ctx context.Context, compound string, after order.GatePosition, limit int) ([]order.Parcel, error) {
	if after.ParcelID == "" {
		return s.loadParcels(ctx, s.pool, `WHERE p.compound = $1 AND p.state = 'READY'
			ORDER BY p.updated_at, p.parcel_id LIMIT $2`, compound, limit)
	}
	return s.loadParcels(ctx, s.pool, `WHERE p.compound = $1 AND p.state = 'READY'
			AND (p.updated_at, p.parcel_id) > ($3, $4::uuid)
		ORDER BY p.updated_at, p.parcel_id LIMIT $2`, compound, limit, after.ReadyAt, after.ParcelID)
}

// UpdateOrder implements order.Store.
func (s *Store) UpdateOrder(ctx context.Context, id string, done *order.RequestKey, fn func(*order.Order) ([]order.Transition, error)) (order.Order, error) {
	var out order.Order
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock the parcels first so the consumer's concurrent transitions wait for this one.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM parcels WHERE order_id = $1 ORDER BY parcel_id FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock order %s: %w", id, err)
		}
		o, err := s.loadOrder(ctx, tx, id)
		if err != nil {
			return err
		}
		ts, err := fn(&o)
		if err != nil {
			return err
		}
		for _, t := range ts {
			p, ok := findParcel(o, t.ParcelID)
			if !ok {
				return fmt.Errorf("transition of parcel %s which is not in order %s", t.ParcelID, id)
			}
			if err := saveParcel(ctx, tx, p); err != nil {
				return err
			}
			if err := insertTransition(ctx, tx, t); err != nil {
				return err
			}
			if t.EventID != "" {
				continue // another service's event announced it already
			}
			if err := outbox.Add(ctx, tx, transitionEvent(o, p, t)); err != nil {
				return err
			}
		}
		if done != nil {
			if err := finish(ctx, tx, *done, nil); err != nil {
				return err
			}
		}
		out, err = s.loadOrder(ctx, tx, id)
		return err
	})
	return out, err
}

func findParcel(o order.Order, id string) (order.Parcel, bool) {
	for _, p := range o.Parcels {
		if p.ID == id {
			return p, true
		}
	}
	return order.Parcel{}, false
}

// ApplyChange applies another service's report of a parcel transition inside tx (the consumer's
// inbox transaction). A repeat of the parcel's current state changes nothing (except a move to
// another route, see order.Parcel.Apply); an unknown parcel or an illegal move is an error, for
// the consumer to retry.
func (s *Store) ApplyChange(ctx context.Context, tx pgx.Tx, c order.Change) error {
	if uuid.Validate(c.ParcelID) != nil {
		return fmt.Errorf("%w: parcel %q", order.ErrNotFound, c.ParcelID)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM parcels WHERE parcel_id = $1 FOR UPDATE`, c.ParcelID); err != nil {
		return fmt.Errorf("lock parcel %s: %w", c.ParcelID, err)
	}
	ps, err := s.loadParcels(ctx, tx, `WHERE p.parcel_id = $1 ORDER BY p.order_id, p.supplier_id`, c.ParcelID)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return order.NotFound("parcel", c.ParcelID)
	}
	p := ps[0]
	t, changed, err := p.Apply(c)
	if err != nil || !changed {
		return err
	}
	if err := saveParcel(ctx, tx, p); err != nil {
		return err
	}
	return insertTransition(ctx, tx, t)
}

func (s *Store) loadOrder(ctx context.Context, q querier, id string) (order.Order, error) {
	if uuid.Validate(id) != nil {
		return order.Order{}, order.NotFound("order", id)
	}
	found, err := s.loadOrders(ctx, q, []string{id})
	if err != nil {
		return order.Order{}, err
	}
	if len(found) == 0 {
		return order.Order{}, order.NotFound("order", id)
	}
	return found[0], nil
}

// loadOrders reads the orders with ids, in the order of ids, with their parcels and lines.
func (s *Store) loadOrders(ctx context.Context, q querier, ids []string) ([]order.Order, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT order_id::text, household_id, compound, request_id, request_hash, channel,
			placed_by_role, placed_by_id, proxy, placed_at, coalesce(campaign_id::text, '')
		FROM orders WHERE order_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	byID := map[string]*order.Order{}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Order, error) {
		var o order.Order
		err := r.Scan(&o.ID, &o.HouseholdID, &o.Compound, &o.RequestID, &o.RequestHash, &o.Channel,
			&o.PlacedBy.Role, &o.PlacedBy.ID, &o.Proxy, &o.PlacedAt, &o.CampaignID)
		o.PlacedAt = o.PlacedAt.UTC()
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	for i := range list {
		byID[list[i].ID] = &list[i]
	}
	parcels, err := s.loadParcels(ctx, q, `WHERE p.order_id = ANY($1::uuid[]) ORDER BY p.order_id, p.supplier_id`, ids)
	if err != nil {
		return nil, err
	}
	for _, p := range parcels {
		if o := byID[p.OrderID]; o != nil {
			o.Parcels = append(o.Parcels, p)
		}
	}
	out := make([]order.Order, 0, len(list))
	for _, id := range ids {
		if o := byID[id]; o != nil {
			out = append(out, *o)
		}
	}
	return out, nil
}

// loadParcels reads the parcels filter selects (its WHERE, ORDER BY and LIMIT, over parcels p,
// with args), with their lines. Address, priority and contactless come from the household as it is now: a
// household quarantined after ordering must still get contactless delivery.
func (s *Store) loadParcels(ctx context.Context, q querier, filter string, args ...any) ([]order.Parcel, error) {
	// The assignment is the last ASSIGNED transition's (parcel_transitions_parcel serves it).
	rows, err := q.Query(ctx, `SELECT p.parcel_id::text, p.order_id::text, p.supplier_id, p.household_id, p.state,
			p.total_fen, p.weight_grams, p.reason, p.updated_at,
			coalesce(a.round_id, ''), coalesce(a.route_id, ''), coalesce(a.courier_id, ''), `+householdColumns+`
		FROM parcels p JOIN households h ON h.household_id = p.household_id
		LEFT JOIN LATERAL (SELECT t.round_id, t.route_id, t.courier_id FROM parcel_transitions t
			WHERE t.parcel_id = p.parcel_id AND t.to_state = 'ASSIGNED' ORDER BY t.id DESC LIMIT 1) a ON true
		`+filter, args...)
	if err != nil {
		return nil, fmt.Errorf("read parcels: %w", err)
	}
	now := s.now()
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Parcel, error) {
		var (
			p  order.Parcel
			hh order.Household
		)
		a := &p.Assignment
		dest := append([]any{&p.ID, &p.OrderID, &p.SupplierID, &p.HouseholdID, &p.State, &p.TotalFen, &p.WeightGrams,
			&p.Reason, &p.UpdatedAt, &a.RoundID, &a.RouteID, &a.CourierID}, householdDest(&hh)...)
		err := r.Scan(dest...)
		p.UpdatedAt = p.UpdatedAt.UTC()
		p.Address, p.Priority, p.Contactless = hh.Address, hh.Priority(now), hh.Quarantined(now)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read parcels: %w", err)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	pids := make([]string, len(ps))
	index := make(map[string]int, len(ps))
	for i, p := range ps {
		pids[i] = p.ID
		index[p.ID] = i
	}
	rows, err = q.Query(ctx, `SELECT parcel_id::text, item_id, name, unit, weighed, quantity, unit_price_fen, amount_fen,
			confirmed_quantity, confirmed_amount_fen, unit_weight_grams
		FROM parcel_lines WHERE parcel_id = ANY($1::uuid[]) ORDER BY parcel_id, line_no`, pids)
	if err != nil {
		return nil, fmt.Errorf("read parcel lines: %w", err)
	}
	var pid string
	var l order.Line
	_, err = pgx.ForEachRow(rows, []any{&pid, &l.ItemID, &l.Name, &l.Unit, &l.Weighed, &l.Quantity, &l.UnitPriceFen,
		&l.AmountFen, &l.ConfirmedQuantity, &l.ConfirmedAmountFen, &l.UnitWeightGrams}, func() error {
		i := index[pid]
		ps[i].Lines = append(ps[i].Lines, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read parcel lines: %w", err)
	}
	return ps, nil
}
