// Package postgres stores the order service's households, orders, parcels and their transitions
// in PostgreSQL with hand-written SQL, and writes the events announcing each change to the outbox
// in the same transaction.
package postgres

import (
	"bytes"
	"context"
	"embed"
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
}

var _ order.Store = (*Store)(nil)

// New returns a store on pool, whose search_path is the order schema.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// querier is what both a pool and a transaction offer, so reads run inside or outside one.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UpsertHousehold implements order.Store.
func (s *Store) UpsertHousehold(ctx context.Context, h order.Household, key order.RequestKey) (order.Household, error) {
	var out order.Household
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		if key.ID != "" {
			done, err := claim(ctx, tx, key)
			if err != nil {
				return err
			}
			if done {
				out, err = household(ctx, tx, h.ID)
				return err
			}
		}
		a := h.Address
		_, err := tx.Exec(ctx, `
			INSERT INTO households (household_id, compound, building, unit, floor, room, residents, priority, quarantined, occupied)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (household_id) DO UPDATE SET
				compound = EXCLUDED.compound, building = EXCLUDED.building, unit = EXCLUDED.unit,
				floor = EXCLUDED.floor, room = EXCLUDED.room, residents = EXCLUDED.residents,
				priority = EXCLUDED.priority, quarantined = EXCLUDED.quarantined, occupied = EXCLUDED.occupied,
				updated_at = now()`,
			h.ID, a.Compound, a.Building, a.Unit, a.Floor, a.Room, h.Residents, h.Priority, h.Quarantined, h.Occupied)
		if pgkit.IsUniqueViolation(err) {
			var other string
			_ = tx.QueryRow(ctx, `SELECT household_id FROM households WHERE compound = $1 AND building = $2 AND unit = $3 AND room = $4`,
				a.Compound, a.Building, a.Unit, a.Room).Scan(&other)
			return fmt.Errorf("%w: address %s/%s/%s/%s is household %s", order.ErrConflict, a.Compound, a.Building, a.Unit, a.Room, other)
		}
		if err != nil {
			return fmt.Errorf("upsert household %s: %w", h.ID, err)
		}
		if key.ID != "" {
			if err := finish(ctx, tx, key); err != nil {
				return err
			}
		}
		out, err = household(ctx, tx, h.ID)
		return err
	})
	return out, err
}

const householdColumns = `household_id, compound, building, unit, floor, room, residents, priority, quarantined, occupied`

func scanHousehold(row pgx.Row) (order.Household, error) {
	var h order.Household
	a := &h.Address
	err := row.Scan(&h.ID, &a.Compound, &a.Building, &a.Unit, &a.Floor, &a.Room, &h.Residents, &h.Priority, &h.Quarantined, &h.Occupied)
	return h, err
}

