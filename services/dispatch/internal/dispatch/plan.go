package dispatch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/doorstep/doorstep/services/dispatch/internal/planner"
	"github.com/google/uuid"
)

// PlanRoundCmd asks for a round's routes.
type PlanRoundCmd struct {
	RequestID string `json:"-"`
	RoundID   string
	// By is who plans, recorded on the events.
	By Actor `json:"-"`
}

// PlanRound plans an open or closed round's parcels onto its on-duty couriers and publishes the
// routes (version 1); a round planned before its cutoff closes on the way, and one without
// parcels is done at once. A planned or done round returns its routes as they are now.
func (s *Service) PlanRound(ctx context.Context, cmd PlanRoundCmd) (Plan, error) {
	return once(ctx, s, "PlanRound", cmd.RequestID, cmd, func(tx Tx) (Plan, error) {
		now := s.now()
		r, err := lockRound(ctx, tx, cmd.RoundID, now)
		if err != nil {
			return Plan{}, err
		}
		if r.State == RoundPlanned || r.State == RoundDone {
			routes, err := tx.Routes(ctx, r.ID)
			return Plan{Round: r, Routes: withStops(routes), Cost: r.Cost, LowerBound: r.LowerBound}, err
		}
		parcels, err := tx.PooledParcels(ctx, r.ID)
		if err != nil {
			return Plan{}, err
		}
		buildings, err := tx.Buildings(ctx, r.Compound)
		if err != nil {
			return Plan{}, err
		}
		couriers, err := roundCouriers(ctx, tx, r)
		if err != nil {
			return Plan{}, err
		}
		pp, err := plan(r, planInput(buildings, couriers, parcels, nil))
		if err != nil {
			return Plan{}, err
		}
		p := Plan{Round: r, Cost: Cost(pp.Cost), LowerBound: Cost(pp.LowerBound)}
		p.Round.State, p.Round.Cost, p.Round.LowerBound = RoundPlanned, p.Cost, p.LowerBound
		if len(parcels) == 0 {
			p.Round.State = RoundDone
		}
		byID := parcelsByID(parcels)
		var evs []Event
		for _, pr := range pp.Routes {
			route := Route{ID: uuid.Must(uuid.NewV7()).String(), RoundID: r.ID, CourierID: pr.CourierID,
				Stops: stopsOf(pr, byID), Cost: Cost(pr.Cost), Version: 1}
			p.Routes = append(p.Routes, route)
			for _, id := range parcelIDs(route) {
				x := byID[id]
				x.Status, x.RouteID, x.CourierID = StatusAssigned, route.ID, route.CourierID
				evs = append(evs, ParcelAssigned{Parcel: x, At: now, By: cmd.By})
			}
			evs = append(evs, RoutePlanned{Compound: r.Compound, Route: route, At: now, By: cmd.By})
		}
		if err := tx.SavePlan(ctx, p, now); err != nil {
			return Plan{}, err
		}
		return p, tx.Publish(ctx, evs...)
	})
}

// plan runs the planner, naming the round in refusals.
func plan(r Round, in planner.Input) (planner.Plan, error) {
	pp, err := planner.PlanRound(in)
	if errors.Is(err, planner.ErrUnplannable) {
		return planner.Plan{}, fmt.Errorf("%w %s: %s", ErrCannotPlan, r.ID, err.Error())
	}
	if err != nil {
		return planner.Plan{}, fmt.Errorf("plan round %s: %w", r.ID, err)
	}
	return pp, nil
}

// planInput is what the planner sees: the site plan, the couriers on duty, and the parcels,
// each pinned to pins[parcel id] when set.
func planInput(buildings []Building, couriers []Courier, parcels []Parcel, pins map[string]string) planner.Input {
	var in planner.Input
	for _, b := range buildings {
		in.Buildings = append(in.Buildings, planner.Building{Name: b.Name, Units: b.Units, Floors: b.Floors,
			HasLift: b.HasLift, DistanceM: b.DistanceM})
	}
	for _, c := range couriers {
		if c.OnDuty {
			in.Couriers = append(in.Couriers, plannerCourier(c))
		}
	}
	for _, p := range parcels {
		in.Parcels = append(in.Parcels, planner.Parcel{ID: p.ID, HouseholdID: p.HouseholdID, Building: p.Address.Building,
			Unit: p.Address.Unit, Floor: p.Address.Floor, Room: p.Address.Room, Priority: p.Priority,
			Contactless: p.Contactless, WeightGrams: p.WeightGrams, PinnedTo: pins[p.ID]})
	}
	return in
}

