package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// The floor's copies of the two services' schemas, in the stack's own database.
const (
	floorSupplier = "floor_supplier"
	floorOrders   = "floor_orders"
)

// floor issues PlaceOrder's database work directly: the statements of
// services/supplier/internal/postgres (Reserve) and services/order/internal/postgres
// (ClaimRequest, CreateOrder), in the same transactions, on pools opened the way the services open
// theirs (pgkit.Open: one pool per schema, default size). It leaves out what is not a write
// transaction of PlaceOrder: the household and item look-ups and the gRPC hops.
type floor struct {
	w        *workload
	supplier *pgxpool.Pool
	orders   *pgxpool.Pool
	seq      atomic.Int64
	placed   atomic.Int64
	copied   []string
}

var namespace = uuid.MustParse("6f1c3a52-4d0e-4b8e-9a57-3d1f0c2b7e10")

// newFloor copies the supplier and orders schemas (tables, constraints, indexes, foreign keys,
// own sequences) and the benchmark compound's suppliers, items and households into the floor
// schemas, so the floor writes to tables shaped exactly like the services' without touching their
// data (or their stock).
func newFloor(ctx context.Context, url string, w *workload) (*floor, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	f := &floor{w: w}
	for _, c := range []struct{ from, to string }{{"supplier", floorSupplier}, {"orders", floorOrders}} {
		tables, fks, err := copySchema(ctx, conn, c.from, c.to)
		if err != nil {
			return nil, fmt.Errorf("copy schema %s: %w", c.from, err)
		}
		f.copied = append(f.copied, fmt.Sprintf("%s -> %s (%d tables, %d foreign keys)", c.from, c.to, tables, fks))
	}
	for _, q := range []string{
		`INSERT INTO floor_supplier.suppliers SELECT * FROM supplier.suppliers WHERE compound = 'bench'`,
		`INSERT INTO floor_supplier.supplier_credentials SELECT c.* FROM supplier.supplier_credentials c
			JOIN supplier.suppliers s USING (supplier_id) WHERE s.compound = 'bench'`,
		`INSERT INTO floor_supplier.items SELECT * FROM supplier.items WHERE compound = 'bench'`,
		`INSERT INTO floor_orders.households SELECT * FROM orders.households WHERE compound = 'bench'`,
		`ANALYZE floor_supplier.suppliers, floor_supplier.supplier_credentials, floor_supplier.items, floor_orders.households`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if f.supplier, err = pgkit.Open(ctx, url, floorSupplier); err != nil {
		return nil, err
	}
	if f.orders, err = pgkit.Open(ctx, url, floorOrders); err != nil {
		f.supplier.Close()
		return nil, err
	}
	return f, nil
}

func (f *floor) close() {
	f.supplier.Close()
	f.orders.Close()
}

// copySchema creates schema to with the tables of schema from. LIKE ... INCLUDING ALL brings
// columns, defaults, CHECKs and indexes; foreign keys are re-created from their definitions, and
// serial columns get sequences of their own.
func copySchema(ctx context.Context, conn *pgx.Conn, from, to string) (nTables, nForeignKeys int, err error) {
	exec := func(q string) error {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	}
	fail := func(err error) (int, int, error) { return 0, 0, err }
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, from)
	if err != nil {
		return fail(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail(err)
	}
	if err := exec(`CREATE SCHEMA ` + pgx.Identifier{to}.Sanitize()); err != nil {
		return fail(err)
	}
	for _, t := range tables {
		if err := exec(fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING ALL)`, pgx.Identifier{to, t}.Sanitize(), pgx.Identifier{from, t}.Sanitize())); err != nil {
			return fail(err)
		}
	}
	rows, err = conn.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = $1 AND column_default LIKE 'nextval(%'`, to)
	if err != nil {
		return fail(err)
	}
	serials, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Table, Column string }])
	if err != nil {
		return fail(err)
	}
	for _, s := range serials {
		seq := pgx.Identifier{to, s.Table + "_" + s.Column + "_seq"}.Sanitize()
		if err := exec(fmt.Sprintf(`CREATE SEQUENCE %s OWNED BY %s.%s`, seq, pgx.Identifier{to, s.Table}.Sanitize(), pgx.Identifier{s.Column}.Sanitize())); err != nil {
			return fail(err)
		}
		if err := exec(fmt.Sprintf(`ALTER TABLE %s ALTER COLUMN %s SET DEFAULT nextval('%s')`, pgx.Identifier{to, s.Table}.Sanitize(),
			pgx.Identifier{s.Column}.Sanitize(), strings.ReplaceAll(seq, "'", "''"))); err != nil {
			return fail(err)
		}
	}
	// With search_path at the source schema its own tables print unqualified, so the definitions
	// apply unchanged to the copy.
	if err := exec(`SET search_path = ` + pgx.Identifier{from}.Sanitize()); err != nil {
		return fail(err)
	}
	rows, err = conn.Query(ctx, `SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE contype = 'f' AND connamespace = $1::regnamespace ORDER BY conname`, from)
	if err != nil {
		return fail(err)
	}
	fks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Table, Name, Def string }])
	if err != nil {
		return fail(err)
	}
	if err := exec(`SET search_path = ` + pgx.Identifier{to}.Sanitize()); err != nil {
		return fail(err)
	}
	for _, fk := range fks {
		if err := exec(fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s %s`, fk.Table, pgx.Identifier{fk.Name}.Sanitize(), fk.Def)); err != nil {
			return fail(err)
		}
	}
	if err := exec(`RESET search_path`); err != nil {
		return fail(err)
	}
	return len(tables), len(fks), nil
}

func (f *floor) next() int64 { return f.seq.Add(1) }

// verify checks that every order counted as placed is stored, on both sides, with its parcels
// and events, so the figures are of work that was done.
func verify(ctx context.Context, url string, real *grpcSystem, f *floor) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var orders, parcels, floorOrders, floorParcels, floorOutbox, floorSupplierParcels int64
	if err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM orders.orders WHERE compound = 'bench'),
			(SELECT count(*) FROM supplier.parcels WHERE compound = 'bench' AND state = 'placed'),
			(SELECT count(*) FROM floor_orders.orders),
			(SELECT count(*) FROM floor_orders.parcels),
			(SELECT count(*) FROM floor_orders.outbox),
			(SELECT count(*) FROM floor_supplier.parcels)`).
		Scan(&orders, &parcels, &floorOrders, &floorParcels, &floorOutbox, &floorSupplierParcels); err != nil {
		return "", err
	}
	g, fl := real.placed.Load(), f.placed.Load()
	if orders != g || parcels != 2*g || floorOrders != fl || floorParcels != 2*fl || floorSupplierParcels != 2*fl || floorOutbox != 3*fl {
		return "", fmt.Errorf("stored work differs from what was counted: gRPC %d orders placed, %d stored with %d supplier parcels; "+
			"floor %d placed, %d orders, %d parcels, %d supplier parcels, %d outbox rows stored",
			g, orders, parcels, fl, floorOrders, floorParcels, floorSupplierParcels, floorOutbox)
	}
	return fmt.Sprintf("stored: %d orders (%d supplier parcels) through gRPC, %d orders (%d supplier parcels, %d outbox rows) on the floor",
		orders, parcels, floorOrders, floorSupplierParcels, floorOutbox), nil
}

