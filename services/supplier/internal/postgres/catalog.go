package postgres

import (
	"context"
	"errors"
	"fmt"

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
	rows, err := r.Pool.Query(ctx, `SELECT supplier_id, compound, name, kind FROM suppliers
		WHERE compound = $1 ORDER BY supplier_id`, compound)
	if err != nil {
		return nil, fmt.Errorf("list suppliers: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (supply.Supplier, error) {
		var s supply.Supplier
		err := row.Scan(&s.ID, &s.Compound, &s.Name, &s.Kind)
		return s, err
	})
}

func getSupplier(ctx context.Context, q pgx.Tx, id string) (supply.Supplier, error) {
	var s supply.Supplier
	err := q.QueryRow(ctx, `SELECT supplier_id, compound, name, kind FROM suppliers WHERE supplier_id = $1`, id).
		Scan(&s.ID, &s.Compound, &s.Name, &s.Kind)
	if err != nil {
		return s, notFound(err, "supplier "+id)
	}
	return s, nil
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
// so an id already used by another supplier is refused rather than taken over.
func (r *Repo) UpsertItem(ctx context.Context, key *supply.IdempotencyKey, it supply.Item) (supply.Item, error) {
	var out supply.Item
	err := pgkit.Tx(ctx, r.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = idempotent(ctx, tx, key, func() (supply.Item, error) {
			sup, err := getSupplier(ctx, tx, it.SupplierID)
			if err != nil {
				return supply.Item{}, err
			}
			it.Compound = sup.Compound
			rows, err := tx.Query(ctx, `INSERT INTO items (`+itemColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
				ON CONFLICT (item_id) DO UPDATE SET name = EXCLUDED.name, unit = EXCLUDED.unit,
					weighed = EXCLUDED.weighed, reference_price_fen = EXCLUDED.reference_price_fen,
					current_price_fen = EXCLUDED.current_price_fen, stock = EXCLUDED.stock,
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

// ListItems implements supply.Repository.
func (r *Repo) ListItems(ctx context.Context, compound, supplierID string) ([]supply.Item, error) {
	rows, err := r.Pool.Query(ctx, `SELECT `+itemColumns+` FROM items
		WHERE compound = $1 AND ($2 = '' OR supplier_id = $2) ORDER BY supplier_id, item_id`, compound, supplierID)
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
	rows, err := tx.Query(ctx, `SELECT `+itemColumns+` FROM items WHERE item_id = ANY($1) ORDER BY item_id FOR UPDATE`, ids)
	if err != nil {
		return lockedItems{}, fmt.Errorf("lock items: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanItem)
	if err != nil {
		return lockedItems{}, fmt.Errorf("lock items: %w", err)
	}
	l := lockedItems{items: make(map[string]*supply.Item, len(list)), stock: make(map[string]int64, len(list))}
	for i := range list {
		l.items[list[i].ID] = &list[i]
		l.stock[list[i].ID] = list[i].Stock
	}
	return l, nil
}

// save writes back the stock of the items whose stock changed.
func (l lockedItems) save(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	for id, it := range l.items {
		if it.Stock != l.stock[id] {
			b.Queue(`UPDATE items SET stock = $2 WHERE item_id = $1`, id, it.Stock)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("update stock: %w", err)
	}
	return nil
}
