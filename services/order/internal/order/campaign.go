package order

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/google/uuid"
)

// CampaignState is a campaign's life: DRAFT → LAUNCHING (packs being made) → LAUNCHED. Retrying
// missed households makes it LAUNCHING again until their packs are made.
type CampaignState string

// Campaign states.
const (
	CampaignDraft     CampaignState = "DRAFT"
	CampaignLaunching CampaignState = "LAUNCHING"
	CampaignLaunched  CampaignState = "LAUNCHED"
)

// Flag is a roster flag a campaign can target.
type Flag string

// Flags.
const (
	FlagOver80         Flag = "OVER_80"
	FlagLivesAlone     Flag = "LIVES_ALONE"
	FlagChronicallyIll Flag = "CHRONICALLY_ILL"
	FlagQuarantined    Flag = "QUARANTINED"
)

// Target chooses a campaign's households: occupied ones (and, if asked, those whose occupancy
// nobody has checked), narrowed to some buildings and to households with any of some flags.
type Target struct {
	Buildings      []string
	Flags          []Flag
	IncludeUnknown bool
}

// Includes reports whether h is a target at now (quarantine is judged on the launch's day).
// Empty flats never are: a pack left at an empty door helps nobody and is taken by no one.
func (t Target) Includes(h Household, now time.Time) bool {
	switch {
	case h.Occupancy == OccupancyEmpty:
		return false
	case h.Occupancy != OccupancyOccupied && !t.IncludeUnknown:
		return false
	case len(t.Buildings) > 0 && !slices.Contains(t.Buildings, h.Address.Building):
		return false
	case len(t.Flags) == 0:
		return true
	}
	for _, f := range t.Flags {
		switch {
		case f == FlagOver80 && h.Over80,
			f == FlagLivesAlone && h.LivesAlone,
			f == FlagChronicallyIll && h.ChronicallyIll,
			f == FlagQuarantined && h.Quarantined(now):
			return true
		}
	}
	return false
}

// Campaign is a free distribution: one pack of one supplier's items, free, to each target household.
type Campaign struct {
	ID       string
	Compound string
	Name     string
	// SupplierID is whose items make the pack: a supermarket's, a pharmacy's, or the community's
	// donated stock. One supplier per pack keeps one parcel per household, so the roster says
	// plainly whether a household got its pack.
	SupplierID string
	Pack       []BasketLine
	Target     Target
	State      CampaignState
	CreatedBy  Actor
	CreatedAt  time.Time
	// LaunchedBy places the campaign's parcels: the packs are recorded as placed by them.
	LaunchedBy Actor
	LaunchedAt time.Time
	Counts     CampaignCounts
}

// CampaignCounts counts a campaign's households by roster status.
type CampaignCounts struct {
	Targeted, Packing, OnTheWay, Delivered, Failed, Missed int
}

func (c *CampaignCounts) add(s RosterStatus) {
	c.Targeted++
	switch s {
	case RosterPacking:
		c.Packing++
	case RosterOnTheWay:
		c.OnTheWay++
	case RosterDelivered:
		c.Delivered++
	case RosterFailed:
		c.Failed++
	case RosterMissed:
		c.Missed++
	}
}

// CampaignRequest defines a campaign.
type CampaignRequest struct {
	RequestID string
	Compound  string
	Name      string
	Pack      []BasketLine
	Target    Target
}

// Hash identifies what was asked, independent of the order of lines, buildings and flags.
func (r CampaignRequest) Hash() []byte {
	lines := make([]string, len(r.Pack))
	for i, l := range r.Pack {
		lines[i] = l.ItemID + "=" + strconv.FormatInt(l.Quantity, 10)
	}
	flags := make([]string, len(r.Target.Flags))
	for i, f := range r.Target.Flags {
		flags[i] = string(f)
	}
	return hash("campaign", r.Compound, r.Name, sortedJoin(lines), sortedJoin(r.Target.Buildings), sortedJoin(flags),
		strconv.FormatBool(r.Target.IncludeUnknown))
}

func sortedJoin(s []string) string { return strings.Join(slices.Sorted(slices.Values(s)), ",") }

