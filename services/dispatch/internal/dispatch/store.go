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

	// EnsureRounds creates the rounds that do not exist yet and leaves the others alone.
	EnsureRounds(ctx context.Context, rounds []Round) error
	// RoundsOn are a compound's rounds of one date, by cutoff, with their parcel counts.
	RoundsOn(ctx context.Context, compound, date string) ([]Round, error)
	// FirstOpenRound is the open round of date closing first after t, share-locked so that it
	// cannot be planned until this transaction ends.
	FirstOpenRound(ctx context.Context, compound, date string, after time.Time) (Round, bool, error)
	// LockRound reads a round and locks it against check-ins and planning until this
	// transaction ends; ErrNotFound if there is none.
	LockRound(ctx context.Context, id string) (Round, error)
	// Round reads a round without locking it; ErrNotFound if there is none.
	Round(ctx context.Context, id string) (Round, error)

	// Parcels are the checked-in parcels among ids.
	Parcels(ctx context.Context, ids []string) ([]Parcel, error)
	// InsertParcel checks p in, making it a member of p.RoundID; false if it was checked in before.
	InsertParcel(ctx context.Context, p Parcel) (bool, error)
	// LockParcel reads a parcel for update; ErrNotFound if it was never checked in.
	LockParcel(ctx context.Context, id string) (Parcel, error)
	// RepoolParcel puts a parcel back at the gate as a member of round, keeping reason.
	RepoolParcel(ctx context.Context, id, roundID, reason string) error
	// PooledParcels are the parcels waiting at the gate for round, by id.
	PooledParcels(ctx context.Context, roundID string) ([]Parcel, error)

	// SavePlan stores a plan's routes, marks its round planned and its parcels assigned.
	SavePlan(ctx context.Context, p Plan, at time.Time) error
	// Routes of a round, by courier id.
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

// Role says on whose behalf dispatch acted.
type Role string

const (
	RoleDispatcher Role = "dispatcher"
	RoleSystem     Role = "system"
)

// Actor records who made a change.
type Actor struct {
	Role Role
	ID   string
}

var (
	// byDispatcher: a dispatcher's call. The API carries no staff identity yet, so the id names
	// the service that acted on their behalf.
	byDispatcher = Actor{Role: RoleDispatcher, ID: "dispatch"}
	// bySystem: dispatch acting on an event on its own.
	bySystem = Actor{Role: RoleSystem, ID: "dispatch"}
)

// Event is something dispatch tells the other services, through the outbox.
type Event interface{ isEvent() }

// ParcelAtGate: a parcel was checked in at the gate into a round.
type ParcelAtGate struct {
	Parcel Parcel
	At     time.Time
	By     Actor
}

// ParcelAssigned: a parcel is on a courier's route.
type ParcelAssigned struct {
	Parcel Parcel
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

func (ParcelAtGate) isEvent()   {}
func (ParcelAssigned) isEvent() {}
func (RoutePlanned) isEvent()   {}

// Orders is the order service as dispatch needs it.
type Orders interface {
	// Parcel returns a parcel with its household's address; ErrNotFound if there is none,
	// ErrPeerUnavailable if the order service could not answer.
	Parcel(ctx context.Context, id string) (OrderParcel, error)
}