func household(ctx context.Context, q querier, id string) (order.Household, error) {
	h, err := scanHousehold(q.QueryRow(ctx, `SELECT `+householdColumns+` FROM households WHERE household_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fmt.Errorf("%w: household %s", order.ErrNotFound, id)
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
	rows, err := s.pool.Query(ctx, `SELECT `+householdColumns+` FROM households
		WHERE compound = $1 AND household_id > $2 ORDER BY household_id LIMIT $3`, compound, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list households: %w", err)
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Household, error) { return scanHousehold(r) })
	if err != nil {
		return nil, fmt.Errorf("list households: %w", err)
	}
	return hs, nil
}

// ClaimRequest implements order.Store.
func (s *Store) ClaimRequest(ctx context.Context, key order.RequestKey) (bool, error) {
	var done bool
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		done, err = claim(ctx, tx, key)
		return err
	})
	return done, err
}

// claim records key. A concurrent claim of the same key waits on the first one's row lock, so by
// the time it reads, the stored hash is committed.
func claim(ctx context.Context, tx pgx.Tx, key order.RequestKey) (done bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO requests (kind, scope, request_id, request_hash) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, key.Kind, key.Scope, key.ID, key.Hash)
	if err != nil {
		return false, fmt.Errorf("claim request %s: %w", key.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return false, nil
	}
	var hash []byte
	var doneAt *time.Time
	if err := tx.QueryRow(ctx, `SELECT request_hash, done_at FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID).Scan(&hash, &doneAt); err != nil {
		return false, fmt.Errorf("read request %s: %w", key.ID, err)
	}
	if !bytes.Equal(hash, key.Hash) {
		return false, fmt.Errorf("%w: request id %q was used for a different %s request", order.ErrConflict, key.ID, key.Kind)
	}
	return doneAt != nil, nil
}

func finish(ctx context.Context, tx pgx.Tx, key order.RequestKey) error {
	_, err := tx.Exec(ctx, `UPDATE requests SET done_at = now() WHERE kind = $1 AND scope = $2 AND request_id = $3`,
		key.Kind, key.Scope, key.ID)
	if err != nil {
		return fmt.Errorf("finish request %s: %w", key.ID, err)
	}
	return nil
}

// CreateOrder implements order.Store.
func (s *Store) CreateOrder(ctx context.Context, o order.Order) (order.Order, bool, error) {
	var (
		stored  order.Order
		created bool
	)
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		// ON CONFLICT waits for a concurrent insert of the same id to commit, then does nothing;
		// the read below (a new statement) sees the winner's order.
		tag, err := tx.Exec(ctx, `INSERT INTO orders (order_id, household_id, compound, request_id, request_hash, channel,
				placed_by_role, placed_by_id, proxy, placed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (order_id) DO NOTHING`,
			o.ID, o.HouseholdID, o.Compound, o.RequestID, o.RequestHash, o.Channel, o.PlacedBy.Role, o.PlacedBy.ID, o.Proxy, o.PlacedAt)
		if err != nil {
			return fmt.Errorf("insert order %s: %w", o.ID, err)
		}
		created = tag.RowsAffected() == 1
		if created {
			for _, p := range o.Parcels {
				if err := insertParcel(ctx, tx, p); err != nil {
					return err
				}
				t := order.Transition{ParcelID: p.ID, To: order.Placed, Actor: o.PlacedBy, At: o.PlacedAt}
				if err := insertTransition(ctx, tx, t); err != nil {
					return err
				}
			}
			if err := outbox.Add(ctx, tx, placedEvents(o)...); err != nil {
				return err
			}
		}
		stored, err = loadOrder(ctx, tx, o.ID)
		return err
	})
	if err != nil {
		return order.Order{}, false, err
	}
	return stored, created, nil
}

func insertParcel(ctx context.Context, tx pgx.Tx, p order.Parcel) error {
	a := p.Address
	if _, err := tx.Exec(ctx, `INSERT INTO parcels (parcel_id, order_id, supplier_id, household_id, compound, state,
			total_fen, weight_grams, reason, updated_at, building, unit, floor, room, priority, contactless)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		p.ID, p.OrderID, p.SupplierID, p.HouseholdID, a.Compound, p.State, p.TotalFen, p.WeightGrams, p.Reason, p.UpdatedAt,
		a.Building, a.Unit, a.Floor, a.Room, p.Priority, p.Contactless); err != nil {
		return fmt.Errorf("insert parcel %s: %w", p.ID, err)
	}
	for i, l := range p.Lines {
		if _, err := tx.Exec(ctx, `INSERT INTO parcel_lines (parcel_id, line_no, item_id, name, unit, weighed, quantity,
				unit_price_fen, amount_fen, confirmed_quantity, confirmed_amount_fen, unit_weight_grams)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			p.ID, i, l.ItemID, l.Name, l.Unit, l.Weighed, l.Quantity, l.UnitPriceFen, l.AmountFen,
			l.ConfirmedQuantity, l.ConfirmedAmountFen, l.UnitWeightGrams); err != nil {
			return fmt.Errorf("insert parcel %s line %d: %w", p.ID, i, err)
		}
	}
	return nil
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
	var from, eventID *string
	if t.From != "" {
		f := string(t.From)
		from = &f
	}
	if t.EventID != "" {
		eventID = &t.EventID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO parcel_transitions (parcel_id, from_state, to_state, actor_role, actor_id, at,
			reason, event_id, round_id, route_id, courier_id, delivery_method)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		t.ParcelID, from, t.To, t.Actor.Role, t.Actor.ID, t.At, t.Reason, eventID,
		t.RoundID, t.RouteID, t.CourierID, t.DeliveryMethod); err != nil {
		return fmt.Errorf("record transition of parcel %s to %s: %w", t.ParcelID, t.To, err)
	}
	return nil
}

// Order implements order.Store.
func (s *Store) Order(ctx context.Context, id string) (order.Order, error) {
	return loadOrder(ctx, s.pool, id)
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
	return loadOrders(ctx, s.pool, ids)
}

// Parcel implements order.Store.
func (s *Store) Parcel(ctx context.Context, id string) (order.Parcel, error) {
	if uuid.Validate(id) != nil {
		return order.Parcel{}, fmt.Errorf("%w: parcel %s", order.ErrNotFound, id)
	}
	ps, err := loadParcels(ctx, s.pool, `p.parcel_id = $1`, id)
	if err != nil {
		return order.Parcel{}, err
	}
	if len(ps) == 0 {
		return order.Parcel{}, fmt.Errorf("%w: parcel %s", order.ErrNotFound, id)
	}
	return ps[0], nil
}

