package supply

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

var donations = Supplier{ID: "haixin-donations", Compound: "haixin", Name: "捐赠物资", Kind: KindDonations}

func donated() map[string]*Item {
	return map[string]*Item{
		"disinfectant": {ID: "disinfectant", SupplierID: "haixin-donations", Name: "84", Unit: "bottle", Stock: 3, UnitWeightGrams: 600},
		"notice":       {ID: "notice", SupplierID: "haixin-donations", Name: "告知书", Unit: "sheet", Stock: 100, UnitWeightGrams: 10},
	}
}

func TestItemPricesFollowTheSuppliersKind(t *testing.T) {
	free := func(edit func(*Item)) Item {
		it := validItem()
		it.ReferencePriceFen, it.CurrentPriceFen = 0, 0
		edit(&it)
		return it
	}
	tests := []struct {
		name  string
		kind  Kind
		it    Item
		field string // "" means valid
	}{
		{"donated stock is free", KindDonations, free(func(*Item) {}), ""},
		{"donated stock with a reference price", KindDonations, free(func(it *Item) { it.ReferencePriceFen = 100 }), "item.reference_price_fen"},
		{"donated stock with a price", KindDonations, free(func(it *Item) { it.ReferencePriceFen, it.CurrentPriceFen = 100, 100 }), "item.current_price_fen"},
		{"donated stock with a ration", KindDonations, free(func(it *Item) { it.RationPerDay = 2 }), "item.ration_per_day"},
		{"a supermarket's free item", KindSupermarket, free(func(*Item) {}), "item.reference_price_fen"},
		{"a pharmacy's free item", KindPharmacy, free(func(it *Item) { it.ReferencePriceFen = 100 }), "item.current_price_fen"},
		{"a pharmacy's priced item", KindPharmacy, validItem(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fields(tt.it.Validate()); got != nil {
				t.Fatalf("shape refused: %v", got)
			}
			got := fields(tt.it.ValidateFor(tt.kind))
			if (tt.field == "" && got != nil) || (tt.field != "" && !slices.Contains(got, tt.field)) {
				t.Fatalf("want violation %q, got %v", tt.field, got)
			}
		})
	}
	// Whatever the kind, no price is negative and none above its reference.
	it := validItem()
	it.ReferencePriceFen, it.CurrentPriceFen = -1, 0
	if !slices.Contains(fields(it.Validate()), "item.reference_price_fen") {
		t.Error("a negative reference price passed")
	}
	it.ReferencePriceFen, it.CurrentPriceFen = 0, 1
	for _, k := range []Kind{KindSupermarket, KindDonations} {
		if fields(it.ValidateFor(k)) == nil {
			t.Errorf("a price above a zero reference passed at a %s", k)
		}
	}
}

func TestDonatedStockNeedsNoCredentials(t *testing.T) {
	if ok, why := donations.Standing(time.Now()); !ok {
		t.Fatalf("donated stock without credentials not accepting: %s", why)
	}
	sup := donations
	sup.Suspended, sup.SuspensionReason = true, "recount"
	if ok, why := sup.Standing(time.Now()); ok || why != "suspended: recount" {
		t.Fatalf("suspended donated stock: %v %q", ok, why)
	}
}

func campaignPack(lines ...ReservationLine) Reservation {
	r := reservation(lines...)
	r.CampaignID = "spring-disinfection"
	r.Actor = Actor{Role: RoleWorker, ID: "worker-li"}
	return r
}

