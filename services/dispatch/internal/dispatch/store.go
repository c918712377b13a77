package dispatch

import (
	"context"
	"time"
)

// Store runs units of work against the service's database.
type Store interface {
	// InTx runs fn in one transaction. It may run fn again after a serialization failure, so fn
	// must not have effects outside tx.
	InTx(ctx context.Context, fn func(Tx) error) error
}

// Tx is what the domain can read and change within one transaction. Every change, and every
// event published with Publish, commits or rolls back together.
type Tx interface {
	// ClaimRequest waits until no other transaction holds request id, holds it until this one
	// ends, and returns what was stored for it, if anything.
	ClaimRequest(ctx context.Context, id string) (Request, bool, error)
	// LookRequest reads what was stored for request id without waiting for or claiming it.
	LookRequest(ctx context.Context, id string) (Request, bool, error)
	SaveRequest(ctx context.Context, r Request) error

	UpsertBuilding(ctx context.Context, b Building) error
	// Buildings of a compound, by name.
	Buildings(ctx context.Context, compound string) ([]Building, error)
	UpsertCourier(ctx context.Context, c Courier) error
	// Couriers of a compound, by id.
	Couriers(ctx context.Context, compound string) ([]Courier, error)
	// Duty is the round's duty overrides by courier id.
	Duty(ctx context.Context, roundID string) (map[string]bool, error)
	SetDuty(ctx context.Context, roundID, courierID string, onDuty bool) error

	// Settings are the compound's stored round rules; false if its dispatcher never set any.
	Settings(ctx context.Context, compound string) (Settings, bool, error)
	SaveSettings(ctx context.Context, s Settings) error

	// EnsureRounds creates the rounds that do not exist yet and leaves the others alone.
	EnsureRounds(ctx context.Context, rounds []Round) error
	// CloseDueRounds closes the compound's open rounds whose cutoff is at or before t.
	CloseDueRounds(ctx context.Context, compound string, t time.Time) error
	// RoundsOn are a compound's rounds of one date, by cutoff, with their parcel counts.
	RoundsOn(ctx context.Context, compound, date string) ([]Round, error)
	// OpenRoundIDs are the ids of the compound's open rounds of date closing after t, by cutoff.
	OpenRoundIDs(ctx context.Context, compound, date string, after time.Time) ([]string, error)
	// OpenRoundsAfter are the compound's open rounds closing after t, of any date, by cutoff.
	OpenRoundsAfter(ctx context.Context, compound string, after time.Time) ([]Round, error)
	// LockRound reads a round and locks it against check-ins, planning and overrides until this
	// transaction ends; ErrNotFound if there is none.
	LockRound(ctx context.Context, id string) (Round, error)
	// ShareRound reads a round and locks it against planning (not against other check-ins)
	// until this transaction ends; ErrNotFound if there is none.
	ShareRound(ctx context.Context, id string) (Round, error)
	// Round reads a round without locking it; ErrNotFound if there is none.
	Round(ctx context.Context, id string) (Round, error)
	// SetRoundState moves a round to state at time at (closed_at, done_at and planned_at record it).
	SetRoundState(ctx context.Context, id string, state RoundState, at time.Time) error
	// RescheduleRound gives an open round new cutoff and departure times.
	RescheduleRound(ctx context.Context, id string, cutoff, departs time.Time) error
	// DeleteRound removes a round that no parcel ever joined.
	DeleteRound(ctx context.Context, id string) error
	// SetRoundCost records a round's current cost and lower bound.
	SetRoundCost(ctx context.Context, id string, cost, lowerBound Cost) error
	// FinishRound marks a planned round done when every parcel it had was delivered, failed or
	// withdrawn.
	FinishRound(ctx context.Context, id string, at time.Time) (bool, error)

	// Parcels are the checked-in parcels among ids.
	Parcels(ctx context.Context, ids []string) ([]Parcel, error)
	// InsertParcel checks p in, making it a member of p.RoundID; false if it was checked in before.
	InsertParcel(ctx context.Context, p Parcel) (bool, error)
	// LockParcel reads a parcel for update; ErrNotFound if it was never checked in.
	LockParcel(ctx context.Context, id string) (Parcel, error)
	// RepoolParcel puts a parcel back at the gate as a member of round, keeping reason (no longer
	// pinned nor picked up).
	RepoolParcel(ctx context.Context, id, roundID, reason string) error
	// PooledParcels are the parcels waiting at the gate for round, by id.
	PooledParcels(ctx context.Context, roundID string) ([]Parcel, error)
	// LiveParcels are the round's parcels on routes and not delivered yet, by id, locked for
	// update.
	LiveParcels(ctx context.Context, roundID string) ([]Parcel, error)
	// HouseholdParcels are every parcel one household had in a round, whatever became of it.
	HouseholdParcels(ctx context.Context, roundID, householdID string) ([]Parcel, error)
	// SetPinned pins or unpins parcels to their couriers.
	SetPinned(ctx context.Context, ids []string, pinned bool) error
	// MarkPickedUp records that the courier has a parcel in hand (out for delivery): it stays
	// with them whatever overrides come.
	MarkPickedUp(ctx context.Context, id string) error
	// WithdrawParcel takes a pooled parcel out of its round for good, keeping reason: no plan
	// takes it, its round no longer counts it nor waits for it (its outcome there: withdrawn).
	WithdrawParcel(ctx context.Context, id, reason string) error
	// LastFailure is the latest round (by cutoff) the parcel failed in, "" if none.
	LastFailure(ctx context.Context, parcelID string) (string, error)
	// RecordOutcome records that a parcel was delivered or failed, in every round it is still
	// open in; delivered also marks the parcel so.
	RecordOutcome(ctx context.Context, id string, delivered bool) error

	// SaveShortages records shortages found at check-in.
	SaveShortages(ctx context.Context, shortages []Shortage) error
	// Shortages recorded for parcels among ids, by parcel and item.
	Shortages(ctx context.Context, ids []string) ([]Shortage, error)

	// SavePlan stores a plan's routes, marks its round planned (done when it has no parcels) and
	// its parcels assigned.
	SavePlan(ctx context.Context, p Plan, at time.Time) error
	// SaveRoute stores a route's new version: its row, its stops (replacing the old ones), and
	// its parcels as assigned to it.
	SaveRoute(ctx context.Context, r Route) error
	// Routes of a round, by courier id, including emptied ones.
	Routes(ctx context.Context, roundID string) ([]Route, error)

	// Publish adds events to the outbox.
	Publish(ctx context.Context, events ...Event) error
}