// UpdateOrder implements order.Store.
func (s *Store) UpdateOrder(ctx context.Context, id string, done *order.RequestKey, fn func(*order.Order) ([]order.Transition, error)) (order.Order, error) {
	var out order.Order
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock the parcels first so the consumer's concurrent transitions wait for this one.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM parcels WHERE order_id = $1 ORDER BY parcel_id FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock order %s: %w", id, err)
		}
		o, err := loadOrder(ctx, tx, id)
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
			if err := outbox.Add(ctx, tx, transitionEvent(o, p, t)); err != nil {
				return err
			}
		}
		if done != nil {
			if err := finish(ctx, tx, *done); err != nil {
				return err
			}
		}
		out, err = loadOrder(ctx, tx, id)
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
// inbox transaction). A repeat of the parcel's current state changes nothing; an unknown parcel or
// an illegal move is an error, for the consumer to retry.
func (s *Store) ApplyChange(ctx context.Context, tx pgx.Tx, c order.Change) error {
	if uuid.Validate(c.ParcelID) != nil {
		return fmt.Errorf("%w: parcel %q", order.ErrNotFound, c.ParcelID)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM parcels WHERE parcel_id = $1 FOR UPDATE`, c.ParcelID); err != nil {
		return fmt.Errorf("lock parcel %s: %w", c.ParcelID, err)
	}
	ps, err := loadParcels(ctx, tx, `p.parcel_id = $1`, c.ParcelID)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return fmt.Errorf("%w: parcel %s", order.ErrNotFound, c.ParcelID)
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

func loadOrder(ctx context.Context, q querier, id string) (order.Order, error) {
	if uuid.Validate(id) != nil {
		return order.Order{}, fmt.Errorf("%w: order %s", order.ErrNotFound, id)
	}
	found, err := loadOrders(ctx, q, []string{id})
	if err != nil {
		return order.Order{}, err
	}
	if len(found) == 0 {
		return order.Order{}, fmt.Errorf("%w: order %s", order.ErrNotFound, id)
	}
	return found[0], nil
}

// loadOrders reads the orders with ids, in the order of ids, with their parcels and lines.
func loadOrders(ctx context.Context, q querier, ids []string) ([]order.Order, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT order_id::text, household_id, compound, request_id, request_hash, channel,
			placed_by_role, placed_by_id, proxy, placed_at
		FROM orders WHERE order_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	byID := map[string]*order.Order{}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Order, error) {
		var o order.Order
		err := r.Scan(&o.ID, &o.HouseholdID, &o.Compound, &o.RequestID, &o.RequestHash, &o.Channel,
			&o.PlacedBy.Role, &o.PlacedBy.ID, &o.Proxy, &o.PlacedAt)
		o.PlacedAt = o.PlacedAt.UTC()
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	for i := range list {
		byID[list[i].ID] = &list[i]
	}
	parcels, err := loadParcels(ctx, q, `p.order_id = ANY($1::uuid[])`, ids)
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

// loadParcels reads the parcels matching where (with $1 its only argument), ordered by supplier,
// with their lines. Address, priority and contactless come from the household as it is now: a
// household quarantined after ordering must still get contactless delivery.
func loadParcels(ctx context.Context, q querier, where string, arg any) ([]order.Parcel, error) {
	rows, err := q.Query(ctx, `SELECT p.parcel_id::text, p.order_id::text, p.supplier_id, p.household_id, p.state,
			p.total_fen, p.weight_grams, p.reason, p.updated_at,
			h.compound, h.building, h.unit, h.floor, h.room, h.priority, h.quarantined
		FROM parcels p JOIN households h ON h.household_id = p.household_id
		WHERE `+where+` ORDER BY p.order_id, p.supplier_id`, arg)
	if err != nil {
		return nil, fmt.Errorf("read parcels: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Parcel, error) {
		var p order.Parcel
		a := &p.Address
		err := r.Scan(&p.ID, &p.OrderID, &p.SupplierID, &p.HouseholdID, &p.State, &p.TotalFen, &p.WeightGrams, &p.Reason,
			&p.UpdatedAt, &a.Compound, &a.Building, &a.Unit, &a.Floor, &a.Room, &p.Priority, &p.Contactless)
		p.UpdatedAt = p.UpdatedAt.UTC()
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