// A campaign's pack of a supermarket's goods is free, unrationed and confirmed as reserved, by
// the worker, with the confirmation announced as the supplier's own would be.
func TestNewParcelCampaignPack(t *testing.T) {
	items := catalog()
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	// masks: ration 2 a day, 2 already reserved today.
	p, ts, err := NewParcel(campaignPack(ReservationLine{"masks", 3}, ReservationLine{"pork", 1500}), freshmart, items,
		map[string]int64{"masks": 2}, now, due(now))
	if err != nil {
		t.Fatal(err)
	}
	if p.State != StateConfirmed || p.TotalFen != 0 || p.CampaignID != "spring-disinfection" || p.RoundID == "" || !p.ConfirmBy.IsZero() {
		t.Fatalf("pack %+v", p)
	}
	for _, l := range p.Lines {
		if l.UnitPriceFen != 0 || l.AmountFen != 0 || l.ConfirmedQuantity != l.Quantity || l.ConfirmedAmountFen != 0 {
			t.Fatalf("line %+v", l)
		}
	}
	worker := Actor{Role: RoleWorker, ID: "worker-li"}
	want := []Transition{
		{To: StatePlaced, Actor: worker, Reason: "reserved for order " + orderID + " (free pack of campaign spring-disinfection)", At: now},
		{From: StatePlaced, To: StateConfirmed, Actor: worker, Reason: "free pack of campaign spring-disinfection", At: now, Announce: true},
	}
	if !slices.Equal(ts, want) {
		t.Fatalf("transitions %+v, want %+v", ts, want)
	}
	if items["masks"].Stock != 97 || items["pork"].Stock != 8500 {
		t.Fatalf("stock masks %d pork %d", items["masks"].Stock, items["pork"].Stock)
	}
	if p.Expire(items, now.Add(48*time.Hour)); p.State != StateConfirmed {
		t.Fatal("a campaign's pack expired")
	}

	// Stock still bounds it.
	items = catalog()
	_, _, err = NewParcel(campaignPack(ReservationLine{"rice", 6}), freshmart, items, nil, now, due(now))
	if !errors.Is(err, ErrOutOfStock) || items["rice"].Stock != 5 {
		t.Fatalf("want out of stock, got %v (stock %d)", err, items["rice"].Stock)
	}
	// A supplier not accepting orders gets no campaign's packs either.
	sup := freshmart
	sup.Suspended, sup.SuspensionReason = true, "inspection"
	if _, _, err := NewParcel(campaignPack(ReservationLine{"rice", 1}), sup, catalog(), nil, now, due(now)); !errors.Is(err, ErrNotAcceptingOrders) {
		t.Fatalf("want not accepting, got %v", err)
	}
}

func TestDonatedStockOnlyByCampaigns(t *testing.T) {
	now := time.Now()
	r := reservation(ReservationLine{"notice", 1}, ReservationLine{"disinfectant", 1})
	r.SupplierID = donations.ID
	items := donated()
	_, _, err := NewParcel(r, donations, items, nil, now, due(now))
	if !errors.Is(err, ErrDonatedStock) || len(ItemErrors(err)) != 2 {
		t.Fatalf("want both lines refused as donated stock, got %v", err)
	}
	if msg := ItemErrors(err)[0].Error(); msg != "item notice is donated stock; it is handed out by campaigns" {
		t.Fatalf("message %q", msg)
	}
	if items["notice"].Stock != 100 || items["disinfectant"].Stock != 3 {
		t.Fatal("a refused reservation took stock")
	}

	r.CampaignID = "spring-disinfection"
	p, ts, err := NewParcel(r, donations, items, nil, now, due(now))
	if err != nil {
		t.Fatal(err)
	}
	if p.State != StateConfirmed || len(ts) != 2 || items["notice"].Stock != 99 || items["disinfectant"].Stock != 2 {
		t.Fatalf("pack %+v, transitions %+v", p, ts)
	}
	r.Lines = []ReservationLine{{"disinfectant", 3}}
	if _, _, err := NewParcel(r, donations, items, nil, now, due(now)); !errors.Is(err, ErrOutOfStock) {
		t.Fatalf("want out of stock, got %v", err)
	}
}

func TestCampaignReservationShape(t *testing.T) {
	for _, id := range []string{"0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f01", "spring-disinfection", "C_2026_03"} {
		r := campaignPack(ReservationLine{"rice", 1})
		r.CampaignID = id
		if err := r.Validate(); err != nil {
			t.Errorf("campaign id %q refused: %v", id, err)
		}
	}
	for _, id := range []string{"-x", "with space", "x/y", string(make([]byte, 65))} {
		r := campaignPack(ReservationLine{"rice", 1})
		r.CampaignID = id
		if !slices.Contains(fields(r.Validate()), "campaign_id") {
			t.Errorf("campaign id %q passed", id)
		}
	}
	// A campaign's pack is another request than the same lines ordered.
	order, pack := reservation(ReservationLine{"rice", 1}), campaignPack(ReservationLine{"rice", 1})
	if bytes.Equal(order.Fingerprint(), pack.Fingerprint()) {
		t.Fatal("a campaign's pack has an order's fingerprint")
	}
}

func TestWhoSeesDonatedStock(t *testing.T) {
	for role, sees := range map[Role]bool{RoleWorker: true, RoleDispatcher: true, RoleSystem: true,
		RoleResident: false, RoleCourier: false, RoleSupplier: false} {
		if got := (Caller{Actor: Actor{Role: role}}).SeesDonatedStock(); got != sees {
			t.Errorf("%s sees donated stock: %v, want %v", role, got, sees)
		}
	}
}
