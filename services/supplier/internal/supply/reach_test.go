package supply

import "testing"

func TestReach(t *testing.T) {
	freshmart := Supplier{ID: "freshmart", Compound: "haixin"}
	parcel := Parcel{ID: "p1", SupplierID: "freshmart", HouseholdID: "haixin-3-2-302", Compound: "haixin"}
	tests := []struct {
		name             string
		reach            Reach
		supplier, parcel bool
	}{
		{"a service or city-wide staff", Reach{}, true, true},
		{"staff of the compound", Reach{Compound: "haixin"}, true, true},
		{"staff of another compound", Reach{Compound: "yuyuan"}, false, false},
		{"the supplier's staff", Reach{SupplierID: "freshmart", Compound: "haixin"}, true, true},
		{"another supplier's staff", Reach{SupplierID: "pharmacy", Compound: "haixin"}, false, false},
		{"the parcel's resident", Reach{HouseholdID: "haixin-3-2-302", Compound: "haixin"}, false, true},
		{"another resident", Reach{HouseholdID: "haixin-9-1-901", Compound: "haixin"}, false, false},
	}
	for _, tt := range tests {
		if got := tt.reach.Supplier(freshmart); got != tt.supplier {
			t.Errorf("%s reaches the supplier: %v, want %v", tt.name, got, tt.supplier)
		}
		if got := tt.reach.Parcel(parcel); got != tt.parcel {
			t.Errorf("%s reaches the parcel: %v, want %v", tt.name, got, tt.parcel)
		}
		ref := ParcelRef{ID: "p1", SupplierID: "freshmart", Reach: tt.reach}
		if got := ref.Matches(parcel); got != tt.parcel {
			t.Errorf("%s: ref matches %v, want %v", tt.name, got, tt.parcel)
		}
	}
	if (ParcelRef{ID: "p1", SupplierID: "pharmacy"}).Matches(parcel) || (ParcelRef{ID: "p2"}).Matches(parcel) {
		t.Error("a ref naming another supplier or parcel matches")
	}
}
