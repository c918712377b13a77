package dispatch

import (
	"errors"
	"testing"
)

func TestParseRoundID(t *testing.T) {
	tests := []struct {
		id                   string
		compound, date, slot string
		ok                   bool
	}{
		{"haixin-2026-03-02-am", "haixin", "2026-03-02", "am", true},
		{"hai-xin-2-2026-12-31-pm", "hai-xin-2", "2026-12-31", "pm", true},
		{"haixin-2026-03-02-noon", "haixin", "2026-03-02", "noon", true},
		{"haixin-2026-03-02-r2", "haixin", "2026-03-02", "r2", true},
		{"haixin-2026-03-02-Noon", "", "", "", false},
		{"haixin-2026-03-02-evenings9", "", "", "", false}, // slot names are at most 8 characters
		{"haixin-2026-13-02-am", "", "", "", false},
		{"2026-03-02-am", "", "", "", false},
		{"Haixin-2026-03-02-am", "", "", "", false},
		{"haixin-20260302-am", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, tc := range tests {
		c, d, s, err := ParseRoundID(tc.id)
		if (err == nil) != tc.ok || c != tc.compound || d != tc.date || s != tc.slot {
			t.Errorf("ParseRoundID(%q) = %q %q %q %v", tc.id, c, d, s, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRoundID(%q) error %v is not ErrInvalid", tc.id, err)
		}
	}
}

func TestShortageReason(t *testing.T) {
	for _, tc := range []struct {
		in   []Shortage
		want string
	}{
		{nil, ""},
		{[]Shortage{{ItemID: "fm-eggs-30", Missing: 1}}, "missing 1 × fm-eggs-30"},
		{[]Shortage{{ItemID: "fm-eggs-30", Missing: 1, Damaged: 2, Note: "box wet"}}, "missing 1 × fm-eggs-30, damaged 2 × fm-eggs-30 (box wet)"},
		{[]Shortage{{ItemID: "fm-eggs-30", Missing: 1}, {ItemID: "fm-milk-1l", Damaged: 2, Note: "carton crushed"}},
			"missing 1 × fm-eggs-30; damaged 2 × fm-milk-1l (carton crushed)"},
	} {
		if got := ShortageReason(tc.in); got != tc.want {
			t.Errorf("ShortageReason(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCheckShortages(t *testing.T) {
	fetched := map[string]fetched{
		"p1": {parcel: OrderParcel{ID: "p1", Lines: []OrderLine{{ItemID: "eggs", Quantity: 2}}}},
		"p2": {problem: "parcel not found"},
	}
	for _, tc := range []struct {
		in    []Shortage
		field string
	}{
		{[]Shortage{{ParcelID: "p1", ItemID: "eggs", Missing: 1, Damaged: 1}}, ""},
		{[]Shortage{{ParcelID: "p2", ItemID: "anything", Missing: 9}}, ""}, // not checked in by this request anyway
		{[]Shortage{{ParcelID: "p1", ItemID: "eggs", Missing: 1}, {ParcelID: "p1", ItemID: "rice", Missing: 1}}, "shortages[1].item_id"},
		{[]Shortage{{ParcelID: "p1", ItemID: "eggs", Missing: 2, Damaged: 1}}, "shortages[0].missing_quantity"},
	} {
		err := checkShortages(tc.in, fetched)
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%v: %v", tc.in, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalid)):
			t.Errorf("%v: %v, want a field error on %s", tc.in, err, tc.field)
		}
	}
}
