package order

import (
	"slices"
	"testing"
	"time"
)

func TestHouseholdDerivedFlags(t *testing.T) {
	// 2022-04-20 ends at 16:00 UTC, midnight in Shanghai.
	lastMinute := time.Date(2022, 4, 20, 15, 59, 0, 0, time.UTC)
	nextDay := time.Date(2022, 4, 20, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		name                        string
		h                           Household
		at                          time.Time
		quarantined, priority, occd bool
	}{
		{"nothing recorded", Household{Occupancy: OccupancyUnknown}, lastMinute, false, false, false},
		{"occupied", Household{Occupancy: OccupancyOccupied}, lastMinute, false, false, true},
		{"empty", Household{Occupancy: OccupancyEmpty}, lastMinute, false, false, false},
		{"over 80", Household{Over80: true}, lastMinute, false, true, false},
		{"lives alone", Household{LivesAlone: true}, lastMinute, false, true, false},
		{"chronically ill", Household{ChronicallyIll: true}, lastMinute, false, true, false},
		{"migrated priority", Household{UnstatedPriority: true}, lastMinute, false, true, false},
		{"last day of quarantine", Household{QuarantinedUntil: "2022-04-20"}, lastMinute, true, true, false},
		{"quarantine over", Household{QuarantinedUntil: "2022-04-20"}, nextDay, false, false, false},
		{"quarantine ahead", Household{QuarantinedUntil: "2022-05-01"}, nextDay, true, true, false},
		{"over 80 after quarantine", Household{Over80: true, QuarantinedUntil: "2022-04-20"}, nextDay, false, true, false},
	}
	for _, tt := range tests {
		if got := tt.h.Quarantined(tt.at); got != tt.quarantined {
			t.Errorf("%s: Quarantined = %v", tt.name, got)
		}
		if got := tt.h.Priority(tt.at); got != tt.priority {
			t.Errorf("%s: Priority = %v", tt.name, got)
		}
		if got := tt.h.Occupied(); got != tt.occd {
			t.Errorf("%s: Occupied = %v", tt.name, got)
		}
	}
}

func TestCheckHousehold(t *testing.T) {
	valid := func() Household {
		return Household{Address: Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}, Occupancy: OccupancyUnknown}
	}
	tests := []struct {
		name   string
		change func(*Household)
		fields []string
	}{
		{"valid", func(*Household) {}, nil},
		{"building with a dash", func(h *Household) { h.Address.Building = "3-1" }, []string{"address.building"}},
		{"chinese building", func(h *Household) { h.Address.Building = "三号楼" }, nil},
		{"no unit", func(h *Household) { h.Address.Unit = "" }, []string{"address.unit"}},
		{"long room", func(h *Household) { h.Address.Room = "12345678901234567" }, []string{"address.room"}},
		{"floor 0", func(h *Household) { h.Address.Floor = 0 }, []string{"address.floor"}},
		{"floor 61", func(h *Household) { h.Address.Floor = 61 }, []string{"address.floor"}},
		{"negative residents", func(h *Household) { h.Residents = -1 }, []string{"residents"}},
		{"100 residents", func(h *Household) { h.Residents = 100 }, []string{"residents"}},
		{"no occupancy", func(h *Household) { h.Occupancy = "" }, []string{"occupancy"}},
		{"mobile", func(h *Household) { h.Phone = "13800138000" }, nil},
		{"international", func(h *Household) { h.Phone = "+86 138-0013-8000" }, nil},
		{"extension", func(h *Household) { h.Phone = "021 5555 1234-802" }, nil},
		{"letters", func(h *Household) { h.Phone = "138OO138000" }, []string{"phone"}},
		{"spreadsheet notation", func(h *Household) { h.Phone = "1.38001E+10" }, []string{"phone"}},
		{"two digits", func(h *Household) { h.Phone = "12" }, []string{"phone"}},
		{"21 digits", func(h *Household) { h.Phone = "123456789012345678901" }, []string{"phone"}},
		{"too long", func(h *Household) { h.Phone = "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7" }, []string{"phone"}},
		{"date", func(h *Household) { h.QuarantinedUntil = "2022-04-20" }, nil},
		{"no such day", func(h *Household) { h.QuarantinedUntil = "2022-02-30" }, []string{"quarantined_until"}},
		{"slashes", func(h *Household) { h.QuarantinedUntil = "2022/04/20" }, []string{"quarantined_until"}},
		{"unpadded", func(h *Household) { h.QuarantinedUntil = "2022-4-20" }, []string{"quarantined_until"}},
		{"everything wrong", func(h *Household) { *h = Household{Phone: "x", QuarantinedUntil: "x", Residents: -1} },
			[]string{"address.building", "address.unit", "address.room", "address.floor", "residents", "occupancy", "phone", "quarantined_until"}},
	}
	for _, tt := range tests {
		h := valid()
		tt.change(&h)
		var got []string
		for _, fe := range CheckHousehold(h) {
			got = append(got, fe.Field)
		}
		if !slices.Equal(got, tt.fields) {
			t.Errorf("%s: fields %v, want %v", tt.name, got, tt.fields)
		}
	}
}
