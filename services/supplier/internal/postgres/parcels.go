package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/supplier/internal/protomap"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const parcelColumns = `parcel_id::text, order_id::text, supplier_id, compound, household_id, address_compound,
	address_building, address_unit, address_floor, address_room, state, total_fen, reason, service_day,
	fingerprint, created_at, updated_at, round_id, confirm_by, campaign_id`

func scanParcel(row pgx.Row) (supply.Parcel, error) {
	var p supply.Parcel
	var confirmBy *time.Time
	err := row.Scan(&p.ID, &p.OrderID, &p.SupplierID, &p.Compound, &p.HouseholdID, &p.Address.Compound,
		&p.Address.Building, &p.Address.Unit, &p.Address.Floor, &p.Address.Room, &p.State, &p.TotalFen, &p.Reason,
		&p.Day, &p.Fingerprint, &p.CreatedAt, &p.UpdatedAt, &p.RoundID, &confirmBy, &p.CampaignID)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if confirmBy != nil {
		p.ConfirmBy = confirmBy.UTC()
	}
	return p, err
}

const lineColumns = `parcel_id::text, item_id, name, unit, weighed, quantity, unit_price_fen, amount_fen,
	unit_weight_grams, confirmed_quantity, confirmed_amount_fen`

// loadLines fills the lines of parcels, in line order.
func loadLines(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, parcels []supply.Parcel) error {
	if len(parcels) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, linesQuery, parcelIDs(parcels))
	if err != nil {
		return fmt.Errorf("load parcel lines: %w", err)
	}
	return collectLines(rows, parcels)
}

// linesQuery reads the lines of the parcels whose ids are $1, in line order.
const linesQuery = `SELECT ` + lineColumns + ` FROM parcel_lines WHERE parcel_id = ANY($1::uuid[]) ORDER BY parcel_id, line_no`

func parcelIDs(parcels []supply.Parcel) []string {
	ids := make([]string, len(parcels))
	for i, p := range parcels {
		ids[i] = p.ID
	}
	return ids
}

// collectLines appends the lines rows holds (linesQuery's) to their parcels.
func collectLines(rows pgx.Rows, parcels []supply.Parcel) error {
	index := make(map[string]int, len(parcels))
	for i, p := range parcels {
		index[p.ID] = i
	}
	var parcelID string
	var l supply.Line
	_, err := pgx.ForEachRow(rows, []any{&parcelID, &l.ItemID, &l.Name, &l.Unit, &l.Weighed, &l.Quantity,
		&l.UnitPriceFen, &l.AmountFen, &l.UnitWeightGrams, &l.ConfirmedQuantity, &l.ConfirmedAmountFen}, func() error {
		i, ok := index[parcelID]
		if !ok {
			return fmt.Errorf("line of parcel %s, which was not asked for", parcelID)
		}
		parcels[i].Lines = append(parcels[i].Lines, l)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load parcel lines: %w", err)
	}
	return nil
}

// getParcel reads a parcel with its lines, locking its row when forUpdate.
func getParcel(ctx context.Context, tx pgx.Tx, id string, forUpdate bool) (supply.Parcel, error) {
	q := `SELECT ` + parcelColumns + ` FROM parcels WHERE parcel_id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	p, err := scanParcel(tx.QueryRow(ctx, q, id))
	if err != nil {
		return p, notFound(err, "parcel "+id)
	}
	ps := []supply.Parcel{p}
	if err := loadLines(ctx, tx, ps); err != nil {
		return p, err
	}
	return ps[0], nil
}

