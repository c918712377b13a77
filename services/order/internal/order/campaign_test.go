package order

import (
	"testing"
	"time"
)

func TestTargetIncludes(t *testing.T) {
	now := time.Date(2022, 4, 10, 0, 0, 0, 0, time.UTC) // 08:00 in Shanghai
	b3 := Address{Compound: "haixin", Building: "3"}
	occupied := Household{Address: b3, Occupancy: OccupancyOccupied}
	old := Household{Address: b3, Occupancy: OccupancyOccupied, Over80: true}
	quarantined := Household{Address: b3, Occupancy: OccupancyOccupied, QuarantinedUntil: "2022-04-10"}
	wasQuarantined := Household{Address: b3, Occupancy: OccupancyOccupied, QuarantinedUntil: "2022-04-09"}
	unknown := Household{Address: b3, Occupancy: OccupancyUnknown}
	empty := Household{Address: b3, Occupancy: OccupancyEmpty, Over80: true}
	for _, tc := range []struct {
		name string
		t    Target
		h    Household
		want bool
	}{
		{"occupied", Target{}, occupied, true},
		{"empty never", Target{IncludeUnknown: true}, empty, false},
		{"unknown left out", Target{}, unknown, false},
		{"unknown when asked", Target{IncludeUnknown: true}, unknown, true},
		{"building", Target{Buildings: []string{"3"}}, occupied, true},
		{"other building", Target{Buildings: []string{"5", "7"}}, occupied, false},
		{"flag", Target{Flags: []Flag{FlagOver80}}, old, true},
		{"no flag", Target{Flags: []Flag{FlagOver80, FlagLivesAlone}}, occupied, false},
		{"quarantined today", Target{Flags: []Flag{FlagQuarantined}}, quarantined, true},
		{"quarantine over", Target{Flags: []Flag{FlagQuarantined}}, wasQuarantined, false},
	} {
		if got := tc.t.Includes(tc.h, now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRosterStatus(t *testing.T) {
	for _, tc := range []struct {
		e      RosterEntry
		status RosterStatus
		reason string
	}{
		{RosterEntry{}, RosterPacking, ""},
		{RosterEntry{MissedReason: "out of stock"}, RosterMissed, "out of stock"},
		{RosterEntry{Made: true, ParcelState: Placed}, RosterPacking, ""},
		{RosterEntry{Made: true, ParcelState: Confirmed}, RosterPacking, ""},
		{RosterEntry{Made: true, ParcelState: Ready}, RosterOnTheWay, ""},
		{RosterEntry{Made: true, ParcelState: OutForDelivery}, RosterOnTheWay, ""},
		{RosterEntry{Made: true, ParcelState: Delivered}, RosterDelivered, ""},
		{RosterEntry{Made: true, ParcelState: Failed, ParcelReason: "not home"}, RosterFailed, "not home"},
		{RosterEntry{Made: true, ParcelState: Rejected, ParcelReason: "broken"}, RosterMissed, "broken"},
		{RosterEntry{Made: true, ParcelState: Expired}, RosterMissed, "pack expired"},
	} {
		if s, r := tc.e.Status(); s != tc.status || r != tc.reason {
			t.Errorf("%+v: %s %q, want %s %q", tc.e, s, r, tc.status, tc.reason)
		}
	}
}
