package views

import (
	"reflect"
	"testing"
)

func TestProgressAdd(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  Progress
	}{
		{"placed", Progress{Parcels: 2}},
		{"at_gate", Progress{Parcels: 2}},
		{"assigned", Progress{Parcels: 2, Assigned: 2}},
		{"out_for_delivery", Progress{Parcels: 2, OutForDelivery: 2}},
		{"delivered", Progress{Parcels: 2, Delivered: 2}},
		{"failed", Progress{Parcels: 2, Failed: 2}},
		{"cancelled", Progress{Parcels: 2}},
		{"", Progress{Parcels: 2}},
	} {
		var p Progress
		p.Add(tc.state, 2)
		if p != tc.want {
			t.Errorf("Add(%q, 2) = %+v, want %+v", tc.state, p, tc.want)
		}
	}
}

func TestTally(t *testing.T) {
	got := Tally("haixin-2022-04-10-am", []Count{
		{Building: "10", CourierID: "c2", State: "delivered", Parcels: 3},
		{Building: "2", CourierID: "c1", State: "assigned", Parcels: 1},
		{Building: "2", CourierID: "c2", State: "out_for_delivery", Parcels: 2},
		{Building: "north", CourierID: "c1", State: "failed", Parcels: 1},
		{Building: "2", CourierID: "c1", State: "at_gate", Parcels: 1},
	})
	want := RoundProgress{
		RoundID: "haixin-2022-04-10-am",
		Total:   Progress{Parcels: 8, Assigned: 1, OutForDelivery: 2, Delivered: 3, Failed: 1},
		Buildings: []Share{
			{"2", Progress{Parcels: 4, Assigned: 1, OutForDelivery: 2}},
			{"10", Progress{Parcels: 3, Delivered: 3}},
			{"north", Progress{Parcels: 1, Failed: 1}},
		},
		Couriers: []Share{
			{"c1", Progress{Parcels: 3, Assigned: 1, Failed: 1}},
			{"c2", Progress{Parcels: 5, OutForDelivery: 2, Delivered: 3}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Tally =\n %+v\nwant\n %+v", got, want)
	}
	if empty := Tally("r", nil); empty.Total != (Progress{}) || len(empty.Buildings) != 0 || len(empty.Couriers) != 0 {
		t.Errorf("Tally of nothing = %+v", empty)
	}
}

func TestCompareBuildings(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"2", "10", -1},
		{"10", "2", 1},
		{"3", "3", 0},
		{"9", "east", -1},
		{"east", "9", 1},
		{"east", "west", -1},
		{"", "1", 1},
	} {
		if got := compareBuildings(tc.a, tc.b); got != tc.want {
			t.Errorf("compareBuildings(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
