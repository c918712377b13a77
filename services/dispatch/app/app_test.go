package app_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestBadInputNamesTheField(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	building := func(edit func(b *dispatchv1.Building)) *dispatchv1.UpsertBuildingRequest {
		b := &dispatchv1.Building{Compound: "haixin", Building: "3", Units: []string{"1", "2"}, Floors: 6, DistanceM: 100}
		edit(b)
		return &dispatchv1.UpsertBuildingRequest{RequestId: "r1", Building: b}
	}
	courier := func(edit func(c *dispatchv1.Courier)) *dispatchv1.UpsertCourierRequest {
		c := &dispatchv1.Courier{CourierId: "haixin-courier-01", Compound: "haixin", Name: "Lao Wang", MaxParcels: 10, MaxGrams: 20000}
		edit(c)
		return &dispatchv1.UpsertCourierRequest{RequestId: "r2", Courier: c}
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"building request id", func() error {
			r := building(func(*dispatchv1.Building) {})
			r.RequestId = ""
			_, err := h.client.UpsertBuilding(h.ctx, r)
			return err
		}, "request_id"},
		{"building missing", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, &dispatchv1.UpsertBuildingRequest{RequestId: "r"})
			return err
		}, "building"},
		{"building compound", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Compound = "Hai Xin" }))
			return err
		}, "building.compound"},
		{"building name", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Building = "" }))
			return err
		}, "building.building"},
		{"building name with a dash", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Building = "3-1" }))
			return err
		}, "building.building"},
		{"no units", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Units = nil }))
			return err
		}, "building.units"},
		{"duplicate unit", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Units = []string{"1", "1"} }))
			return err
		}, "building.units[1]"},
		{"empty unit", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Units = []string{""} }))
			return err
		}, "building.units[0]"},
		{"no floors", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Floors = 0 }))
			return err
		}, "building.floors"},
		{"too many floors", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.Floors = 61 }))
			return err
		}, "building.floors"},
		{"negative distance", func() error {
			_, err := h.client.UpsertBuilding(h.ctx, building(func(b *dispatchv1.Building) { b.DistanceM = -1 }))
			return err
		}, "building.distance_m"},
		{"list buildings compound", func() error {
			_, err := h.client.ListBuildings(h.ctx, &dispatchv1.ListBuildingsRequest{})
			return err
		}, "compound"},
		{"courier request id", func() error {
			r := courier(func(*dispatchv1.Courier) {})
			r.RequestId = ""
			_, err := h.client.UpsertCourier(h.ctx, r)
			return err
		}, "request_id"},
		{"courier missing", func() error {
			_, err := h.client.UpsertCourier(h.ctx, &dispatchv1.UpsertCourierRequest{RequestId: "r"})
			return err
		}, "courier"},
		{"courier id", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.CourierId = "" }))
			return err
		}, "courier.courier_id"},
		{"courier compound", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.Compound = "" }))
			return err
		}, "courier.compound"},
		{"courier name", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.Name = " " }))
			return err
		}, "courier.name"},
		{"courier building", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.Buildings = []string{"1", ""} }))
			return err
		}, "courier.buildings[1]"},
		{"courier max parcels", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.MaxParcels = 0 }))
			return err
		}, "courier.max_parcels"},
		{"courier max grams", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.MaxGrams = -5 }))
			return err
		}, "courier.max_grams"},
		{"list couriers compound", func() error {
			_, err := h.client.ListCouriers(h.ctx, &dispatchv1.ListCouriersRequest{Compound: "a.b"})
			return err
		}, "compound"},
		{"rounds compound", func() error {
			_, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{})
			return err
		}, "compound"},
		{"rounds date", func() error {
			_, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin", Date: "2026-13-01"})
			return err
		}, "date"},
		{"check-in request id", func() error {
			_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{Compound: "haixin", ParcelIds: []string{"p"}})
			return err
		}, "request_id"},
		{"check-in compound", func() error {
			_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "r", ParcelIds: []string{"p"}})
			return err
		}, "compound"},
		{"check-in nothing", func() error {
			_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "r", Compound: "haixin"})
			return err
		}, "parcel_ids"},
		{"check-in blank parcel", func() error {
			_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "r", Compound: "haixin", ParcelIds: []string{"p", ""}})
			return err
		}, "parcel_ids[1]"},
		{"check-in same parcel twice", func() error {
			_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "r", Compound: "haixin", ParcelIds: []string{"p", "q", "p"}})
			return err
		}, "parcel_ids[2]"},
		{"plan request id", func() error {
			_, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RoundId: "haixin-2026-03-02-am"})
			return err
		}, "request_id"},
		{"plan round id", func() error {
			_, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "r", RoundId: "haixin-tomorrow-am"})
			return err
		}, "round_id"},
		{"plan round slot", func() error {
			_, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "r", RoundId: "haixin-2026-03-02-Noon"})
			return err
		}, "round_id"},
		{"routes round id", func() error {
			_, err := h.client.ListRoutes(h.ctx, &dispatchv1.ListRoutesRequest{})
			return err
		}, "round_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			wantCode(t, err, codes.InvalidArgument)
			if v := grpcx.FieldViolations(err); v[tc.field] == "" {
				t.Fatalf("violations %v do not name %s", v, tc.field)
			}
		})
	}
	// Nothing was written by any of them.
	bs, err := h.client.ListBuildings(h.ctx, &dispatchv1.ListBuildingsRequest{Compound: "haixin"})
	if err != nil || len(bs.GetBuildings()) != 0 {
		t.Fatalf("buildings after bad input: %v, %v", bs.GetBuildings(), err)
	}
}

