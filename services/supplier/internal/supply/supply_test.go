package supply

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

func validItem() Item {
	return Item{ID: "rice-5kg", SupplierID: "freshmart", Name: "Rice 5 kg", Unit: "bag",
		ReferencePriceFen: 4500, CurrentPriceFen: 4500, Stock: 10, UnitWeightGrams: 5000}
}

func fields(err error) []string {
	var inv *InvalidError
	if !errors.As(err, &inv) {
		return nil
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestItemValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Item)
		field string // "" means valid
	}{
		{"valid", func(*Item) {}, ""},
		{"bad id", func(it *Item) { it.ID = "Rice 5kg" }, "item.item_id"},
		{"no supplier", func(it *Item) { it.SupplierID = "" }, "item.supplier_id"},
		{"no name", func(it *Item) { it.Name = " " }, "item.name"},
		{"no unit", func(it *Item) { it.Unit = "" }, "item.unit"},
		{"zero reference", func(it *Item) { it.ReferencePriceFen = 0 }, "item.reference_price_fen"},
		{"zero current", func(it *Item) { it.CurrentPriceFen = 0 }, "item.current_price_fen"},
		{"markup by one fen", func(it *Item) { it.CurrentPriceFen = 4501 }, "item.current_price_fen"},
		{"below reference", func(it *Item) { it.CurrentPriceFen = 3000 }, ""},
		{"negative stock", func(it *Item) { it.Stock = -1 }, "item.stock"},
		{"negative ration", func(it *Item) { it.RationPerDay = -1 }, "item.ration_per_day"},
		{"counted without weight", func(it *Item) { it.UnitWeightGrams = 0 }, "item.unit_weight_grams"},
		{"weighed defaults to 1000 g", func(it *Item) { it.Weighed, it.UnitWeightGrams = true, 0 }, ""},
		{"weighed with other weight", func(it *Item) { it.Weighed, it.UnitWeightGrams = true, 500 }, "item.unit_weight_grams"},
		{"bundle without contents", func(it *Item) { it.Bundle = true }, "item.bundle_contents"},
		{"weighed bundle", func(it *Item) { it.Bundle, it.BundleContents, it.Weighed, it.UnitWeightGrams = true, "x", true, 0 }, "item.bundle"},
		{"price too large", func(it *Item) { it.ReferencePriceFen, it.CurrentPriceFen = MaxPriceFen+1, 1 }, "item.reference_price_fen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := validItem()
			tt.edit(&it)
			it.Normalize()
			got := append(fields(it.Validate()), fields(it.ValidateFor(KindSupermarket))...)
			if tt.field == "" {
				if got != nil {
					t.Fatalf("want valid, got violations %v", got)
				}
				return
			}
			if !slices.Contains(got, tt.field) {
				t.Fatalf("want a violation of %s, got %v", tt.field, got)
			}
		})
	}
}

func TestSupplierValidate(t *testing.T) {
	tests := []struct {
		s     Supplier
		field string
	}{
		{Supplier{Compound: "haixin", Name: "FreshMart", Kind: KindSupermarket}, ""},
		{Supplier{ID: "haixin-pharmacy", Compound: "haixin", Name: "Pharmacy", Kind: KindPharmacy}, ""},
		{Supplier{ID: "Bad_ID", Compound: "haixin", Name: "x", Kind: KindPharmacy}, "supplier_id"},
		{Supplier{Compound: "Hai Xin", Name: "x", Kind: KindPharmacy}, "compound"},
		{Supplier{Compound: "haixin", Kind: KindPharmacy}, "name"},
		{Supplier{Compound: "haixin", Name: "x", Kind: "bakery"}, "kind"},
		{Supplier{ID: "haixin-donations", Compound: "haixin", Name: "捐赠物资", Kind: KindDonations}, ""},
	}
	for _, tt := range tests {
		got := fields(tt.s.Validate())
		if (tt.field == "" && got != nil) || (tt.field != "" && !slices.Contains(got, tt.field)) {
			t.Errorf("%+v: want violation %q, got %v", tt.s, tt.field, got)
		}
	}
}

