// Package planner turns one round's parcels into courier routes. It is pure: no I/O, no clocks,
// no randomness, and no dependence on map iteration order, so the same input always yields the
// same plan and the planner can be tested exhaustively on generated instances.
//
// # How a plan is built
//
//  1. Parcels of one household become one stop (split into pieces only when a household has more
//     than a courier can carry in one trip).
//  2. Households are ranked in sweep order: buildings by walking distance from the gate, units in
//     the site plan's walking order, floors in one sweep per unit (walk-ups bottom up; lift
//     buildings top down, since the courier rides the lift to the highest floor served and walks
//     down).
//  3. Each household may be served by the on-duty couriers whose buildings or floor ranges
//     (按楼层分配) cover it, or only by the courier a dispatcher pinned it to. Households with the
//     same couriers and priority form an area; areas with the fewest couriers go first, so a
//     courier who may go anywhere is not used up on buildings others could also have served.
//  4. Each area is cut into trips farthest first, each trip for the area's courier with the least
//     work so far and bounded by what that courier carries, then topped up from the next
//     households in line (never farther than the trip already walks) adding the fewest floors.
//     Cutting from the far end leaves the one part-filled trip nearest the gate; walk-ups are cut
//     from the top, so a unit split between two trips is climbed high only once.
//  5. A local search then moves households while that lowers the plan's cost (Cost.Scalar): a
//     whole trip into another (two part-filled trips become one, possibly handed to a courier
//     who can carry both), one unit's households of a trip into another trip that visits the
//     unit, single households, and, in small rounds, swaps of two households between trips.
//     Every move keeps households with couriers who may serve them, trips within their courier's
//     load, and at most one trip per courier mixing priority and other households.
//  6. Each courier's trips become a route: trips of priority households first, then the mixed one
//     (priority households on the way out, the others on the way back), then the rest.
//
// Couriers who share an area end within about one trip's work of each other (work is Cost.Scalar
// of their trips). On small rounds (up to 7 households, 2 couriers) the plan's cost is on average
// within about 1.5 % of the exhaustive optimum under the same rules (TestPlannerNearOptimum); a
// 12,000-parcel round plans in about 0.15 s at about 1.09 of its lower bound in metres and trips
// (BenchmarkPlanRound12k).
//
// # Cost model
//
// A plan's cost has three parts, reported separately; Cost.Scalar folds them into one number,
// metres + FloorMetres (10) × floors, when plans must be compared:
//
//   - Metres: every trip starts and ends at the gate. The site plan only knows each building's
//     walking distance d from the gate, so buildings are modelled as lying along the paths out
//     from the gate: going from building a to building b within a trip costs |d(a) − d(b)|. A trip
//     costs d(first) + Σ|d(i) − d(i+1)| + d(last); visited in order of distance, that is twice
//     the distance of its farthest building. Walking between units of one building is free.
//   - Floors: in a walk-up, counted per unit visit (a maximal run of consecutive stops of one
//     unit in a trip): the courier climbs to the highest floor served, and each floor climbed
//     counts WalkUpFloorWeight (climbing stairs with a load is the hard part of the job); coming
//     back to the unit later in the trip means climbing again. With a lift the courier rides to
//     the top served floor and walks down to the lowest one: each floor walked down counts 1, the
//     lift itself nothing; this is counted once per unit and trip, however the trip's stops in the
//     unit are split into visits (otherwise coming back by lift would look cheaper than one sweep).
//   - Trips: how many times couriers leave the gate loaded (their walking is already in metres,
//     so Scalar does not count them again).
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
	// Finer assignments (按楼层分配); when set they replace Buildings.
	FloorRanges []FloorRange
	// Per trip.
	MaxParcels int
	MaxGrams   int64
}

// FloorRange is some floors of one building.
type FloorRange struct {
	Building string
	// Inclusive; 0 means from the ground floor / to the top.
	MinFloor, MaxFloor int
}

// serves reports whether c may deliver to floor of building.
func (c Courier) serves(building string, floor int) bool {
	if len(c.FloorRanges) > 0 {
		return slices.ContainsFunc(c.FloorRanges, func(r FloorRange) bool {
			return r.Building == building && (r.MinFloor == 0 || floor >= r.MinFloor) && (r.MaxFloor == 0 || floor <= r.MaxFloor)
		})
	}
	return len(c.Buildings) == 0 || slices.Contains(c.Buildings, building)
}

