package planner

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func walkUp(name string, d int, units ...string) Building {
	return Building{Name: name, Units: units, Floors: 6, DistanceM: d}
}

func withLift(name string, d int, units ...string) Building {
	return Building{Name: name, Units: units, Floors: 18, HasLift: true, DistanceM: d}
}

func anywhere(id string, maxParcels int, maxGrams int64) Courier {
	return Courier{ID: id, MaxParcels: maxParcels, MaxGrams: maxGrams}
}

// parcel makes a 1 kg parcel for household <building>-<unit>-<room>; the room's leading digits
// are the floor, as on a real door (302 is on floor 3).
func parcel(id, building, unit, room string) Parcel {
	floor := 0
	fmt.Sscanf(room[:len(room)-2], "%d", &floor)
	return Parcel{ID: id, HouseholdID: building + "-" + unit + "-" + room, Building: building, Unit: unit,
		Floor: floor, Room: room, WeightGrams: 1000}
}

type stopView struct {
	Trip      int
	Household string
	Parcels   []string
}

func view(r Route) []stopView {
	var out []stopView
	for _, s := range r.Stops {
		out = append(out, stopView{s.Trip, s.HouseholdID, s.ParcelIDs})
	}
	return out
}

func TestPlanRoundOrdersStopsLikeACourierWalks(t *testing.T) {
	prio := parcel("p5", "9", "1", "601")
	prio.Priority = true
	heavy := parcel("p6", "1", "1", "101")
	heavy.WeightGrams = 5000
	tests := []struct {
		name    string
		in      Input
		want    []stopView
		cost    Cost
		lower   Cost
		courier string
	}{{
		name: "walk-up: floors bottom up in one climb",
		in: Input{Buildings: []Building{walkUp("1", 100, "1")}, Couriers: []Courier{anywhere("c1", 10, 20000)},
			Parcels: []Parcel{parcel("p1", "1", "1", "501"), parcel("p2", "1", "1", "101"), parcel("p3", "1", "1", "302")}},
		want: []stopView{{1, "1-1-101", []string{"p2"}}, {1, "1-1-302", []string{"p3"}}, {1, "1-1-501", []string{"p1"}}},
		// 200 m there and back; climbing to floor 5 is 4 floors at the walk-up weight.
		cost:  Cost{Metres: 200, Floors: 8, Trips: 1},
		lower: Cost{Metres: 200, Floors: 8, Trips: 1},
	}, {
		name: "lift: up to the top served floor, walk down",
		in: Input{Buildings: []Building{withLift("1", 100, "1")}, Couriers: []Courier{anywhere("c1", 10, 20000)},
			Parcels: []Parcel{parcel("p1", "1", "1", "501"), parcel("p2", "1", "1", "1101"), parcel("p3", "1", "1", "302")}},
		want:  []stopView{{1, "1-1-1101", []string{"p2"}}, {1, "1-1-501", []string{"p1"}}, {1, "1-1-302", []string{"p3"}}},
		cost:  Cost{Metres: 200, Floors: 8, Trips: 1},
		lower: Cost{Metres: 200, Floors: 0, Trips: 1},
	}, {
		name: "buildings by distance, units in walking order, one stop per household",
		in: Input{
			Buildings: []Building{walkUp("2", 300, "1"), walkUp("1", 100, "2", "1")},
			Couriers:  []Courier{anywhere("c1", 10, 20000)},
			Parcels: []Parcel{parcel("p1", "2", "1", "101"), parcel("p2", "1", "1", "101"), parcel("p3", "1", "2", "201"),
				parcel("p4", "1", "1", "101")},
		},
		want: []stopView{{1, "1-2-201", []string{"p3"}}, {1, "1-1-101", []string{"p2", "p4"}}, {1, "2-1-101", []string{"p1"}}},
		// 100 m to building 1, 200 m on to building 2, 300 m back; unit 2 of building 1 is climbed to floor 2.
		cost:  Cost{Metres: 600, Floors: 2, Trips: 1},
		lower: Cost{Metres: 600, Floors: 2, Trips: 1},
	}, {
		name: "priority households first within the round",
		in: Input{
			Buildings: []Building{walkUp("1", 100, "1"), walkUp("9", 900, "1")},
			Couriers:  []Courier{anywhere("c1", 10, 20000)},
			Parcels:   []Parcel{parcel("p1", "1", "1", "101"), prio},
		},
		want: []stopView{{1, "9-1-601", []string{"p5"}}, {1, "1-1-101", []string{"p1"}}},
		// Out to building 9 first (900), back past building 1 (800), home (100).
		cost:  Cost{Metres: 1800, Floors: 10, Trips: 1},
		lower: Cost{Metres: 1800, Floors: 10, Trips: 1},
	}, {
		name: "trips bounded by parcels",
		in: Input{Buildings: []Building{walkUp("1", 50, "1")}, Couriers: []Courier{anywhere("c1", 2, 20000)},
			Parcels: []Parcel{parcel("p1", "1", "1", "101"), parcel("p2", "1", "1", "102"), parcel("p3", "1", "1", "201")}},
		// Cut from the top floor down, so the lower floor's household rides alone and the climb to
		// floor 2 happens once.
		want:  []stopView{{1, "1-1-101", []string{"p1"}}, {2, "1-1-102", []string{"p2"}}, {2, "1-1-201", []string{"p3"}}},
		cost:  Cost{Metres: 200, Floors: 2, Trips: 2},
		lower: Cost{Metres: 200, Floors: 2, Trips: 2},
	}, {
		name: "trips bounded by grams",
		in: Input{Buildings: []Building{walkUp("1", 50, "1")}, Couriers: []Courier{anywhere("c1", 10, 5500)},
			Parcels: []Parcel{parcel("p1", "1", "1", "101"), heavy}},
		// 6 kg for one door, 5.5 kg a trip: the household's parcels go in two trips.
		want:  []stopView{{1, "1-1-101", []string{"p1"}}, {2, "1-1-101", []string{"p6"}}},
		cost:  Cost{Metres: 200, Floors: 0, Trips: 2},
		lower: Cost{Metres: 200, Floors: 0, Trips: 2},
	}, {
		name: "a household with more than one trip's load is split across trips",
		in: Input{Buildings: []Building{walkUp("1", 50, "1")}, Couriers: []Courier{anywhere("c1", 2, 20000)},
			Parcels: []Parcel{parcel("p1", "1", "1", "301"), parcel("p2", "1", "1", "301"), parcel("p3", "1", "1", "301")}},
		want:  []stopView{{1, "1-1-301", []string{"p1", "p2"}}, {2, "1-1-301", []string{"p3"}}},
		cost:  Cost{Metres: 200, Floors: 8, Trips: 2},
		lower: Cost{Metres: 200, Floors: 4, Trips: 2},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanRound(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Routes) != 1 {
				t.Fatalf("got %d routes, want 1", len(plan.Routes))
			}
			if got := view(plan.Routes[0]); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("stops:\n got %v\nwant %v", got, tc.want)
			}
			if plan.Cost != tc.cost || plan.Routes[0].Cost != tc.cost {
				t.Errorf("cost = %+v (route %+v), want %+v", plan.Cost, plan.Routes[0].Cost, tc.cost)
			}
			if plan.LowerBound != tc.lower {
				t.Errorf("lower bound = %+v, want %+v", plan.LowerBound, tc.lower)
			}
			for i, s := range plan.Routes[0].Stops {
				if s.Sequence != i+1 {
					t.Errorf("stop %d has sequence %d", i, s.Sequence)
				}
			}
		})
	}
}

