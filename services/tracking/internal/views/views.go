// Package views holds the tracking service's read models besides the timeline: where each parcel
// stands, how far a round has got by building and by courier, and each supplier's queue. Events
// reach the tracking service in any order, so every fact here carries the event's time and id and
// only a later fact replaces an earlier one. It knows nothing of protobuf, gRPC or PostgreSQL.
package views

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"
)

// ErrNotFound means the caller may not see what they asked for, or it does not exist; the two are
// deliberately the same answer.
var ErrNotFound = errors.New("not found")

// Parcel states as the read models store them (lower case, as in event subjects).
const (
	StatePlaced         = "placed"
	StateAssigned       = "assigned"
	StateOutForDelivery = "out_for_delivery"
	StateDelivered      = "delivered"
	StateFailed         = "failed"
)

// Placement is an order.placed: which parcels an order has, for which household and suppliers.
// It also says each parcel is PLACED, as of the order's time.
type Placement struct {
	Compound    string
	OrderID     string
	HouseholdID string
	Parcels     []PlacedParcel
	At          time.Time
	EventID     string
}

// PlacedParcel is one supplier's share of an order.
type PlacedParcel struct {
	ParcelID   string
	SupplierID string
}

// StateChange is a parcel.<state> event.
type StateChange struct {
	Compound    string
	ParcelID    string
	OrderID     string
	HouseholdID string
	// RoundID is set for states reached within a round (at_gate, assigned, out_for_delivery,
	// delivered, failed) and empty for the others.
	RoundID string
	State   string
	At      time.Time
	EventID string
}

// Route is a route.planned: a courier's whole route for a round. A later version replaces the
// earlier one's parcels; a route without parcels withdraws it.
type Route struct {
	Compound  string
	RouteID   string
	RoundID   string
	CourierID string
	Version   int
	Parcels   []RouteParcel
	At        time.Time
	EventID   string
}

// RouteParcel is a parcel of a route and the building its stop is in.
type RouteParcel struct {
	ParcelID string
	Building string
}

// Progress counts a round's parcels by where they stand now. Parcels counts all of them, whatever
// their state; a parcel picked up is no longer counted as assigned.
type Progress struct {
	Parcels        int
	Assigned       int
	OutForDelivery int
	Delivered      int
	Failed         int
}

// Add counts n parcels in state.
func (p *Progress) Add(state string, n int) {
	p.Parcels += n
	switch state {
	case StateAssigned:
		p.Assigned += n
	case StateOutForDelivery:
		p.OutForDelivery += n
	case StateDelivered:
		p.Delivered += n
	case StateFailed:
		p.Failed += n
	}
}

// Share is one building's or one courier's part of a round.
type Share struct {
	// Key is the building ("3") or the courier id.
	Key      string
	Progress Progress
}

// RoundProgress is a round as a dispatcher watches it.
type RoundProgress struct {
	RoundID   string
	Total     Progress
	Buildings []Share
	Couriers  []Share
}

// Count is how many parcels of a round on one courier's route to one building are in one state.
type Count struct {
	Building  string
	CourierID string
	State     string
	Parcels   int
}

// Tally adds counts up into a round's progress: buildings in the order people number them ("2"
// before "10"), couriers by id. A round without parcels has zero progress, not an error: it may
// simply not be planned yet.
func Tally(roundID string, counts []Count) RoundProgress {
	rp := RoundProgress{RoundID: roundID}
	buildings, couriers := map[string]*Progress{}, map[string]*Progress{}
	for _, c := range counts {
		rp.Total.Add(c.State, c.Parcels)
		share(buildings, c.Building).Add(c.State, c.Parcels)
		share(couriers, c.CourierID).Add(c.State, c.Parcels)
	}
	rp.Buildings = shares(buildings, compareBuildings)
	rp.Couriers = shares(couriers, cmp.Compare[string])
	return rp
}

func share(m map[string]*Progress, key string) *Progress {
	p, ok := m[key]
	if !ok {
		p = &Progress{}
		m[key] = p
	}
	return p
}

func shares(m map[string]*Progress, compare func(a, b string) int) []Share {
	out := make([]Share, 0, len(m))
	for k, p := range m {
		out = append(out, Share{Key: k, Progress: *p})
	}
	slices.SortFunc(out, func(a, b Share) int { return compare(a.Key, b.Key) })
	return out
}

// compareBuildings orders building numbers as numbers when both are ("2" < "10"), numbers before
// names, and names as text.
func compareBuildings(a, b string) int {
	na, errA := strconv.Atoi(a)
	nb, errB := strconv.Atoi(b)
	switch {
	case errA == nil && errB == nil:
		return cmp.Or(cmp.Compare(na, nb), cmp.Compare(a, b))
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	default:
		return cmp.Compare(a, b)
	}
}

// StateCount is how many of a supplier's parcels are in one state.
type StateCount struct {
	State   string
	Parcels int
}

// Reader reads the read models.
type Reader interface {
	// RoundProgress is the progress of the parcels on the round's routes' latest versions.
	RoundProgress(ctx context.Context, roundID string) (RoundProgress, error)
	// SupplierQueue counts the supplier's parcels by latest state; states without parcels are
	// left out, and a supplier with no parcels has an empty queue.
	SupplierQueue(ctx context.Context, supplierID string) ([]StateCount, error)
}
