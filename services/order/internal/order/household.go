package order

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

// Occupancy says whether anyone lives in a flat.
type Occupancy string

// Occupancies. UNKNOWN is what a household is until a worker has checked.
const (
	OccupancyUnknown  Occupancy = "UNKNOWN"
	OccupancyOccupied Occupancy = "OCCUPIED"
	OccupancyEmpty    Occupancy = "EMPTY"
)

// Valid reports whether o is a known occupancy.
func (o Occupancy) Valid() bool {
	return o == OccupancyUnknown || o == OccupancyOccupied || o == OccupancyEmpty
}

// Household is one home of the roster. Whether it is a priority household, under quarantine or
// occupied is derived from what the worker recorded (methods below), never stored on its own, so
// a quarantine ends by itself on its last day.
type Household struct {
	ID        string
	Address   Address
	Residents int
	Occupancy Occupancy
	// Phone is optional: digits, spaces, '+' and '-'.
	Phone          string
	Over80         bool
	LivesAlone     bool
	ChronicallyIll bool
	// QuarantinedUntil is the last day of quarantine, YYYY-MM-DD in Asia/Shanghai; "" when none.
	QuarantinedUntil string
	// UnstatedPriority marks a household that was a priority household before the roster recorded
	// why (rows migrated from the old single flag). It keeps the household served first until a
	// write states its reasons; see UpsertHousehold and the roster import.
	UnstatedPriority bool
}

// Occupied reports whether someone lives there.
func (h Household) Occupied() bool { return h.Occupancy == OccupancyOccupied }

// Quarantined reports whether the household is under quarantine at now: its last day of
// quarantine is today or later, in Asia/Shanghai.
func (h Household) Quarantined(now time.Time) bool {
	// Validated dates are YYYY-MM-DD with a four-digit year, so they compare as strings.
	return h.QuarantinedUntil != "" && h.QuarantinedUntil >= rounds.Date(now)
}

// Priority reports whether the household is served first within a round at now (SPEC.md: over
// 80, living alone, chronically ill or quarantined).
func (h Household) Priority(now time.Time) bool {
	return h.Over80 || h.LivesAlone || h.ChronicallyIll || h.UnstatedPriority || h.Quarantined(now)
}

// HouseholdID is the id of the household at a: <compound>-<building>-<unit>-<room>, lower case.
func HouseholdID(a Address) string {
	return strings.ToLower(strings.Join([]string{a.Compound, a.Building, a.Unit, a.Room}, "-"))
}

// HouseholdHash identifies an upsert.
func HouseholdHash(h Household) []byte {
	a := h.Address
	return hash("household", h.ID, a.Compound, a.Building, a.Unit, fmt.Sprint(a.Floor), a.Room, fmt.Sprint(h.Residents),
		string(h.Occupancy), h.Phone, fmt.Sprint(h.Over80, h.LivesAlone, h.ChronicallyIll), h.QuarantinedUntil)
}

// Limits of a household's fields.
const (
	MaxFloor       = 60
	MaxResidents   = 99
	maxPhone       = 32
	minPhoneDigits = 3
	maxPhoneDigits = 20
)

var (
	// Building, unit and room become parts of a household id joined by "-", so they are plain
	// letters and digits.
	addressPartRE = regexp.MustCompile(`^[\p{L}\p{N}]{1,16}$`)
	phoneRE       = regexp.MustCompile(`^[0-9+ -]*$`)
)

// CheckHousehold returns what is wrong with h's recorded fields (the compound and id are the
// caller's to check), each naming its field: address.building, address.unit, address.room,
// address.floor, residents, occupancy, phone or quarantined_until. The gRPC edge and the roster
// import share these rules so a household is valid the same way whichever way it came in.
func CheckHousehold(h Household) []FieldError {
	var out []FieldError
	add := func(field, reason string) { out = append(out, FieldError{Field: field, Reason: reason}) }
	a := h.Address
	for _, part := range []struct{ name, value string }{{"building", a.Building}, {"unit", a.Unit}, {"room", a.Room}} {
		if reason := checkAddressPart(part.value); reason != "" {
			add("address."+part.name, reason)
		}
	}
	if a.Floor < 1 || a.Floor > MaxFloor {
		add("address.floor", fmt.Sprintf("must be 1 to %d", MaxFloor))
	}
	if h.Residents < 0 || h.Residents > MaxResidents {
		add("residents", fmt.Sprintf("must be 0 to %d", MaxResidents))
	}
	if !h.Occupancy.Valid() {
		add("occupancy", "must be OCCUPIED, EMPTY or UNKNOWN")
	}
	if reason := checkPhone(h.Phone); reason != "" {
		add("phone", reason)
	}
	if h.QuarantinedUntil != "" && !ValidDate(h.QuarantinedUntil) {
		add("quarantined_until", "must be a date YYYY-MM-DD, or empty")
	}
	return out
}

func checkAddressPart(s string) string {
	switch {
	case s == "":
		return "is required"
	case !addressPartRE.MatchString(s):
		return "must be 1 to 16 letters or digits"
	}
	return ""
}

// checkPhone accepts no phone, or a number as people write it: digits with spaces, '+' and '-'.
func checkPhone(s string) string {
	if s == "" {
		return ""
	}
	digits := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if len(s) > maxPhone || !phoneRE.MatchString(s) || digits < minPhoneDigits || digits > maxPhoneDigits {
		return fmt.Sprintf("must be %d to %d digits, with only spaces, '+' and '-' besides (at most %d characters)",
			minPhoneDigits, maxPhoneDigits, maxPhone)
	}
	return ""
}

// ValidDate reports whether s is a calendar date written YYYY-MM-DD.
func ValidDate(s string) bool {
	_, err := time.Parse(rounds.DateLayout, s)
	return err == nil && len(s) == len(rounds.DateLayout)
}
