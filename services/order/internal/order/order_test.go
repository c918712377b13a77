package order

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		states []State
		want   Status
	}{
		{[]State{Placed}, StatusPlaced},
		{[]State{Placed, Delivered}, StatusPlaced},
		{[]State{Confirmed, Rejected}, StatusInProgress},
		{[]State{Failed, Delivered}, StatusInProgress},
		{[]State{Delivered, Rejected}, StatusDelivered},
		{[]State{Delivered}, StatusDelivered},
		{[]State{Cancelled, Expired, Rejected}, StatusClosed},
		{nil, StatusInProgress},
	}
	for _, tt := range tests {
		o := Order{}
		for _, s := range tt.states {
			o.Parcels = append(o.Parcels, Parcel{State: s})
		}
		if got := o.Status(); got != tt.want {
			t.Errorf("Status(%v) = %s, want %s", tt.states, got, tt.want)
		}
	}
}

func TestTotalExcludesEndedWithoutDelivery(t *testing.T) {
	o := Order{Parcels: []Parcel{{State: Delivered, TotalFen: 100}, {State: Rejected, TotalFen: 50}, {State: Confirmed, TotalFen: 7}}}
	if got := o.TotalFen(); got != 107 {
		t.Errorf("TotalFen = %d, want 107", got)
	}
}

func TestIDs(t *testing.T) {
	if got := HouseholdID(Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}); got != "haixin-3-2-302" {
		t.Errorf("HouseholdID = %q", got)
	}
	if got := HouseholdID(Address{Compound: "haixin", Building: "A", Unit: "1", Room: "101"}); got != "haixin-a-1-101" {
		t.Errorf("HouseholdID lower-cases: %q", got)
	}
	a, b := OrderID("h1", "r1"), OrderID("h1", "r1")
	if a != b || a == OrderID("h2", "r1") || a == OrderID("h1", "r2") {
		t.Errorf("order ids must be deterministic per (household, request): %s %s", a, b)
	}
	if ParcelID(a, "s1", 0) != ParcelID(a, "s1", 0) || ParcelID(a, "s1", 0) == ParcelID(a, "s2", 0) {
		t.Error("parcel ids must be deterministic per (order, supplier)")
	}
	if ParcelID(a, "s1", 1) == ParcelID(a, "s1", 0) || ParcelID(a, "s1", 1) == ParcelID(a, "s1", 2) {
		t.Error("each attempt must have its own parcel ids")
	}
	// Attempt 0 keeps the derivation of before attempts were counted.
	if got, want := ParcelID(a, "s1", 0), uuid.NewSHA1(namespace, []byte(a+"/s1")).String(); got != want {
		t.Errorf("attempt 0 parcel id %s, want %s", got, want)
	}
}

func TestPlaceRequestHash(t *testing.T) {
	base := PlaceRequest{HouseholdID: "h", Lines: []BasketLine{{"a", 1}, {"b", 2}}, Channel: ChannelApp}
	reordered := base
	reordered.Lines = []BasketLine{{"b", 2}, {"a", 1}}
	if !bytes.Equal(base.Hash(), reordered.Hash()) {
		t.Error("line order must not change the hash")
	}
	other := base
	other.Lines = []BasketLine{{"a", 1}, {"b", 3}}
	if bytes.Equal(base.Hash(), other.Hash()) {
		t.Error("a different quantity must change the hash")
	}
}
