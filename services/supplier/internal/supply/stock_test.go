package supply

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestStockAdjustmentValidate(t *testing.T) {
	valid := StockAdjustment{SupplierID: "freshmart", ItemID: "rice", Delta: -3, Reason: "spoiled"}
	tests := []struct {
		name   string
		edit   func(*StockAdjustment)
		fields []string // none: valid
	}{
		{"valid removal", func(*StockAdjustment) {}, nil},
		{"valid delivery", func(a *StockAdjustment) { a.Delta = 500 }, nil},
		{"largest delivery", func(a *StockAdjustment) { a.Delta = MaxStock }, nil},
		{"zero delta", func(a *StockAdjustment) { a.Delta = 0 }, []string{"delta"}},
		{"delta too large", func(a *StockAdjustment) { a.Delta = MaxStock + 1 }, []string{"delta"}},
		{"removal too large", func(a *StockAdjustment) { a.Delta = -MaxStock - 1 }, []string{"delta"}},
		{"no supplier", func(a *StockAdjustment) { a.SupplierID = "" }, []string{"supplier_id"}},
		{"bad supplier", func(a *StockAdjustment) { a.SupplierID = "Fresh Mart" }, []string{"supplier_id"}},
		{"no item", func(a *StockAdjustment) { a.ItemID = " " }, []string{"item_id"}},
		{"no reason", func(a *StockAdjustment) { a.Reason = "" }, []string{"reason"}},
		{"long reason", func(a *StockAdjustment) { a.Reason = strings.Repeat("x", MaxReason+1) }, []string{"reason"}},
		{"everything wrong", func(a *StockAdjustment) { *a = StockAdjustment{} }, []string{"supplier_id", "item_id", "delta", "reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := valid
			tt.edit(&a)
			if got := fields(a.Validate()); !slices.Equal(got, tt.fields) {
				t.Fatalf("violations on %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestStockAdjustmentRefusal(t *testing.T) {
	tests := []struct {
		name  string
		stock int64
		delta int64
		want  error  // nil: allowed
		words string // in the message
	}{
		{"removes what is there", 5, -5, nil, ""},
		{"adds", 0, 7, nil, ""},
		{"removes more than there is", 5, -6, ErrOutOfStock, "item rice: out of stock (5 in stock, cannot remove 6)"},
		{"up to the limit", MaxStock - 1, 1, nil, ""},
		{"past the limit", MaxStock, 1, nil, "delta: would raise stock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := StockAdjustment{ItemID: "rice", Delta: tt.delta}.Refusal(tt.stock)
			switch {
			case tt.words == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.words != "" && (err == nil || !strings.Contains(err.Error(), tt.words)):
				t.Fatalf("refusal %v, want %q", err, tt.words)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("refusal %v is not %v", err, tt.want)
			}
			if tt.want == ErrOutOfStock {
				if ies := ItemErrors(err); len(ies) != 1 || ies[0].ItemID != "rice" {
					t.Fatalf("item errors %v", ies)
				}
			}
		})
	}
}