// servesSome reports whether c may deliver to any floor of building.
func (c Courier) servesSome(building string) bool {
	if len(c.FloorRanges) > 0 {
		return slices.ContainsFunc(c.FloorRanges, func(r FloorRange) bool { return r.Building == building })
	}
	return c.serves(building, 1)
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
	// PinnedTo keeps the parcel's household with this courier (a dispatcher's move), when the
	// courier is on duty in the round; otherwise the parcel is planned like any other.
	PinnedTo string
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

// FloorMetres is what one weighted floor is worth in metres walked when a plan's cost must be one
// number (Scalar): carrying a load up one floor of stairs takes about as long as walking 10 m on
// the flat, and a walk-up floor already counts WalkUpFloorWeight.
const FloorMetres = 10

// Scalar is the cost as one number, for comparing plans: metres + FloorMetres × floors. Trips do
// not count on their own; every trip already shows in the metres walked to and from the gate.
func (c Cost) Scalar() int64 { return c.Metres + FloorMetres*c.Floors }

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

// NoCourierError: no courier of the round serves a building (or a floor of it) that has parcels.
type NoCourierError struct {
	Building string
	// Floor is set when someone serves other floors of the building, but nobody this one.
	Floor int
}

func (e *NoCourierError) Error() string {
	if e.Floor > 0 {
		return fmt.Sprintf("no on-duty courier serves floor %d of building %s", e.Floor, e.Building)
	}
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
	// rank is the household's place in sweep order over the round; unit numbers the round's
	// (building, unit) pairs. Both let trips be ordered and costed without comparing strings.
	rank, unit int
	// serves[i]: courier i may take it (only the courier it is pinned to, when it is).
	serves []bool
	// eligible lists those couriers; maxParcels and maxGrams are the weakest one's trip.
	eligible   []int
	maxParcels int
	maxGrams   int64
}

// piece is a household's parcels that travel together: the whole household, unless it has more
// than one trip of its couriers can carry.
type piece struct {
	h       *household
	index   int // piece number within the household
	parcels []Parcel
	grams   int64
}

// trip is what one courier carries from the gate in one go.
type trip struct {
	courier int
	pieces  []*piece
	parcels int
	grams   int64
	prio    int   // pieces of priority households
	cost    int64 // Scalar of the pieces in visiting order
	mark    int   // scratch for de-duplicating candidate lists
}

func (t *trip) mixed() bool { return t.prio > 0 && t.prio < len(t.pieces) }

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
	if err := eligibility(households, couriers); err != nil {
		return Plan{}, err
	}
	p := &planning{couriers: couriers, households: households}
	p.formTrips()
	p.improve()
	plan := p.routes(in.Buildings)
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
	units := map[[2]string]int{}
	for i, h := range households {
		h.rank = i
		k := [2]string{h.b.Name, h.first.Unit}
		u, ok := units[k]
		if !ok {
			u = len(units)
			units[k] = u
		}
		h.unit = u
	}
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

// eligibility finds who may serve each household: the courier it is pinned to, else everyone on
// duty whose buildings or floor ranges cover its floor. The error names the first building (and
// floor, when others of its floors are served) that nobody serves.
func eligibility(households []*household, couriers []Courier) error {
	index := make(map[string]int, len(couriers))
	for i, c := range couriers {
		index[c.ID] = i
	}
	var missing *NoCourierError
	for _, h := range households {
		h.serves = make([]bool, len(couriers))
		pinned := -1
		for _, p := range h.parcels {
			if i, ok := index[p.PinnedTo]; ok && p.PinnedTo != "" {
				pinned = i
				break
			}
		}
		for i, c := range couriers {
			if pinned == i || pinned < 0 && c.serves(h.b.Name, h.first.Floor) {
				h.serves[i] = true
				h.eligible = append(h.eligible, i)
			}
		}
		if len(h.eligible) == 0 {
			e := &NoCourierError{Building: h.b.Name}
			if slices.ContainsFunc(couriers, func(c Courier) bool { return c.servesSome(h.b.Name) }) {
				e.Floor = h.first.Floor
			}
			if missing == nil || e.Building < missing.Building || e.Building == missing.Building && e.Floor < missing.Floor {
				missing = e
			}
			continue
		}
		h.maxParcels, h.maxGrams = couriers[h.eligible[0]].MaxParcels, couriers[h.eligible[0]].MaxGrams
		for _, i := range h.eligible {
			h.maxParcels, h.maxGrams = min(h.maxParcels, couriers[i].MaxParcels), min(h.maxGrams, couriers[i].MaxGrams)
		}
	}
	if missing != nil {
		return missing
	}
	return nil
}

// planning is one PlanRound in progress.
type planning struct {
	couriers   []Courier
	households []*household
	trips      []*trip
	// mixedTrips[i] counts courier i's trips that carry priority and other households together;
	// at most one may, so that every route can serve its priority households first.
	mixedTrips []int
	scratch    []*piece
	stats      []unitStat // scratch for cost
	// work[i] is the Scalar of courier i's trips: what balancing evens out.
	work      []int64
	takersBuf []int
	stamp     int
	// Scratch slices of the local search; a move that is taken copies them.
	restBuf, mergedBuf, swapA, swapB []*piece
}

// formTrips cuts each area's households into trips and hands them to couriers. An area is the
// households with the same couriers and the same priority; areas with the fewest couriers go
// first, so a courier who may go anywhere is not used up on buildings others could have served.
// Within an area households are taken farthest first, so the one part-filled trip is the nearest;
// walk-ups are taken from the top, so a unit cut between two trips leaves its lower floors for the
// second. Each trip is cut for the area's courier with the least work so far (Scalar of their
// trips) and what they carry: couriers who share an area end within about a trip's work of each
// other.
func (p *planning) formTrips() {
	type area struct {
		eligible []int
		priority bool
		pieces   []*piece
	}
	var areas []*area
	byKey := map[string]*area{}
	for _, h := range p.households {
		key := fmt.Sprint(h.eligible, h.priority)
		a, ok := byKey[key]
		if !ok {
			a = &area{eligible: h.eligible, priority: h.priority}
			byKey[key] = a
			areas = append(areas, a)
		}
		a.pieces = append(a.pieces, split(h)...)
	}
	slices.SortStableFunc(areas, func(a, b *area) int {
		if c := cmp.Compare(len(a.eligible), len(b.eligible)); c != 0 {
			return c
		}
		if a.priority != b.priority {
			if a.priority {
				return -1
			}
			return 1
		}
		return 0
	})
	p.mixedTrips = make([]int, len(p.couriers))
	p.work = make([]int64, len(p.couriers))
	for _, a := range areas {
		slices.SortFunc(a.pieces, func(x, y *piece) int {
			return cmp.Or(cmp.Compare(y.h.rank, x.h.rank), cmp.Compare(x.index, y.index))
		})
		taken := make([]bool, len(a.pieces))
		for next := 0; next < len(a.pieces); {
			c := p.leastWorked(a.eligible, a.pieces[next])
			t := p.cut(a.pieces, taken, next, p.couriers[c])
			t.courier = c
			t.cost = p.cost(t.pieces)
			p.work[c] += t.cost
			p.trips = append(p.trips, t)
			for next < len(a.pieces) && taken[next] {
				next++
			}
		}
	}
}

// lookAhead is how many of the pieces after a trip's last one may top it up.
const lookAhead = 24

// cut takes one trip for c from the area's pieces, farthest first from next: pieces in order
// while they fit, then, from the next lookAhead pieces (all as near as or nearer than the trip's
// farthest, so the walk does not grow), whichever fits and adds the fewest floors, until none
// does. A single piece over c's load (one over-heavy parcel) makes a trip of its own.
func (p *planning) cut(pieces []*piece, taken []bool, next int, c Courier) *trip {
	t := &trip{}
	i := next
	for ; i < len(pieces); i++ {
		if taken[i] {
			continue
		}
		x := pieces[i]
		if len(t.pieces) > 0 && (t.parcels+len(x.parcels) > c.MaxParcels || t.grams+x.grams > c.MaxGrams) {
			break
		}
		t.add(x)
		taken[i] = true
	}
	base := p.cost(t.pieces)
	for {
		best, bestCost := -1, int64(0)
		for j, seen := i, 0; j < len(pieces) && seen < lookAhead; j++ {
			if taken[j] {
				continue
			}
			seen++
			x := pieces[j]
			if t.parcels+len(x.parcels) > c.MaxParcels || t.grams+x.grams > c.MaxGrams {
				continue
			}
			p.mergedBuf = append(append(p.mergedBuf[:0], t.pieces...), x)
			if cost := p.cost(p.mergedBuf) - base; best < 0 || cost < bestCost {
				best, bestCost = j, cost
			}
		}
		if best < 0 {
			return t
		}
		t.add(pieces[best])
		taken[best] = true
		base += bestCost
	}
}

// leastWorked is the eligible courier with the least work who can carry x; a single parcel
// heavier than anyone here carries per trip (two 10 kg bags of rice and more) goes to the least
// worked of all rather than holding up the round: a trip of its own, with a trolley or in two goes.
func (p *planning) leastWorked(eligible []int, x *piece) int {
	best := -1
	for _, strict := range []bool{true, false} {
		for _, ci := range eligible {
			c := p.couriers[ci]
			if strict && (len(x.parcels) > c.MaxParcels || x.grams > c.MaxGrams) {
				continue
			}
			if best < 0 || p.work[ci] < p.work[best] {
				best = ci
			}
		}
		if best >= 0 {
			break
		}
	}
	return best
}

// split cuts a household into pieces its weakest courier can carry in one trip each.
func split(h *household) []*piece {
	var out []*piece
	cur := &piece{h: h}
	for _, x := range h.parcels {
		if len(cur.parcels) > 0 && (len(cur.parcels)+1 > h.maxParcels || cur.grams+x.WeightGrams > h.maxGrams) {
			out = append(out, cur)
			cur = &piece{h: h, index: cur.index + 1}
		}
		cur.parcels = append(cur.parcels, x)
		cur.grams += x.WeightGrams
	}
	return append(out, cur)
}

func (t *trip) add(x *piece) {
	t.pieces = append(t.pieces, x)
	t.parcels += len(x.parcels)
	t.grams += x.grams
	if x.h.priority {
		t.prio++
	}
}

// orderTrip appends pieces to dst in visiting order: in sweep order, except that a trip carrying
// priority households and others serves the priority ones first on the way out and the others,
// in reverse sweep order, on the way back. Either way the courier walks out to the farthest
// building once and back.
func orderTrip(dst, pieces []*piece) []*piece {
	dst = append(dst, pieces...)
	prio := 0
	for _, x := range pieces {
		if x.h.priority {
			prio++
		}
	}
	mixed := prio > 0 && prio < len(pieces)
	slices.SortFunc(dst, func(a, b *piece) int {
		ka, kb := a.h.rank, b.h.rank
		if mixed {
			if a.h.priority != b.h.priority {
				if a.h.priority {
					return -1
				}
				return 1
			}
			if !a.h.priority {
				ka, kb = -ka, -kb
			}
		}
		return cmp.Or(cmp.Compare(ka, kb), cmp.Compare(a.index, b.index))
	})
	return dst
}

// unitStat is what cost gathers about one unit of a trip.
type unitStat struct {
	unit, top, bottom int
	lift              bool
	topPrio, topRest  int // highest floor of each part of a mixed trip; 0: none
}

// cost is the Scalar of one trip over pieces, as Evaluate would count the trip's stops in
// orderTrip's order, computed in one pass without ordering them (the local search calls it
// hundreds of thousands of times). In that order the distance from the gate rises to the farthest
// building and falls back, so the walk is twice the farthest distance; each unit's stops are
// consecutive, except that in a trip mixing priority and other households a unit may be visited
// on the way out and again on the way back, as one visit only when it is where the two meet.
func (p *planning) cost(pieces []*piece) int64 {
	if len(pieces) == 0 {
		return 0
	}
	stats := p.stats[:0]
	var far int
	lastPrio, lastRest := -1, -1 // rank of the last stop out (priority) and the first back
	var prioUnit, restUnit int
	for _, x := range pieces {
		h := x.h
		far = max(far, h.b.DistanceM)
		at := -1
		for i := range stats {
			if stats[i].unit == h.unit {
				at = i
				break
			}
		}
		if at < 0 {
			stats = append(stats, unitStat{unit: h.unit, top: h.first.Floor, bottom: h.first.Floor, lift: h.b.HasLift})
			at = len(stats) - 1
		}
		st := &stats[at]
		st.top, st.bottom = max(st.top, h.first.Floor), min(st.bottom, h.first.Floor)
		if h.priority {
			st.topPrio = max(st.topPrio, h.first.Floor)
			if h.rank > lastPrio {
				lastPrio, prioUnit = h.rank, h.unit
			}
		} else {
			st.topRest = max(st.topRest, h.first.Floor)
			if h.rank > lastRest {
				lastRest, restUnit = h.rank, h.unit
			}
		}
	}
	mixed := lastPrio >= 0 && lastRest >= 0
	climb := func(top int) int64 { return WalkUpFloorWeight * int64(max(top-1, 0)) }
	var floors int64
	for _, st := range stats {
		switch {
		case st.lift:
			floors += int64(st.top - st.bottom)
		case !mixed || st.unit == prioUnit && st.unit == restUnit:
			floors += climb(st.top)
		default:
			if st.topPrio > 0 {
				floors += climb(st.topPrio)
			}
			if st.topRest > 0 {
				floors += climb(st.topRest)
			}
		}
	}
	p.stats = stats[:0]
	return 2*int64(far) + FloorMetres*floors
}

// Local search bounds: passes over all trips, and how many trips count as few enough to try
// every one as a destination (more, and only trips that visit the same unit or have room are).
const (
	maxPasses   = 25
	fewTrips    = 64
	largeRounds = 2000 // pieces; past this, fewer passes keep a plan well under a second
)

// improve moves households between trips while that lowers the plan's cost: a whole trip into
// another (two part-filled trips become one), all of one unit's households of a trip into another
// trip (a unit climbed once instead of twice), a single household, or two households swapped
// between trips. The trip receiving households may change hands on the way to a courier who can
// carry the merged load (areas are cut to what their weakest courier carries). A move must keep
// every household with a courier who may serve it, every trip within its courier's load, and at
// most one trip per courier that mixes priority and other households.
func (p *planning) improve() {
	passes := maxPasses
	if len(p.households) > largeRounds {
		passes = 4
	}
	for range passes {
		few := p.liveTrips() <= fewTrips
		var byUnit map[int][]*trip
		var roomy []*trip
		if !few {
			byUnit, roomy = p.index()
		}
		relocated := p.relocate(few, byUnit, roomy)
		swapped := few && p.swap()
		if !relocated && !swapped {
			return
		}
	}
}

// relocate tries, for every trip, to move each of its groups into another trip.
func (p *planning) relocate(few bool, byUnit map[int][]*trip, roomy []*trip) bool {
	improved := false
	var groups [][]*piece
	for _, a := range p.trips {
		if len(a.pieces) == 0 {
			continue
		}
		groups = groupsOf(groups[:0], a)
		for _, g := range groups {
			p.stamp++
			gl := loadOf(g)
			rl := tripLoad{a.parcels - gl.parcels, a.grams - gl.grams, a.prio - gl.prio, len(a.pieces) - len(g)}
			p.restBuf = without(p.restBuf[:0], a.pieces, g)
			restCost := p.cost(p.restBuf)
			var best *trip
			bestCourier := -1
			var bestDelta int64
			try := func(b *trip) {
				if b == a || len(b.pieces) == 0 || b.mark == p.stamp {
					return
				}
				b.mark = p.stamp
				ml := tripLoad{b.parcels + gl.parcels, b.grams + gl.grams, b.prio + gl.prio, len(b.pieces) + len(g)}
				taker := -1
				for _, c := range p.takers(few, a, b, len(g) == len(a.pieces)) {
					if !p.fitsMove(g, a, rl, b, ml, c) {
						continue
					}
					if c == b.courier {
						taker = c
						break // keep the trip with its courier when they can take it
					}
					if taker < 0 || p.work[c] < p.work[taker] {
						taker = c
					}
				}
				if taker < 0 {
					return
				}
				p.mergedBuf = append(append(p.mergedBuf[:0], b.pieces...), g...)
				if d := p.cost(p.mergedBuf) + restCost - a.cost - b.cost; d < bestDelta {
					best, bestCourier, bestDelta = b, taker, d
				}
			}
			if few {
				for _, b := range p.trips {
					try(b)
				}
			} else {
				for _, x := range g {
					for _, b := range byUnit[x.h.unit] {
						try(b)
					}
				}
				for _, b := range roomy {
					try(b)
				}
			}
			if best != nil {
				merged := append(slices.Clone(best.pieces), g...)
				p.replace(a, slices.Clone(p.restBuf), restCost, a.courier)
				p.replace(best, merged, p.cost(merged), bestCourier)
				improved = true
				break // a changed: its other groups are stale
			}
		}
	}
	return improved
}

// takers are the couriers who may end up with trip b after it receives households: its own
// courier first. Only when the move empties a (two trips become one) may b change hands: to
// anyone in a small round, to a's courier in a large one. Changing hands on lesser gains would let
// strong couriers take over weaker ones' trips one by one, for a few metres each.
func (p *planning) takers(few bool, a, b *trip, whole bool) []int {
	p.takersBuf = append(p.takersBuf[:0], b.courier)
	if !whole {
		return p.takersBuf
	}
	if few {
		for ci := range p.couriers {
			if ci != b.courier {
				p.takersBuf = append(p.takersBuf, ci)
			}
		}
	} else if a.courier != b.courier {
		p.takersBuf = append(p.takersBuf, a.courier)
	}
	return p.takersBuf
}

// swap tries every exchange of two single households between two trips (small rounds only).
func (p *planning) swap() bool {
	improved := false
	for ai, a := range p.trips {
		for _, b := range p.trips[ai+1:] {
			if len(a.pieces) == 0 || len(b.pieces) == 0 {
				continue
			}
		pairs:
			for i := 0; i < len(a.pieces); i++ {
				for j := 0; j < len(b.pieces); j++ {
					x, y := a.pieces[i], b.pieces[j]
					if x.h == y.h || !y.h.serves[a.courier] || !x.h.serves[b.courier] {
						continue
					}
					xl, yl := x.load(), y.load()
					na := tripLoad{a.parcels - xl.parcels + yl.parcels, a.grams - xl.grams + yl.grams, a.prio - xl.prio + yl.prio, len(a.pieces)}
					nb := tripLoad{b.parcels - yl.parcels + xl.parcels, b.grams - yl.grams + xl.grams, b.prio - yl.prio + xl.prio, len(b.pieces)}
					if !p.holds(a.courier, na) || !p.holds(b.courier, nb) || !p.mixedOK([]mixedChange{
						{a.courier, btoi(na.mixed()) - btoi(a.mixed())}, {b.courier, btoi(nb.mixed()) - btoi(b.mixed())}}) {
						continue
					}
					p.swapA = append(append(p.swapA[:0], a.pieces[:i]...), a.pieces[i+1:]...)
					p.swapA = append(p.swapA, y)
					p.swapB = append(append(p.swapB[:0], b.pieces[:j]...), b.pieces[j+1:]...)
					p.swapB = append(p.swapB, x)
					ca, cb := p.cost(p.swapA), p.cost(p.swapB)
					if ca+cb < a.cost+b.cost {
						p.replace(a, slices.Clone(p.swapA), ca, a.courier)
						p.replace(b, slices.Clone(p.swapB), cb, b.courier)
						improved = true
						break pairs
					}
				}
			}
		}
	}
	return improved
}

// tripLoad is what a trip would carry: parcels, grams, and pieces of priority households
// among all its pieces.
type tripLoad struct {
	parcels      int
	grams        int64
	prio, pieces int
}

func (l tripLoad) mixed() bool { return l.prio > 0 && l.prio < l.pieces }

func (x *piece) load() tripLoad {
	return tripLoad{parcels: len(x.parcels), grams: x.grams, prio: btoi(x.h.priority), pieces: 1}
}

func loadOf(pieces []*piece) tripLoad {
	l := tripLoad{pieces: len(pieces)}
	for _, x := range pieces {
		l.parcels += len(x.parcels)
		l.grams += x.grams
		if x.h.priority {
			l.prio++
		}
	}
	return l
}

// holds reports whether courier c can carry l in one trip.
func (p *planning) holds(c int, l tripLoad) bool {
	return l.parcels <= p.couriers[c].MaxParcels && l.grams <= p.couriers[c].MaxGrams
}

// fitsMove reports whether g may leave trip a (which then carries rl) for trip b (which then
// carries ml), with courier c taking b.
func (p *planning) fitsMove(g []*piece, a *trip, rl tripLoad, b *trip, ml tripLoad, c int) bool {
	if !p.holds(c, ml) {
		return false
	}
	for _, x := range g {
		if !x.h.serves[c] {
			return false
		}
	}
	if c != b.courier {
		for _, x := range b.pieces {
			if !x.h.serves[c] {
				return false
			}
		}
	}
	return p.mixedOK([]mixedChange{
		{a.courier, btoi(rl.mixed()) - btoi(a.mixed())},
		{b.courier, -btoi(b.mixed())},
		{c, btoi(ml.mixed())},
	})
}

// mixedChange is a change in the number of a courier's mixed trips.
type mixedChange struct{ courier, by int }

// mixedOK reports whether every courier still has at most one mixed trip after the changes.
func (p *planning) mixedOK(change []mixedChange) bool {
	for _, ch := range change {
		n := p.mixedTrips[ch.courier]
		for _, o := range change {
			if o.courier == ch.courier {
				n += o.by
			}
		}
		if n > 1 {
			return false
		}
	}
	return true
}

// replace gives trip t new pieces and courier, keeping the mixed-trip counts and work.
func (p *planning) replace(t *trip, pieces []*piece, cost int64, courier int) {
	p.mixedTrips[t.courier] -= btoi(t.mixed())
	p.work[t.courier] -= t.cost
	l := loadOf(pieces)
	t.pieces, t.cost, t.courier = pieces, cost, courier
	t.parcels, t.grams, t.prio = l.parcels, l.grams, l.prio
	p.mixedTrips[t.courier] += btoi(t.mixed())
	p.work[t.courier] += t.cost
}

func (p *planning) liveTrips() int {
	n := 0
	for _, t := range p.trips {
		if len(t.pieces) > 0 {
			n++
		}
	}
	return n
}

// index lists, for large rounds, the trips visiting each unit and the part-filled trips.
func (p *planning) index() (map[int][]*trip, []*trip) {
	byUnit := map[int][]*trip{}
	var roomy []*trip
	for _, t := range p.trips {
		if len(t.pieces) == 0 {
			continue
		}
		last := -1
		for _, x := range t.pieces {
			if x.h.unit != last && !slices.Contains(byUnit[x.h.unit], t) {
				byUnit[x.h.unit] = append(byUnit[x.h.unit], t)
			}
			last = x.h.unit
		}
		// Part-filled trips (the last of each area): a fuller trip has too little room for a move
		// to empty another trip, and trying every trip would cost more than it finds.
		c := p.couriers[t.courier]
		if 5*t.parcels <= 3*c.MaxParcels && 5*t.grams <= 3*c.MaxGrams {
			roomy = append(roomy, t)
		}
	}
	return byUnit, roomy
}

// groupsOf lists what may move out of trip a: the whole trip, each unit's households when the
// trip visits more than one unit, and each household piece when there is more than one.
func groupsOf(dst [][]*piece, a *trip) [][]*piece {
	dst = append(dst, a.pieces)
	if len(a.pieces) == 1 {
		return dst
	}
	units := 0
	for i, x := range a.pieces {
		if !slices.ContainsFunc(a.pieces[:i], func(y *piece) bool { return y.h.unit == x.h.unit }) {
			units++
		}
	}
	if units > 1 {
		for i, x := range a.pieces {
			if slices.ContainsFunc(a.pieces[:i], func(y *piece) bool { return y.h.unit == x.h.unit }) {
				continue
			}
			var g []*piece
			for _, y := range a.pieces[i:] {
				if y.h.unit == x.h.unit {
					g = append(g, y)
				}
			}
			if len(g) > 1 {
				dst = append(dst, g)
			}
		}
	}
	for _, x := range a.pieces {
		dst = append(dst, []*piece{x})
	}
	return dst
}

// without appends to dst the pieces not in g.
func without(dst, pieces, g []*piece) []*piece {
	out := dst
	for _, x := range pieces {
		if !slices.Contains(g, x) {
			out = append(out, x)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// routes turns each courier's trips into a route: trips of priority households first, then the
// one that mixes them with others, then the rest, each group nearest first; one stop per
// household and trip.
func (p *planning) routes(buildings []Building) Plan {
	byCourier := make([][]*trip, len(p.couriers))
	for _, t := range p.trips {
		if len(t.pieces) > 0 {
			byCourier[t.courier] = append(byCourier[t.courier], t)
		}
	}
	class := func(t *trip) int {
		switch {
		case t.prio == len(t.pieces):
			return 0
		case t.prio > 0:
			return 1
		}
		return 2
	}
	var plan Plan
	for ci, ts := range byCourier {
		if len(ts) == 0 {
			continue
		}
		ordered := make([][]*piece, len(ts))
		for i, t := range ts {
			ordered[i] = orderTrip(nil, t.pieces)
		}
		idx := make([]int, len(ts))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(i, j int) int {
			a, b := ordered[i][0], ordered[j][0]
			return cmp.Or(cmp.Compare(class(ts[i]), class(ts[j])), cmp.Compare(a.h.rank, b.h.rank), cmp.Compare(a.index, b.index))
		})
		var stops []Stop
		for k, i := range idx {
			for _, x := range ordered[i] {
				if n := len(stops); n > 0 && stops[n-1].Trip == k+1 && stops[n-1].HouseholdID == x.h.id {
					// Two pieces of one household on the same trip: one door, one stop.
					s := &stops[n-1]
					for _, pc := range x.parcels {
						s.ParcelIDs = append(s.ParcelIDs, pc.ID)
						s.Contactless = s.Contactless || pc.Contactless
					}
					s.WeightGrams += x.grams
					slices.Sort(s.ParcelIDs)
					continue
				}
				a := x.h.first
				s := Stop{Sequence: len(stops) + 1, Trip: k + 1, HouseholdID: x.h.id, Building: a.Building, Unit: a.Unit,
					Floor: a.Floor, Room: a.Room, Priority: x.h.priority, WeightGrams: x.grams}
				for _, pc := range x.parcels {
					s.ParcelIDs = append(s.ParcelIDs, pc.ID)
					s.Contactless = s.Contactless || pc.Contactless
				}
				stops = append(stops, s)
			}
		}
		r := Route{CourierID: p.couriers[ci].ID, Stops: stops}
		r.Cost = Evaluate(buildings, r.Stops)
		plan.Routes = append(plan.Routes, r)
		plan.Cost = plan.Cost.Add(r.Cost)
	}
	return plan
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
		// Lift units: the span between the highest and lowest stop of the trip in each unit.
		type span struct {
			building, unit string
			top, bottom    int
		}
		var lifts []span
		for k := 0; k < len(trip); {
			m := k
			top, bottom := trip[k].Floor, trip[k].Floor
			for m < len(trip) && trip[m].Building == trip[k].Building && trip[m].Unit == trip[k].Unit {
				top, bottom = max(top, trip[m].Floor), min(bottom, trip[m].Floor)
				m++
			}
			if lift[trip[k].Building] {
				at := slices.IndexFunc(lifts, func(s span) bool { return s.building == trip[k].Building && s.unit == trip[k].Unit })
				if at < 0 {
					lifts = append(lifts, span{trip[k].Building, trip[k].Unit, top, bottom})
				} else {
					lifts[at].top, lifts[at].bottom = max(lifts[at].top, top), min(lifts[at].bottom, bottom)
				}
			} else {
				c.Floors += WalkUpFloorWeight * int64(max(top-1, 0))
			}
			k = m
		}
		for _, s := range lifts {
			c.Floors += int64(s.top - s.bottom)
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
