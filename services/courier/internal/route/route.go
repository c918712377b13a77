// Package route is the courier's side of a delivery round: a planned route, stop by stop, and
// the rules for what a courier may do with its parcels (pick up at the gate, then deliver or fail
// each one). It knows nothing of gRPC, protobuf or SQL; the transport and the store map to it.
package route

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; the transport maps each to one status code.
var (
	// ErrNotFound: no such route or parcel for this courier. A courier never learns whether another
	// courier's route exists, so "someone else's" is reported as not found too.
	ErrNotFound = errors.New("not found")
	// ErrIllegalTransition: the parcel is not in a state the action applies to.
	ErrIllegalTransition = errors.New("illegal transition")
	// ErrRequestReused: a request id was used before for a different request.
	ErrRequestReused = errors.New("request id already used for a different request")
	// ErrInvalid: an inbound event or command is malformed.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable: something the call needs (the broker, for watching) is out of reach for
	// now; the client should try again.
	ErrUnavailable = errors.New("unavailable")
)

// NoRoute says courierID has no route (in roundID, when given). The not-found errors of a
// courier's lookups are built here only: a route or parcel that exists but is not the caller's
// is reported in the very words of one that does not exist, so nobody learns which ids exist.
func NoRoute(courierID, roundID string) error {
	if roundID == "" {
		return fmt.Errorf("%w: courier %s has no route yet", ErrNotFound, courierID)
	}
	return fmt.Errorf("%w: courier %s has no route in round %s", ErrNotFound, courierID, roundID)
}

// NoSuchRoute says courierID has no route routeID.
func NoSuchRoute(courierID, routeID string) error {
	return fmt.Errorf("%w: courier %s has no route %s", ErrNotFound, courierID, routeID)
}

// ParcelNotOnRoutes says parcelID is on none of courierID's routes.
func ParcelNotOnRoutes(courierID, parcelID string) error {
	return fmt.Errorf("%w: parcel %s is on none of courier %s's routes", ErrNotFound, parcelID, courierID)
}

// Role is who an actor is, as far as the courier service records changes: the courier, or a
// service acting on its own (for nobody in particular).
type Role int

// Roles of actors.
const (
	RoleCourier Role = iota + 1
	RoleSystem
)

// Actor is who made a change; events name them.
type Actor struct {
	Role Role
	// ID is the courier id, or the service's name.
	ID string
}

// Scope is what a caller may reach, derived by the transport from the verified identity. The
// zero Scope reaches every route and acts as nobody (it may read, not change).
type Scope struct {
	// Courier, when set, is the only courier whose routes the caller may see and act on: a
	// courier, calling directly or through a service acting for them. Naming another courier is
	// answered exactly as if that courier had no routes.
	Courier string
	// Compound, when set, limits the caller to routes in that compound (staff of one compound).
	Compound string
	// Actor is who the caller's changes are recorded as made by.
	Actor Actor
}

func (s Scope) reaches(courierID string) bool { return s.Courier == "" || s.Courier == courierID }

// Status is where one parcel of a route stands, from the courier's point of view.
type Status int

// Statuses of a parcel on a route. The zero value is not a status, so a forgotten assignment shows.
const (
	StatusPending Status = iota + 1
	StatusOutForDelivery
	StatusDelivered
	StatusFailed
)

var statusNames = map[Status]string{
	StatusPending:        "PENDING",
	StatusOutForDelivery: "OUT_FOR_DELIVERY",
	StatusDelivered:      "DELIVERED",
	StatusFailed:         "FAILED",
}

