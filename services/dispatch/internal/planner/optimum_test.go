package planner

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// optimum finds the cheapest valid plan of a small instance by exhaustive search, under the same
// rules the planner keeps: every household on one stop of one courier who serves its floor, trips
// within that courier's parcels and grams, and priority households before all others on each
// route. The cost compared is Cost.Scalar. Households must each fit one trip of every courier
// (the generator makes sure), so no household is split.
//
// The search is exact: for every subset of households it tries every visiting order (priority
// households first) as one trip; a route is a partition of its households into trips, of which at
// most one may mix priority and other households (the trip where the priority ones end); and a
// plan is the best split of the households between the couriers.
func optimum(t *testing.T, in Input) (int64, []Route) {
	t.Helper()
	hs := householdsOf(in.Parcels)
	n := len(hs)
	if n > 10 {
		t.Fatalf("optimum: %d households is too many for exhaustive search", n)
	}
	full := 1<<n - 1
	type best struct {
		cost  int64
		order []int
	}
	// trip[mask] is the cheapest single trip over exactly those households.
	trip := make([]best, full+1)
	for mask := 1; mask <= full; mask++ {
		var prio, rest []int
		for i := range n {
			if mask&(1<<i) != 0 {
				if hs[i].priority {
					prio = append(prio, i)
				} else {
					rest = append(rest, i)
				}
			}
		}
		trip[mask] = best{cost: math.MaxInt64}
		permuteInts(prio, func(p []int) {
			permuteInts(rest, func(r []int) {
				order := append(slices.Clone(p), r...)
				if c := Evaluate(in.Buildings, stopsOf(hs, [][]int{order})).Scalar(); c < trip[mask].cost {
					trip[mask] = best{c, order}
				}
			})
		})
	}
	mixed := func(mask int) bool {
		var p, r bool
		for i := range n {
			if mask&(1<<i) != 0 {
				p, r = p || hs[i].priority, r || !hs[i].priority
			}
		}
		return p && r
	}
	fits := func(c Courier, mask int) bool {
		var np int
		var g int64
		for i := range n {
			if mask&(1<<i) != 0 {
				np += len(hs[i].parcels)
				g += hs[i].grams
			}
		}
		return np <= c.MaxParcels && g <= c.MaxGrams
	}
	// route[c][mask][m] is the cheapest route of courier c over mask, m = 1 while a mixed trip is
	// still allowed; trips[c][mask][m] is its trips.
	routeCost := func(c Courier) ([][2]int64, [][2][]int) {
		cost := make([][2]int64, full+1)
		first := make([][2][]int, full+1) // the trip chosen first, then recurse on the rest
		for mask := 1; mask <= full; mask++ {
			cost[mask] = [2]int64{math.MaxInt64, math.MaxInt64}
		}
		for mask := 1; mask <= full; mask++ {
			low := mask & -mask
			for m := range 2 {
				// Every sub-mask of mask that holds its lowest household is the trip of that household.
				for sub := mask; sub > 0; sub = (sub - 1) & mask {
					if sub&low == 0 || !fits(c, sub) {
						continue
					}
					mx := mixed(sub)
					if mx && m == 0 {
						continue
					}
					nm := m
					if mx {
						nm = 0
					}
					rest := int64(0)
					if r := mask &^ sub; r != 0 {
						rest = cost[r][nm]
						if rest == math.MaxInt64 {
							continue
						}
					}
					if v := trip[sub].cost + rest; v < cost[mask][m] {
						cost[mask][m] = v
						first[mask][m] = []int{sub, nm}
					}
				}
			}
		}
		return cost, first
	}
	serves := func(c Courier, h hh) bool { return c.serves(h.building, h.floor) }
	var costs [][][2]int64
	var firsts [][][2][]int
	for _, c := range in.Couriers {
		co, fi := routeCost(c)
		costs, firsts = append(costs, co), append(firsts, fi)
	}
	bestCost, bestAssign := int64(math.MaxInt64), -1
	nc := len(in.Couriers)
	// Each household to one courier: nc^n assignments, encoded in base nc.
	total := 1
	for range n {
		total *= nc
	}
	for a := range total {
		masks := make([]int, nc)
		ok := true
		x := a
		for i := range n {
			ci := x % nc
			x /= nc
			if !serves(in.Couriers[ci], hs[i]) {
				ok = false
				break
			}
			masks[ci] |= 1 << i
		}
		if !ok {
			continue
		}
		var sum int64
		for ci, m := range masks {
			if m == 0 {
				continue
			}
			if costs[ci][m][1] == math.MaxInt64 {
				sum = math.MaxInt64
				break
			}
			sum += costs[ci][m][1]
		}
		if sum < bestCost {
			bestCost, bestAssign = sum, a
		}
	}
	if bestAssign < 0 {
		t.Fatalf("optimum: instance has no valid plan")
	}
	// Rebuild the best plan and evaluate it again, so the search checks itself against Evaluate.
	masks := make([]int, nc)
	x := bestAssign
	for i := range n {
		masks[x%nc] |= 1 << i
		x /= nc
	}
	var routes []Route
	var check int64
	for ci, m := range masks {
		if m == 0 {
			continue
		}
		var tripsOrder [][]int
		for mm, mode := m, 1; mm != 0; {
			f := firsts[ci][mm][mode]
			tripsOrder = append(tripsOrder, trip[f[0]].order)
			mm, mode = mm&^f[0], f[1]
		}
		// Trips with priority households go first.
		slices.SortStableFunc(tripsOrder, func(a, b []int) int {
			return prioRank(hs, a) - prioRank(hs, b)
		})
		r := Route{CourierID: in.Couriers[ci].ID, Stops: stopsOf(hs, tripsOrder)}
		r.Cost = Evaluate(in.Buildings, r.Stops)
		check += r.Cost.Scalar()
		routes = append(routes, r)
	}
	if check != bestCost {
		t.Fatalf("optimum: search says %d, its plan evaluates to %d", bestCost, check)
	}
	return bestCost, routes
}

