package grpcapi

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/services/supplier/internal/supply"
)

// fuzzRepo is the fuzz targets' repository: a fixed compound in memory, so that fuzzed requests
// reach the domain's decisions without a database. It checks the stock arithmetic of every
// decision it is asked to store. It stands in for PostgreSQL only here; every integration test
// runs against the real one.
type fuzzRepo struct{ t *testing.T }

var _ supply.Repository = fuzzRepo{}

func newFuzzRepo(t *testing.T) fuzzRepo { return fuzzRepo{t: t} }

var licensed = []supply.Credential{{Kind: supply.BusinessLicence, Number: "1", ExpiresOn: "2030-12-31"},
	{Kind: supply.FoodPermit, Number: "2", ExpiresOn: "2030-12-31"}}

var fuzzSuppliers = map[string]supply.Supplier{
	"freshmart": {ID: "freshmart", Compound: "haixin", Name: "FreshMart", Kind: supply.KindSupermarket, Credentials: licensed},
	"suspended": {ID: "suspended", Compound: "haixin", Name: "Closed", Kind: supply.KindSupermarket, Credentials: licensed,
		Suspended: true, SuspensionReason: "inspection"},
	"pharmacy": {ID: "pharmacy", Compound: "haixin", Name: "Pharmacy", Kind: supply.KindPharmacy},
	// The community's donated stock: no credentials needed, workers keep it.
	"donations": {ID: "donations", Compound: "haixin", Name: "Donations", Kind: supply.KindDonations},
}

func fuzzItems() map[string]*supply.Item {
	return map[string]*supply.Item{
		"rice":         {ID: "rice", SupplierID: "freshmart", Name: "Rice", Unit: "bag", ReferencePriceFen: 4500, CurrentPriceFen: 4000, Stock: 5, UnitWeightGrams: 5000},
		"pork":         {ID: "pork", SupplierID: "freshmart", Name: "Pork", Unit: "kg", Weighed: true, ReferencePriceFen: 3000, CurrentPriceFen: 2800, Stock: 60, UnitWeightGrams: 1000},
		"eggs":         {ID: "eggs", SupplierID: "freshmart", Name: "Eggs", Unit: "box", ReferencePriceFen: 1500, CurrentPriceFen: 1500, Stock: 30, UnitWeightGrams: 600},
		"masks":        {ID: "masks", SupplierID: "freshmart", Name: "Masks", Unit: "box", ReferencePriceFen: 2000, CurrentPriceFen: 2000, Stock: 100, RationPerDay: 2, UnitWeightGrams: 200},
		"other":        {ID: "other", SupplierID: "pharmacy", Name: "Other", Unit: "box", ReferencePriceFen: 100, CurrentPriceFen: 100, Stock: 100, UnitWeightGrams: 10},
		"disinfectant": {ID: "disinfectant", SupplierID: "donations", Name: "84", Unit: "bottle", Stock: 20, UnitWeightGrams: 600},
		"notice":       {ID: "notice", SupplierID: "donations", Name: "告知书", Unit: "sheet", Stock: 100, UnitWeightGrams: 10},
	}
}

func stocks(items map[string]*supply.Item) map[string]int64 {
	out := map[string]int64{}
	for id, it := range items {
		out[id] = it.Stock
	}
	return out
}

func (r fuzzRepo) supplier(id string) (supply.Supplier, error) {
	s, ok := fuzzSuppliers[id]
	if !ok {
		return s, fmt.Errorf("supplier %s: %w", id, supply.ErrNotFound)
	}
	return s, nil
}

func (r fuzzRepo) CreateSupplier(_ context.Context, _ *supply.IdempotencyKey, s supply.Supplier) (supply.Supplier, error) {
	if _, ok := fuzzSuppliers[s.ID]; ok {
		return supply.Supplier{}, fmt.Errorf("supplier %s: %w", s.ID, supply.ErrAlreadyExists)
	}
	return s, nil
}

func (r fuzzRepo) GetSupplier(_ context.Context, id string) (supply.Supplier, error) {
	return r.supplier(id)
}

func (r fuzzRepo) ListSuppliers(context.Context, string) ([]supply.Supplier, error) {
	return nil, nil
}

func (r fuzzRepo) UpsertItem(_ context.Context, _ *supply.IdempotencyKey, it supply.Item, _ bool) (supply.Item, error) {
	s, err := r.supplier(it.SupplierID)
	it.Compound = s.Compound
	return it, err
}