// String is the status's stored name.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// ParseStatus reads a stored status name.
func ParseStatus(s string) (Status, error) {
	for st, n := range statusNames {
		if n == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown status %q", ErrInvalid, s)
}

// next lists the transitions a courier may make: pick up, then exactly one outcome. A FAILED parcel
// does not come back to life on the same route; dispatch plans it into a new route of a later round.
var next = map[Status][]Status{
	StatusPending:        {StatusOutForDelivery},
	StatusOutForDelivery: {StatusDelivered, StatusFailed},
}

// CanBecome reports whether a parcel in s may move to to.
func (s Status) CanBecome(to Status) bool {
	for _, n := range next[s] {
		if n == to {
			return true
		}
	}
	return false
}

// Method is how a delivered parcel reached the household.
type Method int

// Delivery methods.
const (
	LeftAtDoor Method = iota + 1
	HandedOver
)

// String is the method as events carry it.
func (m Method) String() string {
	switch m {
	case LeftAtDoor:
		return "left_at_door"
	case HandedOver:
		return "handed_over"
	}
	return ""
}

// ParseMethod reads a stored method; "" is no method (the parcel is not delivered).
func ParseMethod(s string) (Method, error) {
	switch s {
	case "":
		return 0, nil
	case "left_at_door":
		return LeftAtDoor, nil
	case "handed_over":
		return HandedOver, nil
	}
	return 0, fmt.Errorf("%w: unknown delivery method %q", ErrInvalid, s)
}

// Reason is why a delivery failed.
type Reason int

// Failure reasons.
const (
	NotHome Reason = iota + 1
	Refused
	WrongAddress
	Other
)

// String is the reason's event token.
func (r Reason) String() string {
	switch r {
	case NotHome:
		return "not_home"
	case Refused:
		return "refused"
	case WrongAddress:
		return "wrong_address"
	case Other:
		return "other"
	}
	return ""
}

// Failure is a failed delivery's reason with the courier's note (required for Other).
type Failure struct {
	Reason Reason
	Note   string
}

// Validate checks the failure can be recorded.
func (f Failure) Validate() error {
	if f.Reason < NotHome || f.Reason > Other {
		return fmt.Errorf("%w: unknown failure reason %d", ErrInvalid, f.Reason)
	}
	if f.Reason == Other && f.Note == "" {
		return fmt.Errorf("%w: a note is required when the reason is other", ErrInvalid)
	}
	return nil
}

// Text is the reason as events and the timeline carry it: "not_home", or "other: <note>". A note
// given with a named reason is kept after it, so nothing the courier wrote is lost.
func (f Failure) Text() string {
	if f.Note == "" {
		return f.Reason.String()
	}
	return f.Reason.String() + ": " + f.Note
}

// Address is a household's structured place in a compound.
type Address struct {
	Compound string
	Building string
	Unit     string
	Floor    int
	Room     string
}

// Parcel is one parcel of a stop.
type Parcel struct {
	ID      string
	OrderID string
	Status  Status
	// Set once delivered or failed.
	Method    Method
	Reason    string
	PhotoRef  string
	ChangedAt time.Time
	// Superseded: the parcel appears in a newer route (a failed parcel planned into the next round),
	// which is the one to act on. The store fills it in when loading.
	Superseded bool
}

// Stop is one door of a route.
type Stop struct {
	Sequence    int
	Trip        int
	HouseholdID string
	Address     Address
	Priority    bool
	Contactless bool
	Parcels     []Parcel
}

// Route is one courier's stops in one round, as dispatch planned it.
type Route struct {
	ID        string
	RoundID   string
	CourierID string
	Compound  string
	// PlannedAt is when the route was first planned. It orders a courier's routes and a parcel's
	// routes (the newest one counts) and does not move when the route is re-published, so a
	// morning route re-planned in the afternoon never overtakes the afternoon's route.
	PlannedAt time.Time
	// Version is dispatch's version of the plan; only a higher one replaces the route.
	Version int
	// Revision counts every stored change to the route (a new version, a pick-up, an outcome).
	// Watchers use it to tell a change they were told of from one they have already seen.
	Revision int64
	Stops    []Stop
}

// Change is one parcel transition, with what an event about it must carry.
type Change struct {
	// Actor made the change (the Service sets it from the caller's Scope).
	Actor       Actor
	RouteID     string
	RoundID     string
	CourierID   string
	Compound    string
	HouseholdID string
	ParcelID    string
	OrderID     string
	To          Status
	Method      Method
	Reason      string
	PhotoRef    string
	At          time.Time
}

// Validate checks a planned route before it is stored: the fields every later action relies on,
// and no sequence or parcel twice.
func (r *Route) Validate() error {
	var errs []error
	if r.ID == "" {
		errs = append(errs, errors.New("route_id is empty"))
	}
	if r.RoundID == "" {
		errs = append(errs, errors.New("round_id is empty"))
	}
	if r.CourierID == "" {
		errs = append(errs, errors.New("courier_id is empty"))
	}
	if r.Compound == "" {
		errs = append(errs, errors.New("compound is empty"))
	}
	seqs := map[int]bool{}
	parcels := map[string]bool{}
	for i, s := range r.Stops {
		if seqs[s.Sequence] {
			errs = append(errs, fmt.Errorf("stops[%d]: sequence %d repeated", i, s.Sequence))
		}
		seqs[s.Sequence] = true
		if s.HouseholdID == "" {
			errs = append(errs, fmt.Errorf("stops[%d]: household_id is empty", i))
		}
		for j, p := range s.Parcels {
			if p.ID == "" {
				errs = append(errs, fmt.Errorf("stops[%d].parcels[%d]: parcel_id is empty", i, j))
			} else if parcels[p.ID] {
				errs = append(errs, fmt.Errorf("stops[%d].parcels[%d]: parcel %s repeated", i, j, p.ID))
			}
			parcels[p.ID] = true
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w route: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// Parcel finds a parcel of the route with its stop.
func (r *Route) Parcel(id string) (*Stop, *Parcel, bool) {
	for i := range r.Stops {
		for j := range r.Stops[i].Parcels {
			if r.Stops[i].Parcels[j].ID == id {
				return &r.Stops[i], &r.Stops[i].Parcels[j], true
			}
		}
	}
	return nil, nil, false
}

// PickUp takes every pending parcel out for delivery. Parcels already out, delivered or failed are
// left as they are, so a second pick-up changes nothing; so are superseded parcels, which belong
// to a newer route.
func (r *Route) PickUp(at time.Time) []Change {
	var changes []Change
	for i := range r.Stops {
		s := &r.Stops[i]
		for j := range s.Parcels {
			p := &s.Parcels[j]
			if p.Status != StatusPending || p.Superseded {
				continue
			}
			p.Status, p.ChangedAt = StatusOutForDelivery, at.UTC()
			changes = append(changes, r.change(s, p, at))
		}
	}
	return changes
}

// Deliver records a parcel delivered.
func (r *Route) Deliver(parcelID string, m Method, photoRef string, at time.Time) (Change, error) {
	if m != LeftAtDoor && m != HandedOver {
		return Change{}, fmt.Errorf("%w: unknown delivery method %d", ErrInvalid, m)
	}
	s, p, err := r.transition(parcelID, StatusDelivered)
	if err != nil {
		return Change{}, err
	}
	p.Method, p.PhotoRef, p.ChangedAt = m, photoRef, at.UTC()
	return r.change(s, p, at), nil
}

// Fail records a failed delivery.
func (r *Route) Fail(parcelID string, f Failure, at time.Time) (Change, error) {
	if err := f.Validate(); err != nil {
		return Change{}, err
	}
	s, p, err := r.transition(parcelID, StatusFailed)
	if err != nil {
		return Change{}, err
	}
	p.Reason, p.ChangedAt = f.Text(), at.UTC()
	return r.change(s, p, at), nil
}

func (r *Route) transition(parcelID string, to Status) (*Stop, *Parcel, error) {
	s, p, ok := r.Parcel(parcelID)
	if !ok {
		return nil, nil, fmt.Errorf("%w: parcel %s is not on route %s", ErrNotFound, parcelID, r.ID)
	}
	if p.Superseded {
		return nil, nil, fmt.Errorf("%w: parcel %s was planned into a newer route than %s", ErrIllegalTransition, parcelID, r.ID)
	}
	if !p.Status.CanBecome(to) {
		why := ""
		if p.Status == StatusPending {
			why = " (pick the route up at the gate first)"
		}
		return nil, nil, fmt.Errorf("%w: parcel %s is %s on route %s, cannot become %s%s",
			ErrIllegalTransition, parcelID, p.Status, r.ID, to, why)
	}
	p.Status = to
	return s, p, nil
}

// Finished reports whether the parcel's delivery on this route is over, either way. A finished
// parcel is history: a new version of the route does not take it away.
func (p Parcel) Finished() bool { return p.Status == StatusDelivered || p.Status == StatusFailed }

// Replan is what current becomes when dispatch publishes next, a higher version of it (a stop
// moved to or from the courier, a reassignment, a re-plan of the round). next's stops replace the
// route's; a parcel that stays keeps what already happened to it; a parcel next drops leaves the
// courier's list unless it was delivered or failed, which stays as history: under next's stop for
// the same household if there is one, else under its old stop, numbered after next's stops. A
// next without stops withdraws the route, leaving only that history. current's zero value is a
// route not seen before.
func Replan(current, next Route) Route {
	out := next
	out.Stops = make([]Stop, 0, len(next.Stops))
	out.Revision = current.Revision
	if current.ID != "" {
		out.PlannedAt = current.PlannedAt
	}
	before := map[string]Parcel{}
	for _, s := range current.Stops {
		for _, p := range s.Parcels {
			before[p.ID] = p
		}
	}
	stays := map[string]bool{}
	byHousehold := map[string]int{}
	last := 0
	for _, s := range next.Stops {
		stop := s
		stop.Parcels = make([]Parcel, 0, len(s.Parcels))
		for _, p := range s.Parcels {
			np := Parcel{ID: p.ID, OrderID: p.OrderID, Status: StatusPending}
			if old, ok := before[p.ID]; ok {
				np.Status, np.Method, np.Reason, np.PhotoRef, np.ChangedAt = old.Status, old.Method, old.Reason, old.PhotoRef, old.ChangedAt
			}
			stays[p.ID] = true
			stop.Parcels = append(stop.Parcels, np)
		}
		if _, ok := byHousehold[stop.HouseholdID]; !ok {
			byHousehold[stop.HouseholdID] = len(out.Stops)
		}
		last = max(last, stop.Sequence)
		out.Stops = append(out.Stops, stop)
	}
	for _, s := range current.Stops {
		var history []Parcel
		for _, p := range s.Parcels {
			if p.Finished() && !stays[p.ID] {
				p.Superseded = false
				history = append(history, p)
			}
		}
		if len(history) == 0 {
			continue
		}
		if i, ok := byHousehold[s.HouseholdID]; ok {
			out.Stops[i].Parcels = append(out.Stops[i].Parcels, history...)
			continue
		}
		last++
		stop := s
		stop.Sequence, stop.Parcels = last, history
		byHousehold[stop.HouseholdID] = len(out.Stops)
		out.Stops = append(out.Stops, stop)
	}
	return out
}

func (r *Route) change(s *Stop, p *Parcel, at time.Time) Change {
	return Change{
		RouteID: r.ID, RoundID: r.RoundID, CourierID: r.CourierID, Compound: r.Compound,
		HouseholdID: s.HouseholdID, ParcelID: p.ID, OrderID: p.OrderID,
		To: p.Status, Method: p.Method, Reason: p.Reason, PhotoRef: p.PhotoRef, At: at.UTC(),
	}
}