func TestLineAmount(t *testing.T) {
	tests := []struct {
		weighed         bool
		price, quantity int64
		want            int64
	}{
		{false, 450, 3, 1350},
		{true, 1200, 1000, 1200}, // 12 yuan/kg, 1 kg
		{true, 1200, 500, 600},
		{true, 999, 333, 333},    // 332.667 rounds up
		{true, 1000, 1, 1},       // 1 fen exactly
		{true, 1000, 0, 0},       //
		{true, 1, 499, 0},        // 0.499 rounds down
		{true, 1, 500, 1},        // half rounds up
		{true, 3580, 1234, 4418}, // 4417.72
	}
	for _, tt := range tests {
		if got := LineAmount(tt.weighed, tt.price, tt.quantity); got != tt.want {
			t.Errorf("LineAmount(%v, %d, %d) = %d, want %d", tt.weighed, tt.price, tt.quantity, got, tt.want)
		}
	}
}

func TestStateTransitions(t *testing.T) {
	allowed := map[[2]State]bool{
		{StatePlaced, StateConfirmed}: true, {StatePlaced, StateRejected}: true, {StatePlaced, StateCancelled}: true,
		{StatePlaced, StateExpired}: true, {StateConfirmed, StateReady}: true, {StateReady, StateAtGate}: true,
		{StateAtGate, StateAssigned}: true, {StateAssigned, StateOutForDelivery}: true,
		{StateOutForDelivery, StateDelivered}: true, {StateOutForDelivery, StateFailed}: true,
		{StateFailed, StateAssigned}: true, {StateFailed, StateCancelled}: true,
	}
	all := []State{StatePlaced, StateConfirmed, StateRejected, StateCancelled, StateExpired, StateReady,
		StateAtGate, StateAssigned, StateOutForDelivery, StateDelivered, StateFailed}
	for _, from := range all {
		if !from.Valid() {
			t.Errorf("%s not valid", from)
		}
		for _, to := range all {
			if got := from.CanBecome(to); got != allowed[[2]State{from, to}] {
				t.Errorf("%s -> %s: got %v", from, to, got)
			}
		}
	}
	if State("shipped").Valid() {
		t.Error("unknown state valid")
	}
}

func TestServiceDayIsShanghai(t *testing.T) {
	// 15:59 UTC is 23:59 in Shanghai, 16:00 UTC is the next day there.
	before := time.Date(2026, 3, 1, 15, 59, 0, 0, time.UTC)
	after := before.Add(time.Minute)
	if d := ServiceDay(before); d != time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("before midnight: %v", d)
	}
	if d := ServiceDay(after); d != time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) {
		t.Errorf("after midnight: %v", d)
	}
}

const (
	parcelID = "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f01"
	orderID  = "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02"
)

// due is the round a reservation at now is due for under the default schedule.
func due(now time.Time) rounds.Round {
	return rounds.Default.Next("haixin", now.Add(DefaultConfirmLead))
}

func reservation(lines ...ReservationLine) Reservation {
	return Reservation{ParcelID: parcelID, OrderID: orderID, SupplierID: "freshmart", HouseholdID: "haixin-3-2-302",
		Address: Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}, Lines: lines}
}

func catalog() map[string]*Item {
	return map[string]*Item{
		"rice":  {ID: "rice", SupplierID: "freshmart", Name: "Rice", Unit: "bag", ReferencePriceFen: 4500, CurrentPriceFen: 4000, Stock: 5, UnitWeightGrams: 5000},
		"pork":  {ID: "pork", SupplierID: "freshmart", Name: "Pork", Unit: "kg", Weighed: true, ReferencePriceFen: 3000, CurrentPriceFen: 2800, Stock: 10000, UnitWeightGrams: 1000},
		"masks": {ID: "masks", SupplierID: "freshmart", Name: "Masks", Unit: "box", ReferencePriceFen: 2000, CurrentPriceFen: 2000, Stock: 100, RationPerDay: 2, UnitWeightGrams: 200},
		"other": {ID: "other", SupplierID: "pharmacy", Name: "Other", Unit: "box", ReferencePriceFen: 100, CurrentPriceFen: 100, Stock: 100, UnitWeightGrams: 10},
	}
}

