// Package rounds is the one place that knows when delivery rounds close: each compound has the
// same slots every day ("am" closing at 09:00 and "pm" at 15:00 unless its dispatcher set
// others), in Asia/Shanghai time. Dispatch uses it to put parcels into rounds; the supplier uses
// it to know by when a reservation must be confirmed.
package rounds

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Shanghai is Asia/Shanghai. China has kept UTC+8 without daylight saving since 1991, so a fixed
// zone is exact and needs no zoneinfo on the host (the service images have none).
var Shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// DateLayout is how round dates are written.
const DateLayout = "2006-01-02"

// Slot is one round of each day.
type Slot struct {
	// Name is short and lower case ("am"); it is part of round ids.
	Name string
	// Cutoff and Departs are times of day, Asia/Shanghai: parcels at the gate by Cutoff go into
	// the round; couriers set out at Departs.
	Cutoff, Departs time.Duration
}

// Schedule is a compound's slots in the order of the day.
type Schedule []Slot

// Default is two rounds a day: morning and afternoon.
var Default = Schedule{{Name: "am", Cutoff: 9 * time.Hour, Departs: 9*time.Hour + 30*time.Minute},
	{Name: "pm", Cutoff: 15 * time.Hour, Departs: 15*time.Hour + 30*time.Minute}}

var slotName = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// Validate checks a schedule: at least one slot, valid distinct names, cutoffs strictly
// increasing within the day, each departure at or after its cutoff.
func (s Schedule) Validate() error {
	if len(s) == 0 {
		return errors.New("a compound needs at least one round a day")
	}
	seen := map[string]bool{}
	for i, sl := range s {
		if !slotName.MatchString(sl.Name) {
			return fmt.Errorf("slots[%d].slot: %q must be 1-8 lower-case letters or digits, starting with a letter", i, sl.Name)
		}
		if seen[sl.Name] {
			return fmt.Errorf("slots[%d].slot: %q appears twice", i, sl.Name)
		}
		seen[sl.Name] = true
		if sl.Cutoff < 0 || sl.Cutoff >= 24*time.Hour {
			return fmt.Errorf("slots[%d].cutoff: must be within the day", i)
		}
		if i > 0 && sl.Cutoff <= s[i-1].Cutoff {
			return fmt.Errorf("slots[%d].cutoff: must be after the previous slot's cutoff", i)
		}
		if sl.Departs < sl.Cutoff {
			return fmt.Errorf("slots[%d].departs: must not be before the cutoff", i)
		}
	}
	return nil
}

// ParseClock reads "HH:MM".
func ParseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// FormatClock writes "HH:MM".
func FormatClock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// Round is one round of one day.
type Round struct {
	ID, Compound, Date, Slot string
	Cutoff, Departs          time.Time // UTC
}

// ID is a round's id: <compound>-<YYYY-MM-DD>-<slot>.
func ID(compound, date, slot string) string { return compound + "-" + date + "-" + slot }

// Date is the Asia/Shanghai date of t.
func Date(t time.Time) string { return t.In(Shanghai).Format(DateLayout) }

// On returns the compound's rounds of one date (YYYY-MM-DD).
func (s Schedule) On(compound, date string) ([]Round, error) {
	d, err := time.ParseInLocation(DateLayout, date, Shanghai)
	if err != nil {
		return nil, fmt.Errorf("date %q is not YYYY-MM-DD", date)
	}
	out := make([]Round, len(s))
	for i, sl := range s {
		out[i] = Round{ID: ID(compound, date, sl.Name), Compound: compound, Date: date, Slot: sl.Name,
			Cutoff: d.Add(sl.Cutoff).UTC(), Departs: d.Add(sl.Departs).UTC()}
	}
	return out, nil
}

// Next is the first round whose cutoff is strictly after t.
func (s Schedule) Next(compound string, t time.Time) Round {
	day := t.In(Shanghai)
	for range 2 { // today, else tomorrow's first round
		rs, _ := s.On(compound, day.Format(DateLayout))
		for _, r := range rs {
			if r.Cutoff.After(t) {
				return r
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	panic("rounds: empty schedule") // Validate rejects it; a caller skipped Validate
}