// Reserve implements supply.Repository. Its reads (the supplier, the items, locked, and the parcel
// if it exists) go with the BEGIN in one round trip, its writes with the COMMIT in a second; a
// basket with rationed items reads the household's use of them in between, and a retry reads its
// parcel again with its lines.
func (r *Repo) Reserve(ctx context.Context, res supply.Reservation, day time.Time,
	decide func(supply.Supplier, map[string]*supply.Item, map[string]int64) (supply.Parcel, []supply.Transition, error)) (supply.Parcel, error) {
	ids := make([]string, len(res.Lines))
	for i, l := range res.Lines {
		ids[i] = l.ItemID
	}
	var (
		out      supply.Parcel
		existing []supply.Parcel
		sup      supply.Supplier
		found    bool
		locked   lockedItems
	)
	// A retry finds its parcel with these reads and still takes the locks; retries are rare, and
	// the locks taken before the parcel is known keep a new reservation to two round trips. The
	// parcel is read after the locks, in a statement of its own and so a snapshot of its own: a
	// copy of this reservation that held them (concurrent retries of one order) has committed by
	// then, so this one answers with that parcel, where a read before the wait would have found
	// none and judged the stock and the ration again with the copy's use already counted. Only a
	// retry reads lines: a new parcel has none, and reading them anyway cost a new reservation a
	// statement (a scan of every line, with the plan PostgreSQL caches before it has statistics).
	reads := func(b *pgx.Batch) {
		queueGetSupplier(b, res.SupplierID, forShare, &sup, &found)
		queueLockItems(b, ids, &locked)
		b.Queue(`SELECT `+parcelColumns+` FROM parcels WHERE parcel_id = $1`, res.ParcelID).Query(func(rows pgx.Rows) (err error) {
			existing, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (supply.Parcel, error) { return scanParcel(r) })
			return err
		})
	}
	reserve := func(tx pgx.Tx, commit *pgx.Batch) error {
		if len(existing) == 1 {
			if !bytes.Equal(existing[0].Fingerprint, res.Fingerprint()) {
				return fmt.Errorf("parcel %s was reserved with a different request: %w", res.ParcelID, supply.ErrAlreadyExists)
			}
			p, err := getParcel(ctx, tx, res.ParcelID, false)
			if err != nil {
				return err
			}
			out = p
			return nil
		}
		if !found {
			return notFound(pgx.ErrNoRows, "supplier "+res.SupplierID)
		}
		// Read after the locks: a concurrent reservation of the same item by the same household
		// has committed by now, so its lines count. A campaign's pack is not rationed.
		used := map[string]int64{}
		if res.CampaignID == "" {
			if err := rationUsed(ctx, tx, res.HouseholdID, day, locked, used); err != nil {
				return err
			}
		}
		p, ts, err := decide(sup, locked.items, used)
		if err != nil {
			return err
		}
		// Every write of the reservation goes with the COMMIT: one round trip while the items are
		// locked, rather than one per statement and one more to commit, which is what other
		// orders of the item wait on.
		queueParcel(commit, p)
		locked.queueSave(commit)
		for _, t := range ts {
			queueTransition(commit, p.ID, t)
			// A campaign's pack is confirmed as it is reserved, announced as a confirmation
			// always is (the parcel's final lines are the confirmed ones, which the event carries).
			if t.Announce {
				if err := outbox.Queue(commit, protomap.ParcelEvent(p, t)); err != nil {
					return fmt.Errorf("announce parcel %s %s: %w", p.ID, t.To, err)
				}
			}
		}
		out = p
		return nil
	}
	err := pgkit.BatchTx(ctx, r.Pool, reads, reserve)
	if pgkit.IsUniqueViolation(err) {
		// The same parcel reserved concurrently and committed first: this attempt now finds it
		// and answers as a retry would.
		err = pgkit.BatchTx(ctx, r.Pool, reads, reserve)
	}
	// The writes went with the COMMIT, so PostgreSQL's failure of one of them arrives here
	// unnamed; the domain's refusals (stock, ration, suspension) already say what they refuse.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		err = fmt.Errorf("reserve parcel %s: %w", res.ParcelID, err)
	}
	return out, err
}