func TestSitePlanAndCouriers(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	bs, err := h.client.ListBuildings(h.ctx, &dispatchv1.ListBuildingsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bs.GetBuildings() {
		names = append(names, b.GetBuilding())
	}
	if !slices.Equal(names, []string{"1", "11", "2"}) {
		t.Fatalf("buildings %v", names)
	}
	if b := bs.GetBuildings()[0]; !slices.Equal(b.GetUnits(), []string{"1", "2"}) || b.GetFloors() != 6 || b.GetDistanceM() != 80 {
		t.Fatalf("building 1 = %v", b)
	}

	// An update replaces the building; a retry of the first request returns the first answer.
	upd := &dispatchv1.Building{Compound: "haixin", Building: "2", Units: []string{"2", "1"}, Floors: 7, DistanceM: 130}
	if _, err := h.client.UpsertBuilding(h.ctx, &dispatchv1.UpsertBuildingRequest{RequestId: "b-2-v2", Building: upd}); err != nil {
		t.Fatal(err)
	}
	first := &dispatchv1.Building{Compound: "haixin", Building: "2", Units: []string{"1"}, Floors: 6, DistanceM: 120}
	again, err := h.client.UpsertBuilding(h.ctx, &dispatchv1.UpsertBuildingRequest{RequestId: "b-2", Building: first})
	if err != nil || !proto.Equal(again.GetBuilding(), first) {
		t.Fatalf("retry = %v, %v; want the first answer", again.GetBuilding(), err)
	}
	_, err = h.client.UpsertBuilding(h.ctx, &dispatchv1.UpsertBuildingRequest{RequestId: "b-2", Building: upd})
	wantCode(t, err, codes.AlreadyExists)
	bs, _ = h.client.ListBuildings(h.ctx, &dispatchv1.ListBuildingsRequest{Compound: "haixin"})
	if b := bs.GetBuildings()[2]; !proto.Equal(b, upd) {
		t.Fatalf("building 2 = %v, want %v", b, upd)
	}

	cs, err := h.client.ListCouriers(h.ctx, &dispatchv1.ListCouriersRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.GetCouriers()) != 3 {
		t.Fatalf("couriers %v", cs.GetCouriers())
	}
	if c := cs.GetCouriers()[0]; c.GetCourierId() != "haixin-courier-01" || !slices.Equal(c.GetBuildings(), []string{"1"}) ||
		c.GetMaxParcels() != 4 || c.GetMaxGrams() != 20000 || !c.GetOnDuty() || c.GetName() != "Lao Wang" {
		t.Fatalf("courier 01 = %v", c)
	}
	if c := cs.GetCouriers()[1]; len(c.GetBuildings()) != 0 {
		t.Fatalf("courier 02 serves %v, want anywhere", c.GetBuildings())
	}
	// Other compounds have nothing of haixin's (asked by city-wide staff: haixin's dispatcher may
	// not look at yuyuan).
	other, err := h.client.ListCouriers(h.as(typesv1.Role_ROLE_WORKER, "worker-chen"), &dispatchv1.ListCouriersRequest{Compound: "yuyuan"})
	if err != nil || len(other.GetCouriers()) != 0 {
		t.Fatalf("yuyuan couriers = %v, %v", other.GetCouriers(), err)
	}
}

func TestListRoundsOpensTheDayOnce(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id     string
		slot   string
		cutoff time.Time
	}{
		{"haixin-2026-03-02-am", "am", at("2026-03-02", "09:00")},
		{"haixin-2026-03-02-pm", "pm", at("2026-03-02", "15:00")},
	}
	if len(resp.GetRounds()) != len(want) {
		t.Fatalf("rounds %v", resp.GetRounds())
	}
	for i, w := range want {
		r := resp.GetRounds()[i]
		if r.GetRoundId() != w.id || r.GetSlot() != w.slot || !r.GetCutoff().AsTime().Equal(w.cutoff) ||
			r.GetState() != dispatchv1.RoundState_ROUND_STATE_OPEN || r.GetDate() != "2026-03-02" || r.GetCompound() != "haixin" {
			t.Fatalf("round %d = %v, want %s cutoff %s", i, r, w.id, w.cutoff)
		}
	}
	// Another day on request.
	resp, err = h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin", Date: "2026-03-05"})
	if err != nil || len(resp.GetRounds()) != 2 || resp.GetRounds()[1].GetRoundId() != "haixin-2026-03-05-pm" {
		t.Fatalf("rounds of 2026-03-05 = %v, %v", resp.GetRounds(), err)
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM rounds`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d rounds stored (%v), want 4", n, err)
	}
}

func TestCheckInJudgesEachParcel(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	p1 := h.orders.ready("1", "1", 3, priority())
	p2 := h.orders.ready("1", "1", 3) // same household as p1
	confirmed := h.orders.ready("2", "1", 2, state(typesv1.ParcelState_PARCEL_STATE_CONFIRMED))
	elsewhere := h.orders.ready("1", "2", 1)
	h.orders.edit(func() { elsewhere.Address.Compound = "yuyuan" })
	unknown := &orderv1.Parcel{ParcelId: "0190c5a4-0000-7000-8000-000000000000"}

	res := h.checkIn(t, "in-1", p1, confirmed, p2, elsewhere, unknown)
	want := []*dispatchv1.CheckInResult{
		{ParcelId: p1.GetParcelId(), CheckedIn: true, RoundId: "haixin-2026-03-02-am"},
		{ParcelId: confirmed.GetParcelId(), Error: "parcel is CONFIRMED, not READY"},
		{ParcelId: p2.GetParcelId(), CheckedIn: true, RoundId: "haixin-2026-03-02-am"},
		{ParcelId: elsewhere.GetParcelId(), Error: "parcel belongs to compound yuyuan, not haixin"},
		{ParcelId: unknown.GetParcelId(), Error: "parcel not found"},
	}
	for i := range want {
		if !proto.Equal(res[i], want[i]) {
			t.Errorf("result %d = %v, want %v", i, res[i], want[i])
		}
	}

	got := h.waitEvents(t, "doorstep.haixin.parcel.at_gate", 2)
	for i, p := range []*orderv1.Parcel{p1, p2} {
		ev := got[i].event
		psc := ev.GetParcelStateChanged()
		if got[i].msgID != ev.GetEventId() || ev.GetOrderId() != p.GetOrderId() || ev.GetCompound() != "haixin" ||
			psc.GetParcelId() != p.GetParcelId() || psc.GetState() != typesv1.ParcelState_PARCEL_STATE_AT_GATE ||
			psc.GetRoundId() != "haixin-2026-03-02-am" || psc.GetHouseholdId() != p.GetHouseholdId() ||
			ev.GetActor().GetRole() != typesv1.Role_ROLE_DISPATCHER || ev.GetActor().GetId() != dispatcherID ||
			!ev.GetOccurredAt().AsTime().Equal(h.clock.Now()) {
			t.Errorf("event %d = %v (msg id %s), want at_gate of %s", i, ev, got[i].msgID, p.GetParcelId())
		}
	}

	// The order service was asked by dispatch itself, for the dispatcher checking in.
	if c := h.orders.lastCaller(); c.Role != typesv1.Role_ROLE_SYSTEM || c.Subject != "dispatch" || c.OnBehalfOf == nil ||
		c.OnBehalfOf.Role != typesv1.Role_ROLE_DISPATCHER || c.OnBehalfOf.Subject != dispatcherID || c.OnBehalfOf.Compound != "haixin" {
		t.Errorf("GetParcel called by %+v, want SYSTEM dispatch for dispatcher %s of haixin", c, dispatcherID)
	}

	// A retry of the same request gets the same answer without asking the order service again.
	calls := h.orders.callCount()
	again := h.checkIn(t, "in-1", p1, confirmed, p2, elsewhere, unknown)
	for i := range want {
		if !proto.Equal(again[i], want[i]) {
			t.Errorf("retried result %d = %v, want %v", i, again[i], want[i])
		}
	}
	if h.orders.callCount() != calls {
		t.Errorf("retry asked the order service again")
	}
	// The same id for a different batch is refused.
	_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "in-1", Compound: "haixin",
		ParcelIds: []string{p1.GetParcelId()}})
	wantCode(t, err, codes.AlreadyExists)

	// Checking in a parcel again under a new request is idempotent: same round, no new event; the
	// parcel that was not ready goes in once it is.
	h.clock.Set(at("2026-03-02", "10:00"))
	h.orders.edit(func() { confirmed.State = typesv1.ParcelState_PARCEL_STATE_READY })
	res = h.checkIn(t, "in-2", p1, confirmed)
	if !res[0].GetCheckedIn() || res[0].GetRoundId() != "haixin-2026-03-02-am" || res[1].GetRoundId() != "haixin-2026-03-02-pm" {
		t.Fatalf("second check-in = %v", res)
	}
	h.waitEvents(t, "doorstep.haixin.parcel.at_gate", 3)

	rounds, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	if am, pm := rounds.GetRounds()[0], rounds.GetRounds()[1]; am.GetParcels() != 2 || pm.GetParcels() != 1 {
		t.Fatalf("round parcels am %d pm %d, want 2 and 1", am.GetParcels(), pm.GetParcels())
	}
}

func TestCheckInFailsWholeWhenOrderServiceIsDown(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	p := h.orders.ready("1", "1", 1)
	h.orders.edit(func() { h.orders.down = true })
	_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "in", Compound: "haixin",
		ParcelIds: []string{p.GetParcelId()}})
	wantCode(t, err, codes.Unavailable)
	// Nothing was stored under the request id: the retry works once the order service is back.
	h.orders.edit(func() { h.orders.down = false })
	if res := h.checkIn(t, "in", p); !res[0].GetCheckedIn() {
		t.Fatalf("retry = %v", res)
	}
}

func TestCheckInRollsOverAtCutoffs(t *testing.T) {
	h := start(t, at("2026-03-02", "06:00"))
	tests := []struct {
		now   time.Time
		round string
	}{
		{at("2026-03-02", "08:59"), "haixin-2026-03-02-am"},
		{at("2026-03-02", "09:00"), "haixin-2026-03-02-pm"}, // at the cutoff is too late
		{at("2026-03-02", "14:59"), "haixin-2026-03-02-pm"},
		{at("2026-03-02", "15:00"), "haixin-2026-03-03-am"},
		{at("2026-03-02", "23:30"), "haixin-2026-03-03-am"},
		{at("2026-03-03", "00:10"), "haixin-2026-03-03-am"}, // after midnight Shanghai, still before the am cutoff
	}
	for i, tc := range tests {
		h.clock.Set(tc.now)
		res := h.checkIn(t, fmt.Sprint("roll-", i), h.orders.ready("1", "1", 1+i))
		if res[0].GetRoundId() != tc.round {
			t.Errorf("at %s: round %q (%s), want %s", tc.now, res[0].GetRoundId(), res[0].GetError(), tc.round)
		}
	}

	// A round planned before its cutoff takes no more parcels: they join the next one.
	h.clock.Set(at("2026-03-04", "07:00"))
	if _, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-early", RoundId: "haixin-2026-03-04-am"}); err != nil {
		t.Fatal(err)
	}
	res := h.checkIn(t, "late", h.orders.ready("1", "1", 6))
	if res[0].GetRoundId() != "haixin-2026-03-04-pm" {
		t.Fatalf("after the am round was planned: round %s, want the pm round", res[0].GetRoundId())
	}
}

func TestConcurrentCheckInsOfOneParcel(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	p := h.orders.ready("1", "1", 2)
	var wg sync.WaitGroup
	results := make([]*dispatchv1.CheckInResult, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: fmt.Sprint("race-", i),
				Compound: "haixin", ParcelIds: []string{p.GetParcelId()}})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = resp.GetResults()[0]
		}()
	}
	wg.Wait()
	for _, r := range results {
		if !r.GetCheckedIn() || r.GetRoundId() != "haixin-2026-03-02-am" {
			t.Fatalf("result %v", r)
		}
	}
	h.waitEvents(t, "doorstep.haixin.parcel.at_gate", 1)
}

func TestPlanRoundPublishesRoutes(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	parcels := []*orderv1.Parcel{
		h.orders.ready("1", "1", 5),
		h.orders.ready("1", "1", 2),
		h.orders.ready("1", "2", 6, priority()),
		h.orders.ready("2", "1", 4, contactless(), priority()),
		h.orders.ready("11", "1", 15, grams(8000)),
		h.orders.ready("11", "1", 3),
	}
	twin := h.orders.ready("1", "1", 2) // the same household as parcels[1]
	parcels = append(parcels, twin)
	h.checkIn(t, "in", parcels...)
	h.waitEvents(t, "doorstep.haixin.parcel.at_gate", len(parcels))

	plan, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-1", RoundId: "haixin-2026-03-02-am"})
	if err != nil {
		t.Fatal(err)
	}
	if plan.GetRound().GetState() != dispatchv1.RoundState_ROUND_STATE_PLANNED || plan.GetRound().GetParcels() != int32(len(parcels)) {
		t.Fatalf("round = %v", plan.GetRound())
	}
	if c, lb := plan.GetCost(), plan.GetLowerBound(); c.GetTrips() < lb.GetTrips() || c.GetMetres() < lb.GetMetres() ||
		c.GetFloors() < lb.GetFloors() || lb.GetMetres() == 0 || lb.GetTrips() == 0 {
		t.Fatalf("cost %v, lower bound %v", c, lb)
	}

	// Every parcel is on exactly one stop, couriers keep to their buildings, off-duty couriers rest.
	courierOf := map[string]string{}
	routeOf := map[string]string{}
	for _, r := range plan.GetRoutes() {
		if r.GetRoundId() != "haixin-2026-03-02-am" {
			t.Fatalf("route %v", r)
		}
		for _, s := range r.GetStops() {
			if r.GetCourierId() == "haixin-courier-01" && s.GetAddress().GetBuilding() != "1" {
				t.Fatalf("courier 01 sent to building %s", s.GetAddress().GetBuilding())
			}
			if r.GetCourierId() == "haixin-courier-03" {
				t.Fatalf("off-duty courier got a route")
			}
			for _, id := range s.GetParcelIds() {
				if courierOf[id] != "" {
					t.Fatalf("parcel %s twice", id)
				}
				courierOf[id], routeOf[id] = r.GetCourierId(), r.GetRouteId()
			}
		}
	}
	if len(courierOf) != len(parcels) {
		t.Fatalf("%d parcels routed, want %d", len(courierOf), len(parcels))
	}
	for _, r := range plan.GetRoutes() {
		for i, s := range r.GetStops() {
			if slices.Contains(s.GetParcelIds(), twin.GetParcelId()) && len(s.GetParcelIds()) != 2 {
				t.Fatalf("household with two parcels got stop %v", s)
			}
			if slices.Contains(s.GetParcelIds(), parcels[3].GetParcelId()) && (!s.GetContactless() || !s.GetPriority()) {
				t.Fatalf("quarantined priority household's stop %v, want contactless, priority", s)
			}
			if s.GetPriority() && i > 0 && !r.GetStops()[i-1].GetPriority() {
				t.Fatalf("priority stop %v after a normal one", s)
			}
		}
	}

	// One parcel.assigned per parcel, with route, courier, round and order; one route.planned per route.
	orderOf := map[string]string{}
	for _, p := range parcels {
		orderOf[p.GetParcelId()] = p.GetOrderId()
	}
	assigned := h.waitEvents(t, "doorstep.haixin.parcel.assigned", len(parcels))
	for _, m := range assigned {
		psc := m.event.GetParcelStateChanged()
		id := psc.GetParcelId()
		if m.msgID != m.event.GetEventId() || m.event.GetOrderId() != orderOf[id] || psc.GetRoundId() != "haixin-2026-03-02-am" ||
			psc.GetRouteId() != routeOf[id] || psc.GetCourierId() != courierOf[id] || psc.GetState() != typesv1.ParcelState_PARCEL_STATE_ASSIGNED ||
			psc.GetHouseholdId() == "" {
			t.Fatalf("assigned event %v (msg id %s)", m.event, m.msgID)
		}
	}
	planned := h.waitEvents(t, "doorstep.haixin.route.planned", len(plan.GetRoutes()))
	for i, m := range planned {
		rp := m.event.GetRoutePlanned()
		want := plan.GetRoutes()[i]
		if m.msgID != m.event.GetEventId() || m.event.GetOrderId() != "" || rp.GetRouteId() != want.GetRouteId() ||
			rp.GetCourierId() != want.GetCourierId() || rp.GetRoundId() != want.GetRoundId() || len(rp.GetStops()) != len(want.GetStops()) {
			t.Fatalf("route.planned %v, want route %v", rp, want)
		}
		for j, s := range rp.GetStops() {
			ws := want.GetStops()[j]
			if s.GetSequence() != ws.GetSequence() || s.GetTrip() != ws.GetTrip() || s.GetHouseholdId() != ws.GetHouseholdId() ||
				!proto.Equal(s.GetAddress(), ws.GetAddress()) || len(s.GetParcels()) != len(ws.GetParcelIds()) {
				t.Fatalf("stop %v, want %v", s, ws)
			}
			for k, rpp := range s.GetParcels() {
				if rpp.GetParcelId() != ws.GetParcelIds()[k] || rpp.GetOrderId() != orderOf[rpp.GetParcelId()] {
					t.Fatalf("route parcel %v", rpp)
				}
			}
		}
	}

	// Planning again, whatever the request id, returns the stored plan and publishes nothing new.
	again, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-2", RoundId: "haixin-2026-03-02-am"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again, plan) {
		t.Fatalf("replanning changed the plan:\n%v\n%v", again, plan)
	}
	routes, err := h.client.ListRoutes(h.ctx, &dispatchv1.ListRoutesRequest{RoundId: "haixin-2026-03-02-am"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&dispatchv1.PlanRoundResponse{Routes: routes.GetRoutes()}, &dispatchv1.PlanRoundResponse{Routes: plan.GetRoutes()}) {
		t.Fatalf("ListRoutes differs from the plan")
	}
	_, err = h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-1", RoundId: "haixin-2026-03-02-pm"})
	wantCode(t, err, codes.AlreadyExists)
	if n, _ := h.events("doorstep.haixin.parcel.assigned"); len(n) != len(parcels) {
		t.Fatalf("%d assigned events after replanning, want %d", len(n), len(parcels))
	}
}

func TestPlanRoundRefusals(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	_, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "p0", RoundId: "haixin-2026-03-09-am"})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.ListRoutes(h.ctx, &dispatchv1.ListRoutesRequest{RoundId: "haixin-2026-03-09-am"})
	wantCode(t, err, codes.NotFound)

	h.sitePlan(t)
	h.checkIn(t, "in", h.orders.ready("1", "1", 1), h.orders.ready("7", "1", 1))
	// Building 7 is not on the site plan yet.
	_, err = h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "p1", RoundId: "haixin-2026-03-02-am"})
	wantCode(t, err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "building 7") {
		t.Fatalf("message %q does not name building 7", msg)
	}
	// On the site plan, but nobody on duty serves it.
	if _, err := h.client.UpsertCourier(h.ctx, &dispatchv1.UpsertCourierRequest{RequestId: "c2-off", Courier: &dispatchv1.Courier{
		CourierId: "haixin-courier-02", Compound: "haixin", Name: "Xiao Li", MaxParcels: 6, MaxGrams: 25000}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.UpsertBuilding(h.ctx, &dispatchv1.UpsertBuildingRequest{RequestId: "b7", Building: &dispatchv1.Building{
		Compound: "haixin", Building: "7", Units: []string{"1"}, Floors: 6, DistanceM: 400}}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "p1", RoundId: "haixin-2026-03-02-am"})
	wantCode(t, err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "no on-duty courier serves building 7") {
		t.Fatalf("message %q", msg)
	}
	rounds, _ := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
	if rounds.GetRounds()[0].GetState() != dispatchv1.RoundState_ROUND_STATE_OPEN {
		t.Fatalf("a refused plan changed the round: %v", rounds.GetRounds()[0])
	}
	// Once someone serves building 7, the same request succeeds: refusals are not remembered.
	if _, err := h.client.UpsertCourier(h.ctx, &dispatchv1.UpsertCourierRequest{RequestId: "c2-on", Courier: &dispatchv1.Courier{
		CourierId: "haixin-courier-02", Compound: "haixin", Name: "Xiao Li", MaxParcels: 6, MaxGrams: 25000, OnDuty: true}}); err != nil {
		t.Fatal(err)
	}
	plan, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "p1", RoundId: "haixin-2026-03-02-am"})
	if err != nil || len(plan.GetRoutes()) == 0 {
		t.Fatalf("plan = %v, %v", plan, err)
	}

	// An empty round is planned with no routes, and is done at once: it has nothing to deliver.
	empty, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "p2", RoundId: "haixin-2026-03-02-pm"})
	if err != nil || len(empty.GetRoutes()) != 0 || empty.GetRound().GetState() != dispatchv1.RoundState_ROUND_STATE_DONE {
		t.Fatalf("empty plan = %v, %v", empty, err)
	}
	h.waitEvents(t, "doorstep.haixin.route.planned", len(plan.GetRoutes()))
}

func TestFailedParcelJoinsTheNextRound(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	p := h.orders.ready("2", "1", 3)
	other := h.orders.ready("1", "1", 1)
	h.checkIn(t, "in", p, other)
	h.clock.Set(at("2026-03-02", "09:30"))
	plan, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-am", RoundId: "haixin-2026-03-02-am"})
	if err != nil {
		t.Fatal(err)
	}
	var routeID, courierID string
	for _, r := range plan.GetRoutes() {
		for _, s := range r.GetStops() {
			if slices.Contains(s.GetParcelIds(), p.GetParcelId()) {
				routeID, courierID = r.GetRouteId(), r.GetCourierId()
			}
		}
	}

	// The courier reports the door failed, as the courier service would publish it.
	failed := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: courierID}, p.GetOrderId(), h.clock.Now())
	failed.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
		ParcelId: p.GetParcelId(), State: typesv1.ParcelState_PARCEL_STATE_FAILED, Reason: "nobody home",
		RoundId: "haixin-2026-03-02-am", RouteId: routeID, CourierId: courierID, HouseholdId: p.GetHouseholdId()}}
	publish(t, h, failed)
	publish(t, h, failed) // a duplicate delivery changes nothing

	testkit.Eventually(t, 10*time.Second, func() error {
		var round, status, reason string
		if err := h.pool.QueryRow(h.ctx, `SELECT round_id, status, reason FROM parcels WHERE parcel_id = $1`, p.GetParcelId()).
			Scan(&round, &status, &reason); err != nil {
			return err
		}
		if round != "haixin-2026-03-02-pm" || status != "pooled" || reason != "nobody home" {
			return fmt.Errorf("parcel in %s, %s, reason %q", round, status, reason)
		}
		return nil
	})
	rounds, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	if am, pm := rounds.GetRounds()[0], rounds.GetRounds()[1]; am.GetParcels() != 2 || pm.GetParcels() != 1 {
		t.Fatalf("am has %d parcels, pm %d; want 2 and 1", am.GetParcels(), pm.GetParcels())
	}

	// The pm plan takes it again and assigns it anew.
	pm, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-pm", RoundId: "haixin-2026-03-02-pm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.GetRoutes()) != 1 || len(pm.GetRoutes()[0].GetStops()) != 1 || pm.GetRoutes()[0].GetStops()[0].GetParcelIds()[0] != p.GetParcelId() {
		t.Fatalf("pm plan = %v", pm.GetRoutes())
	}
	assigned := h.waitEvents(t, "doorstep.haixin.parcel.assigned", 3)
	last := assigned[2].event
	if last.GetParcelStateChanged().GetParcelId() != p.GetParcelId() || last.GetParcelStateChanged().GetRoundId() != "haixin-2026-03-02-pm" ||
		last.GetOrderId() != p.GetOrderId() {
		t.Fatalf("re-assignment event %v", last)
	}

	// A failure of a parcel dispatch never had cannot be retried into anything: it is dead-lettered.
	stray := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: courierID}, "", h.clock.Now())
	stray.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
		ParcelId: "0190c5a4-0000-7000-8000-00000000dead", State: typesv1.ParcelState_PARCEL_STATE_FAILED, Reason: "?"}}
	publish(t, h, stray)
	testkit.Eventually(t, 10*time.Second, func() error {
		s, err := h.js.Stream(h.ctx, events.DeadLetterStream)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(h.ctx, events.DeadLetterSubject+"doorstep.haixin.parcel.failed")
		if err != nil {
			return err
		}
		if m.Header.Get("Doorstep-Original-Msg-Id") != stray.GetEventId() || m.Header.Get("Doorstep-Consumer") != "dispatch-outcomes" {
			return fmt.Errorf("dead letter %v", m.Header)
		}
		return nil
	})
}

func publish(t *testing.T, h *harness, ev *eventsv1.Event) {
	t.Helper()
	testkit.Publish(t, h.ctx, h.js, ev, ev.GetEventId())
}

// Check-ins racing the plan of their round: each parcel ends either on the plan or in the next
// round, never stranded at the gate of a round that is already planned.
func TestCheckInRacingPlanLosesNoParcel(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	var parcels []*orderv1.Parcel
	for i := range 40 {
		parcels = append(parcels, h.orders.ready("2", "1", 1+i%6))
	}
	var wg sync.WaitGroup
	for w := range 4 { // four gates' worth of check-ins at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(parcels); i += 4 {
				if _, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: fmt.Sprint("in-", i),
					Compound: "haixin", ParcelIds: []string{parcels[i].GetParcelId()}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(1)
	var plan *dispatchv1.PlanRoundResponse
	go func() {
		defer wg.Done()
		// Plan once some parcels are in.
		testkit.Eventually(t, 10*time.Second, func() error {
			var n int
			if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM parcels`).Scan(&n); err != nil || n < 10 {
				return fmt.Errorf("%d parcels in (%v)", n, err)
			}
			return nil
		})
		var err error
		plan, err = h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan", RoundId: "haixin-2026-03-02-am"})
		if err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	planned := 0
	for _, r := range plan.GetRoutes() {
		for _, s := range r.GetStops() {
			planned += len(s.GetParcelIds())
		}
	}
	var stranded, later int
	if err := h.pool.QueryRow(h.ctx, `
		SELECT count(*) FILTER (WHERE round_id = 'haixin-2026-03-02-am' AND status = 'pooled'),
		       count(*) FILTER (WHERE round_id = 'haixin-2026-03-02-pm' AND status = 'pooled')
		FROM parcels`).Scan(&stranded, &later); err != nil {
		t.Fatal(err)
	}
	if stranded != 0 || planned+later != len(parcels) || planned == 0 {
		t.Fatalf("%d planned, %d in the next round, %d stranded; want %d in all, none stranded", planned, later, stranded, len(parcels))
	}
}