// CampaignID is the id of the campaign a request defines: retries of one request define one campaign.
func CampaignID(compound, requestID string) string {
	return uuid.NewSHA1(namespace, []byte("campaign/"+compound+"/"+requestID)).String()
}

// PackOrderID is the id of the order carrying a household's pack of a campaign in one attempt.
// Deterministic, so that a launch resumed after a crash reserves and stores the very same pack
// rather than a second one; a retry of a missed household is the next attempt, with fresh ids
// (the supplier never reserves a released parcel id again).
func PackOrderID(campaignID, householdID string, attempt int) string {
	return OrderID(householdID, "campaign/"+campaignID+"/"+strconv.Itoa(attempt))
}

// RosterStatus is where a targeted household's pack stands.
type RosterStatus string

// Roster statuses.
const (
	// RosterPacking: being made, or made and not yet handed over at the gate.
	RosterPacking   RosterStatus = "PACKING"
	RosterOnTheWay  RosterStatus = "ON_THE_WAY"
	RosterDelivered RosterStatus = "DELIVERED"
	RosterFailed    RosterStatus = "FAILED"
	RosterMissed    RosterStatus = "MISSED"
)

// RosterEntry is one targeted household of a campaign and its current pack.
type RosterEntry struct {
	CampaignID  string
	HouseholdID string
	Address     Address
	Priority    bool
	// Attempt is 1 for the first pack, 2 after one retry, ...
	Attempt int
	// Made: the current attempt's pack exists as a parcel (ParcelID, ParcelState, ParcelReason).
	Made         bool
	ParcelID     string
	ParcelState  State
	ParcelReason string
	// MissedReason says why the current attempt's pack could not be made (out of stock ...).
	MissedReason string
	UpdatedAt    time.Time
}

// Status derives where the household stands from its current pack.
func (e RosterEntry) Status() (RosterStatus, string) {
	if !e.Made {
		if e.MissedReason != "" {
			return RosterMissed, e.MissedReason
		}
		return RosterPacking, ""
	}
	switch e.ParcelState {
	case Placed, Confirmed:
		// Reserved (a pack is confirmed as it is reserved) and not yet handed over at the gate.
		return RosterPacking, ""
	case Delivered:
		return RosterDelivered, ""
	case Failed:
		return RosterFailed, e.ParcelReason
	case Rejected, Cancelled, Expired:
		return RosterMissed, cmp.Or(e.ParcelReason, "pack "+strings.ToLower(string(e.ParcelState)))
	default:
		return RosterOnTheWay, ""
	}
}

// CampaignRoster is a campaign's households with counts.
type CampaignRoster struct {
	Entries []RosterEntry
	// Buildings counts the whole campaign by building, in natural building order.
	Buildings []BuildingCounts
	Totals    CampaignCounts
}

// BuildingCounts is one building's share of a campaign.
type BuildingCounts struct {
	Building string
	Counts   CampaignCounts
}

// CountRoster counts entries by status, overall and by building.
func CountRoster(entries []RosterEntry) (CampaignCounts, []BuildingCounts) {
	var total CampaignCounts
	by := map[string]*CampaignCounts{}
	for _, e := range entries {
		s, _ := e.Status()
		total.add(s)
		b := by[e.Address.Building]
		if b == nil {
			b = &CampaignCounts{}
			by[e.Address.Building] = b
		}
		b.add(s)
	}
	out := make([]BuildingCounts, 0, len(by))
	for b, c := range by {
		out = append(out, BuildingCounts{Building: b, Counts: *c})
	}
	slices.SortFunc(out, func(x, y BuildingCounts) int { return naturalCompare(x.Building, y.Building) })
	return total, out
}

// RosterFilter narrows a roster listing; its counts stay the whole campaign's.
type RosterFilter struct {
	Statuses []RosterStatus
	Building string
	// After is the last household id of the previous page.
	After string
	Limit int
}

// PendingPack is a household whose pack for the current attempt has not been made yet, with
// what the launcher needs to make it.
type PendingPack struct {
	Campaign  Campaign
	Household Household
	Attempt   int
}