func TestPlanRoundStopFlags(t *testing.T) {
	a := parcel("p1", "1", "1", "101")
	b := parcel("p2", "1", "1", "101")
	b.Contactless, b.Priority, b.WeightGrams = true, true, 2500
	plan, err := PlanRound(Input{Buildings: []Building{walkUp("1", 10, "1")}, Couriers: []Courier{anywhere("c1", 5, 10000)},
		Parcels: []Parcel{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	s := plan.Routes[0].Stops[0]
	if !s.Contactless || !s.Priority || s.WeightGrams != 3500 || s.Floor != 1 || s.Room != "101" {
		t.Errorf("stop = %+v, want contactless priority 3500 g on floor 1 room 101", s)
	}
}

func TestPlanRoundKeepsCouriersToTheirBuildingsAndBalancesShared(t *testing.T) {
	var parcels []Parcel
	for i := range 20 {
		parcels = append(parcels, parcel(fmt.Sprintf("a%02d", i), "1", "1", fmt.Sprintf("%d01", i%6+1)))
		parcels = append(parcels, parcel(fmt.Sprintf("b%02d", i), "2", "1", fmt.Sprintf("%d%02d", i%6+1, i)))
	}
	t.Run("own buildings", func(t *testing.T) {
		plan, err := PlanRound(Input{
			Buildings: []Building{walkUp("1", 100, "1"), walkUp("2", 200, "1")},
			Couriers: []Courier{{ID: "c1", Buildings: []string{"2"}, MaxParcels: 5, MaxGrams: 20000},
				{ID: "c2", Buildings: []string{"1"}, MaxParcels: 5, MaxGrams: 20000}},
			Parcels: parcels,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range plan.Routes {
			want := map[string]string{"c1": "2", "c2": "1"}[r.CourierID]
			for _, s := range r.Stops {
				if s.Building != want {
					t.Fatalf("courier %s got a stop in building %s", r.CourierID, s.Building)
				}
			}
		}
	})
	t.Run("shared area is balanced", func(t *testing.T) {
		plan, err := PlanRound(Input{
			Buildings: []Building{walkUp("1", 100, "1"), walkUp("2", 200, "1")},
			Couriers:  []Courier{anywhere("c1", 5, 20000), anywhere("c2", 5, 20000), anywhere("c3", 5, 20000)},
			Parcels:   parcels,
		})
		if err != nil {
			t.Fatal(err)
		}
		loads := parcelsPerCourier(plan)
		if spread(loads) > 5 {
			t.Fatalf("loads %v differ by more than one trip", loads)
		}
	})
	t.Run("constrained buildings first", func(t *testing.T) {
		// c1 may go anywhere, c2 only to building 1: building 2 can only be c1's, so building 1
		// should mostly be c2's rather than split evenly first.
		plan, err := PlanRound(Input{
			Buildings: []Building{walkUp("1", 100, "1"), walkUp("2", 200, "1")},
			Couriers:  []Courier{anywhere("c1", 5, 20000), {ID: "c2", Buildings: []string{"1"}, MaxParcels: 5, MaxGrams: 20000}},
			Parcels:   parcels,
		})
		if err != nil {
			t.Fatal(err)
		}
		if loads := parcelsPerCourier(plan); loads["c1"] != 20 || loads["c2"] != 20 {
			t.Fatalf("loads %v, want 20 each", loads)
		}
	})
}

func parcelsPerCourier(p Plan) map[string]int {
	loads := map[string]int{}
	for _, r := range p.Routes {
		for _, s := range r.Stops {
			loads[r.CourierID] += len(s.ParcelIDs)
		}
	}
	return loads
}

func spread(loads map[string]int) int {
	lo, hi := -1, 0
	for _, n := range loads {
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return hi - lo
}

func TestPlanRoundRefusesWhatCannotBeDelivered(t *testing.T) {
	heavy := parcel("p9", "2", "1", "101")
	heavy.WeightGrams = 30000
	tests := []struct {
		name string
		in   Input
		want string
	}{{
		name: "nobody serves the building",
		in: Input{Buildings: []Building{walkUp("1", 10, "1"), walkUp("2", 20, "1")},
			Couriers: []Courier{{ID: "c1", Buildings: []string{"1"}, MaxParcels: 5, MaxGrams: 9000}},
			Parcels:  []Parcel{parcel("p1", "1", "1", "101"), parcel("p2", "2", "1", "101")}},
		want: "no on-duty courier serves building 2",
	}, {
		name: "no couriers at all",
		in:   Input{Buildings: []Building{walkUp("1", 10, "1")}, Parcels: []Parcel{parcel("p1", "1", "1", "101")}},
		want: "no on-duty courier serves building 1",
	}, {
		name: "building not on the site plan",
		in: Input{Buildings: []Building{walkUp("1", 10, "1")}, Couriers: []Courier{anywhere("c1", 5, 9000)},
			Parcels: []Parcel{parcel("p1", "7", "1", "101")}},
		want: "building 7 (parcel p1) is not on the site plan",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanRound(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrUnplannable) {
				t.Fatalf("%v does not wrap ErrUnplannable", err)
			}
		})
	}
}

// A parcel heavier than anyone serving its building can carry gets a trip of its own rather than
// blocking the round.
func TestPlanRoundOverweightParcelGetsItsOwnTrip(t *testing.T) {
	light := parcel("p1", "2", "1", "101")
	heavy := parcel("p9", "2", "1", "102")
	heavy.WeightGrams = 30000
	next := parcel("p2", "2", "1", "201")
	next.Floor = 2
	in := Input{Buildings: []Building{walkUp("2", 10, "1")},
		Couriers: []Courier{anywhere("c1", 5, 9000), {ID: "c2", Buildings: []string{"1"}, MaxParcels: 5, MaxGrams: 50000}},
		Parcels:  []Parcel{light, heavy, next}}
	plan, err := PlanRound(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Routes) != 1 || plan.Routes[0].CourierID != "c1" {
		t.Fatalf("routes = %+v, want one for c1", plan.Routes)
	}
	trips := map[int][]string{}
	for _, s := range plan.Routes[0].Stops {
		trips[s.Trip] = append(trips[s.Trip], s.ParcelIDs...)
	}
	for trip, ids := range trips {
		if slices.Contains(ids, heavy.ID) && len(ids) != 1 {
			t.Fatalf("trip %d carries the 30 kg parcel with others: %v", trip, ids)
		}
	}
	if plan.LowerBound.Trips > plan.Cost.Trips || plan.LowerBound.Metres > plan.Cost.Metres {
		t.Fatalf("lower bound %+v exceeds cost %+v", plan.LowerBound, plan.Cost)
	}
}

func TestPlanRoundEmpty(t *testing.T) {
	plan, err := PlanRound(Input{Couriers: []Courier{anywhere("c1", 5, 9000)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Routes) != 0 || plan.Cost != (Cost{}) || plan.LowerBound != (Cost{}) {
		t.Fatalf("plan = %+v, want empty", plan)
	}
}

// A heavy parcel goes to the courier who can carry it, even when a weaker one also serves there.
func TestPlanRoundGivesHeavyParcelsToStrongCouriers(t *testing.T) {
	heavy := parcel("p1", "1", "1", "101")
	heavy.WeightGrams = 20000
	plan, err := PlanRound(Input{Buildings: []Building{walkUp("1", 10, "1")},
		Couriers: []Courier{anywhere("a-weak", 5, 5000), anywhere("b-strong", 5, 25000)},
		Parcels:  []Parcel{heavy, parcel("p2", "1", "1", "102")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range plan.Routes {
		for _, s := range r.Stops {
			if slices.Contains(s.ParcelIDs, "p1") && r.CourierID != "b-strong" {
				t.Fatalf("heavy parcel given to %s", r.CourierID)
			}
		}
	}
}

// randomInstance is a feasible round: every building has a courier able to carry any parcel.
func randomInstance(r *rand.Rand) Input {
	var in Input
	nb := 1 + r.IntN(8)
	for i := range nb {
		b := Building{Name: fmt.Sprint(i + 1), Floors: 1 + r.IntN(33), HasLift: r.IntN(2) == 0, DistanceM: r.IntN(600)}
		for u := range 1 + r.IntN(4) {
			b.Units = append(b.Units, fmt.Sprint(u+1))
		}
		r.Shuffle(len(b.Units), func(i, j int) { b.Units[i], b.Units[j] = b.Units[j], b.Units[i] })
		in.Buildings = append(in.Buildings, b)
	}
	nc := 1 + r.IntN(5)
	for i := range nc {
		c := Courier{ID: fmt.Sprintf("c%d", i), MaxParcels: 1 + r.IntN(15), MaxGrams: 3000 + r.Int64N(30000)}
		switch r.IntN(4) {
		case 0, 1:
			for _, b := range in.Buildings {
				if r.IntN(2) == 0 {
					c.Buildings = append(c.Buildings, b.Name)
				}
			}
		case 2:
			for _, b := range in.Buildings {
				if r.IntN(2) == 0 {
					c.FloorRanges = append(c.FloorRanges, FloorRange{Building: b.Name, MinFloor: r.IntN(b.Floors + 1),
						MaxFloor: r.IntN(b.Floors + 1)})
				}
			}
		}
		in.Couriers = append(in.Couriers, c)
	}
	// Someone strong enough for every parcel must serve every building.
	in.Couriers[0].MaxGrams = max(in.Couriers[0].MaxGrams, 10000)
	in.Couriers[0].Buildings, in.Couriers[0].FloorRanges = nil, nil
	np := r.IntN(120)
	for i := range np {
		b := in.Buildings[r.IntN(nb)]
		unit := b.Units[r.IntN(len(b.Units))]
		floor := 1 + r.IntN(b.Floors)
		room := fmt.Sprintf("%d%02d", floor, 1+r.IntN(3))
		p := Parcel{ID: fmt.Sprintf("p%03d", i), HouseholdID: b.Name + "-" + unit + "-" + room, Building: b.Name,
			Unit: unit, Floor: floor, Room: room, Priority: r.IntN(5) == 0, Contactless: r.IntN(7) == 0,
			WeightGrams: 100 + r.Int64N(9900)}
		if r.IntN(20) == 0 { // a dispatcher's move, sometimes to someone not in the round
			p.PinnedTo = fmt.Sprintf("c%d", r.IntN(nc+1))
		}
		in.Parcels = append(in.Parcels, p)
	}
	return in
}

func shuffled(r *rand.Rand, in Input) Input {
	out := Input{Buildings: slices.Clone(in.Buildings), Couriers: slices.Clone(in.Couriers), Parcels: slices.Clone(in.Parcels)}
	r.Shuffle(len(out.Buildings), func(i, j int) { out.Buildings[i], out.Buildings[j] = out.Buildings[j], out.Buildings[i] })
	r.Shuffle(len(out.Couriers), func(i, j int) { out.Couriers[i], out.Couriers[j] = out.Couriers[j], out.Couriers[i] })
	r.Shuffle(len(out.Parcels), func(i, j int) { out.Parcels[i], out.Parcels[j] = out.Parcels[j], out.Parcels[i] })
	return out
}

func TestPlanRoundProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	instances := 600
	if raceDetector {
		instances = 150
	}
	for n := range instances {
		in := randomInstance(r)
		plan, err := PlanRound(in)
		if err != nil {
			t.Fatalf("instance %d: %v", n, err)
		}
		checkPlan(t, n, in, plan)
		again, err := PlanRound(shuffled(r, in))
		if err != nil {
			t.Fatalf("instance %d shuffled: %v", n, err)
		}
		if !reflect.DeepEqual(plan, again) {
			t.Fatalf("instance %d: plan depends on input order", n)
		}
	}
}

func checkPlan(t *testing.T, n int, in Input, plan Plan) {
	t.Helper()
	parcels := map[string]Parcel{}
	for _, p := range in.Parcels {
		parcels[p.ID] = p
	}
	couriers := map[string]Courier{}
	for _, c := range in.Couriers {
		couriers[c.ID] = c
	}
	pins := pinsOf(in.Parcels, couriers)
	seen := map[string]int{}
	var total Cost
	for ri, route := range plan.Routes {
		if ri > 0 && plan.Routes[ri-1].CourierID >= route.CourierID {
			t.Fatalf("instance %d: routes not ordered by courier", n)
		}
		c := couriers[route.CourierID]
		if len(route.Stops) == 0 {
			t.Fatalf("instance %d: empty route for %s", n, c.ID)
		}
		type load struct {
			parcels int
			grams   int64
		}
		trips := map[int]*load{}
		tripHouseholds := map[string]bool{}
		lastPriority := 0
		for i, s := range route.Stops {
			if s.Sequence != i+1 {
				t.Fatalf("instance %d: %s stop %d has sequence %d", n, c.ID, i, s.Sequence)
			}
			if i == 0 && s.Trip != 1 || i > 0 && s.Trip != route.Stops[i-1].Trip && s.Trip != route.Stops[i-1].Trip+1 {
				t.Fatalf("instance %d: %s trips not consecutive", n, c.ID)
			}
			if pin := pins[s.HouseholdID]; pin != "" {
				if pin != c.ID {
					t.Fatalf("instance %d: household %s pinned to %s went to %s", n, s.HouseholdID, pin, c.ID)
				}
			} else if !c.serves(s.Building, s.Floor) {
				t.Fatalf("instance %d: courier %s serves %v %v but got floor %d of building %s", n, c.ID, c.Buildings,
					c.FloorRanges, s.Floor, s.Building)
			}
			key := fmt.Sprint(s.Trip, s.HouseholdID)
			if tripHouseholds[key] {
				t.Fatalf("instance %d: household %s twice on one trip", n, s.HouseholdID)
			}
			tripHouseholds[key] = true
			if s.Priority {
				lastPriority = i + 1
			} else if lastPriority > i+1 {
				t.Fatalf("instance %d: priority stop after a normal one", n)
			}
			if trips[s.Trip] == nil {
				trips[s.Trip] = &load{}
			}
			var grams int64
			contactless, priority := false, false
			for _, id := range s.ParcelIDs {
				p, ok := parcels[id]
				if !ok {
					t.Fatalf("instance %d: unknown parcel %s", n, id)
				}
				seen[id]++
				if p.HouseholdID != s.HouseholdID || p.Building != s.Building || p.Unit != s.Unit || p.Floor != s.Floor {
					t.Fatalf("instance %d: parcel %s at the wrong stop %+v", n, id, s)
				}
				grams += p.WeightGrams
				contactless = contactless || p.Contactless
				priority = priority || p.Priority
			}
			if grams != s.WeightGrams || contactless != s.Contactless {
				t.Fatalf("instance %d: stop %+v totals wrong", n, s)
			}
			if priority && !s.Priority {
				t.Fatalf("instance %d: stop of a priority parcel not flagged", n)
			}
			trips[s.Trip].parcels += len(s.ParcelIDs)
			trips[s.Trip].grams += grams
		}
		for trip, l := range trips {
			// Only a single over-heavy parcel may ride over a courier's load, on a trip of its own.
			if (l.parcels > c.MaxParcels || l.grams > c.MaxGrams) && l.parcels > 1 {
				t.Fatalf("instance %d: %s trip %d carries %d parcels %d g, over %d/%d", n, c.ID, trip, l.parcels, l.grams, c.MaxParcels, c.MaxGrams)
			}
		}
		if got := Evaluate(in.Buildings, route.Stops); got != route.Cost {
			t.Fatalf("instance %d: route cost %+v, evaluated %+v", n, route.Cost, got)
		}
		total = total.Add(route.Cost)
	}
	for id := range parcels {
		if seen[id] != 1 {
			t.Fatalf("instance %d: parcel %s appears %d times", n, id, seen[id])
		}
	}
	if total != plan.Cost {
		t.Fatalf("instance %d: plan cost %+v, routes add to %+v", n, plan.Cost, total)
	}
	lb := plan.LowerBound
	if lb.Metres > plan.Cost.Metres || lb.Floors > plan.Cost.Floors || lb.Trips > plan.Cost.Trips {
		t.Fatalf("instance %d: lower bound %+v above cost %+v", n, lb, plan.Cost)
	}
	if len(in.Parcels) > 0 && (lb.Trips < 1 || lb.Metres < 0) {
		t.Fatalf("instance %d: lower bound %+v is trivial", n, lb)
	}
}

// The lower bound is also checked against every plan of small instances found by brute force:
// whatever order and trip split a courier chose, none beats it.
func TestLowerBoundBelowAnyPlan(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	instances := 200
	if raceDetector {
		instances = 60
	}
	for n := range instances {
		in := randomInstance(r)
		in.Couriers = in.Couriers[:1]
		if len(in.Parcels) > 5 {
			in.Parcels = in.Parcels[:5]
		}
		for i := range in.Parcels {
			in.Parcels[i].HouseholdID = in.Parcels[i].ID // one stop per parcel
		}
		lb := LowerBound(in.Buildings, in.Couriers, in.Parcels)
		c := in.Couriers[0]
		permute(in.Parcels, func(order []Parcel) {
			// Cut the order into trips at every feasible place: try all 2^(n-1) cut sets.
			for cuts := 0; cuts < 1<<max(len(order)-1, 0); cuts++ {
				var stops []Stop
				trip, np, g, ok := 1, 0, int64(0), true
				for i, p := range order {
					if i > 0 && cuts&(1<<(i-1)) != 0 {
						trip, np, g = trip+1, 0, 0
					}
					np, g = np+1, g+p.WeightGrams
					ok = ok && np <= c.MaxParcels && g <= c.MaxGrams
					stops = append(stops, Stop{Sequence: i + 1, Trip: trip, HouseholdID: p.ID, Building: p.Building,
						Unit: p.Unit, Floor: p.Floor})
				}
				if !ok {
					continue
				}
				cost := Evaluate(in.Buildings, stops)
				if lb.Metres > cost.Metres || lb.Floors > cost.Floors || lb.Trips > cost.Trips {
					t.Fatalf("instance %d: lower bound %+v above a valid plan's cost %+v", n, lb, cost)
				}
			}
		})
	}
}

// pinsOf maps each household to the on-duty courier it is pinned to, if any: that of the first
// of its parcels (by id) pinned to someone in the round.
func pinsOf(parcels []Parcel, couriers map[string]Courier) map[string]string {
	sorted := slices.Clone(parcels)
	slices.SortFunc(sorted, func(a, b Parcel) int { return strings.Compare(a.ID, b.ID) })
	out := map[string]string{}
	for _, p := range sorted {
		if _, ok := couriers[p.PinnedTo]; ok && out[p.HouseholdID] == "" {
			out[p.HouseholdID] = p.PinnedTo
		}
	}
	return out
}

func permute(ps []Parcel, visit func([]Parcel)) {
	var rec func(k int)
	rec = func(k int) {
		if k == len(ps) {
			visit(ps)
			return
		}
		for i := k; i < len(ps); i++ {
			ps[k], ps[i] = ps[i], ps[k]
			rec(k + 1)
			ps[k], ps[i] = ps[i], ps[k]
		}
	}
	rec(0)
}

// Couriers assigned by floors (按楼层分配) get only their floors; a floor nobody serves is named.
func TestPlanRoundKeepsCouriersToTheirFloors(t *testing.T) {
	tower := withLift("5", 200, "1")
	var parcels []Parcel
	for f := 1; f <= 18; f++ {
		parcels = append(parcels, parcel(fmt.Sprintf("p%02d", f), "5", "1", fmt.Sprintf("%d01", f)))
	}
	low := Courier{ID: "low", FloorRanges: []FloorRange{{Building: "5", MaxFloor: 9}}, MaxParcels: 20, MaxGrams: 50000}
	high := Courier{ID: "high", FloorRanges: []FloorRange{{Building: "5", MinFloor: 10}}, MaxParcels: 20, MaxGrams: 50000}
	// Floor ranges replace buildings: "else" lists building 5 but its ranges cover another one.
	elsewhere := Courier{ID: "else", Buildings: []string{"5"}, FloorRanges: []FloorRange{{Building: "6"}}, MaxParcels: 20, MaxGrams: 50000}
	plan, err := PlanRound(Input{Buildings: []Building{tower}, Couriers: []Courier{low, high, elsewhere}, Parcels: parcels})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range plan.Routes {
		for _, s := range r.Stops {
			if r.CourierID == "else" || r.CourierID == "low" && s.Floor > 9 || r.CourierID == "high" && s.Floor < 10 {
				t.Fatalf("%s got floor %d", r.CourierID, s.Floor)
			}
		}
	}
	if loads := parcelsPerCourier(plan); loads["low"] != 9 || loads["high"] != 9 {
		t.Fatalf("loads %v, want 9 each", loads)
	}

	_, err = PlanRound(Input{Buildings: []Building{tower}, Couriers: []Courier{low}, Parcels: parcels})
	if err == nil || err.Error() != "no on-duty courier serves floor 10 of building 5" || !errors.Is(err, ErrUnplannable) {
		t.Fatalf("err = %v", err)
	}
	_, err = PlanRound(Input{Buildings: []Building{tower}, Couriers: []Courier{elsewhere}, Parcels: parcels})
	if err == nil || err.Error() != "no on-duty courier serves building 5" {
		t.Fatalf("err = %v", err)
	}
}

// A pinned household stays with its courier, even outside their buildings; a pin to someone not
// in the round is ignored.
func TestPlanRoundKeepsPinnedHouseholds(t *testing.T) {
	moved := parcel("p1", "1", "1", "301")
	moved.PinnedTo = "c2"
	twin := parcel("p2", "1", "1", "301") // same household, not pinned itself: goes along
	stray := parcel("p3", "1", "1", "401")
	stray.PinnedTo = "c9"
	plan, err := PlanRound(Input{Buildings: []Building{walkUp("1", 100, "1"), walkUp("2", 200, "1")},
		Couriers: []Courier{{ID: "c1", Buildings: []string{"1"}, MaxParcels: 10, MaxGrams: 20000},
			{ID: "c2", Buildings: []string{"2"}, MaxParcels: 10, MaxGrams: 20000}},
		Parcels: []Parcel{moved, twin, stray, parcel("p4", "2", "1", "101")}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range plan.Routes {
		for _, s := range r.Stops {
			for _, id := range s.ParcelIDs {
				got[id] = r.CourierID
			}
		}
	}
	if want := map[string]string{"p1": "c2", "p2": "c2", "p3": "c1", "p4": "c2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("couriers %v, want %v", got, want)
	}
}

// The local search's cost of a trip is what Evaluate says of the trip's stops.
func TestTripCostMatchesEvaluate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 300 {
		in := randomInstance(r)
		buildings := map[string]*Building{}
		for i := range in.Buildings {
			buildings[in.Buildings[i].Name] = &in.Buildings[i]
		}
		households, err := groupHouseholds(in.Parcels, buildings)
		if err != nil || len(households) == 0 {
			continue
		}
		p := &planning{}
		var pieces []*piece
		for _, h := range households {
			h.maxParcels, h.maxGrams = 1+r.IntN(4), 1<<40
			if r.IntN(3) == 0 {
				pieces = append(pieces, split(h)...)
			}
		}
		ordered := orderTrip(nil, pieces)
		var stops []Stop
		for i, x := range ordered {
			stops = append(stops, Stop{Sequence: i + 1, Trip: 1, HouseholdID: x.h.id, Building: x.h.first.Building,
				Unit: x.h.first.Unit, Floor: x.h.first.Floor})
		}
		if got, want := p.cost(pieces), Evaluate(in.Buildings, stops).Scalar(); got != want {
			t.Fatalf("instance %d: cost %d, Evaluate %d", n, got, want)
		}
	}
}

// A lift unit costs its floor span once per trip, however its stops are split into visits; a
// walk-up is climbed again on every visit.
func TestEvaluateCountsLiftSpanOncePerTrip(t *testing.T) {
	buildings := []Building{withLift("1", 0, "1", "2"), walkUp("2", 0, "1", "2")}
	stop := func(b, u string, floor int) Stop { return Stop{Trip: 1, Building: b, Unit: u, Floor: floor} }
	for _, tc := range []struct {
		stops  []Stop
		floors int64
	}{
		{[]Stop{stop("1", "1", 12), stop("1", "1", 2)}, 10},
		{[]Stop{stop("1", "1", 12), stop("1", "2", 3), stop("1", "1", 2)}, 10},
		{[]Stop{stop("2", "1", 5), stop("2", "2", 3), stop("2", "1", 2)}, 2*4 + 2*2 + 2*1},
	} {
		if got := Evaluate(buildings, tc.stops).Floors; got != tc.floors {
			t.Errorf("%v: floors %d, want %d", tc.stops, got, tc.floors)
		}
	}
}