var freshmart = Supplier{ID: "freshmart", Compound: "haixin", Name: "FreshMart", Kind: KindSupermarket,
	Credentials: []Credential{{Kind: BusinessLicence, Number: "1", ExpiresOn: "2999-12-31"}, {Kind: FoodPermit, Number: "2", ExpiresOn: "2999-12-31"}}}

func TestNewParcelPricesAndTakesStock(t *testing.T) {
	items := catalog()
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	p, ts, err := NewParcel(reservation(ReservationLine{"rice", 2}, ReservationLine{"pork", 1500}), freshmart, items, nil, now, due(now))
	if err != nil {
		t.Fatal(err)
	}
	if p.State != StatePlaced || len(ts) != 1 || ts[0].To != StatePlaced || ts[0].From != "" || ts[0].Announce {
		t.Fatalf("state %s, transitions %+v", p.State, ts)
	}
	if p.Lines[0].AmountFen != 8000 || p.Lines[1].AmountFen != 4200 || p.TotalFen != 12200 {
		t.Fatalf("amounts %d %d total %d", p.Lines[0].AmountFen, p.Lines[1].AmountFen, p.TotalFen)
	}
	if items["rice"].Stock != 3 || items["pork"].Stock != 8500 {
		t.Fatalf("stock rice %d pork %d", items["rice"].Stock, items["pork"].Stock)
	}
}

func TestNewParcelRefusals(t *testing.T) {
	tests := []struct {
		name    string
		lines   []ReservationLine
		used    map[string]int64
		want    error
		items   []string // refused item ids
		invalid string
	}{
		{"out of stock", []ReservationLine{{"rice", 6}}, nil, ErrOutOfStock, []string{"rice"}, ""},
		{"exactly the stock", []ReservationLine{{"rice", 5}}, nil, nil, nil, ""},
		{"ration within", []ReservationLine{{"masks", 1}}, map[string]int64{"masks": 1}, nil, nil, ""},
		{"ration exceeded", []ReservationLine{{"masks", 2}}, map[string]int64{"masks": 1}, ErrRationExceeded, []string{"masks"}, ""},
		{"other supplier's item", []ReservationLine{{"other", 1}}, nil, ErrNotInCatalog, []string{"other"}, ""},
		{"unknown item", []ReservationLine{{"caviar", 1}}, nil, ErrNotInCatalog, []string{"caviar"}, ""},
		{"all failures named", []ReservationLine{{"rice", 9}, {"masks", 3}, {"pork", 10}}, nil, ErrOutOfStock, []string{"rice", "masks"}, ""},
		{"zero quantity", []ReservationLine{{"rice", 0}}, nil, nil, nil, "lines[0].quantity"},
		{"duplicate item", []ReservationLine{{"rice", 1}, {"rice", 1}}, nil, nil, nil, "lines[1].item_id"},
		{"no lines", nil, nil, nil, nil, "lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := catalog()
			_, _, err := NewParcel(reservation(tt.lines...), freshmart, items, tt.used, time.Now(), due(time.Now()))
			if tt.invalid != "" {
				if !slices.Contains(fields(err), tt.invalid) {
					t.Fatalf("want violation %s, got %v", tt.invalid, err)
				}
				return
			}
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			var ids []string
			for _, ie := range ItemErrors(err) {
				ids = append(ids, ie.ItemID)
			}
			if !slices.Equal(ids, tt.items) {
				t.Fatalf("refused items %v, want %v", ids, tt.items)
			}
			if items["rice"].Stock != 5 || items["masks"].Stock != 100 {
				t.Fatal("a refused reservation took stock")
			}
		})
	}
}

func TestNewParcelWrongCompound(t *testing.T) {
	r := reservation(ReservationLine{"rice", 1})
	r.Address.Compound = "other-compound"
	_, _, err := NewParcel(r, freshmart, catalog(), nil, time.Now(), due(time.Now()))
	if !slices.Contains(fields(err), "address.compound") {
		t.Fatalf("got %v", err)
	}
}