// prioRank orders trips: all-priority 0, mixed 1, none 2.
func prioRank(hs []hh, trip []int) int {
	var p, r bool
	for _, i := range trip {
		p, r = p || hs[i].priority, r || !hs[i].priority
	}
	switch {
	case p && !r:
		return 0
	case p:
		return 1
	}
	return 2
}

type hh struct {
	id, building, unit, room string
	floor                    int
	priority                 bool
	parcels                  []string
	grams                    int64
}

func householdsOf(parcels []Parcel) []hh {
	var out []hh
	idx := map[string]int{}
	for _, p := range parcels {
		i, ok := idx[p.HouseholdID]
		if !ok {
			i = len(out)
			idx[p.HouseholdID] = i
			out = append(out, hh{id: p.HouseholdID, building: p.Building, unit: p.Unit, room: p.Room, floor: p.Floor})
		}
		out[i].parcels = append(out[i].parcels, p.ID)
		out[i].grams += p.WeightGrams
		out[i].priority = out[i].priority || p.Priority
	}
	return out
}

func stopsOf(hs []hh, trips [][]int) []Stop {
	var stops []Stop
	for ti, tr := range trips {
		for _, i := range tr {
			h := hs[i]
			stops = append(stops, Stop{Sequence: len(stops) + 1, Trip: ti + 1, HouseholdID: h.id, Building: h.building,
				Unit: h.unit, Floor: h.floor, Room: h.room, ParcelIDs: h.parcels, Priority: h.priority, WeightGrams: h.grams})
		}
	}
	return stops
}

func permuteInts(xs []int, visit func([]int)) {
	xs = slices.Clone(xs)
	var rec func(k int)
	rec = func(k int) {
		if k == len(xs) {
			visit(xs)
			return
		}
		for i := k; i < len(xs); i++ {
			xs[k], xs[i] = xs[i], xs[k]
			rec(k + 1)
			xs[k], xs[i] = xs[i], xs[k]
		}
	}
	rec(0)
}

