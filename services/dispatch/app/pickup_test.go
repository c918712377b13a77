package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// pickUp publishes what the courier service does when a courier picks up their route at the
// gate: parcel.out_for_delivery for each of its parcels, naming round, route and courier. It
// waits until dispatch has applied them and returns the parcel ids.
func (h *harness) pickUp(t *testing.T, r *dispatchv1.Route) []string {
	t.Helper()
	var ids, evs []string
	for _, s := range r.GetStops() {
		for _, id := range s.GetParcelIds() {
			ids = append(ids, id)
			evs = append(evs, h.outForDelivery(t, id, r.GetRoundId(), r.GetRouteId(), r.GetCourierId()).GetEventId())
		}
	}
	h.applied(t, evs...)
	return ids
}

func (h *harness) outForDelivery(t *testing.T, parcelID, roundID, routeID, courierID string) *eventsv1.Event {
	t.Helper()
	p := h.orders.parcels[parcelID]
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: courierID}, p.GetOrderId(), h.clock.Now())
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
		ParcelId: parcelID, State: typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, RoundId: roundID, RouteId: routeID,
		CourierId: courierID, HouseholdId: p.GetHouseholdId()}}
	publish(t, h, ev)
	return ev
}

// applied waits until the outcomes consumer has applied (or set aside) every event named.
func (h *harness) applied(t *testing.T, eventIDs ...string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		var n int
		if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM inbox WHERE event_id = ANY($1)`, eventIDs).Scan(&n); err != nil {
			return err
		}
		if n != len(eventIDs) {
			return fmt.Errorf("%d of %d events applied", n, len(eventIDs))
		}
		return nil
	})
}

func (h *harness) pickedUp(t *testing.T, id string) bool {
	t.Helper()
	var picked bool
	if err := h.pool.QueryRow(h.ctx, `SELECT picked_up FROM parcels WHERE parcel_id = $1`, id).Scan(&picked); err != nil {
		t.Fatal(err)
	}
	return picked
}

// Parcels a courier has picked up are out for delivery, and the order service's parcel cannot go
// back to ASSIGNED: overrides leave them with their courier, and never publish parcel.assigned
// for them again.
func TestPickedUpStopsStayWithTheirCourier(t *testing.T) {
	o := startOverrides(t)
	const c01, c02, c03 = "haixin-courier-01", "haixin-courier-02", "haixin-courier-03"
	// Building 1 is shared; the dispatcher puts b1a with courier 01 before courier 02 sets out.
	if _, err := o.client.MoveStop(o.ctx, &dispatchv1.MoveStopRequest{RequestId: "b1a-to-01", RoundId: am,
		HouseholdId: o.b1a.GetHouseholdId(), ToCourierId: c01}); err != nil {
		t.Fatal(err)
	}
	before := o.routes(t, am)
	route02 := before[c02]
	out := o.pickUp(t, route02)
	var households []string
	for _, s := range route02.GetStops() {
		households = append(households, s.GetHouseholdId())
	}
	if len(households) < 2 || slices.Contains(out, o.b1a.GetParcelId()) {
		t.Fatalf("courier 02 carries %v, want two stops or more without b1a", households)
	}
	for _, id := range out {
		if !o.pickedUp(t, id) {
			t.Fatalf("parcel %s not recorded as picked up", id)
		}
	}
	// One parcel.assigned per parcel from the plan, and one more if the move took b1a to another courier.
	assignedBefore := 5
	if r, _ := stopOf(routesOf(o.plan.GetRoutes()), o.b1a.GetParcelId()); r.GetCourierId() != c01 {
		assignedBefore++
	}
	o.waitEvents(t, "doorstep.haixin.parcel.assigned", assignedBefore)

	// Moving a picked-up stop is refused, naming it; nothing changes.
	_, err := o.client.MoveStop(o.ctx, &dispatchv1.MoveStopRequest{RequestId: "move-out", RoundId: am,
		HouseholdId: households[0], ToCourierId: c01})
	wantCode(t, err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "household "+households[0]) ||
		!strings.Contains(msg, "out for delivery") || !strings.Contains(msg, c02) {
		t.Fatalf("message %q does not name the stop and its courier", msg)
	}
	if now := o.routes(t, am); now[c02].GetVersion() != route02.GetVersion() || now[c01].GetVersion() != before[c01].GetVersion() {
		t.Fatalf("a refused move changed routes")
	}

	// A report of a pick-up from a route the parcel is no longer on changes nothing: b1a moves to
	// courier 02 after courier 01 had it, and a stale report from courier 01's route comes late.
	if _, err := o.client.MoveStop(o.ctx, &dispatchv1.MoveStopRequest{RequestId: "b1a-to-02", RoundId: am,
		HouseholdId: o.b1a.GetHouseholdId(), ToCourierId: c02}); err != nil {
		t.Fatal(err)
	}
	stale := o.outForDelivery(t, o.b1a.GetParcelId(), am, before[c01].GetRouteId(), c01)
	o.applied(t, stale.GetEventId())
	if o.pickedUp(t, o.b1a.GetParcelId()) {
		t.Fatalf("a pick-up from a route b1a is not on was recorded")
	}

	// Courier 02 is sick: only b1a, not picked up yet, goes to courier 03; the stops they picked
	// up stay with them, and the answer says how many.
	o.duty(t, am, c03, true)
	// Courier 02 is given building 1 only from now on, and courier 03 is on duty to serve the
	// rest: a re-plan would hand buildings 2 and 11 to courier 03, but courier 02 keeps what they
	// carry.
	if _, err := o.client.UpsertCourier(o.ctx, &dispatchv1.UpsertCourierRequest{RequestId: "c02-building-1", Courier: &dispatchv1.Courier{
		CourierId: c02, Compound: "haixin", Name: "Xiao Li", Buildings: []string{"1"}, MaxParcels: 6, MaxGrams: 25000, OnDuty: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.client.ReplanRound(o.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "replan-on-duty", RoundId: am}); err != nil {
		t.Fatal(err)
	}
	for _, id := range out {
		if r, _ := stopOf(o.routes(t, am), id); r.GetCourierId() != c02 {
			t.Fatalf("re-plan gave picked-up parcel %s to %v", id, r)
		}
	}
	resp, err := o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "sick", RoundId: am,
		FromCourierId: c02, ToCourierId: c03, Reason: "sick"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetStopsKept(); int(got) != len(households) {
		t.Fatalf("stops kept = %d, want %d", got, len(households))
	}
	after := o.routes(t, am)
	if r, _ := stopOf(after, o.b1a.GetParcelId()); r.GetCourierId() != c03 {
		t.Fatalf("b1a with %s, want courier 03", r.GetCourierId())
	}
	for _, id := range out {
		if r, _ := stopOf(after, id); r.GetCourierId() != c02 || r.GetRouteId() != route02.GetRouteId() {
			t.Fatalf("picked-up parcel %s now on %v", id, r)
		}
	}
	if len(resp.GetRoutes()) != 2 {
		t.Fatalf("changed routes %v, want courier 02's (without b1a) and 03's", resp.GetRoutes())
	}
	// Courier 02's route keeps every stop they picked up.
	if r := after[c02]; len(r.GetStops()) != len(households) {
		t.Fatalf("courier 02's route %v, want their %d picked-up stops", r, len(households))
	}

	// Nothing else of theirs is left to move: a second reassignment moves nothing and says so.
	none, err := o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "sick-again", RoundId: am,
		FromCourierId: c02})
	if err != nil || len(none.GetRoutes()) != 0 || int(none.GetStopsKept()) != len(households) {
		t.Fatalf("reassigning again = %v, %v", none, err)
	}

	// Re-planning with courier 02 off duty keeps their picked-up stops with them; the others are
	// planned over couriers 01 and 03.
	replan, err := o.client.ReplanRound(o.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "replan", RoundId: am})
	if err != nil {
		t.Fatal(err)
	}
	final := o.routes(t, am)
	for _, id := range out {
		if r, _ := stopOf(final, id); r.GetCourierId() != c02 {
			t.Fatalf("re-plan gave picked-up parcel %s to %v", id, r)
		}
	}
	if c, lb := replan.GetCost(), replan.GetLowerBound(); c.GetMetres() < lb.GetMetres() || c.GetTrips() < lb.GetTrips() {
		t.Fatalf("cost %v below its lower bound %v", c, lb)
	}

	// The only parcel.assigned since the pick-up is b1a's two moves; none for a picked-up parcel.
	testkit.Eventually(t, 10*time.Second, func() error {
		got, err := o.events("doorstep.haixin.parcel.assigned")
		if err != nil {
			return err
		}
		if len(got) < assignedBefore+2 {
			return fmt.Errorf("%d assigned events, want at least %d", len(got), assignedBefore+2)
		}
		for _, m := range got[assignedBefore:] {
			if id := m.event.GetParcelStateChanged().GetParcelId(); slices.Contains(out, id) {
				return fmt.Errorf("picked-up parcel %s assigned again: %v", id, m.event)
			}
		}
		return nil
	})

	// A picked-up parcel that fails at the door is back at the gate for the next round, no
	// longer anyone's: that round's plan takes it afresh.
	o.outcome(t, o.orders.parcels[out[0]], typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home")
	testkit.Eventually(t, 10*time.Second, func() error {
		if round, status, courier, _ := o.parcelRow(t, out[0]); round != "haixin-2026-03-02-pm" || status != "pooled" || courier != "" {
			return fmt.Errorf("failed parcel in %s, %s, with %q", round, status, courier)
		}
		return nil
	})
	if o.pickedUp(t, out[0]) {
		t.Fatalf("failed parcel still recorded as picked up")
	}
	// A pick-up reported for the round it failed in, arriving late, changes nothing.
	late := o.outForDelivery(t, out[0], am, route02.GetRouteId(), c02)
	o.applied(t, late.GetEventId())
	if o.pickedUp(t, out[0]) {
		t.Fatalf("a late pick-up of the round before was recorded")
	}
}

// routesOf indexes routes by courier id.
func routesOf(routes []*dispatchv1.Route) map[string]*dispatchv1.Route {
	out := map[string]*dispatchv1.Route{}
	for _, r := range routes {
		out[r.GetCourierId()] = r
	}
	return out
}