// pricedLine is a reserved line as the supplier stores and returns it.
type pricedLine struct {
	item                    benchItem
	name, unit              string
	quantity, price, amount int64
}

type floorParcel struct {
	id, supplier string
	lines        []pricedLine
	total        int64
	weight       int64
}

// place does order n's database work as PlaceOrder does it: claim the request, reserve at each
// supplier in supplier id order, then store the order with its parcels and events.
func (f *floor) place(ctx context.Context, n int64) error {
	h, lines := f.w.basket(n)
	requestID := fmt.Sprintf("f-%d", n)
	orderID := uuid.NewSHA1(namespace, []byte(h.id+"/"+requestID)).String()
	hash := digest("place", h.id, fmt.Sprint(lines), "APP", "RESIDENT", h.id)
	now := time.Now().UTC().Truncate(time.Microsecond)

	// order: ClaimRequest, one statement.
	if _, err := f.orders.Exec(ctx, `INSERT INTO requests (kind, scope, request_id, request_hash, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, "place", h.id, requestID, hash, now); err != nil {
		return fmt.Errorf("claim: %w", err)
	}

	// The suppliers reserve at the same time, as the order service has them do.
	groups := map[string][]line{}
	for _, l := range lines {
		groups[l.item.supplier] = append(groups[l.item.supplier], l)
	}
	sups := slices.Sorted(maps.Keys(groups))
	parcels := make([]floorParcel, len(sups))
	g, gctx := errgroup.WithContext(ctx)
	for i, sup := range sups {
		g.Go(func() error {
			p, err := f.reserve(gctx, orderID, sup, h, groups[sup], now)
			if err != nil {
				return fmt.Errorf("reserve at %s: %w", sup, err)
			}
			parcels[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := f.createOrder(ctx, orderID, requestID, hash, h, parcels, now); err != nil {
		return fmt.Errorf("create order: %w", err)
	}
	f.placed.Add(1)
	return nil
}

const supplierParcelColumns = `parcel_id::text, order_id::text, supplier_id, compound, household_id, address_compound,
	address_building, address_unit, address_floor, address_room, state, total_fen, reason, service_day,
	fingerprint, created_at, updated_at, round_id, confirm_by, campaign_id`

const itemColumns = `item_id, supplier_id, compound, name, unit, weighed, reference_price_fen, current_price_fen,
	stock, ration_per_day, bundle, bundle_contents, unit_weight_grams, category`

type lockedItem struct {
	id, supplier, compound, name, unit, contents, category string
	weighed, bundle                                        bool
	ref, price, stock, ration, unitGrams                   int64
}

// reserve is the supplier's Reserve transaction: with the BEGIN, hold the supplier with its
// credentials, lock the items in id order and then look for the parcel (the ration query runs
// only for rationed items, and the lines are read only for a parcel found; the bench has neither); then
// price the lines and, in one batch with the COMMIT, insert the parcel and its lines, write the
// stock back and record the transition.
func (f *floor) reserve(ctx context.Context, orderID, sup string, h household, lines []line, now time.Time) (floorParcel, error) {
	parcelID := uuid.NewSHA1(namespace, []byte(orderID+"/"+sup)).String()
	fingerprint := digest(parcelID, orderID, sup, h.id, compound, h.building, h.unit, h.room, fmt.Sprint(h.floor, lines))
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.item.id
	}
	var (
		out       floorParcel
		found     bool
		scompound string
		items     []*lockedItem
	)
	err := pgkit.BatchTx(ctx, f.supplier, func(b *pgx.Batch) {
		// The supplier held FOR SHARE against a concurrent suspension, with its credentials.
		b.Queue(`SELECT supplier_id, compound, name, kind, suspended, suspension_reason,
				(SELECT coalesce(json_agg(json_build_object('kind', c.kind, 'number', c.number, 'expires_on', c.expires_on::text)
					ORDER BY c.kind), '[]') FROM supplier_credentials c WHERE c.supplier_id = suppliers.supplier_id)
			FROM suppliers WHERE supplier_id = $1 FOR SHARE`, sup).QueryRow(func(row pgx.Row) error {
			var sid, sname, skind, reason string
			var suspended bool
			var creds []map[string]string
			return row.Scan(&sid, &scompound, &sname, &skind, &suspended, &reason, &creds)
		})
		b.Queue(`SELECT `+itemColumns+` FROM items WHERE item_id = ANY($1) ORDER BY item_id FOR UPDATE`, ids).Query(func(rows pgx.Rows) (err error) {
			items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*lockedItem, error) {
				it := &lockedItem{}
				err := r.Scan(&it.id, &it.supplier, &it.compound, &it.name, &it.unit, &it.weighed, &it.ref, &it.price,
					&it.stock, &it.ration, &it.bundle, &it.contents, &it.unitGrams, &it.category)
				return it, err
			})
			return err
		})
		b.Queue(`SELECT `+supplierParcelColumns+` FROM parcels WHERE parcel_id = $1`, parcelID).Query(func(rows pgx.Rows) error {
			found = rows.Next()
			return nil
		})
	}, func(_ pgx.Tx, b *pgx.Batch) error {
		out = floorParcel{id: parcelID, supplier: sup}
		if found {
			return fmt.Errorf("parcel %s exists", parcelID)
		}
		byID := map[string]*lockedItem{}
		for _, it := range items {
			byID[it.id] = it
		}
		for _, l := range lines {
			it := byID[l.item.id]
			if it == nil || it.stock < l.quantity {
				return errors.New("out of stock: " + l.item.id)
			}
			amount := it.price * l.quantity
			if it.weighed {
				amount = (it.price*l.quantity + 500) / 1000
			}
			it.stock -= l.quantity
			out.lines = append(out.lines, pricedLine{item: l.item, name: it.name, unit: it.unit, quantity: l.quantity, price: it.price, amount: amount})
			out.total += amount
			if it.weighed {
				out.weight += l.quantity
			} else {
				out.weight += l.quantity * it.unitGrams
			}
		}
		insert := `INSERT INTO parcels (parcel_id, order_id, supplier_id, compound, household_id,
				address_compound, address_building, address_unit, address_floor, address_room, state, total_fen, reason,
				service_day, fingerprint, created_at, updated_at, round_id, confirm_by, campaign_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`
		args := []any{parcelID, orderID, sup, scompound, h.id, compound, h.building, h.unit, h.floor, h.room, "placed", out.total, "",
			day, fingerprint, now, now, compound + "-" + day.Format("2006-01-02") + "-pm", now.Add(time.Hour), ""}
		// Every write with the COMMIT, as the supplier service sends them.
		b.Queue(insert, args...)
		for i, l := range out.lines {
			b.Queue(`INSERT INTO parcel_lines (parcel_id, line_no, item_id, name, unit, weighed, quantity, unit_price_fen,
					amount_fen, unit_weight_grams, confirmed_quantity, confirmed_amount_fen)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				parcelID, i, l.item.id, l.name, l.unit, l.item.weighed, l.quantity, l.price, l.amount, l.item.unitGrams, 0, 0)
		}
		for _, it := range items {
			b.Queue(`UPDATE items SET stock = $2 WHERE item_id = $1`, it.id, it.stock)
		}
		b.Queue(`INSERT INTO parcel_transitions (parcel_id, from_state, to_state, actor_role, actor_id, reason, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, parcelID, nil, "placed", "system", "order", "reserved for order "+orderID, now)
		return nil
	})
	return out, err
}

// createOrder is the order service's CreateOrder transaction: the request's attempt (locked), the
// order, then in one batch with the COMMIT each parcel with its lines and first transition,
// order.placed and one parcel.placed per parcel in the outbox.
func (f *floor) createOrder(ctx context.Context, orderID, requestID string, hash []byte, h household, parcels []floorParcel, now time.Time) error {
	actor := &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: h.id}
	addr := &typesv1.Address{Compound: compound, Building: h.building, Unit: h.unit, Floor: h.floor, Room: h.room}
	var attempt int
	var created bool
	// With the BEGIN: the request's attempt, held shared so that a failing attempt cannot end under
	// the order, and the order row.
	return pgkit.BatchTx(ctx, f.orders, func(b *pgx.Batch) {
		b.Queue(`SELECT attempt FROM requests WHERE kind = $1 AND scope = $2 AND request_id = $3 FOR SHARE`,
			"place", h.id, requestID).QueryRow(func(row pgx.Row) error { return row.Scan(&attempt) })
		b.Queue(`INSERT INTO orders (order_id, household_id, compound, request_id, request_hash, channel,
				placed_by_role, placed_by_id, proxy, placed_at, campaign_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, '')::uuid) ON CONFLICT (order_id) DO NOTHING`,
			orderID, h.id, compound, requestID, hash, "APP", "RESIDENT", h.id, false, now, "").Exec(func(tag pgconn.CommandTag) error {
			created = tag.RowsAffected() == 1
			return nil
		})
	}, func(_ pgx.Tx, b *pgx.Batch) error {
		if attempt != 0 || !created {
			return fmt.Errorf("order %s: attempt %d, created %v", orderID, attempt, created)
		}
		// Everything after the order row with the COMMIT, as the order service sends it; the
		// order is answered from memory, not read back.
		placed := events.New(compound, actor, orderID, now)
		op := &eventsv1.OrderPlaced{HouseholdId: h.id, Address: addr, Channel: "app"}
		evs := []*eventsv1.Event{placed}
		for _, p := range parcels {
			b.Queue(`INSERT INTO parcels (parcel_id, order_id, supplier_id, household_id, compound, state,
					total_fen, weight_grams, reason, updated_at, building, unit, floor, room, priority, contactless)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
				p.id, orderID, p.supplier, h.id, compound, "PLACED", p.total, p.weight, "", now,
				h.building, h.unit, h.floor, h.room, false, false)
			ep := &eventsv1.EventParcel{ParcelId: p.id, SupplierId: p.supplier, TotalFen: p.total}
			for i, l := range p.lines {
				b.Queue(`INSERT INTO parcel_lines (parcel_id, line_no, item_id, name, unit, weighed, quantity,
						unit_price_fen, amount_fen, confirmed_quantity, confirmed_amount_fen, unit_weight_grams)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
					p.id, i, l.item.id, l.name, l.unit, l.item.weighed, l.quantity, l.price, l.amount, 0, 0, l.item.unitGrams)
				ep.Lines = append(ep.Lines, &eventsv1.EventLine{ItemId: l.item.id, Name: l.name, Quantity: l.quantity, AmountFen: l.amount})
			}
			b.Queue(`INSERT INTO parcel_transitions (parcel_id, from_state, to_state, actor_role, actor_id, at,
					reason, event_id, round_id, route_id, courier_id, delivery_method)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				p.id, nil, "PLACED", "RESIDENT", h.id, now, "", nil, "", "", "", "")
			op.Parcels = append(op.Parcels, ep)
			op.TotalFen += p.total
			ev := events.New(compound, actor, orderID, now)
			ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
				ParcelId: p.id, State: typesv1.ParcelState_PARCEL_STATE_PLACED, HouseholdId: h.id}}
			evs = append(evs, ev)
		}
		placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: op}
		return outbox.Queue(b, evs...)
	})
}

func digest(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}
