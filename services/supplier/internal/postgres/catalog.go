package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"github.com/jackc/pgx/v5"
)

// CreateSupplier implements supply.Repository.
func (r *Repo) CreateSupplier(ctx context.Context, key *supply.IdempotencyKey, s supply.Supplier) (supply.Supplier, error) {
	var out supply.Supplier
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Supplier, error) {
			tag, err := tx.Exec(ctx, `INSERT INTO suppliers (supplier_id, compound, name, kind) VALUES ($1, $2, $3, $4)
				ON CONFLICT (supplier_id) DO NOTHING`, s.ID, s.Compound, s.Name, string(s.Kind))
			if err != nil {
				return supply.Supplier{}, fmt.Errorf("insert supplier %s: %w", s.ID, err)
			}
			if tag.RowsAffected() == 0 {
				return supply.Supplier{}, fmt.Errorf("supplier %s: %w", s.ID, supply.ErrAlreadyExists)
			}
			return s, nil
		})
		return err
	})
	return out, err
}

// ListSuppliers implements supply.Repository.
func (r *Repo) ListSuppliers(ctx context.Context, compound string) ([]supply.Supplier, error) {
	var out []supply.Supplier
	err := pgkit.TxWith(ctx, r.Pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+supplierColumns+` FROM suppliers WHERE compound = $1 ORDER BY supplier_id`, compound)
		if err != nil {
			return fmt.Errorf("list suppliers: %w", err)
		}
		if out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (supply.Supplier, error) { return scanSupplier(row) }); err != nil {
			return fmt.Errorf("list suppliers: %w", err)
		}
		return loadCredentials(ctx, tx, out)
	})
	return out, err
}

// GetSupplier implements supply.Repository.
func (r *Repo) GetSupplier(ctx context.Context, id string) (supply.Supplier, error) {
	var out supply.Supplier
	err := pgkit.TxWith(ctx, r.Pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = getSupplier(ctx, tx, id, noLock)
		return err
	})
	return out, err
}

const supplierColumns = `supplier_id, compound, name, kind, suspended, suspension_reason`

func scanSupplier(row pgx.Row) (supply.Supplier, error) {
	var s supply.Supplier
	err := row.Scan(&s.ID, &s.Compound, &s.Name, &s.Kind, &s.Suspended, &s.SuspensionReason)
	return s, err
}

