// Package planner turns one round's parcels into courier routes. It is pure: no I/O, no clocks,
// no randomness, and no dependence on map iteration order, so the same input always yields the
// same plan and the planner can be tested exhaustively on generated instances.
//
// # How a plan is built
//
//  1. Parcels of one household become one stop (split into pieces only when a household has more
//     than a courier can carry in one trip).
//  2. Stops are laid out in sweep order: buildings by walking distance from the gate, units in the
//     site plan's walking order, floors in one sweep per unit (walk-ups bottom up; lift buildings
//     top down, since the courier rides the lift to the highest floor served and walks down).
//  3. Each unit's stops are cut into trip-sized chunks (what the weakest courier serving that
//     building can carry) and every chunk goes to the least-loaded courier (by parcel count) who
//     serves the building. The most constrained buildings are handed out first, so a courier who
//     may go anywhere is not used up on buildings that others could also have served. Couriers who
//     share an area thereby end within about one trip's load of each other.
//  4. Each courier's stops are ordered priority households first, then sweep order, and packed
//     into trips next-fit, bounded by the courier's max parcels and max grams per trip.
//
// # Cost model
//
// A plan's cost has three parts, reported separately (they are not comparable units):
//
//   - Metres: every trip starts and ends at the gate. The site plan only knows each building's
//     walking distance d from the gate, so buildings are modelled as lying along the paths out
//     from the gate: going from building a to building b within a trip costs |d(a) − d(b)|. A trip
//     costs d(first) + Σ|d(i) − d(i+1)| + d(last); visited in order of distance, that is twice
//     the distance of its farthest building. Walking between units of one building is free.
//   - Floors: counted per unit visit (a maximal run of consecutive stops of one unit in a trip).
//     In a walk-up the courier climbs to the highest floor served, and each floor climbed counts
//     WalkUpFloorWeight (climbing stairs with a load is the hard part of the job). With a lift the
//     courier rides to the top served floor and walks down to the lowest one: each floor walked
//     down counts 1, the lift itself nothing.
//   - Trips: how many times couriers leave the gate loaded.
//
// # Lower bound
//
// The plan also states a lower bound that no valid plan of the same parcels can beat, so a
// dispatcher can see how far from ideal it is. Each part is bounded on its own:
//
//   - Trips ≥ max(⌈parcels / C⌉, ⌈grams / G⌉), where C and G are the largest per-trip parcel and
//     gram capacities among the couriers, and a parcel heavier than G (carried on a trip of its
//     own) counts as G grams.
//   - Metres: take parcels in order of distance, farthest first, and let need(i) be the trips the
//     i farthest parcels need at least (the bound above applied to them). Every point at distance
//     x from the gate lies on the way of at least need(i) trips when x ≤ d(i), and each trip walks
//     that point twice (out and back), so metres ≥ Σᵢ 2·(d(i) − d(i+1))·need(i).
//   - Floors: every walk-up unit must be climbed at least once to its highest floor served, so
//     floors ≥ Σ over walk-up units WalkUpFloorWeight·(highest floor − 1). Lift units may cost
//     nothing (one floor per visit).
package planner

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// WalkUpFloorWeight is what climbing one floor of a walk-up costs, in floors walked down a lift
// building's stairs.
const WalkUpFloorWeight = 2

// Building is one building of the site plan.
type Building struct {
	Name string
	// Units (stairwells) in walking order.
	Units     []string
	Floors    int
	HasLift   bool
	DistanceM int
}

// Courier is someone who can carry parcels in this round.
type Courier struct {
	ID string
	// Buildings served; empty means anywhere.
	Buildings []string
	// Per trip.
	MaxParcels int
	MaxGrams   int64
}

// Parcel is one parcel at the gate with its household's address.
type Parcel struct {
	ID          string
	HouseholdID string
	Building    string
	Unit        string
	Floor       int
	Room        string
	Priority    bool
	Contactless bool
	WeightGrams int64
}

// Input is everything the planner looks at.
type Input struct {
	Buildings []Building
	Couriers  []Courier
	Parcels   []Parcel
}