func plannerCourier(c Courier) planner.Courier {
	pc := planner.Courier{ID: c.ID, Buildings: c.Buildings, MaxParcels: c.MaxParcels, MaxGrams: c.MaxGrams}
	for _, r := range c.FloorRanges {
		pc.FloorRanges = append(pc.FloorRanges, planner.FloorRange{Building: r.Building, MinFloor: r.MinFloor, MaxFloor: r.MaxFloor})
	}
	return pc
}

// stopsOf turns a planned route's stops into the domain's, with addresses and orders from the
// parcels; a stop is pinned when any of its parcels is.
func stopsOf(pr planner.Route, byID map[string]Parcel) []Stop {
	var out []Stop
	for _, ps := range pr.Stops {
		first := byID[ps.ParcelIDs[0]]
		stop := Stop{Sequence: ps.Sequence, Trip: ps.Trip, HouseholdID: ps.HouseholdID, Address: first.Address,
			Priority: ps.Priority, Contactless: ps.Contactless, WeightGrams: ps.WeightGrams}
		for _, id := range ps.ParcelIDs {
			stop.Parcels = append(stop.Parcels, StopParcel{ParcelID: id, OrderID: byID[id].OrderID})
			stop.Pinned = stop.Pinned || byID[id].Pinned
		}
		out = append(out, stop)
	}
	return out
}

func parcelsByID(parcels []Parcel) map[string]Parcel {
	out := make(map[string]Parcel, len(parcels))
	for _, p := range parcels {
		out[p.ID] = p
	}
	return out
}

func parcelIDs(r Route) []string {
	var out []string
	for _, s := range r.Stops {
		for _, p := range s.Parcels {
			out = append(out, p.ParcelID)
		}
	}
	return out
}

// ReplanCmd asks to plan a planned round again.
type ReplanCmd struct {
	RequestID string `json:"-"`
	RoundID   string
	// By is who re-plans, recorded on the events.
	By Actor `json:"-"`
}

// ReplanRound plans a planned round's undelivered parcels again over the couriers on duty in it
// now (after duty changes or moves), keeping pinned stops with their courier while that courier
// is on duty (a pin to a courier now off duty is dropped). Parcels a courier has picked up stay
// with that courier whatever their duty: on duty, they are pinned to them like a dispatcher's
// move; off duty, the courier's route is planned apart with exactly those parcels. Routes whose
// stops change get the next version and are published; parcels that change courier get
// parcel.assigned.
func (s *Service) ReplanRound(ctx context.Context, cmd ReplanCmd) (Plan, error) {
	return once(ctx, s, "ReplanRound", cmd.RequestID, cmd, func(tx Tx) (Plan, error) {
		now := s.now()
		r, err := plannedRound(ctx, tx, cmd.RoundID, now)
		if err != nil {
			return Plan{}, err
		}
		live, err := tx.LiveParcels(ctx, r.ID)
		if err != nil {
			return Plan{}, err
		}
		pooled, err := tx.PooledParcels(ctx, r.ID)
		if err != nil {
			return Plan{}, err
		}
		buildings, err := tx.Buildings(ctx, r.Compound)
		if err != nil {
			return Plan{}, err
		}
		couriers, err := roundCouriers(ctx, tx, r)
		if err != nil {
			return Plan{}, err
		}
		pins := map[string]string{}
		held := map[string][]Parcel{} // picked up by a courier off duty now
		var open, all []Parcel
		var unpin []string
		for _, p := range append(live, pooled...) {
			switch on := isOnDuty(couriers, p.CourierID); {
			case p.PickedUp && !on:
				held[p.CourierID] = append(held[p.CourierID], p)
				all = append(all, p)
				continue
			case p.PickedUp, p.Pinned && on:
				pins[p.ID] = p.CourierID
			case p.Pinned:
				unpin = append(unpin, p.ID)
				p.Pinned = false
			}
			open = append(open, p)
			all = append(all, p)
		}
		if err := tx.SetPinned(ctx, unpin, false); err != nil {
			return Plan{}, err
		}
		pp, err := plan(r, planInput(buildings, couriers, open, pins))
		if err != nil {
			return Plan{}, err
		}
		next := map[string]planned{}
		for _, pr := range pp.Routes {
			next[pr.CourierID] = planned{stops: stopsOf(pr, parcelsByID(open)), cost: Cost(pr.Cost)}
		}
		cost, lb := Cost(pp.Cost), Cost(pp.LowerBound)
		for _, c := range keys(held) {
			one, oneLB, err := alone(r, buildings, couriers, c, held[c])
			if err != nil {
				return Plan{}, err
			}
			next[c], cost, lb = one, cost.add(one.cost), lb.add(oneLB)
		}
		old, err := tx.Routes(ctx, r.ID)
		if err != nil {
			return Plan{}, err
		}
		var everyone []string
		for _, o := range old {
			everyone = append(everyone, o.CourierID)
		}
		for c := range next {
			everyone = append(everyone, c)
		}
		if _, err := applyRoutes(ctx, tx, r, old, next, everyone, all, "re-planned by the dispatcher", cmd.By, now); err != nil {
			return Plan{}, err
		}
		r.Cost, r.LowerBound = cost, lb
		if err := tx.SetRoundCost(ctx, r.ID, r.Cost, r.LowerBound); err != nil {
			return Plan{}, err
		}
		routes, err := tx.Routes(ctx, r.ID)
		return Plan{Round: r, Routes: withStops(routes), Cost: r.Cost, LowerBound: r.LowerBound}, err
	})
}

