package order

import (
	"errors"
	"testing"
	"time"
)

// TestCanMove checks the state machine against SPEC.md's table for every (from, to) pair, so an
// accidental extra or missing edge fails here.
func TestCanMove(t *testing.T) {
	legal := map[[2]State]bool{
		{Placed, Confirmed}: true, {Placed, Rejected}: true, {Placed, Cancelled}: true, {Placed, Expired}: true,
		{Confirmed, Ready}:          true,
		{Ready, AtGate}:             true,
		{AtGate, Assigned}:          true,
		{Assigned, OutForDelivery}:  true,
		{OutForDelivery, Delivered}: true, {OutForDelivery, Failed}: true,
		{Failed, Assigned}: true, {Failed, Cancelled}: true,
	}
	for _, from := range append(States, "", "BOGUS") {
		for _, to := range append(States, "", "BOGUS") {
			want := legal[[2]State{from, to}]
			if got := CanMove(from, to); got != want {
				t.Errorf("CanMove(%q, %q) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestEnded(t *testing.T) {
	ended := map[State]bool{Rejected: true, Cancelled: true, Expired: true, Delivered: true}
	for _, s := range States {
		if got := s.Ended(); got != ended[s] {
			t.Errorf("%s.Ended() = %v, want %v", s, got, ended[s])
		}
	}
	if State("BOGUS").Ended() {
		t.Error("an unknown state must not count as ended")
	}
}

func TestApply(t *testing.T) {
	at := time.Date(2022, 4, 10, 8, 0, 0, 0, time.UTC)
	lines := func() []Line {
		return []Line{
			{ItemID: "rice", Quantity: 2, UnitPriceFen: 3000, AmountFen: 6000, UnitWeightGrams: 5000},
			{ItemID: "pork", Weighed: true, Quantity: 500, UnitPriceFen: 3600, AmountFen: 1800, UnitWeightGrams: 1000},
		}
	}
	first := Assignment{RoundID: "r1", RouteID: "route-1", CourierID: "c1"}
	tests := []struct {
		name      string
		from      State
		assigned  Assignment // the parcel's assignment before the change
		change    Change
		wantState State
		changed   bool
		wantErr   error
		check     func(t *testing.T, p Parcel)
	}{
		{name: "legal move records reason", from: OutForDelivery, change: Change{To: Failed, Reason: "nobody home"},
			wantState: Failed, changed: true, check: func(t *testing.T, p Parcel) {
				if p.Reason != "nobody home" {
					t.Errorf("reason = %q", p.Reason)
				}
			}},
		{name: "same state is a no-op", from: Assigned, change: Change{To: Assigned}, wantState: Assigned},
		{name: "illegal move refused", from: Placed, change: Change{To: Ready}, wantState: Placed, wantErr: ErrIllegalTransition},
		{name: "failed goes to the next round", from: Failed, assigned: first, wantState: Assigned, changed: true,
			change: Change{To: Assigned, RoundID: "r2", RouteID: "route-9", CourierID: "c2"},
			check: func(t *testing.T, p Parcel) {
				if p.Assignment != (Assignment{RoundID: "r2", RouteID: "route-9", CourierID: "c2"}) {
					t.Errorf("assignment %+v", p.Assignment)
				}
			}},
		{name: "first assignment", from: AtGate, wantState: Assigned, changed: true,
			change: Change{To: Assigned, RoundID: "r1", RouteID: "route-1", CourierID: "c1"},
			check: func(t *testing.T, p Parcel) {
				if p.Assignment != first {
					t.Errorf("assignment %+v", p.Assignment)
				}
			}},
		{name: "moved to another route is recorded", from: Assigned, assigned: first, wantState: Assigned, changed: true,
			change: Change{To: Assigned, RoundID: "r1", RouteID: "route-2", CourierID: "c2", Reason: "courier c1 off sick"},
			check: func(t *testing.T, p Parcel) {
				if p.Assignment != (Assignment{RoundID: "r1", RouteID: "route-2", CourierID: "c2"}) || p.Reason != "" {
					t.Errorf("assignment %+v reason %q", p.Assignment, p.Reason)
				}
			}},
		{name: "same route, another courier is recorded", from: Assigned, assigned: first, wantState: Assigned, changed: true,
			change: Change{To: Assigned, RoundID: "r1", RouteID: "route-1", CourierID: "c3"}},
		{name: "the same assignment again is a no-op", from: Assigned, assigned: first, wantState: Assigned,
			change: Change{To: Assigned, RoundID: "r1", RouteID: "route-1", CourierID: "c1"}},
		{name: "an assignment naming no route or courier is a no-op", from: Assigned, assigned: first, wantState: Assigned,
			change: Change{To: Assigned, RoundID: "r2"}},
		{name: "out for delivery is not reassigned", from: OutForDelivery, assigned: first, wantState: OutForDelivery,
			change: Change{To: Assigned, RoundID: "r1", RouteID: "route-2", CourierID: "c2"}, wantErr: ErrIllegalTransition},
		{name: "confirm with actual weight", from: Placed, wantState: Confirmed, changed: true,
			change: Change{To: Confirmed, ConfirmedTotalFen: 7980, ConfirmedLines: []ConfirmedLine{
				{ItemID: "rice", Quantity: 2, AmountFen: 6000}, {ItemID: "pork", Quantity: 550, AmountFen: 1980}}},
			check: func(t *testing.T, p Parcel) {
				if p.TotalFen != 7980 || p.WeightGrams != 10550 {
					t.Errorf("total %d weight %d, want 7980 and 10550", p.TotalFen, p.WeightGrams)
				}
				if p.Lines[1].ConfirmedQuantity != 550 || p.Lines[1].ConfirmedAmountFen != 1980 {
					t.Errorf("pork line %+v", p.Lines[1])
				}
			}},
		{name: "partial confirmation leaves other lines at zero", from: Placed, wantState: Confirmed, changed: true,
			change: Change{To: Confirmed, ConfirmedTotalFen: 6000, ConfirmedLines: []ConfirmedLine{{ItemID: "rice", Quantity: 2, AmountFen: 6000}}},
			check: func(t *testing.T, p Parcel) {
				if p.Lines[1].ConfirmedQuantity != 0 || p.TotalFen != 6000 || p.WeightGrams != 10000 {
					t.Errorf("parcel %+v", p)
				}
			}},
		{name: "confirmation without lines confirms as ordered", from: Placed, wantState: Confirmed, changed: true,
			change: Change{To: Confirmed},
			check: func(t *testing.T, p Parcel) {
				if p.TotalFen != 7800 || p.Lines[0].ConfirmedQuantity != 2 || p.Lines[1].ConfirmedAmountFen != 1800 {
					t.Errorf("parcel %+v", p)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Parcel{ID: "p1", State: tt.from, Lines: lines(), Assignment: tt.assigned}
			p.Totals()
			tt.change.At = at
			tr, changed, err := p.Apply(tt.change)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if changed != tt.changed || p.State != tt.wantState {
				t.Fatalf("changed %v state %s, want %v %s", changed, p.State, tt.changed, tt.wantState)
			}
			if changed && (tr.From != tt.from || tr.To != tt.wantState || !tr.At.Equal(at) || tr.ParcelID != "p1") {
				t.Errorf("transition %+v", tr)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestTotals(t *testing.T) {
	p := Parcel{Lines: []Line{
		{Quantity: 3, AmountFen: 900, UnitWeightGrams: 250},
		{Weighed: true, Quantity: 1200, AmountFen: 2400, UnitWeightGrams: 1000},
	}}
	p.Totals()
	if p.TotalFen != 3300 || p.WeightGrams != 1950 {
		t.Errorf("total %d weight %d, want 3300 and 1950", p.TotalFen, p.WeightGrams)
	}
}