func TestReservationFingerprintIgnoresLineOrder(t *testing.T) {
	a := reservation(ReservationLine{"rice", 1}, ReservationLine{"pork", 500})
	b := reservation(ReservationLine{"pork", 500}, ReservationLine{"rice", 1})
	c := reservation(ReservationLine{"pork", 501}, ReservationLine{"rice", 1})
	if !slices.Equal(a.Fingerprint(), b.Fingerprint()) {
		t.Error("same lines in another order differ")
	}
	if slices.Equal(a.Fingerprint(), c.Fingerprint()) {
		t.Error("different quantity has the same fingerprint")
	}
}

func placed(t *testing.T) (Parcel, map[string]*Item) {
	t.Helper()
	items := catalog()
	p, _, err := NewParcel(reservation(ReservationLine{"rice", 4}, ReservationLine{"pork", 1000}), freshmart, items, nil, time.Now(), due(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return p, items
}

var staff = Actor{Role: RoleSupplier, ID: "freshmart"}

func q(n int64) *int64 { return &n }

func TestConfirm(t *testing.T) {
	tests := []struct {
		name       string
		lines      []ConfirmLine
		invalid    string
		outOfStock bool
		rice, pork int64 // confirmed quantities
		riceStock  int64
		porkStock  int64
		total      int64
	}{
		{"as ordered", nil, "", false, 4, 1000, 1, 9000, 4*4000 + 2800},
		{"unset keeps ordered", []ConfirmLine{{"pork", nil}, {"rice", nil}}, "", false, 4, 1000, 1, 9000, 4*4000 + 2800},
		{"weighed 10% heavier", []ConfirmLine{{"pork", q(1100)}}, "", false, 4, 1100, 1, 8900, 4*4000 + 3080},
		{"weighed 10% lighter", []ConfirmLine{{"pork", q(900)}}, "", false, 4, 900, 1, 9100, 4*4000 + 2520},
		{"weighed 11% heavier", []ConfirmLine{{"pork", q(1101)}}, "lines[0].quantity", false, 0, 0, 1, 9000, 0},
		{"weighed 11% lighter", []ConfirmLine{{"rice", q(4)}, {"pork", q(899)}}, "lines[1].quantity", false, 0, 0, 1, 9000, 0},
		{"weighed 0 drops the line", []ConfirmLine{{"pork", q(0)}}, "", false, 4, 0, 1, 10000, 4 * 4000},
		{"weighed 1 g is out of range", []ConfirmLine{{"pork", q(1)}}, "lines[0].quantity", false, 0, 0, 1, 9000, 0},
		{"partial counted", []ConfirmLine{{"rice", q(3)}}, "", false, 3, 1000, 2, 9000, 3*4000 + 2800},
		{"counted 0 drops the line", []ConfirmLine{{"rice", q(0)}}, "", false, 0, 1000, 5, 9000, 2800},
		{"more than ordered", []ConfirmLine{{"rice", q(5)}}, "lines[0].quantity", false, 0, 0, 1, 9000, 0},
		{"not a line", []ConfirmLine{{"masks", q(1)}}, "lines[0].item_id", false, 0, 0, 1, 9000, 0},
		{"twice", []ConfirmLine{{"rice", q(1)}, {"rice", nil}}, "lines[1].item_id", false, 0, 0, 1, 9000, 0},
		{"negative", []ConfirmLine{{"rice", q(-1)}}, "lines[0].quantity", false, 0, 0, 1, 9000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, items := placed(t)
			tr, err := p.Confirm(items, tt.lines, staff, time.Now())
			if tt.invalid != "" {
				if !slices.Contains(fields(err), tt.invalid) {
					t.Fatalf("want violation %s, got %v", tt.invalid, err)
				}
				if p.State != StatePlaced || items["rice"].Stock != 1 || items["pork"].Stock != 9000 {
					t.Fatal("a refused confirmation changed the parcel or stock")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.To != StateConfirmed || !tr.Announce || p.State != StateConfirmed {
				t.Fatalf("transition %+v", tr)
			}
			if p.Lines[0].ConfirmedQuantity != tt.rice || p.Lines[1].ConfirmedQuantity != tt.pork {
				t.Fatalf("confirmed %d, %d", p.Lines[0].ConfirmedQuantity, p.Lines[1].ConfirmedQuantity)
			}
			if items["rice"].Stock != tt.riceStock || items["pork"].Stock != tt.porkStock {
				t.Fatalf("stock rice %d pork %d", items["rice"].Stock, items["pork"].Stock)
			}
			if p.TotalFen != tt.total {
				t.Fatalf("total %d, want %d", p.TotalFen, tt.total)
			}
		})
	}
}

// Confirming nothing at all is a rejection in disguise: it is refused, and changes nothing.
func TestConfirmNothingIsRefused(t *testing.T) {
	p, items := placed(t)
	p.Lines[1].Weighed = false // make both lines counted, so both can be dropped
	_, err := p.Confirm(items, []ConfirmLine{{"pork", q(0)}, {"rice", q(0)}}, staff, time.Now())
	if !slices.Equal(fields(err), []string{"lines"}) {
		t.Fatalf("got %v", err)
	}
	if p.State != StatePlaced || items["rice"].Stock != 1 || items["pork"].Stock != 9000 {
		t.Fatal("a refused confirmation changed the parcel or stock")
	}
}

func TestConfirmHeavierNeedsStock(t *testing.T) {
	p, items := placed(t)
	items["pork"].Stock = 50
	_, err := p.Confirm(items, []ConfirmLine{{"pork", q(1100)}}, staff, time.Now())
	if !errors.Is(err, ErrOutOfStock) || ItemErrors(err)[0].ItemID != "pork" {
		t.Fatalf("got %v", err)
	}
}

func TestConfirmNeverAboveReference(t *testing.T) {
	p, items := placed(t)
	items["pork"].ReferencePriceFen = 2000 // lowered after the reservation at 2800/kg
	if _, err := p.Confirm(items, nil, staff, time.Now()); err != nil {
		t.Fatal(err)
	}
	if p.Lines[1].ConfirmedAmountFen != 2000 {
		t.Fatalf("confirmed pork at %d fen, above the reference", p.Lines[1].ConfirmedAmountFen)
	}
}

func TestDecisions(t *testing.T) {
	t.Run("reject restocks", func(t *testing.T) {
		p, items := placed(t)
		tr, err := p.Reject(items, staff, "out of pork today", time.Now())
		if err != nil || tr.To != StateRejected || !tr.Announce || tr.Reason != "out of pork today" {
			t.Fatalf("%+v %v", tr, err)
		}
		if items["rice"].Stock != 5 || items["pork"].Stock != 10000 {
			t.Fatal("stock not released")
		}
	})
	t.Run("reject needs a reason", func(t *testing.T) {
		p, items := placed(t)
		if _, err := p.Reject(items, staff, " ", time.Now()); !slices.Contains(fields(err), "reason") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("release restocks once", func(t *testing.T) {
		p, items := placed(t)
		tr, err := p.Release(items, Actor{RoleResident, "haixin-3-2-302"}, "changed my mind", time.Now())
		if err != nil || tr.To != StateCancelled || tr.Announce {
			t.Fatalf("%+v %v", tr, err)
		}
		tr, err = p.Release(items, Actor{RoleResident, "haixin-3-2-302"}, "again", time.Now())
		if err != nil || tr.To != "" {
			t.Fatalf("second release: %+v %v", tr, err)
		}
		if items["rice"].Stock != 5 {
			t.Fatalf("stock %d after two releases", items["rice"].Stock)
		}
	})
	t.Run("illegal", func(t *testing.T) {
		p, items := placed(t)
		if _, err := p.MarkReady(staff, time.Now()); !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("ready before confirm: %v", err)
		}
		if _, err := p.Confirm(items, nil, staff, time.Now()); err != nil {
			t.Fatal(err)
		}
		for name, f := range map[string]func() (Transition, error){
			"release": func() (Transition, error) { return p.Release(items, staff, "", time.Now()) },
			"reject":  func() (Transition, error) { return p.Reject(items, staff, "no", time.Now()) },
			"confirm": func() (Transition, error) { return p.Confirm(items, nil, staff, time.Now()) },
		} {
			if _, err := f(); !errors.Is(err, ErrIllegalTransition) {
				t.Errorf("%s after confirm: %v", name, err)
			}
		}
		if _, err := p.MarkReady(staff, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := p.MarkReady(staff, time.Now()); !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("ready twice: %v", err)
		}
	})
}
