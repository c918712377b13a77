package order

import (
	"context"
	"time"
)

// Store keeps households, orders and parcels. Every method that changes parcels also records
// their transitions and the events announcing them, in one transaction.
type Store interface {
	CampaignStore

	// UpsertHousehold creates or replaces h. With a non-empty key, a repeat of the key returns the
	// household as it is now without writing, and a reuse for another household returns ErrConflict.
	// A household stored under h.ID that reaches refuses is not touched: ErrNotFound, worded as for
	// an unknown household (checked in the writing transaction, so it cannot move meanwhile).
	UpsertHousehold(ctx context.Context, h Household, key RequestKey, reaches func(current Household) bool) (Household, error)
	Household(ctx context.Context, id string) (Household, error)
	// Households lists a compound's households ordered by id, after the id `after`.
	Households(ctx context.Context, compound, after string, limit int) ([]Household, error)
	// Roster returns every household of a compound.
	Roster(ctx context.Context, compound string) ([]Household, error)
	// ImportResult returns the stored result of the finished import with key (found=false when
	// there is none), or ErrConflict when the key was used for another import.
	ImportResult(ctx context.Context, key RequestKey) (res ImportResult, found bool, err error)
	// ImportRoster, in one transaction, claims key (when an import with it has already finished it
	// returns that import's stored result and calls nothing), loads the compound's households
	// locked, lets plan decide which households to write and the result, writes them all, and
	// stores the result with the finished key.
	ImportRoster(ctx context.Context, compound string, key RequestKey,
		plan func(current []Household) (writes []Household, res ImportResult)) (ImportResult, error)

	// ClaimRequest records key, or finds it recorded. It returns ErrConflict when the key was
	// used for a different request.
	ClaimRequest(ctx context.Context, key RequestKey) (Claim, error)
	// ClaimPlacement reads household id, provided it lies in compound ("" for any), and claims key
	// as ClaimRequest does, in one round trip. A household that is not there, or not in compound,
	// is ErrNotFound, and nothing is claimed.
	ClaimPlacement(ctx context.Context, id, compound string, key RequestKey) (Household, Claim, error)
	// PruneRequests forgets the request keys recorded before before.
	PruneRequests(ctx context.Context, before time.Time) (int64, error)

	// CreateOrder writes o with its parcels (PLACED), their creation transitions and the
	// order.placed and parcel.placed events, provided attempt is still the current attempt of the
	// request that places it (key); otherwise it returns ErrAborted. If an order with o.ID exists
	// it writes nothing and returns that order with created=false.
	CreateOrder(ctx context.Context, o Order, key RequestKey, attempt int) (stored Order, created bool, err error)
	// EndAttempt ends a failed attempt of a placement: unless the order orderID exists (a
	// concurrent retry stored it, and it is returned), the request's attempt counter moves past
	// attempt, after which CreateOrder refuses attempt. It locks against CreateOrder, so once it
	// returns no order can come to hold the attempt's reservations.
	EndAttempt(ctx context.Context, key RequestKey, attempt int, orderID string) (stored *Order, err error)
	Order(ctx context.Context, id string) (Order, error)
	// Orders lists a household's orders, newest first.
	Orders(ctx context.Context, householdID string, limit int) ([]Order, error)
	Parcel(ctx context.Context, id string) (Parcel, error)
	// ParcelsToCheckIn lists a compound's READY parcels by the time they became READY, then id,
	// those past after (the zero GatePosition: from the first), at most limit.
	ParcelsToCheckIn(ctx context.Context, compound string, after GatePosition, limit int) ([]Parcel, error)

	// UpdateOrder loads the order locked, lets fn change its parcels, then stores the changed
	// parcels, the transitions fn returns and one parcel.<state> event per transition but those
	// another service has announced (with an EventID). When done is non-nil the request key is
	// marked finished in the same transaction.
	UpdateOrder(ctx context.Context, id string, done *RequestKey, fn func(*Order) ([]Transition, error)) (Order, error)
}

// Claim is what a request key's record says.
type Claim struct {
	// Done: a request with this key already finished.
	Done bool
	// Attempt counts the failed attempts of a placement; parcel ids derive from it.
	Attempt int
	// New: this call recorded the key; no earlier call with it has done anything yet.
	New bool
}

// Dispatch is the dispatch service as the order service uses it. Errors wrap ErrUnavailable when
// dispatch cannot be reached.
type Dispatch interface {
	// Buildings is the compound's site plan.
	Buildings(ctx context.Context, compound string) ([]Building, error)
	// Withdraw keeps a FAILED parcel out of every later round, and dispatch announces it
	// cancelled. It is ErrIllegalTransition once a later round has put the parcel on a route
	// again (or dispatch has it delivered, or failed elsewhere: the two services disagree), and
	// ErrUnavailable (try again) while dispatch has not heard of the failure yet.
	Withdraw(ctx context.Context, w Withdrawal) (Withdrawn, error)
}

// Withdrawal asks dispatch to withdraw a parcel that failed at the door from its gate pool.
type Withdrawal struct {
	// RequestID is the same for every retry of one cancellation.
	RequestID string
	ParcelID  string
	// FailedIn is the round the parcel failed in, as the order service last heard.
	FailedIn string
	Reason   string
}

// Withdrawn is dispatch's answer to a Withdrawal.
type Withdrawn struct {
	// RoundID is the round whose gate pool the parcel left.
	RoundID string
	// EventID is dispatch's parcel.cancelled event announcing it, the same for every answer
	// about the parcel: the CANCELLED transition is recorded under it, whether from this answer
	// or, if the answer is lost, from the event.
	EventID string
}

// Item is a supplier's catalog entry, as much as ordering needs.
type Item struct {
	ID         string
	SupplierID string
	Compound   string // where it is sold: its supplier's compound
	Name       string
	Weighed    bool
}

// Reservation asks one supplier to hold stock for one parcel.
type Reservation struct {
	ParcelID    string
	OrderID     string
	SupplierID  string
	HouseholdID string
	Address     Address
	Lines       []BasketLine
	// CampaignID marks a campaign's free pack: priced at zero, confirmed at once by the supplier.
	CampaignID string
	// ActingFor is the worker who launched the campaign, whom the background launcher acts for.
	ActingFor Actor
}

// Reserved is the supplier's answer: the parcel as it holds it, priced.
type Reserved struct {
	State State
	Lines []Line
}

// Suppliers is the supplier service as the order service uses it. Errors wrap ErrNotFound,
// ErrRefused, ErrInvalid, ErrConflict or ErrUnavailable with the supplier's own message.
type Suppliers interface {
	// Items returns the named items by id; all or nothing.
	Items(ctx context.Context, ids []string) (map[string]Item, error)
	// Reserve is idempotent on the parcel id.
	Reserve(ctx context.Context, r Reservation) (Reserved, error)
	// Release gives back a parcel's stock; ErrRefused once the supplier has confirmed it.
	Release(ctx context.Context, parcelID, reason string, actor Actor) error
}