// AdjustStock applies the adjustment to the fixed catalog with the repository's bounds and
// checks that the domain asked with a key and recorded the caller.
func (r fuzzRepo) AdjustStock(_ context.Context, key *supply.IdempotencyKey, a supply.StockAdjustment, _ time.Time) (supply.Item, error) {
	if key == nil || a.Delta == 0 || a.Actor.ID == "" || a.Reason == "" {
		r.t.Fatalf("adjustment %+v with key %v reached the repository", a, key)
	}
	if _, err := r.supplier(a.SupplierID); err != nil {
		return supply.Item{}, err
	}
	it, ok := fuzzItems()[a.ItemID]
	if !ok || it.SupplierID != a.SupplierID {
		return supply.Item{}, supply.ItemNotFound(a.ItemID)
	}
	if err := a.Refusal(it.Stock); err != nil {
		return supply.Item{}, err
	}
	it.Stock += a.Delta
	if it.Stock < 0 || it.Stock > supply.MaxStock {
		r.t.Fatalf("adjusted %s to %d", it.ID, it.Stock)
	}
	return *it, nil
}

func (r fuzzRepo) ListItems(context.Context, string, string, bool) ([]supply.Item, error) {
	return nil, nil
}

func (r fuzzRepo) GetItems(context.Context, []string) ([]supply.Item, error) { return nil, nil }

func (r fuzzRepo) UpdateCredentials(_ context.Context, _ *supply.IdempotencyKey, u supply.CredentialsUpdate) (supply.Supplier, error) {
	s, err := r.supplier(u.SupplierID)
	s.Credentials = u.Credentials
	return s, err
}

func (r fuzzRepo) SetSuspended(_ context.Context, _ *supply.IdempotencyKey, c supply.SuspensionChange, _ time.Time) (supply.Supplier, error) {
	s, err := r.supplier(c.SupplierID)
	s.Suspended, s.SuspensionReason = c.Suspended, c.Reason
	return s, err
}

func (r fuzzRepo) Reserve(_ context.Context, res supply.Reservation, _ time.Time,
	decide func(supply.Supplier, map[string]*supply.Item, map[string]int64) (supply.Parcel, []supply.Transition, error)) (supply.Parcel, error) {
	sup, err := r.supplier(res.SupplierID)
	if err != nil {
		return supply.Parcel{}, err
	}
	items := fuzzItems()
	before := stocks(items)
	used := map[string]int64{"masks": 1}
	if res.CampaignID != "" {
		used = map[string]int64{} // as PostgreSQL's: a campaign's pack reads no rations
	}
	p, ts, err := decide(sup, items, used)
	if err != nil {
		if !maps.Equal(before, stocks(items)) {
			r.t.Fatalf("a refused reservation moved stock: %v -> %v", before, stocks(items))
		}
		return p, err
	}
	if sup.Kind == supply.KindDonations && p.CampaignID == "" {
		r.t.Fatalf("donated stock reserved outside a campaign: %+v", p)
	}
	switch {
	case p.CampaignID == "":
		if p.State != supply.StatePlaced || len(ts) != 1 || ts[0].To != supply.StatePlaced || ts[0].Announce ||
			p.RoundID == "" || !p.ConfirmBy.After(fuzzNow) {
			r.t.Fatalf("reserved %+v with %+v", p, ts)
		}
	default:
		// A campaign's pack: free, confirmed at once and announced once, never to expire.
		if p.State != supply.StateConfirmed || len(ts) != 2 || ts[0].To != supply.StatePlaced || ts[0].Announce ||
			ts[1].From != supply.StatePlaced || ts[1].To != supply.StateConfirmed || !ts[1].Announce ||
			p.TotalFen != 0 || p.RoundID == "" || !p.ConfirmBy.IsZero() {
			r.t.Fatalf("campaign pack %+v with %+v", p, ts)
		}
		for _, l := range p.Lines {
			if l.AmountFen != 0 || l.ConfirmedQuantity != l.Quantity || l.ConfirmedAmountFen != 0 {
				r.t.Fatalf("campaign pack line %+v", l)
			}
		}
	}
	total := int64(0)
	for _, l := range p.Lines {
		it := items[l.ItemID]
		if it.Stock < 0 || it.Stock != before[l.ItemID]-l.Quantity || l.AmountFen > supply.LineAmount(l.Weighed, it.ReferencePriceFen, l.Quantity) {
			r.t.Fatalf("line %+v: stock %d -> %d", l, before[l.ItemID], it.Stock)
		}
		total += l.AmountFen
	}
	if total != p.TotalFen {
		r.t.Fatalf("total %d, lines sum to %d", p.TotalFen, total)
	}
	return p, nil
}