// loadCredentials fills the credentials of suppliers, in kind order.
func loadCredentials(ctx context.Context, tx pgx.Tx, suppliers []supply.Supplier) error {
	if len(suppliers) == 0 {
		return nil
	}
	index := make(map[string]int, len(suppliers))
	ids := make([]string, len(suppliers))
	for i, s := range suppliers {
		index[s.ID], ids[i] = i, s.ID
	}
	rows, err := tx.Query(ctx, `SELECT supplier_id, kind, number, expires_on::text FROM supplier_credentials
		WHERE supplier_id = ANY($1) ORDER BY supplier_id, kind`, ids)
	if err != nil {
		return fmt.Errorf("load credentials: %w", err)
	}
	var id string
	var c supply.Credential
	_, err = pgx.ForEachRow(rows, []any{&id, &c.Kind, &c.Number, &c.ExpiresOn}, func() error {
		s := &suppliers[index[id]]
		s.Credentials = append(s.Credentials, c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load credentials: %w", err)
	}
	return nil
}

// Supplier row locks: a reservation holds its supplier FOR SHARE, so reservations run side by
// side while a suspension or credential change (FOR UPDATE) waits for those in flight, and
// reservations after it see it.
const (
	noLock    = ""
	forShare  = " FOR SHARE"
	forUpdate = " FOR UPDATE"
)

// getSupplier reads a supplier with its credentials (in kind order) in one statement.
func getSupplier(ctx context.Context, tx pgx.Tx, id, lock string) (supply.Supplier, error) {
	var (
		s     supply.Supplier
		found bool
	)
	b := &pgx.Batch{}
	queueGetSupplier(b, id, lock, &s, &found)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return s, fmt.Errorf("supplier %s: %w", id, err)
	}
	if !found {
		return s, notFound(pgx.ErrNoRows, "supplier "+id)
	}
	return s, nil
}

// queueGetSupplier adds to b the statement that reads supplier id, with its credentials, into s,
// and whether there is one into found. Every reservation starts with it, so it is one statement
// rather than two, and goes in the reservation's first round trip. (A miss is not the batch's
// error: a failed batch would make pgx forget its prepared statements.)
func queueGetSupplier(b *pgx.Batch, id, lock string, s *supply.Supplier, found *bool) {
	b.Queue(`SELECT `+supplierColumns+`,
			(SELECT coalesce(json_agg(json_build_object('kind', c.kind, 'number', c.number, 'expires_on', c.expires_on::text)
				ORDER BY c.kind), '[]') FROM supplier_credentials c WHERE c.supplier_id = suppliers.supplier_id)
		FROM suppliers WHERE supplier_id = $1`+lock, id).Query(func(rows pgx.Rows) error {
		var creds []struct {
			Kind      supply.CredentialKind `json:"kind"`
			Number    string                `json:"number"`
			ExpiresOn string                `json:"expires_on"`
		}
		*s, *found = supply.Supplier{}, false
		for rows.Next() {
			if err := rows.Scan(&s.ID, &s.Compound, &s.Name, &s.Kind, &s.Suspended, &s.SuspensionReason, &creds); err != nil {
				return fmt.Errorf("read supplier %s: %w", id, err)
			}
			*found = true
		}
		for _, c := range creds {
			s.Credentials = append(s.Credentials, supply.Credential{Kind: c.Kind, Number: c.Number, ExpiresOn: c.ExpiresOn})
		}
		return rows.Err()
	})
}

// UpdateCredentials implements supply.Repository.
func (r *Repo) UpdateCredentials(ctx context.Context, key *supply.IdempotencyKey, u supply.CredentialsUpdate) (supply.Supplier, error) {
	var out supply.Supplier
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Supplier, error) {
			if _, err := getSupplier(ctx, tx, u.SupplierID, forUpdate); err != nil {
				return supply.Supplier{}, err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM supplier_credentials WHERE supplier_id = $1`, u.SupplierID); err != nil {
				return supply.Supplier{}, fmt.Errorf("replace credentials of %s: %w", u.SupplierID, err)
			}
			b := &pgx.Batch{}
			for _, c := range u.Credentials {
				b.Queue(`INSERT INTO supplier_credentials (supplier_id, kind, number, expires_on) VALUES ($1, $2, $3, $4::date)`,
					u.SupplierID, string(c.Kind), c.Number, c.ExpiresOn)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return supply.Supplier{}, fmt.Errorf("replace credentials of %s: %w", u.SupplierID, err)
			}
			return getSupplier(ctx, tx, u.SupplierID, noLock)
		})
		return err
	})
	return out, err
}

// SetSuspended implements supply.Repository. A change that changes nothing (suspending again
// for the same reason, reinstating a supplier in good standing) records nothing.
func (r *Repo) SetSuspended(ctx context.Context, key *supply.IdempotencyKey, c supply.SuspensionChange, at time.Time) (supply.Supplier, error) {
	var out supply.Supplier
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Supplier, error) {
			s, err := getSupplier(ctx, tx, c.SupplierID, forUpdate)
			if err != nil {
				return s, err
			}
			reason := c.Reason
			if !c.Suspended {
				reason = "" // the reason stays in the history, not on a supplier in good standing
			}
			if s.Suspended == c.Suspended && s.SuspensionReason == reason {
				return s, nil
			}
			if _, err := tx.Exec(ctx, `UPDATE suppliers SET suspended = $2, suspension_reason = $3 WHERE supplier_id = $1`,
				c.SupplierID, c.Suspended, reason); err != nil {
				return s, fmt.Errorf("suspend %s: %w", c.SupplierID, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO supplier_suspensions (supplier_id, suspended, reason, actor_role, actor_id, at)
				VALUES ($1, $2, $3, $4, $5, $6)`, c.SupplierID, c.Suspended, c.Reason, string(c.Actor.Role), c.Actor.ID, at); err != nil {
				return s, fmt.Errorf("record suspension of %s: %w", c.SupplierID, err)
			}
			s.Suspended, s.SuspensionReason = c.Suspended, reason
			return s, nil
		})
		return err
	})
	return out, err
}

const itemColumns = `item_id, supplier_id, compound, name, unit, weighed, reference_price_fen, current_price_fen,
	stock, ration_per_day, bundle, bundle_contents, unit_weight_grams, category`

func scanItem(row pgx.CollectableRow) (supply.Item, error) {
	var it supply.Item
	err := row.Scan(&it.ID, &it.SupplierID, &it.Compound, &it.Name, &it.Unit, &it.Weighed, &it.ReferencePriceFen,
		&it.CurrentPriceFen, &it.Stock, &it.RationPerDay, &it.Bundle, &it.BundleContents, &it.UnitWeightGrams, &it.Category)
	return it, err
}

