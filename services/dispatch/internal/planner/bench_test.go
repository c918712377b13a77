package planner

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// bigCompound is a large compound's busy round, generated deterministically: 40 buildings (24
// walk-ups of 6 floors, 4 units and 2 doors a landing; 16 lift towers of 24-33 floors, 3 units and
// 4 doors a landing) at 60-900 m from the gate; 5,000 households with 12,000 parcels of 0.3-4 kg;
// 25 couriers. The buildings are cut into 11 zones by distance, each shared by two couriers; in
// every other zone the pair splits the lift towers by floors (按楼层分配) instead; three more
// couriers go anywhere. Most couriers carry 15 parcels or 25 kg a trip; every fifth is a
// volunteer carrying 12 parcels or 20 kg.
func bigCompound() Input {
	r := rand.New(rand.NewPCG(12000, 5000))
	var in Input
	type door struct {
		b     *Building
		unit  string
		floor int
		room  string
	}
	for i := range 40 {
		b := Building{Name: fmt.Sprint(i + 1), DistanceM: 60 + r.IntN(841)}
		if i%5 < 3 { // 24 walk-ups
			b.Floors, b.Units = 6, []string{"1", "2", "3", "4"}
		} else {
			b.Floors, b.HasLift, b.Units = 24+r.IntN(10), true, []string{"1", "2", "3"}
		}
		in.Buildings = append(in.Buildings, b)
	}
	var doors []door
	for i := range in.Buildings {
		b := &in.Buildings[i]
		perLanding := 2
		if b.HasLift {
			perLanding = 4
		}
		for _, u := range b.Units {
			for f := 1; f <= b.Floors; f++ {
				for d := 1; d <= perLanding; d++ {
					doors = append(doors, door{b, u, f, fmt.Sprintf("%d%02d", f, d)})
				}
			}
		}
	}
	r.Shuffle(len(doors), func(i, j int) { doors[i], doors[j] = doors[j], doors[i] })
	households := doors[:5000]
	// 12,000 parcels: every household one, then 7,000 more spread at random.
	counts := make([]int, len(households))
	for i := range counts {
		counts[i] = 1
	}
	for range 7000 {
		counts[r.IntN(len(counts))]++
	}
	for i, d := range households {
		hid := fmt.Sprintf("big-%s-%s-%s", d.b.Name, d.unit, d.room)
		prio := r.IntN(10) == 0
		for k := range counts[i] {
			in.Parcels = append(in.Parcels, Parcel{ID: fmt.Sprintf("%s/%d", hid, k), HouseholdID: hid, Building: d.b.Name,
				Unit: d.unit, Floor: d.floor, Room: d.room, Priority: prio, Contactless: r.IntN(20) == 0,
				WeightGrams: 300 + r.Int64N(3701)})
		}
	}

	byDistance := slices.Clone(in.Buildings)
	slices.SortFunc(byDistance, func(a, b Building) int { return cmp.Compare(a.DistanceM, b.DistanceM) })
	courier := func(n int) Courier {
		c := Courier{ID: fmt.Sprintf("big-courier-%02d", n), MaxParcels: 15, MaxGrams: 25000}
		if n%5 == 0 {
			c.MaxParcels, c.MaxGrams = 12, 20000
		}
		return c
	}
	n := 0
	for z := range 11 {
		zone := byDistance[z*40/11 : (z+1)*40/11]
		a, b := courier(n+1), courier(n+2)
		n += 2
		for _, bl := range zone {
			if z%2 == 1 && bl.HasLift {
				a.FloorRanges = append(a.FloorRanges, FloorRange{Building: bl.Name, MaxFloor: 16})
				b.FloorRanges = append(b.FloorRanges, FloorRange{Building: bl.Name, MinFloor: 17})
			} else {
				a.FloorRanges = append(a.FloorRanges, FloorRange{Building: bl.Name})
				b.FloorRanges = append(b.FloorRanges, FloorRange{Building: bl.Name})
			}
		}
		in.Couriers = append(in.Couriers, a, b)
	}
	for range 3 {
		n++
		in.Couriers = append(in.Couriers, courier(n))
	}
	return in
}