// Stop is one door on a route.
type Stop struct {
	// From 1, across the whole route.
	Sequence int
	// From 1; each trip starts and ends at the gate.
	Trip        int
	HouseholdID string
	Building    string
	Unit        string
	Floor       int
	Room        string
	// Sorted.
	ParcelIDs   []string
	Priority    bool
	Contactless bool
	WeightGrams int64
}

// Cost is what a route or plan costs; see the package comment.
type Cost struct {
	Metres int64
	Floors int64
	Trips  int
}

// Add sums two costs.
func (c Cost) Add(o Cost) Cost {
	return Cost{Metres: c.Metres + o.Metres, Floors: c.Floors + o.Floors, Trips: c.Trips + o.Trips}
}

// Route is one courier's stops.
type Route struct {
	CourierID string
	Stops     []Stop
	Cost      Cost
}

// Plan is the planner's answer: routes ordered by courier id, only for couriers with stops.
type Plan struct {
	Routes     []Route
	Cost       Cost
	LowerBound Cost
}

// ErrUnplannable is wrapped by every error that means the round cannot be planned as it stands
// (the dispatcher must change the site plan or the couriers first).
var ErrUnplannable = errors.New("round cannot be planned")

// UnknownBuildingError: a parcel's building is not on the site plan, so nobody knows how far it is.
type UnknownBuildingError struct{ Building, ParcelID string }

func (e *UnknownBuildingError) Error() string {
	return fmt.Sprintf("building %s (parcel %s) is not on the site plan", e.Building, e.ParcelID)
}
func (e *UnknownBuildingError) Unwrap() error { return ErrUnplannable }

// NoCourierError: no courier of the round serves a building that has parcels.
type NoCourierError struct{ Building string }

func (e *NoCourierError) Error() string {
	return fmt.Sprintf("no on-duty courier serves building %s", e.Building)
}
func (e *NoCourierError) Unwrap() error { return ErrUnplannable }

// household is one door's parcels with where it is in sweep order.
type household struct {
	id      string
	first   Parcel // address source: the household's parcel with the smallest id
	parcels []Parcel
	b       *Building
	unitIdx int
	// Any of its parcels is flagged: the flag belongs to the household, so one is enough.
	priority bool
}

// piece is a household's parcels that travel together; usually the whole household.
type piece struct {
	h       *household
	index   int // piece number within the household
	parcels []Parcel
	grams   int64
}

// PlanRound plans a round. An empty round yields an empty plan.
func PlanRound(in Input) (Plan, error) {
	buildings := make(map[string]*Building, len(in.Buildings))
	for i := range in.Buildings {
		buildings[in.Buildings[i].Name] = &in.Buildings[i]
	}
	couriers := slices.Clone(in.Couriers)
	couriers = slices.DeleteFunc(couriers, func(c Courier) bool { return c.MaxParcels <= 0 || c.MaxGrams <= 0 })
	slices.SortFunc(couriers, func(a, b Courier) int { return cmp.Compare(a.ID, b.ID) })

	households, err := groupHouseholds(in.Parcels, buildings)
	if err != nil {
		return Plan{}, err
	}
	if len(households) == 0 {
		return Plan{}, nil
	}

	// Who may serve each building with parcels; the error names the first building by name.
	eligible := map[string][]int{}
	var names []string
	for _, h := range households {
		if _, ok := eligible[h.b.Name]; ok {
			continue
		}
		var idx []int
		for i, c := range couriers {
			if len(c.Buildings) == 0 || slices.Contains(c.Buildings, h.b.Name) {
				idx = append(idx, i)
			}
		}
		eligible[h.b.Name] = idx
		names = append(names, h.b.Name)
	}
	slices.Sort(names)
	for _, n := range names {
		if len(eligible[n]) == 0 {
			return Plan{}, &NoCourierError{Building: n}
		}
	}

	assigned, err := assign(households, couriers, eligible)
	if err != nil {
		return Plan{}, err
	}

	var plan Plan
	for ci, pieces := range assigned {
		if len(pieces) == 0 {
			continue
		}
		r := Route{CourierID: couriers[ci].ID, Stops: pack(pieces, couriers[ci])}
		r.Cost = Evaluate(in.Buildings, r.Stops)
		plan.Routes = append(plan.Routes, r)
		plan.Cost = plan.Cost.Add(r.Cost)
	}
	plan.LowerBound = LowerBound(in.Buildings, couriers, in.Parcels)
	return plan, nil
}

