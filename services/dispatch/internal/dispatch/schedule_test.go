package dispatch

import (
	"errors"
	"testing"
	"time"
)

func TestNewScheduleRefusesBadCutoffs(t *testing.T) {
	for _, tc := range []struct{ am, pm string }{
		{"nine", "15:00"}, {"09:00", "25:00"}, {"15:00", "09:00"}, {"09:00", "09:00"}, {"", "15:00"},
	} {
		if _, err := NewSchedule(tc.am, tc.pm); err == nil {
			t.Errorf("NewSchedule(%q, %q) accepted", tc.am, tc.pm)
		}
	}
}

func TestScheduleRounds(t *testing.T) {
	s, err := NewSchedule("09:00", "15:30")
	if err != nil {
		t.Fatal(err)
	}
	rounds, err := s.Rounds("haixin", "2026-03-02")
	if err != nil {
		t.Fatal(err)
	}
	want := []Round{
		{ID: "haixin-2026-03-02-am", Compound: "haixin", Date: "2026-03-02", Slot: "am", State: RoundOpen,
			Cutoff: time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)},
		{ID: "haixin-2026-03-02-pm", Compound: "haixin", Date: "2026-03-02", Slot: "pm", State: RoundOpen,
			Cutoff: time.Date(2026, 3, 2, 7, 30, 0, 0, time.UTC)},
	}
	for i := range want {
		if rounds[i] != want[i] {
			t.Errorf("round %d = %+v, want %+v", i, rounds[i], want[i])
		}
	}
	if _, err := s.Rounds("haixin", "2026-02-30"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Rounds of 2026-02-30: %v", err)
	}

	// The local date, not the UTC one: 23:30 UTC is already the next morning in Shanghai.
	if d := s.Date(time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)); d != "2026-03-02" {
		t.Errorf("Date = %s, want 2026-03-02", d)
	}
	if d, _ := s.NextDate("2026-02-28"); d != "2026-03-01" {
		t.Errorf("NextDate(2026-02-28) = %s", d)
	}
	if d, _ := s.NextDate("2026-12-31"); d != "2027-01-01" {
		t.Errorf("NextDate(2026-12-31) = %s", d)
	}
}

func TestParseRoundID(t *testing.T) {
	tests := []struct {
		id                   string
		compound, date, slot string
		ok                   bool
	}{
		{"haixin-2026-03-02-am", "haixin", "2026-03-02", "am", true},
		{"hai-xin-2-2026-12-31-pm", "hai-xin-2", "2026-12-31", "pm", true},
		{"haixin-2026-03-02-noon", "", "", "", false},
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
		if tc.ok && RoundID(c, d, s) != tc.id {
			t.Errorf("RoundID does not round-trip %q", tc.id)
		}
	}
}