// rationUsed adds to used what the household's live parcels of the day hold of each rationed
// item among locked: the reserved quantity until confirmed, the confirmed one after. Campaigns'
// free packs do not count: a ration limits what a household buys, and a gift from the community
// is not bought.
func rationUsed(ctx context.Context, tx pgx.Tx, household string, day time.Time, locked lockedItems, used map[string]int64) error {
	var rationed []string
	for id, it := range locked.items {
		if it.RationPerDay > 0 {
			rationed = append(rationed, id)
		}
	}
	if len(rationed) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT l.item_id,
			sum(CASE WHEN p.state = 'placed' THEN l.quantity ELSE l.confirmed_quantity END)::bigint
		FROM parcel_lines l JOIN parcels p ON p.parcel_id = l.parcel_id
		WHERE p.household_id = $1 AND p.service_day = $2 AND l.item_id = ANY($3)
			AND p.state NOT IN ('rejected', 'cancelled', 'expired') AND p.campaign_id = ''
		GROUP BY l.item_id`, household, day, rationed)
	if err != nil {
		return fmt.Errorf("ration use: %w", err)
	}
	var id string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { used[id] = n; return nil }); err != nil {
		return fmt.Errorf("ration use: %w", err)
	}
	return nil
}

// queueParcel adds the inserts of a new parcel and its lines to b.
func queueParcel(b *pgx.Batch, p supply.Parcel) {
	b.Queue(`INSERT INTO parcels (parcel_id, order_id, supplier_id, compound, household_id,
			address_compound, address_building, address_unit, address_floor, address_room, state, total_fen, reason,
			service_day, fingerprint, created_at, updated_at, round_id, confirm_by, campaign_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		p.ID, p.OrderID, p.SupplierID, p.Compound, p.HouseholdID, p.Address.Compound, p.Address.Building,
		p.Address.Unit, p.Address.Floor, p.Address.Room, string(p.State), p.TotalFen, p.Reason, p.Day, p.Fingerprint,
		p.CreatedAt, p.UpdatedAt, p.RoundID, nullTime(p.ConfirmBy), p.CampaignID)
	for i, l := range p.Lines {
		// Confirmed quantities are set from the start for a campaign's pack, confirmed as reserved.
		b.Queue(`INSERT INTO parcel_lines (parcel_id, line_no, item_id, name, unit, weighed, quantity, unit_price_fen,
				amount_fen, unit_weight_grams, confirmed_quantity, confirmed_amount_fen)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			p.ID, i, l.ItemID, l.Name, l.Unit, l.Weighed, l.Quantity, l.UnitPriceFen, l.AmountFen, l.UnitWeightGrams,
			l.ConfirmedQuantity, l.ConfirmedAmountFen)
	}
}

func insertTransition(ctx context.Context, tx pgx.Tx, parcelID string, t supply.Transition) error {
	b := &pgx.Batch{}
	queueTransition(b, parcelID, t)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record transition of parcel %s: %w", parcelID, err)
	}
	return nil
}

// queueTransition adds the record of a parcel's transition to b.
func queueTransition(b *pgx.Batch, parcelID string, t supply.Transition) {
	var from *string
	if t.From != "" {
		s := string(t.From)
		from = &s
	}
	b.Queue(`INSERT INTO parcel_transitions (parcel_id, from_state, to_state, actor_role, actor_id, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, parcelID, from, string(t.To), string(t.Actor.Role), t.Actor.ID, t.Reason, t.At)
}

// ChangeParcel implements supply.Repository. The parcel row is locked before its items, and
// Reserve never locks a parcel, so the two lock orders cannot form a cycle.
func (r *Repo) ChangeParcel(ctx context.Context, key *supply.IdempotencyKey, ref supply.ParcelRef, withItems bool, change supply.ParcelChange) (supply.Parcel, error) {
	var out supply.Parcel
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Parcel, error) {
			p, err := getParcel(ctx, tx, ref.ID, true)
			if err != nil {
				return p, err
			}
			if !ref.Matches(p) {
				// Worded as for an unknown parcel: the caller learns nothing of parcels not its own.
				return supply.Parcel{}, supply.ParcelNotFound(ref.ID)
			}
			var locked lockedItems
			if withItems {
				ids := make([]string, len(p.Lines))
				for i, l := range p.Lines {
					ids[i] = l.ItemID
				}
				if locked, err = lockItems(ctx, tx, ids); err != nil {
					return p, err
				}
			}
			t, err := change(&p, locked.items)
			if err != nil || t.To == "" {
				return p, err
			}
			return p, saveChange(ctx, tx, p, t, locked)
		})
		return err
	})
	return out, err
}

