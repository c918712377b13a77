package route

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// KeyRetention is how long an idempotency key is kept. A client retries within seconds or, after
// a floor without signal, hours; a key lives at least a day whatever the pruning schedule, and
// keys older than this are pruned.
const KeyRetention = 48 * time.Hour

// Key makes a mutating request idempotent: a retry with the same RequestID and the same content
// (Fingerprint) returns the first result; the same RequestID with other content is refused.
type Key struct {
	RequestID   string
	Op          string
	Fingerprint string
	// At is when the key was first used; pruning goes by it.
	At time.Time
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
// ParcelID. Either way the route must be CourierID's and, when Compound is set, in that compound;
// any other is not found.
type Target struct {
	CourierID string
	Compound  string
	RouteID   string
	ParcelID  string
}

// Revision says that a courier's route reached a revision in a committed change; watchers of
// the courier are told of it.
type Revision struct {
	Compound  string
	CourierID string
	RouteID   string
	Revision  int64
}

// Repository keeps routes. Every update runs in one transaction that also records the request
// key and writes an event per change, so a crash leaves either all of it or none; it returns the
// revisions its changes reached (none when nothing changed).
type Repository interface {
	// Route is the courier's route of roundID, or their newest route when roundID is empty;
	// when compound is set, only the courier's routes in that compound count.
	Route(ctx context.Context, courierID, roundID, compound string) (Route, error)
	// Update loads the target route, applies fn and stores the changes it returns with their
	// events. If key was seen before with the same fingerprint, fn is not run and the route the
	// first request acted on is returned as it is now; with another fingerprint, ErrRequestReused.
	// fn may run more than once (transaction retries) and must depend only on its argument.
	Update(ctx context.Context, key Key, target Target, fn func(*Route) ([]Change, error)) (Route, []Revision, error)
	// Complete loads, for each of parcelIDs, the courier's newest route holding it (in compound,
	// when set), applies fn to them (a parcel on none is missing from the map) and stores the
	// changes with their events and the results. If key was seen before with the same
	// fingerprint, fn is not run and the first results are returned; with another fingerprint,
	// ErrRequestReused. fn may run more than once and must depend only on its argument.
	Complete(ctx context.Context, key Key, courierID, compound string, parcelIDs []string,
		fn func(map[string]*Route) ([]Change, []Result)) ([]Result, []Revision, error)
	// RoundPlanned reports whether any courier has a route in roundID, in any compound (round
	// ids are no secret; whose routes are in a round is).
	RoundPlanned(ctx context.Context, roundID string) (bool, error)
	// PruneKeys deletes idempotency keys first used before cutoff and says how many.
	PruneKeys(ctx context.Context, cutoff time.Time) (int64, error)
}

// Notifier tells the watchers of every replica that routes changed. It is best effort: a lost
// announcement is caught by the watchers' periodic re-read.
type Notifier interface {
	Announce(ctx context.Context, revs ...Revision)
}

// Service is what a courier can do.
type Service struct {
	Repo Repository
	// Notifier announces committed changes; nil announces nothing (a single replica's watchers
	// then see changes only on their periodic re-read).
	Notifier Notifier
	// Feed delivers announcements to watchers; Watch needs it.
	Feed Feed
	// Resync is how often a watcher re-reads its route without being told of a change, as a net
	// under lost announcements; 0 means 30 seconds.
	Resync time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) key(at time.Time, requestID, op string, fields ...string) Key {
	k := newKey(requestID, op, fields...)
	k.At = at
	return k
}

func (s *Service) announce(ctx context.Context, revs []Revision) {
	if s.Notifier != nil && len(revs) > 0 {
		s.Notifier.Announce(ctx, revs...)
	}
}

// by records who made changes.
func by(a Actor, changes []Change) []Change {
	for i := range changes {
		changes[i].Actor = a
	}
	return changes
}

// Route is the courier's route of a round, or their newest, as far as scope reaches.
func (s *Service) Route(ctx context.Context, scope Scope, courierID, roundID string) (Route, error) {
	if !scope.reaches(courierID) {
		return Route{}, NoRoute(courierID, roundID)
	}
	return s.Repo.Route(ctx, courierID, roundID, scope.Compound)
}

// PickUp confirms the courier has the route's parcels in hand at the gate.
func (s *Service) PickUp(ctx context.Context, scope Scope, requestID, courierID, routeID string) (Route, error) {
	if !scope.reaches(courierID) {
		return Route{}, NoSuchRoute(courierID, routeID)
	}
	at := s.now()
	key := s.key(at, requestID, "pick_up", courierID, routeID)
	target := Target{CourierID: courierID, Compound: scope.Compound, RouteID: routeID}
	r, revs, err := s.Repo.Update(ctx, key, target, func(r *Route) ([]Change, error) {
		return by(scope.Actor, r.PickUp(at)), nil
	})
	s.announce(ctx, revs)
	return r, err
}

// Deliver records a parcel delivered by the courier.
func (s *Service) Deliver(ctx context.Context, scope Scope, requestID, courierID, parcelID string, m Method, photoRef string) (Parcel, error) {
	if !scope.reaches(courierID) {
		return Parcel{}, ParcelNotOnRoutes(courierID, parcelID)
	}
	at := s.now()
	key := s.key(at, requestID, "deliver", courierID, parcelID, m.String(), photoRef)
	target := Target{CourierID: courierID, Compound: scope.Compound, ParcelID: parcelID}
	r, revs, err := s.Repo.Update(ctx, key, target, func(r *Route) ([]Change, error) {
		c, err := r.Deliver(parcelID, m, photoRef, at)
		return by(scope.Actor, []Change{c}), err
	})
	s.announce(ctx, revs)
	return parcelOf(r, parcelID, err)
}

// Fail records a failed delivery; dispatch plans the parcel into the next round.
func (s *Service) Fail(ctx context.Context, scope Scope, requestID, courierID, parcelID string, f Failure) (Parcel, error) {
	if !scope.reaches(courierID) {
		return Parcel{}, ParcelNotOnRoutes(courierID, parcelID)
	}
	at := s.now()
	key := s.key(at, requestID, "fail", courierID, parcelID, strconv.Itoa(int(f.Reason)), f.Note)
	target := Target{CourierID: courierID, Compound: scope.Compound, ParcelID: parcelID}
	r, revs, err := s.Repo.Update(ctx, key, target, func(r *Route) ([]Change, error) {
		c, err := r.Fail(parcelID, f, at)
		return by(scope.Actor, []Change{c}), err
	})
	s.announce(ctx, revs)
	return parcelOf(r, parcelID, err)
}

// CompleteStops records several outcomes in one call (a courier back in signal after a floor
// without any). Each is recorded or refused on its own; a retry returns the first results.
// Naming another courier is refused as a whole, as a courier without routes.
func (s *Service) CompleteStops(ctx context.Context, scope Scope, requestID, courierID string, outcomes []Outcome) ([]Result, error) {
	if !scope.reaches(courierID) {
		return nil, NoRoute(courierID, "")
	}
	at := s.now()
	fields := []string{courierID}
	ids := make([]string, 0, len(outcomes))
	for _, o := range outcomes {
		fields = append(fields, o.ParcelID, o.Method.String(), o.PhotoRef, strconv.Itoa(int(o.Failure.Reason)), o.Failure.Note)
		ids = append(ids, o.ParcelID)
	}
	key := s.key(at, requestID, "complete_stops", fields...)
	results, revs, err := s.Repo.Complete(ctx, key, courierID, scope.Compound, ids, func(routes map[string]*Route) ([]Change, []Result) {
		changes, results := Complete(routes, outcomes, at)
		return by(scope.Actor, changes), results
	})
	s.announce(ctx, revs)
	return results, err
}

// PruneKeys forgets idempotency keys older than KeyRetention. A retry older than that is
// treated as a new request, which for a courier's outcome is refused as an illegal transition.
func (s *Service) PruneKeys(ctx context.Context) (int64, error) {
	return s.Repo.PruneKeys(ctx, s.now().Add(-KeyRetention))
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
