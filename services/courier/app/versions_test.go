package app_test

import (
	"testing"
	"time"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"google.golang.org/grpc/codes"
)

// version sets the route version of a route.planned event.
func version(ev *eventsv1.Event, v int32) *eventsv1.Event {
	ev.GetRoutePlanned().Version = v
	return ev
}

// stopsOf lists a route's stops as household: parcel=status.
func stopsOf(r *courierv1.CourierRoute) map[string]map[string]courierv1.StopStatus {
	out := map[string]map[string]courierv1.StopStatus{}
	for _, s := range r.GetStops() {
		if out[s.GetHouseholdId()] == nil {
			out[s.GetHouseholdId()] = map[string]courierv1.StopStatus{}
		}
		for _, p := range s.GetParcels() {
			out[s.GetHouseholdId()][p.GetParcelId()] = p.GetStatus()
		}
	}
	return out
}

func TestHigherRouteVersionReplacesTheRouteAndKeepsWhatHappened(t *testing.T) {
	h := start(t)
	h.plan(version(planned("route-1", "round-am", courierA, clock.Add(-time.Hour),
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}, stop{"haixin-3-2-402", []string{"p4"}}), 1))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "d1", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "f3", CourierId: courierA, ParcelId: "p3",
		Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME}); err != nil {
		t.Fatal(err)
	}

	// Dispatch moves 602 and 502 away (p2, out for delivery, goes to another courier) and adds 302.
	got := h.plan(version(planned("route-1", "round-am", courierA, clock,
		stop{"haixin-3-2-402", []string{"p4"}}, stop{"haixin-3-2-302", []string{"p5"}}), 2))
	want := map[string]map[string]courierv1.StopStatus{
		"haixin-3-2-402": {"p4": out},       // stays, still out
		"haixin-3-2-302": {"p5": pending},   // new
		"haixin-3-2-602": {"p1": delivered}, // history: p2 has left the list
		"haixin-3-2-502": {"p3": failed},    // history
	}
	if st := stopsOf(got); !equalStops(st, want) {
		t.Errorf("after version 2: %v, want %v", st, want)
	}
	if seq := got.GetStops(); len(seq) != 4 || seq[0].GetHouseholdId() != "haixin-3-2-402" || seq[1].GetHouseholdId() != "haixin-3-2-302" {
		t.Errorf("stops = %v, want version 2's stops first, then the history", got.GetStops())
	}
	_, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "d2", CourierId: courierA, ParcelId: "p2",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR})
	wantCode(t, err, codes.NotFound)

	// A late older version, and another plan under the same version, are ignored; once a later
	// event shows, the consumer (which takes events in order) has handled them.
	stale := version(planned("route-1", "round-am", courierA, clock.Add(time.Minute), stop{"haixin-9-9-999", []string{"p8"}}), 1)
	same := version(planned("route-1", "round-am", courierA, clock.Add(time.Minute), stop{"haixin-9-9-999", []string{"p8"}}), 2)
	h.publish(stale, stale.GetEventId())
	h.publish(same, same.GetEventId())
	h.plan(planned("route-b", "round-am", courierB, clock, stop{"haixin-1-1-101", []string{"p9"}}))
	resp, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetRoute(); r.GetVersion() != 2 || !equalStops(stopsOf(r), want) {
		t.Errorf("after stale versions: version %d, %v", r.GetVersion(), stopsOf(r))
	}

	// Withdrawn: the route has no stops; undelivered parcels leave, history stays.
	got = h.plan(version(planned("route-1", "round-am", courierA, clock), 3))
	want = map[string]map[string]courierv1.StopStatus{
		"haixin-3-2-602": {"p1": delivered},
		"haixin-3-2-502": {"p3": failed},
	}
	if st := stopsOf(got); !equalStops(st, want) {
		t.Errorf("withdrawn: %v, want %v", st, want)
	}
	for _, p := range []string{"p4", "p5"} {
		_, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "f-" + p, CourierId: courierA, ParcelId: p,
			Reason: courierv1.FailureReason_FAILURE_REASON_REFUSED})
		wantCode(t, err, codes.NotFound)
	}
	again, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick-again", CourierId: courierA, RouteId: "route-1"})
	if err != nil || again.GetRoute().GetVersion() != 3 || !equalStops(stopsOf(again.GetRoute()), want) {
		t.Errorf("pick-up of a withdrawn route = %v, %v", again.GetRoute(), err)
	}

	// Re-plans publish nothing: only the courier's own actions are events.
	pub := h.published()
	if n := len(pub["doorstep.haixin.parcel.out_for_delivery"]); n != 4 {
		t.Errorf("%d out_for_delivery events, want 4 (the first pick-up only)", n)
	}
	if n := len(pub["doorstep.haixin.parcel.delivered"]) + len(pub["doorstep.haixin.parcel.failed"]); n != 2 {
		t.Errorf("%d outcome events, want 2", n)
	}
}

func TestRouteVersionMovesAParcelToAnotherCourier(t *testing.T) {
	h := start(t)
	h.plan(version(planned("route-a", "round-am", courierA, clock.Add(-time.Hour),
		stop{"haixin-3-2-602", []string{"p1"}}, stop{"haixin-3-2-502", []string{"p2"}}), 1))
	h.plan(version(planned("route-b", "round-am", courierB, clock.Add(-time.Hour), stop{"haixin-1-1-101", []string{"p9"}}), 1))

	// The dispatcher moves 502 from A to B: both routes are re-published.
	h.plan(version(planned("route-a", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}), 2))
	h.plan(version(planned("route-b", "round-am", courierB, clock,
		stop{"haixin-1-1-101", []string{"p9"}}, stop{"haixin-3-2-502", []string{"p2"}}), 2))

	if _, err := h.client.PickUp(h.by(courierB), &courierv1.PickUpRequest{RequestId: "pick-b", CourierId: courierB, RouteId: "route-b"}); err != nil {
		t.Fatal(err)
	}
	d, err := h.client.MarkDelivered(h.by(courierB), &courierv1.MarkDeliveredRequest{RequestId: "b-d2", CourierId: courierB, ParcelId: "p2",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	if err != nil || d.GetParcel().GetStatus() != delivered {
		t.Fatalf("B delivers the moved parcel: %v, %v", d.GetParcel(), err)
	}
	_, err = h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "a-d2", CourierId: courierA, ParcelId: "p2",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	wantCode(t, err, codes.NotFound)
	ev := h.published()["doorstep.haixin.parcel.delivered"]
	if len(ev) != 1 || ev[0].ev.GetParcelStateChanged().GetRouteId() != "route-b" || ev[0].ev.GetActor().GetId() != courierB {
		t.Errorf("delivered events = %v", ev)
	}
}

func equalStops(a, b map[string]map[string]courierv1.StopStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for h, ps := range a {
		if len(ps) != len(b[h]) {
			return false
		}
		for p, st := range ps {
			if b[h][p] != st {
				return false
			}
		}
	}
	return true
}