func saveChange(ctx context.Context, tx pgx.Tx, p supply.Parcel, t supply.Transition, locked lockedItems) error {
	if _, err := tx.Exec(ctx, `UPDATE parcels SET state = $2, total_fen = $3, reason = $4, updated_at = $5
		WHERE parcel_id = $1`, p.ID, string(p.State), p.TotalFen, p.Reason, p.UpdatedAt); err != nil {
		return fmt.Errorf("update parcel %s: %w", p.ID, err)
	}
	if t.To == supply.StateConfirmed {
		b := &pgx.Batch{}
		for _, l := range p.Lines {
			b.Queue(`UPDATE parcel_lines SET confirmed_quantity = $3, confirmed_amount_fen = $4
				WHERE parcel_id = $1 AND item_id = $2`, p.ID, l.ItemID, l.ConfirmedQuantity, l.ConfirmedAmountFen)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("confirm lines of parcel %s: %w", p.ID, err)
		}
	}
	if err := locked.save(ctx, tx); err != nil {
		return err
	}
	if err := insertTransition(ctx, tx, p.ID, t); err != nil {
		return err
	}
	if t.Announce {
		if err := outbox.Add(ctx, tx, protomap.ParcelEvent(p, t)); err != nil {
			return fmt.Errorf("announce parcel %s %s: %w", p.ID, t.To, err)
		}
	}
	return nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// DueForExpiry implements supply.Repository. It locks nothing: each parcel is locked and
// re-checked when it is expired.
func (r *Repo) DueForExpiry(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := r.Pool.Query(ctx, `SELECT parcel_id::text FROM parcels WHERE state = 'placed' AND confirm_by <= $1
		ORDER BY confirm_by, parcel_id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("due parcels: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("due parcels: %w", err)
	}
	return ids, nil
}

// ListParcels implements supply.Repository. Only the filters set become conditions, so each
// query can use the index that fits it (parcels_campaign is partial).
func (r *Repo) ListParcels(ctx context.Context, supplierID string, f supply.ParcelFilter) ([]supply.Parcel, error) {
	tx, err := r.Pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("list parcels: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := getSupplier(ctx, tx, supplierID, noLock); err != nil {
		return nil, err
	}
	q, args := `SELECT `+parcelColumns+` FROM parcels WHERE supplier_id = $1`, []any{supplierID}
	where := func(cond string, arg any) {
		args = append(args, arg)
		q += fmt.Sprintf(cond, len(args))
	}
	if f.State != "" {
		where(` AND state = $%d`, string(f.State))
	}
	if f.RoundID != "" {
		where(` AND round_id = $%d`, f.RoundID)
	}
	if f.CampaignID != "" {
		where(` AND campaign_id = $%d AND campaign_id <> ''`, f.CampaignID)
	}
	after, order := `>`, ` ORDER BY created_at, parcel_id`
	if f.NewestFirst {
		after, order = `<`, ` ORDER BY created_at DESC, parcel_id DESC`
	}
	if f.After != "" {
		// A parcel id that is not the supplier's compares with NULL: an empty page.
		where(` AND (created_at, parcel_id) `+after+` (SELECT created_at, parcel_id FROM parcels WHERE parcel_id = $%d AND supplier_id = $1)`, f.After)
	}
	q += order
	if f.Limit > 0 {
		where(` LIMIT $%d`, f.Limit)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list parcels: %w", err)
	}
	parcels, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (supply.Parcel, error) { return scanParcel(row) })
	if err != nil {
		return nil, fmt.Errorf("list parcels: %w", err)
	}
	if err := loadLines(ctx, tx, parcels); err != nil {
		return nil, err
	}
	return parcels, nil
}