// UpsertItem implements supply.Repository. An item id is global (BatchGetItems takes bare ids),
// so an id already used by another supplier is refused rather than taken over. The update leaves
// stock out: the row lock it takes orders it with reservations and adjustments, and whatever
// stock they left is what the item keeps and what RETURNING answers.
func (r *Repo) UpsertItem(ctx context.Context, key *supply.IdempotencyKey, it supply.Item, mayRaiseReference bool) (supply.Item, error) {
	var out supply.Item
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Item, error) {
			sup, err := getSupplier(ctx, tx, it.SupplierID, noLock)
			if err != nil {
				return supply.Item{}, err
			}
			if !mayRaiseReference {
				// Locked, so a concurrent correction cannot slip between this check and the write.
				var reference int64
				err := tx.QueryRow(ctx, `SELECT reference_price_fen FROM items WHERE item_id = $1 AND supplier_id = $2 FOR UPDATE`,
					it.ID, it.SupplierID).Scan(&reference)
				switch {
				case errors.Is(err, pgx.ErrNoRows): // a new item (or another supplier's id, refused below)
				case err != nil:
					return supply.Item{}, fmt.Errorf("read item %s: %w", it.ID, err)
				case it.ReferencePriceFen > reference:
					return supply.Item{}, supply.Invalid("item.reference_price_fen", fmt.Sprintf(
						"must not exceed %d, the item's reference price: it is the pre-epidemic price, which only the system may raise", reference))
				}
			}
			it.Compound = sup.Compound
			rows, err := tx.Query(ctx, `INSERT INTO items (`+itemColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
				ON CONFLICT (item_id) DO UPDATE SET name = EXCLUDED.name, unit = EXCLUDED.unit,
					weighed = EXCLUDED.weighed, reference_price_fen = EXCLUDED.reference_price_fen,
					current_price_fen = EXCLUDED.current_price_fen,
					ration_per_day = EXCLUDED.ration_per_day, bundle = EXCLUDED.bundle,
					bundle_contents = EXCLUDED.bundle_contents, unit_weight_grams = EXCLUDED.unit_weight_grams,
					category = EXCLUDED.category, updated_at = now()
				WHERE items.supplier_id = EXCLUDED.supplier_id
				RETURNING `+itemColumns,
				it.ID, it.SupplierID, it.Compound, it.Name, it.Unit, it.Weighed, it.ReferencePriceFen, it.CurrentPriceFen,
				it.Stock, it.RationPerDay, it.Bundle, it.BundleContents, it.UnitWeightGrams, it.Category)
			if err != nil {
				return supply.Item{}, fmt.Errorf("upsert item %s: %w", it.ID, err)
			}
			stored, err := pgx.CollectExactlyOneRow(rows, scanItem)
			if errors.Is(err, pgx.ErrNoRows) {
				return supply.Item{}, fmt.Errorf("item id %s belongs to another supplier: %w", it.ID, supply.ErrAlreadyExists)
			}
			if err != nil {
				return supply.Item{}, fmt.Errorf("upsert item %s: %w", it.ID, err)
			}
			return stored, nil
		})
		return err
	})
	return out, err
}

// AdjustStock implements supply.Repository. The bounds are in the UPDATE's WHERE, so the row
// lock decides: a concurrent reservation or adjustment commits first and this one re-reads the
// stock it left (READ COMMITTED re-checks the condition on the new row version) instead of
// writing over it.
func (r *Repo) AdjustStock(ctx context.Context, key *supply.IdempotencyKey, a supply.StockAdjustment, at time.Time) (supply.Item, error) {
	var out supply.Item
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Item, error) {
			it, err := adjust(ctx, tx, a, at)
			if err != nil {
				return it, err
			}
			requestID := ""
			if key != nil {
				requestID = key.RequestID
			}
			if _, err := tx.Exec(ctx, `INSERT INTO stock_adjustments
				(item_id, supplier_id, delta, reason, stock_after, actor_role, actor_id, request_id, at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, a.ItemID, a.SupplierID, a.Delta, a.Reason, it.Stock,
				string(a.Actor.Role), a.Actor.ID, requestID, at); err != nil {
				return supply.Item{}, fmt.Errorf("record stock adjustment of %s: %w", a.ItemID, err)
			}
			return it, nil
		})
		return err
	})
	return out, err
}

// adjustAttempts bounds adjust's retries: each one means the stock crossed the bound between the
// UPDATE and the read that explains its refusal, twice in a row is already unlikely.
const adjustAttempts = 5