// maxPackLines bounds a pack; a pack is a handful of items, not a shop.
const maxPackLines = 20

// FormatCampaignRoster writes a campaign roster as CSV for the community's spreadsheet: one row
// per targeted household in address order, with where its pack stands and why.
func FormatCampaignRoster(entries []RosterEntry) []byte {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, byAddress)
	rows := [][]string{{"楼号 building", "单元 unit", "楼层 floor", "房号 room", "户号 household", "状态 status",
		"原因 reason", "重点户 priority", "次数 attempt", "包裹 parcel", "包裹状态 parcel state", "更新时间 updated (Asia/Shanghai)"}}
	for _, e := range entries {
		a := e.Address
		status, reason := e.Status()
		updated := ""
		if !e.UpdatedAt.IsZero() {
			updated = e.UpdatedAt.In(rounds.Shanghai).Format("2006-01-02 15:04")
		}
		rows = append(rows, []string{a.Building, a.Unit, strconv.Itoa(a.Floor), a.Room, e.HouseholdID,
			rosterStatusName(status), reason, yesNo(e.Priority), strconv.Itoa(e.Attempt), e.ParcelID,
			string(e.ParcelState), updated})
	}
	return writeCSV(rows)
}

// byAddress orders roster entries as people walk the compound: building, unit, floor, room, with
// numbers by value.
func byAddress(a, b RosterEntry) int {
	x, y := a.Address, b.Address
	return cmp.Or(naturalCompare(x.Building, y.Building), naturalCompare(x.Unit, y.Unit),
		cmp.Compare(x.Floor, y.Floor), naturalCompare(x.Room, y.Room), cmp.Compare(a.HouseholdID, b.HouseholdID))
}

func rosterStatusName(s RosterStatus) string {
	switch s {
	case RosterPacking:
		return "备货中 packing"
	case RosterOnTheWay:
		return "配送中 on the way"
	case RosterDelivered:
		return "已送达 delivered"
	case RosterFailed:
		return "未送达 failed"
	default:
		return "未发出 missed"
	}
}

// ValidateCampaign checks a campaign request's own fields (the items are checked against the
// catalog by the service).
func ValidateCampaign(r CampaignRequest) error {
	switch {
	case strings.TrimSpace(r.Name) == "":
		return &FieldError{Field: "name", Reason: "required: what the households are told the pack is"}
	case len([]rune(r.Name)) > 100:
		return &FieldError{Field: "name", Reason: "at most 100 characters"}
	case len(r.Pack) == 0:
		return &FieldError{Field: "pack", Reason: "at least one item"}
	case len(r.Pack) > maxPackLines:
		return &FieldError{Field: "pack", Reason: fmt.Sprintf("at most %d items", maxPackLines)}
	}
	seen := map[string]bool{}
	for i, l := range r.Pack {
		switch {
		case l.ItemID == "":
			return &FieldError{Field: fmt.Sprintf("pack[%d].item_id", i), Reason: "required"}
		case seen[l.ItemID]:
			return &FieldError{Field: fmt.Sprintf("pack[%d].item_id", i), Reason: fmt.Sprintf("item %q appears twice", l.ItemID)}
		case l.Quantity < 1 || l.Quantity > 100:
			return &FieldError{Field: fmt.Sprintf("pack[%d].quantity", i), Reason: "between 1 and 100 units"}
		}
		seen[l.ItemID] = true
	}
	for i, b := range r.Target.Buildings {
		if strings.TrimSpace(b) == "" || slices.Contains(r.Target.Buildings[:i], b) {
			return &FieldError{Field: fmt.Sprintf("target.buildings[%d]", i), Reason: "empty or repeated building"}
		}
	}
	for i, f := range r.Target.Flags {
		switch f {
		case FlagOver80, FlagLivesAlone, FlagChronicallyIll, FlagQuarantined:
		default:
			return &FieldError{Field: fmt.Sprintf("target.flags[%d]", i), Reason: fmt.Sprintf("unknown flag %q", f)}
		}
	}
	return nil
}
