package route

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Key makes a mutating request idempotent: a retry with the same RequestID and the same content
// (Fingerprint) returns the first result; the same RequestID with other content is refused.
type Key struct {
	RequestID   string
	Op          string
	Fingerprint string
}

func newKey(requestID, op string, fields ...string) Key {
	h := sha256.New()
	for _, f := range fields {
		// Length-prefixed so ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return Key{RequestID: requestID, Op: op, Fingerprint: hex.EncodeToString(h.Sum(nil))}
}

// Target names the route an update acts on: RouteID, or else the courier's newest route holding
// ParcelID. Either way the route must be CourierID's.
type Target struct {
	CourierID string
	RouteID   string
	ParcelID  string
}

// Repository keeps routes. Update runs in one transaction that also records the request key and
// writes an event per change, so a crash leaves either all of it or none.
type Repository interface {
	// Route is the courier's route of roundID, or their newest route when roundID is empty.
	Route(ctx context.Context, courierID, roundID string) (Route, error)
	// Update loads the target route, applies fn and stores the changes it returns with their
	// events. If key was seen before with the same fingerprint, fn is not run and the route the
	// first request acted on is returned as it is now; with another fingerprint, ErrRequestReused.
	// fn may run more than once (transaction retries) and must depend only on its argument.
	Update(ctx context.Context, key Key, target Target, fn func(*Route) ([]Change, error)) (Route, error)
}

// Service is what a courier can do.
type Service struct {
	Repo Repository
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Route is the courier's route of a round, or their newest.
func (s *Service) Route(ctx context.Context, courierID, roundID string) (Route, error) {
	return s.Repo.Route(ctx, courierID, roundID)
}

// PickUp confirms the courier has the route's parcels in hand at the gate.
func (s *Service) PickUp(ctx context.Context, requestID, courierID, routeID string) (Route, error) {
	at := s.now()
	key := newKey(requestID, "pick_up", courierID, routeID)
	return s.Repo.Update(ctx, key, Target{CourierID: courierID, RouteID: routeID}, func(r *Route) ([]Change, error) {
		return r.PickUp(at), nil
	})
}

// Deliver records a parcel delivered by the courier.
func (s *Service) Deliver(ctx context.Context, requestID, courierID, parcelID string, m Method, photoRef string) (Parcel, error) {
	at := s.now()
	key := newKey(requestID, "deliver", courierID, parcelID, m.String(), photoRef)
	r, err := s.Repo.Update(ctx, key, Target{CourierID: courierID, ParcelID: parcelID}, func(r *Route) ([]Change, error) {
		c, err := r.Deliver(parcelID, m, photoRef, at)
		return []Change{c}, err
	})
	return parcelOf(r, parcelID, err)
}

// Fail records a failed delivery; dispatch plans the parcel into the next round.
func (s *Service) Fail(ctx context.Context, requestID, courierID, parcelID string, f Failure) (Parcel, error) {
	at := s.now()
	key := newKey(requestID, "fail", courierID, parcelID, strconv.Itoa(int(f.Reason)), f.Note)
	r, err := s.Repo.Update(ctx, key, Target{CourierID: courierID, ParcelID: parcelID}, func(r *Route) ([]Change, error) {
		c, err := r.Fail(parcelID, f, at)
		return []Change{c}, err
	})
	return parcelOf(r, parcelID, err)
}

func parcelOf(r Route, parcelID string, err error) (Parcel, error) {
	if err != nil {
		return Parcel{}, err
	}
	_, p, ok := r.Parcel(parcelID)
	if !ok {
		return Parcel{}, fmt.Errorf("%w: parcel %s is not on route %s", ErrNotFound, parcelID, r.ID)
	}
	return *p, nil
}
