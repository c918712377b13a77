package supply

import "strings"

// GramsPerKilogram is a weighed item's unit weight: its price is per kilogram, its quantities grams.
const GramsPerKilogram = 1000

// Validate checks a supplier before it is created. Field names are CreateSupplierRequest's.
func (s Supplier) Validate() error {
	var v violations
	v.check(ValidSlug(s.Compound), "compound", "must be a compound slug (lower-case letters, digits, '-')")
	v.check(s.ID == "" || ValidSlug(s.ID), "supplier_id", "must be a slug (lower-case letters, digits, '-', at most 63)")
	v.required(s.Name, "name")
	v.maxLen(s.Name, "name", MaxText)
	v.check(s.Kind == KindSupermarket || s.Kind == KindPharmacy || s.Kind == KindDonations, "kind",
		`must be "supermarket", "pharmacy" or "donations"`)
	return v.err()
}

// Normalize fills what an item's kind implies: a weighed item ships 1000 g per kilogram of price.
func (it *Item) Normalize() {
	it.Name = strings.TrimSpace(it.Name)
	it.Unit = strings.TrimSpace(it.Unit)
	it.Category = strings.TrimSpace(it.Category)
	it.BundleContents = strings.TrimSpace(it.BundleContents)
	if it.Weighed && it.UnitWeightGrams == 0 {
		it.UnitWeightGrams = GramsPerKilogram
	}
}

// Validate checks an item before it is stored, including the no-markup rule (不加价): the current
// price may never exceed the pre-epidemic reference price. What its prices and ration must be
// depends on its supplier's kind, which ValidateFor checks once the supplier is known. Field
// names are UpsertItemRequest's.
func (it Item) Validate() error {
	var v violations
	v.check(it.ID == "" || ValidSlug(it.ID), "item.item_id", "must be a slug (lower-case letters, digits, '-', at most 63)")
	v.required(it.SupplierID, "item.supplier_id")
	v.required(it.Name, "item.name")
	v.maxLen(it.Name, "item.name", MaxText)
	v.required(it.Unit, "item.unit")
	v.maxLen(it.Unit, "item.unit", 32)
	v.maxLen(it.Category, "item.category", MaxText)
	v.maxLen(it.BundleContents, "item.bundle_contents", 2000)
	v.check(it.ReferencePriceFen >= 0, "item.reference_price_fen", "must not be negative")
	v.check(it.ReferencePriceFen <= MaxPriceFen, "item.reference_price_fen", "must be at most %d", MaxPriceFen)
	switch {
	case it.CurrentPriceFen < 0:
		v.add("item.current_price_fen", "must not be negative")
	case it.ReferencePriceFen > 0 && it.CurrentPriceFen > it.ReferencePriceFen:
		v.add("item.current_price_fen", "must not exceed reference_price_fen %d (no markup)", it.ReferencePriceFen)
	}
	v.check(it.Stock >= 0, "item.stock", "must not be negative")
	v.check(it.Stock <= MaxStock, "item.stock", "must be at most %d", int64(MaxStock))
	v.check(it.RationPerDay >= 0, "item.ration_per_day", "must not be negative (0 means no limit)")
	v.check(it.RationPerDay <= MaxQuantity, "item.ration_per_day", "must be at most %d", MaxQuantity)
	if it.Weighed {
		v.check(it.UnitWeightGrams == GramsPerKilogram, "item.unit_weight_grams", "must be 1000 (or 0) for a weighed item: its quantities are grams")
		v.check(!it.Bundle, "item.bundle", "a bundle is sold by count, not weighed")
	} else {
		v.check(it.UnitWeightGrams > 0, "item.unit_weight_grams", "must be positive for a counted item")
		v.check(it.UnitWeightGrams <= MaxQuantity, "item.unit_weight_grams", "must be at most %d", MaxQuantity)
	}
	if it.Bundle {
		v.required(it.BundleContents, "item.bundle_contents")
	}
	return v.err()
}

// ValidateFor checks what an item's prices and ration must be at a supplier of kind k. Goods for
// sale have a positive reference price and current price. Donated stock is free (both prices 0)
// and has no ration: it is handed out only by campaigns, to which rations do not apply, so a
// ration on it would be a promise nothing keeps.
func (it Item) ValidateFor(k Kind) error {
	var v violations
	if k == KindDonations {
		v.check(it.ReferencePriceFen == 0, "item.reference_price_fen", "must be 0: donated stock is handed out free")
		v.check(it.CurrentPriceFen == 0, "item.current_price_fen", "must be 0: donated stock is handed out free")
		v.check(it.RationPerDay == 0, "item.ration_per_day", "must be 0: donated stock is handed out by campaigns, which rations do not apply to")
		return v.err()
	}
	v.check(it.ReferencePriceFen > 0, "item.reference_price_fen", "must be positive")
	v.check(it.CurrentPriceFen > 0, "item.current_price_fen", "must be positive")
	return v.err()
}

// LineAmount is what quantity of an item costs at unitPrice: price*units for counted items, and
// price per kilogram times grams for weighed ones, rounded half up to the fen.
func LineAmount(weighed bool, unitPriceFen, quantity int64) int64 {
	if !weighed {
		return unitPriceFen * quantity
	}
	return (unitPriceFen*quantity + GramsPerKilogram/2) / GramsPerKilogram
}