// plannedRound locks a round that overrides may change: it must be planned (not yet done).
func plannedRound(ctx context.Context, tx Tx, id string, now time.Time) (Round, error) {
	r, err := lockRound(ctx, tx, id, now)
	if err != nil {
		return Round{}, err
	}
	switch r.State {
	case RoundPlanned:
		return r, nil
	case RoundDone:
		return Round{}, fmt.Errorf("%w: round %s is done: every parcel was delivered, failed or withdrawn", ErrIllegalTransition, r.ID)
	default:
		return Round{}, fmt.Errorf("%w: round %s is %s, not planned yet", ErrIllegalTransition, r.ID, r.State)
	}
}

// planned is a courier's next stops and what they cost.
type planned struct {
	stops []Stop
	cost  Cost
}

// alone plans courier id's route over exactly theirs, whatever the courier's duty, buildings or
// floors: the route of a courier who keeps what they have. It returns the route and its lower
// bound.
func alone(r Round, buildings []Building, couriers []Courier, id string, theirs []Parcel) (planned, Cost, error) {
	i := slices.IndexFunc(couriers, func(c Courier) bool { return c.ID == id })
	if i < 0 {
		return planned{}, Cost{}, fmt.Errorf("courier %s of %s: %w", id, r.Compound, ErrNotFound)
	}
	one := couriers[i]
	one.OnDuty = true
	pins := make(map[string]string, len(theirs))
	for _, p := range theirs {
		pins[p.ID] = id
	}
	pp, err := plan(r, planInput(buildings, []Courier{one}, theirs, pins))
	if err != nil {
		return planned{}, Cost{}, err
	}
	var out planned
	for _, pr := range pp.Routes {
		out = planned{stops: stopsOf(pr, parcelsByID(theirs)), cost: Cost(pr.Cost)}
	}
	return out, Cost(pp.LowerBound), nil
}