// fuzzParcel is the parcel behind any id: its state (and whether its cutoff has passed) follows
// the id's last byte, so the fuzzer reaches every decision. An id starting with "d" is a
// campaign's free pack of donated stock.
func fuzzParcel(id string) supply.Parcel {
	if strings.HasPrefix(id, "d") {
		return fuzzPack(id)
	}
	states := []supply.State{supply.StatePlaced, supply.StatePlaced, supply.StateConfirmed, supply.StateReady, supply.StateExpired}
	var last byte
	if id != "" {
		last = id[len(id)-1]
	}
	p := supply.Parcel{ID: id, OrderID: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02", SupplierID: "freshmart", Compound: "haixin",
		HouseholdID: "haixin-3-2-302", State: states[int(last)%len(states)], RoundID: "haixin-2026-03-01-pm",
		ConfirmBy: fuzzNow.Add(5 * time.Hour),
		Lines: []supply.Line{
			{ItemID: "rice", Name: "Rice", Quantity: 4, UnitPriceFen: 4000, AmountFen: 16000, UnitWeightGrams: 5000},
			{ItemID: "pork", Name: "Pork", Weighed: true, Quantity: 1000, UnitPriceFen: 2800, AmountFen: 2800, UnitWeightGrams: 1000},
			{ItemID: "eggs", Name: "Eggs", Quantity: 6, UnitPriceFen: 1500, AmountFen: 9000, UnitWeightGrams: 600},
		}}
	if int(last)%len(states) == 1 {
		p.ConfirmBy = fuzzNow.Add(-time.Minute) // placed, but its cutoff has come
	}
	for _, l := range p.Lines {
		p.TotalFen += l.AmountFen
	}
	return p
}

// fuzzPack is a campaign's pack of donated stock, confirmed when reserved (or, by the id's last
// byte, ready or delivered already).
func fuzzPack(id string) supply.Parcel {
	states := []supply.State{supply.StateConfirmed, supply.StateReady, supply.StateDelivered}
	p := supply.Parcel{ID: id, OrderID: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02", SupplierID: "donations", Compound: "haixin",
		HouseholdID: "haixin-3-2-302", State: states[int(id[len(id)-1])%len(states)], RoundID: "haixin-2026-03-01-pm",
		CampaignID: "spring-disinfection", Reason: "free pack of campaign spring-disinfection",
		Lines: []supply.Line{
			{ItemID: "disinfectant", Name: "84", Quantity: 1, ConfirmedQuantity: 1, UnitWeightGrams: 600},
			{ItemID: "notice", Name: "告知书", Quantity: 1, ConfirmedQuantity: 1, UnitWeightGrams: 10},
		}}
	return p
}

func (r fuzzRepo) ChangeParcel(_ context.Context, _ *supply.IdempotencyKey, ref supply.ParcelRef, lockItems bool, change supply.ParcelChange) (supply.Parcel, error) {
	p := fuzzParcel(ref.ID)
	if !ref.Matches(p) {
		return supply.Parcel{}, supply.ParcelNotFound(ref.ID)
	}
	var items map[string]*supply.Item // nil unless asked for, as PostgreSQL's
	if lockItems {
		items = fuzzItems()
	}
	before, held := stocks(items), map[string]int64{}
	for _, l := range p.Lines {
		held[l.ItemID] = l.Quantity
	}
	t, err := change(&p, items)
	after := stocks(items)
	if err != nil || t.To == "" {
		if !maps.Equal(before, after) {
			r.t.Fatalf("a change that was not made moved stock: %v -> %v (%v)", before, after, err)
		}
		return p, err
	}
	if p.State != t.To {
		r.t.Fatalf("parcel is %s after a transition to %s", p.State, t.To)
	}
	switch t.To {
	case supply.StateConfirmed:
		total := int64(0)
		for _, l := range p.Lines {
			it := items[l.ItemID]
			q := l.ConfirmedQuantity
			ok := it.Stock >= 0 && it.Stock+q == before[l.ItemID]+held[l.ItemID] &&
				l.ConfirmedAmountFen <= supply.LineAmount(l.Weighed, it.ReferencePriceFen, q)
			if l.Weighed {
				ok = ok && q*100 >= l.Quantity*(100-supply.WeighTolerancePercent) && q*100 <= l.Quantity*(100+supply.WeighTolerancePercent)
			} else {
				ok = ok && q >= 0 && q <= l.Quantity
			}
			if !ok {
				r.t.Fatalf("confirmed line %+v: stock %d -> %d", l, before[l.ItemID], it.Stock)
			}
			total += l.ConfirmedAmountFen
		}
		if total != p.TotalFen || (total == 0 && p.CampaignID == "") {
			r.t.Fatalf("confirmed total %d, lines sum to %d", p.TotalFen, total)
		}
	case supply.StateRejected, supply.StateCancelled, supply.StateExpired:
		for id, h := range held {
			if after[id] != before[id]+h {
				r.t.Fatalf("%s released %s: stock %d -> %d, held %d", p.ID, id, before[id], after[id], h)
			}
		}
	default:
		if !maps.Equal(before, after) {
			r.t.Fatalf("%s moved stock", t.To)
		}
	}
	return p, nil
}

func (r fuzzRepo) ListParcels(context.Context, string, supply.ParcelFilter) ([]supply.Parcel, error) {
	return nil, nil
}

func (r fuzzRepo) DueForExpiry(context.Context, time.Time, int) ([]string, error) { return nil, nil }

func (r fuzzRepo) PruneKeys(context.Context, time.Time) (int64, error) { return 0, nil }