// A check-in that waits for a plan of its round in progress joins the day's next round once the
// plan commits, not a later day's.
func TestCheckInWaitingOnAPlanJoinsTheNextRound(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	if _, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"}); err != nil {
		t.Fatal(err)
	}
	// Play the planner: hold the am round as PlanRound does.
	plan, err := h.pool.Begin(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Rollback(h.ctx)
	if _, err := plan.Exec(h.ctx, `SELECT 1 FROM rounds WHERE round_id = 'haixin-2026-03-02-am' FOR NO KEY UPDATE`); err != nil {
		t.Fatal(err)
	}
	p := h.orders.ready("1", "1", 1)
	done := make(chan []*dispatchv1.CheckInResult, 1)
	go func() {
		resp, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "in", Compound: "haixin",
			ParcelIds: []string{p.GetParcelId()}})
		if err != nil {
			t.Error(err)
		}
		done <- resp.GetResults()
	}()
	testkit.Eventually(t, 10*time.Second, func() error {
		var waiting int
		err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err == nil && waiting == 0 {
			err = fmt.Errorf("check-in not waiting for the round yet")
		}
		return err
	})
	if _, err := plan.Exec(h.ctx, `UPDATE rounds SET state = 'planned' WHERE round_id = 'haixin-2026-03-02-am'`); err != nil {
		t.Fatal(err)
	}
	if err := plan.Commit(h.ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if len(res) != 1 || res[0].GetRoundId() != "haixin-2026-03-02-pm" {
		t.Fatalf("check-in = %v, want the pm round", res)
	}
}