// applyRoutes stores and publishes the routes of couriers whose stops changed: each gets the next
// version (a courier new to the round gets a route at version 1), and is published whole, or
// with no stops when emptied, to withdraw it. Every parcel that changes route is published as
// assigned anew, with reason. It returns the changed routes by courier id.
func applyRoutes(ctx context.Context, tx Tx, r Round, old []Route, next map[string]planned, couriers []string,
	parcels []Parcel, reason string, by Actor, now time.Time) ([]Route, error) {
	couriers = slices.Clone(couriers)
	slices.Sort(couriers)
	couriers = slices.Compact(couriers)
	byID := parcelsByID(parcels)
	var changed []Route
	var assigned []Event
	for _, c := range couriers {
		n := next[c]
		i := slices.IndexFunc(old, func(o Route) bool { return o.CourierID == c })
		route := Route{RoundID: r.ID, CourierID: c, Stops: n.stops, Cost: n.cost, Version: 1}
		if i >= 0 {
			if sameStops(old[i].Stops, n.stops) {
				continue
			}
			route.ID, route.Version = old[i].ID, old[i].Version+1
		} else {
			if len(n.stops) == 0 {
				continue
			}
			route.ID = uuid.Must(uuid.NewV7()).String()
		}
		if err := tx.SaveRoute(ctx, route); err != nil {
			return nil, err
		}
		changed = append(changed, route)
		for _, id := range parcelIDs(route) {
			p := byID[id]
			if p.Status == StatusAssigned && p.RouteID == route.ID {
				continue
			}
			if p.PickedUp {
				// The order service's parcel is out for delivery and cannot be assigned again; the
				// callers keep picked-up parcels with their courier, so this is a bug.
				return nil, fmt.Errorf("parcel %s is out for delivery with %s: it cannot move to %s", p.ID, p.CourierID, c)
			}
			p.Status, p.RouteID, p.CourierID = StatusAssigned, route.ID, route.CourierID
			assigned = append(assigned, ParcelAssigned{Parcel: p, Reason: reason, At: now, By: by})
		}
	}
	evs := make([]Event, 0, len(changed)+len(assigned))
	for _, route := range changed {
		evs = append(evs, RoutePlanned{Compound: r.Compound, Route: route, At: now, By: by})
	}
	return changed, tx.Publish(ctx, append(evs, assigned...)...)
}

// sameStops reports whether a route's stops would read the same to its courier.
func sameStops(a, b []Stop) bool {
	return slices.EqualFunc(a, b, func(x, y Stop) bool {
		return x.Sequence == y.Sequence && x.Trip == y.Trip && x.HouseholdID == y.HouseholdID && x.Pinned == y.Pinned &&
			slices.Equal(x.Parcels, y.Parcels)
	})
}

// MoveStopCmd moves one household's stop in a planned round to another courier.
type MoveStopCmd struct {
	RequestID   string `json:"-"`
	RoundID     string
	HouseholdID string
	ToCourierID string
	// By is who moves it, recorded on the events.
	By Actor `json:"-"`
}

