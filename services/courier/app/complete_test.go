package app_test

import (
	"strings"
	"testing"
	"time"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func deliveredOutcome(parcel string, m courierv1.DeliveryMethod, photo string) *courierv1.StopOutcome {
	return &courierv1.StopOutcome{ParcelId: parcel, Outcome: &courierv1.StopOutcome_Delivered{
		Delivered: &courierv1.DeliveredOutcome{Method: m, PhotoRef: photo}}}
}

func failedOutcome(parcel string, r courierv1.FailureReason, note string) *courierv1.StopOutcome {
	return &courierv1.StopOutcome{ParcelId: parcel, Outcome: &courierv1.StopOutcome_Failed{
		Failed: &courierv1.FailedOutcome{Reason: r, Note: note}}}
}

func TestCompleteStopsRecordsOrRefusesEachOutcomeOnce(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock.Add(-time.Hour),
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}))
	h.plan(planned("route-pm", "round-pm", courierA, clock, stop{"haixin-3-2-402", []string{"p4"}}))
	h.plan(planned("route-b", "round-am", courierB, clock, stop{"haixin-1-1-101", []string{"p9"}}))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}

	req := &courierv1.CompleteStopsRequest{RequestId: "floor-6", CourierId: courierA, Outcomes: []*courierv1.StopOutcome{
		deliveredOutcome("p1", courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER, "photos/p1.jpg"),
		failedOutcome("p2", courierv1.FailureReason_FAILURE_REASON_OTHER, "dog at the door"),
		deliveredOutcome("p1", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, ""), // already delivered above
		deliveredOutcome("p4", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, ""), // pm route not picked up
		deliveredOutcome("p9", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, ""), // B's parcel
		failedOutcome("p-none", courierv1.FailureReason_FAILURE_REASON_NOT_HOME, ""),      // no such parcel
		deliveredOutcome("p3", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, ""),
	}}
	resp, err := h.client.CompleteStops(h.by(courierA), req)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		parcel   string
		recorded bool
		status   courierv1.StopStatus // of the parcel returned; unspecified when none
		why      string
	}{
		{"p1", true, delivered, ""},
		{"p2", true, failed, ""},
		{"p1", false, delivered, "is DELIVERED"},
		{"p4", false, pending, "pick the route up"},
		{"p9", false, 0, "none of your routes"},
		{"p-none", false, 0, "none of your routes"},
		{"p3", true, delivered, ""},
	}
	if len(resp.GetResults()) != len(want) {
		t.Fatalf("%d results, want %d: %v", len(resp.GetResults()), len(want), resp.GetResults())
	}
	for i, w := range want {
		r := resp.GetResults()[i]
		if r.GetParcelId() != w.parcel || r.GetRecorded() != w.recorded || r.GetParcel().GetStatus() != w.status ||
			!strings.Contains(r.GetError(), w.why) || (w.recorded && r.GetError() != "") {
			t.Errorf("result %d = %v, want %+v", i, r, w)
		}
	}
	if p := resp.GetResults()[0].GetParcel(); p.GetOrderId() != "order-p1" {
		t.Errorf("parcel of result 0 = %v", p)
	}

	// B's parcel is untouched, and B never learns from A's call that it exists.
	b, err := h.client.GetRoute(h.by(courierB), &courierv1.GetRouteRequest{CourierId: courierB})
	if err != nil || statuses(b.GetRoute())["p9"] != pending {
		t.Errorf("B's route = %v, %v", b.GetRoute(), err)
	}
	if other, none := resp.GetResults()[4].GetError(), resp.GetResults()[5].GetError(); other != strings.Replace(none, "p-none", "p9", 1) {
		t.Errorf("refusals for another courier's parcel and for no parcel differ: %q vs %q", other, none)
	}

	// A retry returns the first results, even after the route moved on.
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick-pm", CourierId: courierA, RouteId: "route-pm"}); err != nil {
		t.Fatal(err)
	}
	again, err := h.client.CompleteStops(h.by(courierA), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again, resp) {
		t.Errorf("retry = %v\nwant    %v", again, resp)
	}
	changed := proto.Clone(req).(*courierv1.CompleteStopsRequest)
	changed.Outcomes = changed.Outcomes[:1]
	_, err = h.client.CompleteStops(h.by(courierA), changed)
	wantCode(t, err, codes.AlreadyExists)
	_, err = h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "floor-6", CourierId: courierA, ParcelId: "p4",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	wantCode(t, err, codes.AlreadyExists)

	// One event per recorded outcome, whatever the retries.
	pub := h.published()
	dl, fl := pub["doorstep.haixin.parcel.delivered"], pub["doorstep.haixin.parcel.failed"]
	if len(dl) != 2 || len(fl) != 1 {
		t.Fatalf("%d delivered and %d failed events, want 2 and 1", len(dl), len(fl))
	}
	households := map[string]string{"p1": "haixin-3-2-602", "p3": "haixin-3-2-502"}
	for _, s := range dl {
		p := s.ev.GetParcelStateChanged()
		checkParcelEvent(t, s, p.GetParcelId(), households[p.GetParcelId()], typesv1.ParcelState_PARCEL_STATE_DELIVERED)
		switch p.GetParcelId() {
		case "p1":
			if p.GetDeliveryMethod() != "handed_over" || p.GetPhotoRef() != "photos/p1.jpg" {
				t.Errorf("p1 delivered event = %v", p)
			}
		case "p3":
			if p.GetDeliveryMethod() != "left_at_door" || p.GetPhotoRef() != "" {
				t.Errorf("p3 delivered event = %v", p)
			}
		}
	}
	checkParcelEvent(t, fl[0], "p2", "haixin-3-2-602", typesv1.ParcelState_PARCEL_STATE_FAILED)
	if r := fl[0].ev.GetParcelStateChanged().GetReason(); r != "other: dog at the door" {
		t.Errorf("failure reason = %q", r)
	}
}

func TestCompleteStopsWithEveryOutcomeRefusedIsStillAnswered(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}))
	req := &courierv1.CompleteStopsRequest{RequestId: "early", CourierId: courierA, Outcomes: []*courierv1.StopOutcome{
		deliveredOutcome("p1", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, ""),
	}}
	resp, err := h.client.CompleteStops(h.by(courierA), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults(); len(r) != 1 || r[0].GetRecorded() || r[0].GetParcel().GetStatus() != pending {
		t.Fatalf("results = %v", r)
	}
	// Picked up now, but the retry is the same request: it keeps its first answer.
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	again, err := h.client.CompleteStops(h.by(courierA), req)
	if err != nil || !proto.Equal(again, resp) {
		t.Fatalf("retry = %v, %v; want %v", again, err, resp)
	}
	if n := len(h.published()["doorstep.haixin.parcel.delivered"]); n != 0 {
		t.Errorf("%d delivered events", n)
	}
}