// Request is a handled request id with a fingerprint of what was asked and the answer given.
type Request struct {
	ID          string
	Method      string
	Fingerprint []byte
	Response    []byte
}

// Role is the part a caller plays, as the verified identity of a call names it.
type Role string

const (
	RoleResident   Role = "resident"
	RoleWorker     Role = "worker"
	RoleSupplier   Role = "supplier"
	RoleDispatcher Role = "dispatcher"
	RoleCourier    Role = "courier"
	RoleSystem     Role = "system"
)

// Actor records who made a change: the person whose verified identity the call carried (a
// service acting for someone acts as them), or the service itself when it acts for nobody.
type Actor struct {
	Role Role
	ID   string
}

// Event is something dispatch tells the other services, through the outbox.
type Event interface{ isEvent() }

// ParcelAtGate: a parcel was checked in at the gate into a round, with what was missing or
// damaged and a reason saying so in words.
type ParcelAtGate struct {
	Parcel    Parcel
	Shortages []Shortage
	Reason    string
	At        time.Time
	By        Actor
}

// ParcelAssigned: a parcel is on a courier's route (again, after a move: Reason says why).
type ParcelAssigned struct {
	Parcel Parcel
	Reason string
	At     time.Time
	By     Actor
}

// RoutePlanned: a courier's whole route for a round.
type RoutePlanned struct {
	Compound string
	Route    Route
	At       time.Time
	By       Actor
}

// ParcelCancelled: a parcel that failed at the door was withdrawn from the gate pool because its
// household cancelled it. EventID is CancelledEventID's.
type ParcelCancelled struct {
	Parcel  Parcel
	EventID string
	Reason  string
	At      time.Time
	By      Actor
}

func (ParcelAtGate) isEvent()    {}
func (ParcelAssigned) isEvent()  {}
func (RoutePlanned) isEvent()    {}
func (ParcelCancelled) isEvent() {}

// Orders is the order service as dispatch needs it.
type Orders interface {
	// Parcel returns a parcel with its household's address and lines; ErrNotFound if there is
	// none, ErrPeerUnavailable if the order service could not answer.
	Parcel(ctx context.Context, id string) (OrderParcel, error)
}