// naivePlan is the baseline a dispatcher without a planner gets: one trip per household, the
// households handed round-robin to the couriers who serve them.
func naivePlan(in Input) Plan {
	hs := householdsOf(in.Parcels)
	next := map[string]int{}
	stops := map[string][]Stop{}
	for _, h := range hs {
		var eligible []Courier
		for _, c := range in.Couriers {
			if c.serves(h.building, h.floor) {
				eligible = append(eligible, c)
			}
		}
		key := fmt.Sprint(eligible)
		c := eligible[next[key]%len(eligible)]
		next[key]++
		s := stops[c.ID]
		s = append(s, Stop{Sequence: len(s) + 1, Trip: len(s) + 1, HouseholdID: h.id, Building: h.building, Unit: h.unit,
			Floor: h.floor, Room: h.room, ParcelIDs: h.parcels, WeightGrams: h.grams})
		stops[c.ID] = s
	}
	var plan Plan
	for _, c := range in.Couriers {
		if s := stops[c.ID]; len(s) > 0 {
			r := Route{CourierID: c.ID, Stops: s, Cost: Evaluate(in.Buildings, s)}
			plan.Routes = append(plan.Routes, r)
			plan.Cost = plan.Cost.Add(r.Cost)
		}
	}
	plan.LowerBound = LowerBound(in.Buildings, in.Couriers, in.Parcels)
	return plan
}

// BenchmarkPlanRound12k plans the big compound's round and reports the plan's cost over its
// lower bound (metres and trips; target ≤ 1.15 each), next to the naive baseline's in the same run.
func BenchmarkPlanRound12k(b *testing.B) {
	in := bigCompound()
	report := func(b *testing.B, plan Plan) {
		lb := plan.LowerBound
		b.ReportMetric(float64(plan.Cost.Metres)/float64(lb.Metres), "metres/lb")
		b.ReportMetric(float64(plan.Cost.Trips)/float64(lb.Trips), "trips/lb")
		b.ReportMetric(float64(plan.Cost.Floors)/float64(lb.Floors), "floors/lb")
		b.ReportMetric(float64(plan.Cost.Scalar()), "scalar")
	}
	b.Run("planner", func(b *testing.B) {
		var plan Plan
		for b.Loop() {
			var err error
			if plan, err = PlanRound(in); err != nil {
				b.Fatal(err)
			}
		}
		report(b, plan)
		b.ReportMetric(spreadOfWork(plan), "work-spread")
	})
	b.Run("naive", func(b *testing.B) {
		var plan Plan
		for b.Loop() {
			plan = naivePlan(in)
		}
		report(b, plan)
	})
}

// spreadOfWork is, over each zone's couriers, the largest ratio of the busiest courier's work
// (Scalar) to the least busy one's.
func spreadOfWork(plan Plan) float64 {
	work := map[string]int64{}
	for _, r := range plan.Routes {
		work[r.CourierID] = r.Cost.Scalar()
	}
	worst := 1.0
	for z := range 11 {
		a, b := work[fmt.Sprintf("big-courier-%02d", 2*z+1)], work[fmt.Sprintf("big-courier-%02d", 2*z+2)]
		if lo, hi := min(a, b), max(a, b); lo > 0 {
			worst = max(worst, float64(hi)/float64(lo))
		}
	}
	return worst
}

// The big round is planned within the targets; the benchmark reports the same figures with timing.
func TestPlanRound12kQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("plans 12,000 parcels")
	}
	in := bigCompound()
	plan, err := PlanRound(in)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, 0, in, plan)
	lb := plan.LowerBound
	m, tr := float64(plan.Cost.Metres)/float64(lb.Metres), float64(plan.Cost.Trips)/float64(lb.Trips)
	naive := naivePlan(in)
	t.Logf("planner: cost %+v, lower bound %+v: metres %.3f, trips %.3f of the bound; work spread %.2f",
		plan.Cost, lb, m, tr, spreadOfWork(plan))
	t.Logf("naive:   cost %+v: metres %.3f, trips %.3f of the bound", naive.Cost,
		float64(naive.Cost.Metres)/float64(lb.Metres), float64(naive.Cost.Trips)/float64(lb.Trips))
	if m > 1.15 || tr > 1.15 {
		t.Errorf("plan is %.3f (metres) and %.3f (trips) of its lower bound, want at most 1.15", m, tr)
	}
}
