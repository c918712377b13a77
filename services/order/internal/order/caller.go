package order

import (
	"errors"
	"fmt"
)

// ErrPermissionDenied: the caller may not do this at all (PERMISSION_DENIED). Something that
// exists but is not the caller's to see is ErrNotFound instead, worded as for an unknown id.
var ErrPermissionDenied = errors.New("permission denied")

// NotFound is the one wording of an unknown household, order, parcel or compound ("not found:
// order <id>"), used as well for one the caller may not reach, so that nobody learns which ids
// exist.
func NotFound(what, id string) error { return fmt.Errorf("%w: %s %s", ErrNotFound, what, id) }

// Caller is who a use case is carried out for, as the transport verified it: the person behind
// the call (a service acting for someone counts as that someone), or a service acting on its own
// (RoleSystem). Which roles may call a method at all is the transport's policy; what a caller
// reaches is decided here, where households, orders and parcels are known.
type Caller struct {
	// Actor is recorded as who made a change; a resident's id is their household's id.
	Actor Actor
	// Compound confines staff to one compound; "" is city-wide.
	Compound string
}

// service reports whether no person is behind the call: a service (the seed, an operator's
// tool) acting on its own. It reaches everything and says itself who placed or cancelled an order.
func (c Caller) service() bool { return c.Actor.Role == RoleSystem }

// reachesCompound reports whether c may see and change a whole compound's roster. A resident
// reaches no compound, only their household.
func (c Caller) reachesCompound(compound string) bool {
	return c.Actor.Role != RoleResident && (c.Compound == "" || c.Compound == compound)
}

// reachesHousehold reports whether c may see and act for the household id of compound, and so
// for its orders and parcels.
func (c Caller) reachesHousehold(id, compound string) bool {
	scope, ok := c.householdScope(id)
	return ok && (scope == "" || scope == compound)
}

// householdScope is where c reaches the household id before it is read: in any compound (""), in
// the one compound named, or nowhere (ok false). A resident reaches their own household only, a
// worker the households of their compound, a service every household.
func (c Caller) householdScope(id string) (compound string, ok bool) {
	if c.Actor.Role == RoleResident {
		return "", c.Actor.ID == id
	}
	return c.Compound, true
}

// placing settles who places req and through which channel. A person orders as themselves: a
// resident for their own household through the app, a community worker as a proxy (WORKER, or
// PHONE when they took the order by phone); a placed_by naming anyone else is refused. A service
// acting on its own names who placed the order, the household itself when it names no one.
func (c Caller) placing(req PlaceRequest) (PlaceRequest, error) {
	if c.service() {
		if req.PlacedBy == (Actor{}) {
			req.PlacedBy = Actor{Role: RoleResident, ID: req.HouseholdID}
		}
		if req.Channel == "" {
			req.Channel = ChannelApp
		}
		return req, mayActFor(req.PlacedBy, req.HouseholdID)
	}
	if err := c.isActor(req.PlacedBy, "placed_by"); err != nil {
		return req, err
	}
	req.PlacedBy = c.Actor
	switch c.Actor.Role {
	case RoleResident:
		if req.Channel != "" && req.Channel != ChannelApp {
			return req, &FieldError{Field: "channel", Reason: "a household orders for itself through APP; PHONE and WORKER orders are placed by a community worker"}
		}
		req.Channel = ChannelApp
	case RoleWorker:
		switch req.Channel {
		case "", ChannelWorker:
			req.Channel = ChannelWorker
		case ChannelPhone:
		default:
			return req, &FieldError{Field: "channel", Reason: "a worker's proxy order is WORKER, or PHONE when taken by phone"}
		}
	default:
		return req, fmt.Errorf("%w: a %s cannot order for households", ErrPermissionDenied, c.Actor.Role)
	}
	return req, nil
}

// cancelling is who cancels an order of householdID: the caller, when a person; a service acting
// on its own names who (the household itself when it names no one).
func (c Caller) cancelling(named Actor, householdID string) (Actor, error) {
	if c.service() {
		if named == (Actor{}) {
			named = Actor{Role: RoleResident, ID: householdID}
		}
		return named, mayActFor(named, householdID)
	}
	if err := c.isActor(named, "actor"); err != nil {
		return Actor{}, err
	}
	return c.Actor, nil
}

// isActor refuses a request whose field names an actor other than the person calling: what a
// person does is recorded as theirs, never as someone else's.
func (c Caller) isActor(named Actor, field string) error {
	if named == (Actor{}) || named == c.Actor {
		return nil
	}
	return fmt.Errorf("%w: %s names %s %s, but the caller is %s %s; leave it empty", ErrPermissionDenied,
		field, named.Role, named.ID, c.Actor.Role, c.Actor.ID)
}

// mayActFor keeps an actor a service names to what that actor could do: a household its own
// orders, a worker (proxy orders) and a service any household's.
func mayActFor(a Actor, householdID string) error {
	switch a.Role {
	case RoleResident:
		if a.ID != householdID {
			return fmt.Errorf("%w: resident %s cannot act for household %s", ErrPermissionDenied, a.ID, householdID)
		}
	case RoleWorker, RoleSystem:
	default:
		return fmt.Errorf("%w: role %s cannot order for households", ErrPermissionDenied, a.Role)
	}
	return nil
}