// MoveStop gives a household's undelivered parcels in a planned round to another on-duty
// courier, pinned there so that re-planning keeps them (a dispatcher's move overrides buildings
// and floor ranges). A stop whose courier has picked it up stays with them. Both couriers'
// routes are re-planned around the change; it returns the routes that changed.
func (s *Service) MoveStop(ctx context.Context, cmd MoveStopCmd) ([]Route, error) {
	return once(ctx, s, "MoveStop", cmd.RequestID, cmd, func(tx Tx) ([]Route, error) {
		now := s.now()
		r, err := plannedRound(ctx, tx, cmd.RoundID, now)
		if err != nil {
			return nil, err
		}
		couriers, err := roundCouriers(ctx, tx, r)
		if err != nil {
			return nil, err
		}
		if err := onDuty(couriers, r, cmd.ToCourierID); err != nil {
			return nil, err
		}
		had, err := tx.HouseholdParcels(ctx, r.ID, cmd.HouseholdID)
		if err != nil {
			return nil, err
		}
		if len(had) == 0 {
			return nil, fmt.Errorf("household %s in round %s: %w", cmd.HouseholdID, r.ID, ErrNotFound)
		}
		live, err := tx.LiveParcels(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		moving := map[string]string{}
		affected := []string{cmd.ToCourierID}
		for i, p := range live {
			if p.HouseholdID != cmd.HouseholdID {
				continue
			}
			if p.PickedUp {
				return nil, fmt.Errorf("%w: the stop of household %s in round %s is out for delivery: courier %s has picked it up",
					ErrIllegalTransition, cmd.HouseholdID, r.ID, p.CourierID)
			}
			moving[p.ID] = cmd.ToCourierID
			affected = append(affected, p.CourierID)
			live[i].Pinned = true
		}
		if len(moving) == 0 {
			return nil, fmt.Errorf("%w: the stop of household %s in round %s was already delivered, failed or cancelled",
				ErrIllegalTransition, cmd.HouseholdID, r.ID)
		}
		if err := tx.SetPinned(ctx, keys(moving), true); err != nil {
			return nil, err
		}
		return reroute(ctx, tx, r, couriers, live, moving, affected, fmt.Sprintf("moved to courier %s by the dispatcher",
			cmd.ToCourierID), cmd.By, now)
	})
}

// ReassignCmd hands all of one courier's undelivered stops in a round to others.
type ReassignCmd struct {
	RequestID     string `json:"-"`
	RoundID       string
	FromCourierID string
	// ToCourierID takes everything; empty spreads the stops over the couriers who serve them.
	ToCourierID string
	Reason      string
	// By is who reassigns, recorded on the events.
	By Actor `json:"-"`
}

// Reassigned is what ReassignCourier changed.
type Reassigned struct {
	// Routes that changed.
	Routes []Route
	// Kept counts the stops (households) that stayed with the courier because they had picked
	// them up already.
	Kept int
}

// UnmarshalJSON also reads the answers stored before Reassigned existed (the routes alone), so
// that retries of those requests still get their first answer.
func (r *Reassigned) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		*r = Reassigned{}
		return json.Unmarshal(b, &r.Routes)
	}
	type plain Reassigned
	return json.Unmarshal(b, (*plain)(r))
}

// ReassignCourier takes a courier (off sick) out of a planned round in one action: they go off
// duty for the round, and their undelivered stops not picked up yet go either to one on-duty
// courier (pinned there, as the dispatcher's choice) or, spread, to the on-duty couriers who
// serve each household, balanced with what those couriers already carry. Stops they have picked
// up stay on their route (they have the parcels in hand); Kept counts them.
func (s *Service) ReassignCourier(ctx context.Context, cmd ReassignCmd) (Reassigned, error) {
	return once(ctx, s, "ReassignCourier", cmd.RequestID, cmd, func(tx Tx) (Reassigned, error) {
		now := s.now()
		r, err := plannedRound(ctx, tx, cmd.RoundID, now)
		if err != nil {
			return Reassigned{}, err
		}
		couriers, err := roundCouriers(ctx, tx, r)
		if err != nil {
			return Reassigned{}, err
		}
		from := slices.IndexFunc(couriers, func(c Courier) bool { return c.ID == cmd.FromCourierID })
		if from < 0 {
			return Reassigned{}, fmt.Errorf("courier %s of %s: %w", cmd.FromCourierID, r.Compound, ErrNotFound)
		}
		if cmd.ToCourierID != "" {
			if err := onDuty(couriers, r, cmd.ToCourierID); err != nil {
				return Reassigned{}, err
			}
		}
		if err := tx.SetDuty(ctx, r.ID, cmd.FromCourierID, false); err != nil {
			return Reassigned{}, err
		}
		couriers[from].OnDuty = false
		live, err := tx.LiveParcels(ctx, r.ID)
		if err != nil {
			return Reassigned{}, err
		}
		moving := map[string]string{}
		kept := map[string]bool{}
		for _, p := range live {
			switch {
			case p.CourierID != cmd.FromCourierID:
			case p.PickedUp:
				kept[p.HouseholdID] = true
			default:
				moving[p.ID] = cmd.ToCourierID
			}
		}
		if len(moving) == 0 {
			return Reassigned{Kept: len(kept)}, nil
		}
		if cmd.ToCourierID == "" {
			if err := spread(ctx, tx, r, couriers, live, moving); err != nil {
				return Reassigned{}, err
			}
		}
		affected := []string{cmd.FromCourierID}
		for i, p := range live {
			if to, ok := moving[p.ID]; ok {
				affected = append(affected, to)
				live[i].Pinned = cmd.ToCourierID != ""
			}
		}
		if err := tx.SetPinned(ctx, keys(moving), cmd.ToCourierID != ""); err != nil {
			return Reassigned{}, err
		}
		reason := fmt.Sprintf("courier %s reassigned", cmd.FromCourierID)
		if cmd.Reason != "" {
			reason += ": " + cmd.Reason
		}
		routes, err := reroute(ctx, tx, r, couriers, live, moving, affected, reason, cmd.By, now)
		return Reassigned{Routes: routes, Kept: len(kept)}, err
	})
}

