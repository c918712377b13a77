// Package dispatch is the dispatch service's domain: the compound's site plan and couriers, the
// day's delivery rounds, parcels checked in at the gate, and the routes planned for a round. It
// owns the rules (which round a parcel joins, when a round can be planned, what happens to a parcel
// that failed at the door) and the repository and peer interfaces it needs; it imports neither
// gRPC, pgx nor generated protobuf code.
package dispatch

import (
	"errors"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

// Sentinel errors; the transport maps each to one status code.
var (
	// ErrNotFound: the round, parcel or other thing named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCannotPlan: the round's parcels cannot be planned with this site plan and these couriers.
	ErrCannotPlan = errors.New("cannot plan round")
	// ErrIllegalTransition: the round (or stop) is not in a state that allows the change, e.g.
	// moving a stop of a round not planned yet, moving a stop its courier has picked up, or
	// closing a planned round.
	ErrIllegalTransition = errors.New("illegal transition")
	// ErrOffDuty: the courier named is off duty for the round.
	ErrOffDuty = errors.New("courier off duty")
	// ErrNoOpenRound: no round is open for check-in within the planning horizon.
	ErrNoOpenRound = errors.New("no open round")
	// ErrRequestConflict: a request id was reused for a different request.
	ErrRequestConflict = errors.New("request id already used for a different request")
	// ErrPeerUnavailable: the order service could not be asked; the caller may retry.
	ErrPeerUnavailable = errors.New("order service unavailable")
	// ErrInvalid: input the domain cannot accept (the transport validates most of it first).
	ErrInvalid = errors.New("invalid")
	// ErrNotHeardYet: the caller knows of a change that has not reached dispatch yet (a courier's
	// failure report still on its way); the same call succeeds once it has.
	ErrNotHeardYet = errors.New("not heard yet")
)

// Address is a household's structured place in a compound.
type Address struct {
	Compound string
	Building string
	Unit     string
	Floor    int
	Room     string
}

// Building is one building of a compound's site plan.
type Building struct {
	Compound string
	Name     string
	// Units (stairwells) in walking order.
	Units     []string
	Floors    int
	HasLift   bool
	DistanceM int
}

// Courier carries parcels from the gate to the doors of the buildings they serve.
type Courier struct {
	ID       string
	Compound string
	Name     string
	// Buildings served; empty means anywhere.
	Buildings []string
	// Finer assignments (按楼层分配); when set they replace Buildings.
	FloorRanges []FloorRange
	// What one trip can carry.
	MaxParcels int
	MaxGrams   int64
	// On the roster's duty; SetCourierDuty overrides it for one round.
	OnDuty bool
}

// FloorRange is some floors of one building; 0 means from the ground floor / to the top.
type FloorRange struct {
	Building           string
	MinFloor, MaxFloor int
}

// Settings are a compound's round rules.
type Settings struct {
	Compound string
	// The day's rounds in order, with their cutoffs and departures (Asia/Shanghai).
	Schedule rounds.Schedule
	// RoundCapacity is the most parcels one round takes; later check-ins roll to the next round.
	// 0 means no cap.
	RoundCapacity int
}

// DefaultSettings are a compound's rules until its dispatcher sets others: rounds.Default, no cap.
func DefaultSettings(compound string) Settings {
	return Settings{Compound: compound, Schedule: rounds.Default}
}

// RoundState is a round's life: OPEN → CLOSED (cutoff passed, or closed by hand) → PLANNED →
// DONE (every parcel delivered, failed or withdrawn). A round planned before its cutoff closes on
// the way.
type RoundState string

const (
	RoundOpen    RoundState = "open"
	RoundClosed  RoundState = "closed"
	RoundPlanned RoundState = "planned"
	RoundDone    RoundState = "done"
)

// Cost is what a plan or route costs couriers; see package planner for the model.
type Cost struct {
	Metres int64
	Floors int64
	Trips  int
}

// Round is one delivery round of a compound's day.
type Round struct {
	ID       string
	Compound string
	// Asia/Shanghai date, YYYY-MM-DD.
	Date    string
	Slot    string
	Cutoff  time.Time
	Departs time.Time
	State   RoundState
	// Parcels the round carries: every parcel that joined it but those withdrawn from its gate
	// pool (cancelled after failing at the door); what its capacity counts.
	Parcels int
	// Joined counts every parcel that ever joined the round, withdrawn ones too.
	Joined int
	// Set once planned.
	Cost       Cost
	LowerBound Cost
}

// ParcelStatus is where a parcel is as far as dispatch is concerned.
type ParcelStatus string

const (
	// StatusPooled: at the gate, waiting for its round to be planned.
	StatusPooled ParcelStatus = "pooled"
	// StatusAssigned: on a planned route.
	StatusAssigned ParcelStatus = "assigned"
	// StatusDelivered: the courier handed it over or left it at the door.
	StatusDelivered ParcelStatus = "delivered"
	// StatusWithdrawn: it failed at the door and its household then cancelled it; no round
	// plans it again.
	StatusWithdrawn ParcelStatus = "withdrawn"
)

// Parcel is a parcel checked in at the gate, with what the planner needs to know about it.
type Parcel struct {
	ID          string
	OrderID     string
	HouseholdID string
	Address     Address
	Priority    bool
	Contactless bool
	WeightGrams int64
	// The round it is in now (a failed parcel moves on to a later one).
	RoundID   string
	Status    ParcelStatus
	RouteID   string
	CourierID string
	// Why it last failed at the door, if it did.
	Reason      string
	CheckedInAt time.Time
	// Pinned: a dispatcher moved it to its courier; re-planning keeps it there.
	Pinned bool
	// PickedUp: its courier has it in hand (parcel.out_for_delivery); no override takes it from
	// them, since the order service's parcel cannot go back to ASSIGNED.
	PickedUp bool
}

// Shortage is items of a parcel missing or damaged when its supplier's batch was checked in at
// the gate. The parcel still goes out with what is there.
type Shortage struct {
	ParcelID string
	ItemID   string
	Missing  int64
	Damaged  int64
	Note     string
}

// StopParcel is one parcel of a stop with the order it belongs to.
type StopParcel struct {
	ParcelID string
	OrderID  string
}

// Stop is one door on a route.
type Stop struct {
	Sequence    int
	Trip        int
	HouseholdID string
	Address     Address
	Parcels     []StopParcel
	Priority    bool
	Contactless bool
	WeightGrams int64
	// Pinned: moved here by a dispatcher; re-planning keeps it with this courier.
	Pinned bool
}

// Route is one courier's stops in a round. A changed route gets the next version and is
// published again with the stops still to deliver; an emptied route is published with none.
type Route struct {
	ID        string
	RoundID   string
	CourierID string
	Stops     []Stop
	Cost      Cost
	Version   int
}

// Plan is a planned round.
type Plan struct {
	Round      Round
	Routes     []Route
	Cost       Cost
	LowerBound Cost
}

// CheckInResult says what happened to one parcel at the gate.
type CheckInResult struct {
	ParcelID  string
	CheckedIn bool
	RoundID   string
	// Why it was not checked in.
	Error string
	// Shortages recorded for it.
	Shortages []Shortage
}

// OrderParcel is a parcel as the order service sees it.
type OrderParcel struct {
	ID          string
	OrderID     string
	HouseholdID string
	// The order service's parcel state, e.g. "READY".
	State       string
	Address     Address
	Priority    bool
	Contactless bool
	WeightGrams int64
	Lines       []OrderLine
}

// OrderLine is one item of a parcel and how many of it (grams when weighed) are in the parcel.
type OrderLine struct {
	ItemID   string
	Quantity int64
}

// StateReady is the order service's state of a parcel handed over at the gate by its supplier.
const StateReady = "READY"