// smallInstance is a round of up to 7 households and 2 couriers, shaped like a corner of a real
// compound: a few walk-ups and lift towers at 30-600 m from the gate, couriers who go anywhere,
// keep to some buildings, or split a building by floors, and households of 1-3 parcels, some of
// them priority. Every household fits one trip of either courier and has someone to serve it.
func smallInstance(r *rand.Rand) Input {
	var in Input
	nb := 1 + r.IntN(3)
	for i := range nb {
		b := Building{Name: fmt.Sprint(i + 1), DistanceM: 30 + r.IntN(571)}
		if r.IntN(3) == 0 {
			b.HasLift, b.Floors = true, 11+r.IntN(23)
		} else {
			b.Floors = 5 + r.IntN(3)
		}
		for u := range 1 + r.IntN(3) {
			b.Units = append(b.Units, fmt.Sprint(u+1))
		}
		in.Buildings = append(in.Buildings, b)
	}
	for i := range 2 {
		in.Couriers = append(in.Couriers, Courier{ID: fmt.Sprintf("c%d", i+1), MaxParcels: 3 + r.IntN(8),
			MaxGrams: 8000 + r.Int64N(17000)})
	}
	switch r.IntN(4) {
	case 0: // the second courier keeps to the first building
		in.Couriers[1].Buildings = []string{"1"}
	case 1: // building 1 split by floors; the rest is the first courier's
		b := in.Buildings[0]
		split := 1 + r.IntN(b.Floors-1)
		in.Couriers[0].FloorRanges = []FloorRange{{Building: "1", MaxFloor: split}}
		for _, o := range in.Buildings[1:] {
			in.Couriers[0].FloorRanges = append(in.Couriers[0].FloorRanges, FloorRange{Building: o.Name})
		}
		in.Couriers[1].FloorRanges = []FloorRange{{Building: "1", MinFloor: split + 1}}
	}
	minParcels := min(in.Couriers[0].MaxParcels, in.Couriers[1].MaxParcels)
	minGrams := min(in.Couriers[0].MaxGrams, in.Couriers[1].MaxGrams)
	seen := map[string]bool{}
	nh := 1 + r.IntN(7)
	for len(seen) < nh {
		b := in.Buildings[r.IntN(nb)]
		unit := b.Units[r.IntN(len(b.Units))]
		floor := 1 + r.IntN(b.Floors)
		room := fmt.Sprintf("%d%02d", floor, 1+r.IntN(2))
		id := b.Name + "-" + unit + "-" + room
		if seen[id] {
			continue
		}
		seen[id] = true
		np := 1 + r.IntN(min(3, minParcels))
		prio := r.IntN(5) == 0
		var g int64
		for k := range np {
			w := 200 + r.Int64N(4800)
			w = min(w, minGrams/int64(np))
			g += w
			in.Parcels = append(in.Parcels, Parcel{ID: fmt.Sprintf("%s/%d", id, k), HouseholdID: id, Building: b.Name,
				Unit: unit, Floor: floor, Room: room, Priority: prio, WeightGrams: w})
		}
	}
	return in
}

// The planner is close to the best plan there is: on many small rounds its cost (Cost.Scalar) is on
// average within 5 % of the exhaustive optimum, and never below it.
func TestPlannerNearOptimum(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 3))
	const n = 400
	var sum, worst float64
	worstAt := -1
	optimal := 0
	for i := range n {
		in := smallInstance(r)
		plan, err := PlanRound(in)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		checkPlan(t, i, in, plan)
		opt, _ := optimum(t, in)
		got := plan.Cost.Scalar()
		if got < opt {
			t.Fatalf("instance %d: planner %d beats the optimum %d: the search is wrong", i, got, opt)
		}
		ratio := float64(got) / float64(opt)
		sum += ratio
		if got == opt {
			optimal++
		}
		if ratio > worst {
			worst, worstAt = ratio, i
		}
	}
	avg := sum / n
	t.Logf("planner cost / optimum over %d instances: average %.4f, worst %.4f (instance %d), optimal in %d",
		n, avg, worst, worstAt, optimal)
	if avg > 1.05 {
		t.Errorf("planner is on average %.1f %% above the optimum, want at most 5 %%", 100*(avg-1))
	}
}
