package dispatch

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // rounds follow Asia/Shanghai even where the host has no zoneinfo
)

// DateLayout is how round dates are written.
const DateLayout = "2006-01-02"

// Slot is one round of each day, closing at Cutoff after local midnight.
type Slot struct {
	Name   string
	Cutoff time.Duration
}

// Schedule is when a compound's rounds close: the same slots every day, in one time zone.
type Schedule struct {
	Loc *time.Location
	// In cutoff order.
	Slots []Slot
}

// NewSchedule is the two-round day: "am" closing at am and "pm" at pm (both "HH:MM",
// Asia/Shanghai).
func NewSchedule(am, pm string) (Schedule, error) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return Schedule{}, fmt.Errorf("load Asia/Shanghai: %w", err)
	}
	a, err := parseClock(am)
	if err != nil {
		return Schedule{}, fmt.Errorf("am cutoff: %w", err)
	}
	p, err := parseClock(pm)
	if err != nil {
		return Schedule{}, fmt.Errorf("pm cutoff: %w", err)
	}
	if a >= p {
		return Schedule{}, fmt.Errorf("am cutoff %s is not before pm cutoff %s", am, pm)
	}
	return Schedule{Loc: loc, Slots: []Slot{{"am", a}, {"pm", p}}}, nil
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Date is the local date of t.
func (s Schedule) Date(t time.Time) string { return t.In(s.Loc).Format(DateLayout) }

// NextDate is the day after date.
func (s Schedule) NextDate(date string) (string, error) {
	d, err := time.ParseInLocation(DateLayout, date, s.Loc)
	if err != nil {
		return "", fmt.Errorf("%w: date %q is not YYYY-MM-DD", ErrInvalid, date)
	}
	return d.AddDate(0, 0, 1).Format(DateLayout), nil
}

// Rounds are a compound's open rounds of one day, as they are when first created.
func (s Schedule) Rounds(compound, date string) ([]Round, error) {
	d, err := time.ParseInLocation(DateLayout, date, s.Loc)
	if err != nil {
		return nil, fmt.Errorf("%w: date %q is not YYYY-MM-DD", ErrInvalid, date)
	}
	out := make([]Round, len(s.Slots))
	for i, slot := range s.Slots {
		// time.Date, not d.Add: a cutoff is a wall-clock time even on a day with a DST change.
		h, m := int(slot.Cutoff/time.Hour), int(slot.Cutoff%time.Hour/time.Minute)
		cutoff := time.Date(d.Year(), d.Month(), d.Day(), h, m, 0, 0, s.Loc).UTC()
		out[i] = Round{ID: RoundID(compound, date, slot.Name), Compound: compound, Date: date, Slot: slot.Name,
			Cutoff: cutoff, State: RoundOpen}
	}
	return out, nil
}

// RoundID names a round: <compound>-<YYYY-MM-DD>-<slot>, e.g. haixin-2026-02-03-am.
func RoundID(compound, date, slot string) string { return compound + "-" + date + "-" + slot }

var roundIDRE = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)-(\d{4}-\d{2}-\d{2})-([a-z]+)$`)

// ParseRoundID splits a round id into compound, date and slot.
func ParseRoundID(id string) (compound, date, slot string, err error) {
	m := roundIDRE.FindStringSubmatch(id)
	if m == nil {
		return "", "", "", fmt.Errorf("%w: round id %q is not <compound>-<YYYY-MM-DD>-<slot>", ErrInvalid, id)
	}
	if _, err := time.Parse(DateLayout, m[2]); err != nil {
		return "", "", "", fmt.Errorf("%w: round id %q has no valid date", ErrInvalid, id)
	}
	if m[3] != "am" && m[3] != "pm" {
		return "", "", "", fmt.Errorf("%w: round id %q: slot is %q, want am or pm", ErrInvalid, id, m[3])
	}
	return strings.TrimSuffix(m[1], "-"), m[2], m[3], nil
}