// spread chooses, for each parcel in moving, an on-duty courier who serves its household: the
// planner plans the moving parcels with those of the on-duty couriers pinned where they are, so
// the moving households go where they fit best and balance with what each courier already
// carries. Parcels staying with a courier off duty (picked up) are left out: they weigh on
// nobody else's trips.
func spread(ctx context.Context, tx Tx, r Round, couriers []Courier, live []Parcel, moving map[string]string) error {
	buildings, err := tx.Buildings(ctx, r.Compound)
	if err != nil {
		return err
	}
	pins := map[string]string{}
	var in []Parcel
	for _, p := range live {
		_, moves := moving[p.ID]
		switch {
		case moves:
		case isOnDuty(couriers, p.CourierID):
			pins[p.ID] = p.CourierID
		default:
			continue
		}
		in = append(in, p)
	}
	pp, err := plan(r, planInput(buildings, couriers, in, pins))
	if err != nil {
		return err
	}
	for _, route := range pp.Routes {
		for _, s := range route.Stops {
			for _, id := range s.ParcelIDs {
				if _, ok := moving[id]; ok {
					moving[id] = route.CourierID
				}
			}
		}
	}
	return nil
}

// onDuty checks that courier id exists and is on duty in round r.
func onDuty(couriers []Courier, r Round, id string) error {
	i := slices.IndexFunc(couriers, func(c Courier) bool { return c.ID == id })
	switch {
	case i < 0:
		return fmt.Errorf("courier %s of %s: %w", id, r.Compound, ErrNotFound)
	case !couriers[i].OnDuty:
		return fmt.Errorf("%w: courier %s in round %s", ErrOffDuty, id, r.ID)
	}
	return nil
}

// isOnDuty reports whether courier id is on duty among couriers.
func isOnDuty(couriers []Courier, id string) bool {
	return slices.ContainsFunc(couriers, func(c Courier) bool { return c.ID == id && c.OnDuty })
}

// reroute gives the parcels in moving to their new couriers and re-plans the route of every
// affected courier around the change (each courier's parcels kept with them), storing and
// publishing the routes that changed; the round's cost and lower bound become those of what is
// left to deliver.
func reroute(ctx context.Context, tx Tx, r Round, couriers []Courier, live []Parcel, moving map[string]string,
	affected []string, reason string, by Actor, now time.Time) ([]Route, error) {
	buildings, err := tx.Buildings(ctx, r.Compound)
	if err != nil {
		return nil, err
	}
	courierOf := func(p Parcel) string { return cmp.Or(moving[p.ID], p.CourierID) }
	next := map[string]planned{}
	for _, c := range affected {
		var theirs []Parcel
		for _, p := range live {
			if courierOf(p) == c {
				theirs = append(theirs, p)
			}
		}
		if len(theirs) == 0 {
			continue
		}
		// Their own route, even when the round has them off duty from now on.
		one, _, err := alone(r, buildings, couriers, c, theirs)
		if err != nil {
			return nil, err
		}
		next[c] = one
	}
	old, err := tx.Routes(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	changed, err := applyRoutes(ctx, tx, r, old, next, affected, live, reason, by, now)
	if err != nil {
		return nil, err
	}
	routes, err := tx.Routes(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	var cost Cost
	for _, route := range routes {
		cost = cost.add(route.Cost)
	}
	in := planInput(buildings, couriers, live, nil)
	lb := Cost(planner.LowerBound(in.Buildings, in.Couriers, in.Parcels))
	return changed, tx.SetRoundCost(ctx, r.ID, cost, lb)
}

func (c Cost) add(o Cost) Cost {
	return Cost{Metres: c.Metres + o.Metres, Floors: c.Floors + o.Floors, Trips: c.Trips + o.Trips}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
