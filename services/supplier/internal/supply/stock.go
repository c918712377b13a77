package supply

import (
	"context"
	"fmt"
	"strings"
)

// StockAdjustment changes an item's stock outside reservations: a delivery from the wholesaler
// adds, spoilage or a recount removes. Stock changes go through adjustments (and reservations)
// only, never through UpsertItem, so that an edit made from a stale screen cannot undo the
// reservations taken since the screen was loaded.
type StockAdjustment struct {
	SupplierID string
	ItemID     string
	// Delta is units (grams for weighed items) to add; negative removes.
	Delta  int64
	Reason string
	// Actor is the verified caller who made it, never a request field.
	Actor Actor
}

// Validate checks an adjustment. Field names are AdjustStockRequest's.
func (a StockAdjustment) Validate() error {
	var v violations
	a.validate(&v)
	return v.err()
}

func (a StockAdjustment) validate(v *violations) {
	v.slug(a.SupplierID, "supplier_id")
	v.slug(a.ItemID, "item_id")
	switch {
	case a.Delta == 0:
		v.add("delta", "must not be 0: positive adds stock, negative removes it")
	case a.Delta > MaxStock || a.Delta < -MaxStock:
		v.add("delta", "must be between -%d and %d", int64(MaxStock), int64(MaxStock))
	}
	v.required(a.Reason, "reason")
	v.maxLen(a.Reason, "reason", MaxReason)
}

// Refusal is why adjusting stock by a.Delta is refused, or nil when it may be applied: stock
// never goes below zero (FAILED_PRECONDITION naming the item and what is left) nor above
// MaxStock. The repository applies the same bounds atomically and asks this only for the words.
func (a StockAdjustment) Refusal(stock int64) error {
	switch after := stock + a.Delta; {
	case after < 0:
		return &ItemError{ItemID: a.ItemID, Err: ErrOutOfStock,
			Detail: fmt.Sprintf("%d in stock, cannot remove %d", stock, -a.Delta)}
	case after > MaxStock:
		return Invalid("delta", fmt.Sprintf("would raise stock from %d above %d", stock, int64(MaxStock)))
	}
	return nil
}

// ItemNotFound is the one wording of an unknown item, used as well for another supplier's.
func ItemNotFound(id string) error { return fmt.Errorf("item %s: %w", id, ErrNotFound) }

// AdjustStock adds a.Delta to the stock of an item of a supplier the caller keeps (see keeper),
// recorded as made by the caller. The change is atomic: concurrent adjustments and reservations
// each see the stock the others left, and none takes it below zero. A request id is required,
// since a delta counted twice is wrong stock: a retry gets the first answer back.
func (s *Service) AdjustStock(ctx context.Context, c Caller, key *IdempotencyKey, a StockAdjustment) (Item, error) {
	a.Reason = strings.TrimSpace(a.Reason)
	a.Actor = c.Actor
	var v violations
	v.check(key != nil, "request_id", "is required: an adjustment retried without one would count twice")
	a.validate(&v)
	if err := v.err(); err != nil {
		return Item{}, err
	}
	if _, err := s.keeper(ctx, c, a.SupplierID); err != nil {
		return Item{}, err
	}
	now := s.now()
	return s.Repo.AdjustStock(ctx, s.stamp(key, supplierScope(a.SupplierID), now), a, now)
}