// groupHouseholds merges parcels into households ordered by sweep order.
func groupHouseholds(parcels []Parcel, buildings map[string]*Building) ([]*household, error) {
	sorted := slices.Clone(parcels)
	slices.SortFunc(sorted, func(a, b Parcel) int { return cmp.Compare(a.ID, b.ID) })
	byID := map[string]*household{}
	var households []*household
	for i, p := range sorted {
		if i > 0 && sorted[i-1].ID == p.ID {
			return nil, fmt.Errorf("parcel %s appears twice", p.ID)
		}
		b, ok := buildings[p.Building]
		if !ok {
			return nil, &UnknownBuildingError{Building: p.Building, ParcelID: p.ID}
		}
		key := p.HouseholdID
		if key == "" {
			key = p.Building + "/" + p.Unit + "/" + p.Room
		}
		h, ok := byID[key]
		if !ok {
			// Units missing from the site plan's walking order go after the listed ones.
			unitIdx := slices.Index(b.Units, p.Unit)
			if unitIdx < 0 {
				unitIdx = len(b.Units)
			}
			h = &household{id: key, first: p, b: b, unitIdx: unitIdx}
			byID[key] = h
			households = append(households, h)
		}
		h.parcels = append(h.parcels, p)
		h.priority = h.priority || p.Priority
	}
	slices.SortFunc(households, func(a, b *household) int { return sweepCompare(a, b) })
	return households, nil
}