// adjust applies the adjustment within its bounds, or says why it cannot: no such supplier, no
// such item of that supplier, or a.Refusal of the stock as it is.
func adjust(ctx context.Context, tx pgx.Tx, a supply.StockAdjustment, at time.Time) (supply.Item, error) {
	for range adjustAttempts {
		rows, err := tx.Query(ctx, `UPDATE items SET stock = stock + $3, updated_at = $4
			WHERE item_id = $1 AND supplier_id = $2 AND stock + $3 BETWEEN 0 AND $5
			RETURNING `+itemColumns, a.ItemID, a.SupplierID, a.Delta, at, int64(supply.MaxStock))
		if err != nil {
			return supply.Item{}, fmt.Errorf("adjust stock of %s: %w", a.ItemID, err)
		}
		it, err := pgx.CollectExactlyOneRow(rows, scanItem)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			if err != nil {
				err = fmt.Errorf("adjust stock of %s: %w", a.ItemID, err)
			}
			return it, err
		}
		var stock *int64
		var supplierExists bool
		if err := tx.QueryRow(ctx, `SELECT (SELECT stock FROM items WHERE item_id = $1 AND supplier_id = $2),
			EXISTS (SELECT 1 FROM suppliers WHERE supplier_id = $2)`, a.ItemID, a.SupplierID).Scan(&stock, &supplierExists); err != nil {
			return supply.Item{}, fmt.Errorf("adjust stock of %s: %w", a.ItemID, err)
		}
		switch {
		case !supplierExists:
			return supply.Item{}, supply.SupplierNotFound(a.SupplierID)
		case stock == nil:
			return supply.Item{}, supply.ItemNotFound(a.ItemID)
		}
		if err := a.Refusal(*stock); err != nil {
			return supply.Item{}, err
		}
		// A concurrent change brought the stock back within bounds after the UPDATE looked.
	}
	return supply.Item{}, fmt.Errorf("adjust stock of %s: stock kept crossing its bounds after %d attempts", a.ItemID, adjustAttempts)
}

// ListItems implements supply.Repository.
func (r *Repo) ListItems(ctx context.Context, compound, supplierID string, withDonated bool) ([]supply.Item, error) {
	rows, err := r.Pool.Query(ctx, `SELECT `+itemColumns+` FROM items
		WHERE compound = $1 AND ($2 = '' OR supplier_id = $2)
			AND ($3 OR supplier_id NOT IN (SELECT supplier_id FROM suppliers WHERE compound = $1 AND kind = 'donations'))
		ORDER BY supplier_id, item_id`, compound, supplierID, withDonated)
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	return pgx.CollectRows(rows, scanItem)
}

// GetItems implements supply.Repository.
func (r *Repo) GetItems(ctx context.Context, ids []string) ([]supply.Item, error) {
	rows, err := r.Pool.Query(ctx, `SELECT `+itemColumns+` FROM items WHERE item_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("get items: %w", err)
	}
	return pgx.CollectRows(rows, scanItem)
}

// lockedItems are items held FOR UPDATE by a transaction, with the stock they had when locked so
// that only changed rows are written back.
type lockedItems struct {
	items map[string]*supply.Item
	stock map[string]int64
}

// lockItems locks the named items in item id order. Every transaction that locks several items
// takes them in that one order, so two baskets sharing items queue instead of deadlocking.
func lockItems(ctx context.Context, tx pgx.Tx, ids []string) (lockedItems, error) {
	var l lockedItems
	b := &pgx.Batch{}
	queueLockItems(b, ids, &l)
	err := tx.SendBatch(ctx, b).Close()
	return l, err
}

// queueLockItems adds lockItems' statement to b, filling l once b has run.
func queueLockItems(b *pgx.Batch, ids []string, l *lockedItems) {
	b.Queue(`SELECT `+itemColumns+` FROM items WHERE item_id = ANY($1) ORDER BY item_id FOR UPDATE`, ids).Query(func(rows pgx.Rows) error {
		list, err := pgx.CollectRows(rows, scanItem)
		if err != nil {
			return fmt.Errorf("lock items: %w", err)
		}
		*l = lockedItems{items: make(map[string]*supply.Item, len(list)), stock: make(map[string]int64, len(list))}
		for i := range list {
			l.items[list[i].ID] = &list[i]
			l.stock[list[i].ID] = list[i].Stock
		}
		return nil
	})
}

// save writes back the stock of the items whose stock changed.
func (l lockedItems) save(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	l.queueSave(b)
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("update stock: %w", err)
	}
	return nil
}

// queueSave adds the updates of the items whose stock changed to b.
func (l lockedItems) queueSave(b *pgx.Batch) {
	for id, it := range l.items {
		if it.Stock != l.stock[id] {
			b.Queue(`UPDATE items SET stock = $2 WHERE item_id = $1`, id, it.Stock)
		}
	}
}
