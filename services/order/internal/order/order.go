package order

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Role is who an actor is.
type Role string

// Roles of SPEC.md.
const (
	RoleResident   Role = "RESIDENT"
	RoleWorker     Role = "WORKER"
	RoleSupplier   Role = "SUPPLIER"
	RoleDispatcher Role = "DISPATCHER"
	RoleCourier    Role = "COURIER"
	RoleSystem     Role = "SYSTEM"
)

// Actor records who made a change.
type Actor struct {
	Role Role
	ID   string
}

// Channel is how an order reached Doorstep.
type Channel string

// Channels.
const (
	ChannelApp    Channel = "APP"
	ChannelPhone  Channel = "PHONE"
	ChannelWorker Channel = "WORKER"
	// ChannelCampaign is a campaign's free pack.
	ChannelCampaign Channel = "CAMPAIGN"
)

// Status is an order's status, derived from its parcels.
type Status string

// Order statuses.
const (
	StatusPlaced     Status = "PLACED"
	StatusInProgress Status = "IN_PROGRESS"
	StatusDelivered  Status = "DELIVERED"
	StatusClosed     Status = "CLOSED"
)

// Order is a basket placed for a household, split into one parcel per supplier.
type Order struct {
	ID          string
	HouseholdID string
	Compound    string
	RequestID   string
	// RequestHash identifies the basket, so a reused request id with another basket is refused.
	RequestHash []byte
	Channel     Channel
	PlacedBy    Actor
	// Proxy: a worker placed it on the household's behalf.
	Proxy    bool
	PlacedAt time.Time
	Parcels  []Parcel
	// CampaignID is set on a campaign's free pack.
	CampaignID string
}

// Status derives the order's status from its parcels: any parcel still waiting for its supplier
// keeps the order PLACED; once every parcel has ended it is DELIVERED if any arrived, else CLOSED.
func (o Order) Status() Status {
	ended, delivered := 0, false
	for _, p := range o.Parcels {
		if p.State == Placed {
			return StatusPlaced
		}
		if p.State.Ended() {
			ended++
		}
		delivered = delivered || p.State == Delivered
	}
	switch {
	case len(o.Parcels) == 0 || ended < len(o.Parcels):
		return StatusInProgress
	case delivered:
		return StatusDelivered
	default:
		return StatusClosed
	}
}

// TotalFen is what the household owes for the order: parcels that were rejected, cancelled or
// expired cost nothing.
func (o Order) TotalFen() int64 {
	var t int64
	for _, p := range o.Parcels {
		switch p.State {
		case Rejected, Cancelled, Expired:
		default:
			t += p.TotalFen
		}
	}
	return t
}

// BasketLine is a line of the basket as the resident sent it.
type BasketLine struct {
	ItemID   string
	Quantity int64
}

// PlaceRequest is a basket to order.
type PlaceRequest struct {
	RequestID   string
	HouseholdID string
	Lines       []BasketLine
	Channel     Channel
	PlacedBy    Actor
}

// namespace scopes Doorstep's name-based ids.
var namespace = uuid.MustParse("6f1d7c2e-4b0a-5c53-9e59-2d6f0e3a8b41")

// OrderID is the id of the order a request places. It is derived from the household and request
// id, so every retry of one request, even concurrent ones, works on the same order.
func OrderID(householdID, requestID string) string {
	return uuid.NewSHA1(namespace, []byte(householdID+"/"+requestID)).String()
}

// ParcelID is the id of an order's parcel for one supplier, in one attempt of the request that
// places the order. Deterministic so that concurrent retries of one attempt reserve stock under
// the same parcel id, which the supplier treats as one reservation. A failed attempt gives its
// reservations back, and the supplier never reserves a parcel id twice, so the next attempt uses
// fresh ids. Attempt 0 keeps the derivation ids had before attempts were counted.
func ParcelID(orderID, supplierID string, attempt int) string {
	name := orderID + "/" + supplierID
	if attempt > 0 {
		name += "/" + strconv.Itoa(attempt)
	}
	return uuid.NewSHA1(namespace, []byte(name)).String()
}

// Hash identifies what was asked, independent of line order.
func (r PlaceRequest) Hash() []byte {
	lines := make([]string, len(r.Lines))
	for i, l := range r.Lines {
		lines[i] = fmt.Sprintf("%s=%d", l.ItemID, l.Quantity)
	}
	slices.Sort(lines)
	return hash("place", r.HouseholdID, strings.Join(lines, ","), string(r.Channel), string(r.PlacedBy.Role), r.PlacedBy.ID)
}

// CancelRequest cancels what is still cancellable of an order.
type CancelRequest struct {
	RequestID string
	OrderID   string
	Reason    string
	Actor     Actor
}

// Hash identifies what was asked.
func (r CancelRequest) Hash() []byte {
	return hash("cancel", r.OrderID, r.Reason, string(r.Actor.Role), r.Actor.ID)
}

func hash(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed so that ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return h.Sum(nil)
}

// ImportRequest is a roster spreadsheet to import into a compound.
type ImportRequest struct {
	RequestID string
	Compound  string
	CSV       []byte
	// DryRun reports what the import would do and writes nothing.
	DryRun bool
}

// Hash identifies what was asked.
func (r ImportRequest) Hash() []byte { return hash("import", r.Compound, string(r.CSV)) }

// ImportResult is what an import did, or on a dry run or a rejected file would do: the counts
// are those of the rows that were accepted.
type ImportResult struct {
	Rows                        int
	Created, Updated, Unchanged int
	Errors                      []RowError
	// Applied: the rows were written (never on a dry run, never with any row rejected).
	Applied bool
}

// RequestKey is a client request id recorded with what it asked for.
type RequestKey struct {
	// Kind and Scope namespace the id: a request id is the client's, unique only for its purpose.
	Kind  string
	Scope string
	ID    string
	Hash  []byte
}