// sweepCompare orders households the way a courier walks: nearest building first, units in
// walking order, floors in one sweep (up in walk-ups, down from the top with a lift).
func sweepCompare(a, b *household) int {
	if c := cmp.Compare(a.b.DistanceM, b.b.DistanceM); c != 0 {
		return c
	}
	if c := cmp.Compare(a.b.Name, b.b.Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.unitIdx, b.unitIdx); c != 0 {
		return c
	}
	if c := cmp.Compare(a.first.Unit, b.first.Unit); c != 0 {
		return c
	}
	fa, fb := a.first.Floor, b.first.Floor
	if a.b.HasLift {
		fa, fb = -fa, -fb
	}
	if c := cmp.Compare(fa, fb); c != 0 {
		return c
	}
	if c := cmp.Compare(a.first.Room, b.first.Room); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// chunk is a trip-sized run of pieces of one unit, handed to one courier.
type chunk struct {
	pieces  []piece
	parcels int
	grams   int64
}

// assign hands every unit's chunks to couriers; the result is indexed like couriers.
func assign(households []*household, couriers []Courier, eligible map[string][]int) ([][]piece, error) {
	// Units in sweep order, each with the limits of the weakest courier allowed there.
	type unitGroup struct {
		households []*household
		eligible   []int
	}
	var groups []unitGroup
	for i, h := range households {
		if i > 0 && households[i-1].b == h.b && households[i-1].first.Unit == h.first.Unit {
			groups[len(groups)-1].households = append(groups[len(groups)-1].households, h)
			continue
		}
		groups = append(groups, unitGroup{households: []*household{h}, eligible: eligible[h.b.Name]})
	}
	// The most constrained units first; stable, so sweep order otherwise.
	slices.SortStableFunc(groups, func(a, b unitGroup) int { return cmp.Compare(len(a.eligible), len(b.eligible)) })

	out := make([][]piece, len(couriers))
	load := make([]int, len(couriers))
	for _, g := range groups {
		maxParcels, maxGrams := couriers[g.eligible[0]].MaxParcels, couriers[g.eligible[0]].MaxGrams
		for _, ci := range g.eligible {
			maxParcels = min(maxParcels, couriers[ci].MaxParcels)
			maxGrams = min(maxGrams, couriers[ci].MaxGrams)
		}
		prev := -1
		for _, c := range chunks(g.households, maxParcels, maxGrams) {
			best := -1
			for _, ci := range g.eligible {
				if c.parcels > couriers[ci].MaxParcels || c.grams > couriers[ci].MaxGrams {
					continue
				}
				switch {
				case best < 0, load[ci] < load[best]:
					best = ci
				case load[ci] == load[best] && ci == prev:
					best = ci // keep a unit with one courier when it costs no balance
				}
			}
			if best < 0 {
				// A single parcel heavier than anyone here carries per trip (two 10 kg bags of rice
				// and more). Refusing it would hold up the whole round; instead the least-loaded
				// courier takes it as a trip of its own, with a trolley or in two goes.
				for _, ci := range g.eligible {
					if best < 0 || load[ci] < load[best] {
						best = ci
					}
				}
			}
			out[best] = append(out[best], c.pieces...)
			load[best] += c.parcels
			prev = best
		}
	}
	return out, nil
}

// chunks cuts one unit's households, in sweep order, into runs of at most maxParcels parcels and
// maxGrams grams. A household too big for one run is split into pieces; a single parcel heavier
// than maxGrams becomes a chunk of its own (only a stronger courier can take it).
func chunks(households []*household, maxParcels int, maxGrams int64) []chunk {
	var pieces []piece
	for _, h := range households {
		cur := piece{h: h}
		for _, p := range h.parcels {
			if len(cur.parcels) > 0 && (len(cur.parcels)+1 > maxParcels || cur.grams+p.WeightGrams > maxGrams) {
				pieces = append(pieces, cur)
				cur = piece{h: h, index: cur.index + 1}
			}
			cur.parcels = append(cur.parcels, p)
			cur.grams += p.WeightGrams
		}
		pieces = append(pieces, cur)
	}
	var out []chunk
	var cur chunk
	for _, p := range pieces {
		if len(cur.pieces) > 0 && (cur.parcels+len(p.parcels) > maxParcels || cur.grams+p.grams > maxGrams) {
			out = append(out, cur)
			cur = chunk{}
		}
		cur.pieces = append(cur.pieces, p)
		cur.parcels += len(p.parcels)
		cur.grams += p.grams
	}
	if len(cur.pieces) > 0 {
		out = append(out, cur)
	}
	return out
}

// pack orders one courier's pieces (priority households first, then sweep order) and fills trips
// next-fit. A piece over the courier's capacity (one over-heavy parcel) fills a trip on its own.
func pack(pieces []piece, c Courier) []Stop {
	slices.SortFunc(pieces, func(a, b piece) int {
		if pa, pb := a.h.priority, b.h.priority; pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		if c := sweepCompare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(a.index, b.index)
	})
	var stops []Stop
	trip, tripParcels, tripGrams := 0, 0, int64(0)
	for _, p := range pieces {
		if trip == 0 || tripParcels+len(p.parcels) > c.MaxParcels || tripGrams+p.grams > c.MaxGrams {
			trip++
			tripParcels, tripGrams = 0, 0
		}
		tripParcels += len(p.parcels)
		tripGrams += p.grams
		if n := len(stops); n > 0 && stops[n-1].Trip == trip && stops[n-1].HouseholdID == p.h.id {
			// Two pieces of one household ended up on the same trip: one door, one stop.
			s := &stops[n-1]
			for _, x := range p.parcels {
				s.ParcelIDs = append(s.ParcelIDs, x.ID)
				s.Contactless = s.Contactless || x.Contactless
			}
			s.WeightGrams += p.grams
			slices.Sort(s.ParcelIDs)
			continue
		}
		a := p.h.first
		s := Stop{Sequence: len(stops) + 1, Trip: trip, HouseholdID: p.h.id, Building: a.Building, Unit: a.Unit,
			Floor: a.Floor, Room: a.Room, Priority: p.h.priority, WeightGrams: p.grams}
		for _, x := range p.parcels {
			s.ParcelIDs = append(s.ParcelIDs, x.ID)
			s.Contactless = s.Contactless || x.Contactless
		}
		stops = append(stops, s)
	}
	return stops
}

// Evaluate is the cost of a route's stops under the package's cost model. Stops must be in
// sequence order; buildings missing from the site plan count as at the gate.
func Evaluate(buildings []Building, stops []Stop) Cost {
	dist := map[string]int64{}
	lift := map[string]bool{}
	for _, b := range buildings {
		dist[b.Name] = int64(b.DistanceM)
		lift[b.Name] = b.HasLift
	}
	var c Cost
	for i := 0; i < len(stops); {
		j := i
		for j < len(stops) && stops[j].Trip == stops[i].Trip {
			j++
		}
		trip := stops[i:j]
		c.Trips++
		c.Metres += dist[trip[0].Building] + dist[trip[len(trip)-1].Building]
		for k := 1; k < len(trip); k++ {
			c.Metres += abs(dist[trip[k].Building] - dist[trip[k-1].Building])
		}
		for k := 0; k < len(trip); {
			m := k
			top, bottom := trip[k].Floor, trip[k].Floor
			for m < len(trip) && trip[m].Building == trip[k].Building && trip[m].Unit == trip[k].Unit {
				top, bottom = max(top, trip[m].Floor), min(bottom, trip[m].Floor)
				m++
			}
			if lift[trip[k].Building] {
				c.Floors += int64(top - bottom)
			} else {
				c.Floors += WalkUpFloorWeight * int64(max(top-1, 0))
			}
			k = m
		}
		i = j
	}
	return c
}

// LowerBound is a cost no plan of these parcels with these couriers can beat; see the package
// comment for why each part holds.
func LowerBound(buildings []Building, couriers []Courier, parcels []Parcel) Cost {
	if len(parcels) == 0 {
		return Cost{}
	}
	var maxParcels int
	var maxGrams int64
	for _, c := range couriers {
		maxParcels = max(maxParcels, c.MaxParcels)
		maxGrams = max(maxGrams, c.MaxGrams)
	}
	if maxParcels <= 0 || maxGrams <= 0 {
		return Cost{}
	}
	byName := map[string]Building{}
	for _, b := range buildings {
		byName[b.Name] = b
	}
	need := func(n int, grams int64) int {
		return max(ceilDiv(int64(n), int64(maxParcels)), ceilDiv(grams, maxGrams))
	}

	// Farthest first; ties in any order give the same sum.
	far := slices.Clone(parcels)
	slices.SortFunc(far, func(a, b Parcel) int {
		return cmp.Or(cmp.Compare(byName[b.Building].DistanceM, byName[a.Building].DistanceM), cmp.Compare(a.ID, b.ID))
	})
	var lb Cost
	var grams int64
	for i, p := range far {
		// A parcel heavier than a trip's capacity still takes one trip (see assign), so it
		// counts at most a full trip's grams here; otherwise the bound could exceed the plan.
		grams += min(max(p.WeightGrams, 0), maxGrams)
		d := int64(byName[p.Building].DistanceM)
		next := int64(0)
		if i+1 < len(far) {
			next = int64(byName[far[i+1].Building].DistanceM)
		}
		lb.Metres += 2 * (d - next) * int64(need(i+1, grams))
	}
	lb.Trips = need(len(far), grams)

	type unitKey struct{ building, unit string }
	top := map[unitKey]int{}
	for _, p := range parcels {
		if b, ok := byName[p.Building]; ok && !b.HasLift {
			k := unitKey{p.Building, p.Unit}
			top[k] = max(top[k], p.Floor)
		}
	}
	for _, f := range top { // a sum: iteration order does not matter
		lb.Floors += WalkUpFloorWeight * int64(max(f-1, 0))
	}
	return lb
}

func ceilDiv(a, b int64) int { return int((a + b - 1) / b) }

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
