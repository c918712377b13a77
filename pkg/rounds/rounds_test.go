package rounds

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, Shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct{ now, want string }{
		{"2026-11-28 00:00", "haixin-2026-11-28-am"},
		{"2026-11-28 08:59", "haixin-2026-11-28-am"},
		{"2026-11-28 09:00", "haixin-2026-11-28-pm"}, // at the cutoff the round has closed
		{"2026-11-28 14:59", "haixin-2026-11-28-pm"},
		{"2026-11-28 15:00", "haixin-2026-11-29-am"},
		{"2026-12-31 23:59", "haixin-2027-01-01-am"},
	} {
		r := Default.Next("haixin", at(tc.now))
		if r.ID != tc.want {
			t.Errorf("Next(%s) = %s, want %s", tc.now, r.ID, tc.want)
		}
		if !r.Cutoff.After(at(tc.now)) {
			t.Errorf("Next(%s): cutoff %s not after now", tc.now, r.Cutoff)
		}
	}
	// 09:00 Shanghai is 01:00 UTC.
	if r := Default.Next("haixin", at("2026-11-28 08:00")); r.Cutoff != time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC) {
		t.Errorf("cutoff %s, want 01:00 UTC", r.Cutoff)
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		s    Schedule
		want string
	}{
		"default":  {Default, ""},
		"empty":    {Schedule{}, "a compound needs at least one round a day"},
		"bad name": {Schedule{{Name: "AM", Cutoff: time.Hour, Departs: time.Hour}}, `slots[0].slot: "AM" must be 1-8 lower-case letters or digits, starting with a letter`},
		"twice":    {Schedule{{Name: "a", Cutoff: time.Hour, Departs: time.Hour}, {Name: "a", Cutoff: 2 * time.Hour, Departs: 2 * time.Hour}}, `slots[1].slot: "a" appears twice`},
		"order":    {Schedule{{Name: "a", Cutoff: 2 * time.Hour, Departs: 2 * time.Hour}, {Name: "b", Cutoff: time.Hour, Departs: time.Hour}}, "slots[1].cutoff: must be after the previous slot's cutoff"},
		"departs":  {Schedule{{Name: "a", Cutoff: 2 * time.Hour, Departs: time.Hour}}, "slots[0].departs: must not be before the cutoff"},
	} {
		err := tc.s.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

func TestClock(t *testing.T) {
	d, err := ParseClock("09:30")
	if err != nil || d != 9*time.Hour+30*time.Minute || FormatClock(d) != "09:30" {
		t.Fatalf("ParseClock(09:30) = %v, %v", d, err)
	}
	if _, err := ParseClock("9h"); err == nil {
		t.Fatal("9h accepted")
	}
}
