package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

const am = "haixin-2026-03-02-am"

// overrideRound is the site plan with five households checked in and the am round planned after
// its cutoff: buildings 2 and 11 are only courier 02's; building 1 is shared with courier 01.
type overrideRound struct {
	*harness
	b1a, b1b, b2a, b2b, b11 *orderv1.Parcel
	plan                    *dispatchv1.PlanRoundResponse
}

func startOverrides(t *testing.T) overrideRound {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	o := overrideRound{harness: h, b1a: h.orders.ready("1", "1", 2), b1b: h.orders.ready("1", "2", 5),
		b2a: h.orders.ready("2", "1", 1), b2b: h.orders.ready("2", "1", 3), b11: h.orders.ready("11", "1", 15)}
	h.checkIn(t, "in", o.b1a, o.b1b, o.b2a, o.b2b, o.b11)
	h.clock.Set(at("2026-03-02", "09:10"))
	o.plan = h.plan(t, "plan", am)
	return o
}

// overrideEvents are the events published since the plan: route.planned and parcel.assigned.
func (o overrideRound) since(t *testing.T, subject string, n int) []published {
	t.Helper()
	before := 0
	for _, r := range o.plan.GetRoutes() {
		if strings.HasSuffix(subject, "route.planned") {
			before++
		} else {
			for _, s := range r.GetStops() {
				before += len(s.GetParcelIds())
			}
		}
	}
	return o.waitEvents(t, subject, before+n)[before:]
}

func checkEnvelope(t *testing.T, m published, subject string) {
	t.Helper()
	if m.subject != subject || m.msgID == "" || m.msgID != m.event.GetEventId() || m.event.GetCompound() != "haixin" ||
		m.event.GetActor().GetRole() != typesv1.Role_ROLE_DISPATCHER || m.event.GetActor().GetId() != dispatcherID {
		t.Fatalf("envelope on %s (msg id %s): %v, want %s with the event id as Nats-Msg-Id", m.subject, m.msgID, m.event, subject)
	}
}

func TestMoveStop(t *testing.T) {
	o := startOverrides(t)
	const c02, c03 = "haixin-courier-02", "haixin-courier-03"
	before := o.routes(t, am)
	from, stop := stopOf(before, o.b2a.GetParcelId())
	if from.GetCourierId() != c02 || from.GetVersion() != 1 {
		t.Fatalf("building 2 planned on %v", from)
	}
	move := &dispatchv1.MoveStopRequest{RequestId: "move-1", RoundId: am, HouseholdId: stop.GetHouseholdId(), ToCourierId: c03}

	// Courier 03 is off duty on the roster until the dispatcher puts them on for this round.
	_, err := o.client.MoveStop(o.ctx, move)
	wantCode(t, err, codes.FailedPrecondition)
	o.duty(t, am, c03, true)
	resp, err := o.client.MoveStop(o.ctx, move)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetRoutes()) != 2 {
		t.Fatalf("changed routes %v, want courier 02's and 03's", resp.GetRoutes())
	}
	got := map[string]*dispatchv1.Route{}
	for _, r := range resp.GetRoutes() {
		got[r.GetCourierId()] = r
	}
	if r := got[c02]; r.GetRouteId() != from.GetRouteId() || r.GetVersion() != 2 || len(r.GetStops()) != len(from.GetStops())-1 {
		t.Fatalf("courier 02's route %v, want version 2 without the stop", r)
	}
	to := got[c03]
	if to.GetVersion() != 1 || len(to.GetStops()) != 1 || !to.GetStops()[0].GetPinned() ||
		!slices.Equal(to.GetStops()[0].GetParcelIds(), []string{o.b2a.GetParcelId()}) || to.GetStops()[0].GetSequence() != 1 {
		t.Fatalf("courier 03's route %v, want version 1 with the pinned stop", to)
	}
	if now := o.routes(t, am); !proto.Equal(now[c02], got[c02]) || !proto.Equal(now[c03], to) {
		t.Fatalf("ListRoutes disagrees with the answer")
	}
	if _, _, courier, pinned := o.parcelRow(t, o.b2a.GetParcelId()); courier != c03 || !pinned {
		t.Fatalf("moved parcel with %s, pinned %v", courier, pinned)
	}

	// route.planned for both changed routes, with their versions; parcel.assigned for the moved parcel.
	planned := o.since(t, "doorstep.haixin.route.planned", 2)
	for _, m := range planned {
		checkEnvelope(t, m, "doorstep.haixin.route.planned")
		rp := m.event.GetRoutePlanned()
		want := got[rp.GetCourierId()]
		if want == nil || rp.GetRouteId() != want.GetRouteId() || rp.GetVersion() != want.GetVersion() ||
			len(rp.GetStops()) != len(want.GetStops()) || m.event.GetOrderId() != "" {
			t.Fatalf("route.planned %v, want %v", rp, want)
		}
	}
	assigned := o.since(t, "doorstep.haixin.parcel.assigned", 1)
	checkEnvelope(t, assigned[0], "doorstep.haixin.parcel.assigned")
	psc := assigned[0].event.GetParcelStateChanged()
	if psc.GetParcelId() != o.b2a.GetParcelId() || psc.GetRouteId() != to.GetRouteId() || psc.GetCourierId() != c03 ||
		psc.GetRoundId() != am || assigned[0].event.GetOrderId() != o.b2a.GetOrderId() ||
		psc.GetReason() != "moved to courier haixin-courier-03 by the dispatcher" {
		t.Fatalf("parcel.assigned %v", assigned[0].event)
	}

	// A retry answers the same and publishes nothing.
	again, err := o.client.MoveStop(o.ctx, move)
	if err != nil || !proto.Equal(again, resp) {
		t.Fatalf("retry = %v, %v", again, err)
	}

	// Moving it back empties courier 03's route: published at version 2 with no stops, to withdraw it.
	back, err := o.client.MoveStop(o.ctx, &dispatchv1.MoveStopRequest{RequestId: "move-2", RoundId: am,
		HouseholdId: stop.GetHouseholdId(), ToCourierId: c02})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range back.GetRoutes() {
		switch r.GetCourierId() {
		case c03:
			if r.GetVersion() != 2 || len(r.GetStops()) != 0 {
				t.Fatalf("emptied route %v", r)
			}
		case c02:
			if r.GetVersion() != 3 || len(r.GetStops()) != len(from.GetStops()) {
				t.Fatalf("courier 02's route %v", r)
			}
		}
	}
	planned = o.since(t, "doorstep.haixin.route.planned", 4)
	if w := planned[2:]; !slices.ContainsFunc(w, func(m published) bool {
		rp := m.event.GetRoutePlanned()
		return rp.GetCourierId() == c03 && rp.GetVersion() == 2 && len(rp.GetStops()) == 0
	}) {
		t.Fatalf("no withdrawal of courier 03's route among %v", w)
	}
	if _, listed := o.routes(t, am)[c03]; listed {
		t.Fatalf("withdrawn route still listed")
	}
	o.since(t, "doorstep.haixin.parcel.assigned", 2)

	// A delivered stop no longer moves.
	o.outcome(t, o.b2b, typesv1.ParcelState_PARCEL_STATE_DELIVERED, "")
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, status, _, _ := o.parcelRow(t, o.b2b.GetParcelId()); status != "delivered" {
			return fmt.Errorf("parcel %s", status)
		}
		return nil
	})
	_, err = o.client.MoveStop(o.ctx, &dispatchv1.MoveStopRequest{RequestId: "move-3", RoundId: am,
		HouseholdId: o.b2b.GetHouseholdId(), ToCourierId: c03})
	wantCode(t, err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "already delivered, failed or cancelled") {
		t.Fatalf("message %q", msg)
	}

	for name, tc := range map[string]struct {
		req  *dispatchv1.MoveStopRequest
		code codes.Code
	}{
		"unknown household": {&dispatchv1.MoveStopRequest{RequestId: "x1", RoundId: am, HouseholdId: "haixin-9-1-101", ToCourierId: c02}, codes.NotFound},
		"unknown courier":   {&dispatchv1.MoveStopRequest{RequestId: "x2", RoundId: am, HouseholdId: stop.GetHouseholdId(), ToCourierId: "haixin-courier-77"}, codes.NotFound},
		"round not planned": {&dispatchv1.MoveStopRequest{RequestId: "x3", RoundId: "haixin-2026-03-02-pm", HouseholdId: stop.GetHouseholdId(), ToCourierId: c02}, codes.FailedPrecondition},
		"unknown round":     {&dispatchv1.MoveStopRequest{RequestId: "x4", RoundId: "haixin-2026-04-02-am", HouseholdId: stop.GetHouseholdId(), ToCourierId: c02}, codes.NotFound},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := o.client.MoveStop(o.ctx, tc.req)
			wantCode(t, err, tc.code)
		})
	}
}

// A sick courier's stops go to the others in one action: spread over who serves each household,
// or all to one courier.
func TestReassignCourier(t *testing.T) {
	o := startOverrides(t)
	const c01, c02, c03 = "haixin-courier-01", "haixin-courier-02", "haixin-courier-03"
	o.duty(t, am, c03, true)
	before := o.routes(t, am)
	sick := before[c02]
	var theirs []string
	for _, s := range sick.GetStops() {
		theirs = append(theirs, s.GetParcelIds()...)
	}
	// One of their stops is delivered already: it stays.
	delivered := sick.GetStops()[0].GetParcelIds()[0]
	p := o.orders.parcels[delivered]
	o.outcome(t, p, typesv1.ParcelState_PARCEL_STATE_DELIVERED, "")
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, status, _, _ := o.parcelRow(t, delivered); status != "delivered" {
			return fmt.Errorf("parcel %s", status)
		}
		return nil
	})

	resp, err := o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "sick", RoundId: am,
		FromCourierId: c02, Reason: "sick"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dispatchv1.Route{}
	for _, r := range resp.GetRoutes() {
		got[r.GetCourierId()] = r
	}
	if r := got[c02]; r.GetVersion() != 2 || len(r.GetStops()) != 0 {
		t.Fatalf("sick courier's route %v, want version 2 with no stops", r)
	}
	after := o.routes(t, am)
	if _, listed := after[c02]; listed {
		t.Fatalf("sick courier still listed with a route")
	}
	moved := 0
	for _, id := range theirs {
		r, s := stopOf(after, id)
		_, status, _, _ := o.parcelRow(t, id)
		switch {
		case id == delivered:
			if status != "delivered" {
				t.Fatalf("delivered parcel %s", status)
			}
		case r == nil:
			t.Fatalf("parcel %s lost", id)
		case r.GetCourierId() == c01 && s.GetAddress().GetBuilding() != "1", s.GetPinned():
			t.Fatalf("spread stop %v on %s", s, r.GetCourierId())
		default:
			moved++
		}
	}
	if moved != len(theirs)-1 {
		t.Fatalf("%d of %d parcels moved", moved, len(theirs)-1)
	}
	// Every changed route published with its new version; each moved parcel assigned anew, saying why.
	planned := o.since(t, "doorstep.haixin.route.planned", len(resp.GetRoutes()))
	for _, m := range planned {
		checkEnvelope(t, m, "doorstep.haixin.route.planned")
		rp := m.event.GetRoutePlanned()
		if want := got[rp.GetCourierId()]; want == nil || rp.GetVersion() != want.GetVersion() || rp.GetRouteId() != want.GetRouteId() {
			t.Fatalf("route.planned %v", rp)
		}
		if before[rp.GetCourierId()] != nil && rp.GetVersion() != before[rp.GetCourierId()].GetVersion()+1 {
			t.Fatalf("route of %s at version %d after %d", rp.GetCourierId(), rp.GetVersion(), before[rp.GetCourierId()].GetVersion())
		}
	}
	for _, m := range o.since(t, "doorstep.haixin.parcel.assigned", moved) {
		checkEnvelope(t, m, "doorstep.haixin.parcel.assigned")
		psc := m.event.GetParcelStateChanged()
		r, _ := stopOf(after, psc.GetParcelId())
		if psc.GetReason() != "courier haixin-courier-02 reassigned: sick" || r == nil || psc.GetCourierId() != r.GetCourierId() ||
			psc.GetRouteId() != r.GetRouteId() {
			t.Fatalf("parcel.assigned %v", psc)
		}
	}

	// They are off duty for the round now: a re-plan leaves them out.
	replan, err := o.client.ReplanRound(o.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "replan", RoundId: am})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replan.GetRoutes() {
		if r.GetCourierId() == c02 {
			t.Fatalf("re-plan gave the sick courier %v", r)
		}
	}

	// All of courier 03's stops to courier 01, who keeps to building 1 otherwise: the dispatcher's
	// choice overrides that, and the stops are pinned.
	to, err := o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "to-01", RoundId: am,
		FromCourierId: c03, ToCourierId: c01})
	if err != nil {
		t.Fatal(err)
	}
	final := o.routes(t, am)
	if len(final) != 1 || final[c01] == nil {
		t.Fatalf("routes %v, want only courier 01's", final)
	}
	for _, s := range final[c01].GetStops() {
		if s.GetAddress().GetBuilding() != "1" && !s.GetPinned() {
			t.Fatalf("stop %v not pinned", s)
		}
	}
	if len(to.GetRoutes()) != 2 {
		t.Fatalf("changed %v", to.GetRoutes())
	}
	// A courier with nothing left changes nothing.
	none, err := o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "none", RoundId: am, FromCourierId: c03})
	if err != nil || len(none.GetRoutes()) != 0 {
		t.Fatalf("reassigning an empty courier = %v, %v", none, err)
	}
	_, err = o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "nobody", RoundId: am, FromCourierId: "haixin-courier-77"})
	wantCode(t, err, codes.NotFound)
	_, err = o.client.ReassignCourier(o.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "off", RoundId: am, FromCourierId: c01, ToCourierId: c02})
	wantCode(t, err, codes.FailedPrecondition)
}

// Re-planning keeps pinned stops with their courier while that courier is on duty.
func TestReplanRoundKeepsPinnedStops(t *testing.T) {
	o := startOverrides(t)
	const c01, c02 = "haixin-courier-01", "haixin-courier-02"
	_, err := o.client.ReplanRound(o.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "open", RoundId: "haixin-2026-03-02-pm"})
	wantCode(t, err, codes.FailedPrecondition)

	// Building 11 is courier 02's; the dispatcher moves it to courier 01 anyway.
	if _, err := o.client.MoveStop(o.ctx, &dispatchv1.MoveStopRequest{RequestId: "move", RoundId: am,
		HouseholdId: o.b11.GetHouseholdId(), ToCourierId: c01}); err != nil {
		t.Fatal(err)
	}
	before := o.routes(t, am)
	replan, err := o.client.ReplanRound(o.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "replan-1", RoundId: am})
	if err != nil {
		t.Fatal(err)
	}
	after := o.routes(t, am)
	if r, s := stopOf(after, o.b11.GetParcelId()); r.GetCourierId() != c01 || !s.GetPinned() {
		t.Fatalf("pinned stop now on %s (%v)", r.GetCourierId(), s)
	}
	if c, lb := replan.GetCost(), replan.GetLowerBound(); c.GetMetres() < lb.GetMetres() || c.GetTrips() < lb.GetTrips() || lb.GetTrips() == 0 {
		t.Fatalf("cost %v, lower bound %v", c, lb)
	}
	// Routes the re-plan did not change keep their version; changed ones moved on by one.
	for c, r := range after {
		if b := before[c]; b != nil && r.GetVersion() != b.GetVersion() && r.GetVersion() != b.GetVersion()+1 {
			t.Fatalf("route of %s went from version %d to %d", c, b.GetVersion(), r.GetVersion())
		}
	}
	if !proto.Equal(&dispatchv1.ListRoutesResponse{Routes: replan.GetRoutes()}, &dispatchv1.ListRoutesResponse{Routes: sorted(after)}) {
		t.Fatalf("re-plan answer differs from ListRoutes")
	}

	// With courier 01 off duty the pin cannot be kept: re-planning drops it and courier 02 takes
	// everything, withdrawing courier 01's route.
	o.duty(t, am, c01, false)
	if _, err := o.client.ReplanRound(o.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "replan-2", RoundId: am}); err != nil {
		t.Fatal(err)
	}
	final := o.routes(t, am)
	if len(final) != 1 || final[c02] == nil {
		t.Fatalf("routes %v, want only courier 02's", final)
	}
	if _, _, courier, pinned := o.parcelRow(t, o.b11.GetParcelId()); courier != c02 || pinned {
		t.Fatalf("parcel with %s, pinned %v", courier, pinned)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		got, err := o.events("doorstep.haixin.route.planned")
		if err != nil {
			return err
		}
		var last *published
		for i, m := range got {
			if m.event.GetRoutePlanned().GetCourierId() == c01 {
				last = &got[i]
			}
		}
		if last == nil || len(last.event.GetRoutePlanned().GetStops()) != 0 {
			return fmt.Errorf("courier 01's route not withdrawn yet")
		}
		checkEnvelope(t, *last, "doorstep.haixin.route.planned")
		return nil
	})
}

func sorted(routes map[string]*dispatchv1.Route) []*dispatchv1.Route {
	var out []*dispatchv1.Route
	for _, r := range routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *dispatchv1.Route) int { return strings.Compare(a.GetCourierId(), b.GetCourierId()) })
	return out
}

// Couriers assigned by floors get only their floors; duty for one round overrides the roster.
func TestFloorRangesAndDuty(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	low := &dispatchv1.Courier{CourierId: "haixin-courier-10", Compound: "haixin", Name: "Low", MaxParcels: 6, MaxGrams: 25000,
		OnDuty: true, Buildings: []string{"2"}, FloorRanges: []*dispatchv1.FloorRange{{Building: "11", MaxFloor: 9}}}
	high := &dispatchv1.Courier{CourierId: "haixin-courier-11", Compound: "haixin", Name: "High", MaxParcels: 6, MaxGrams: 25000,
		OnDuty: true, FloorRanges: []*dispatchv1.FloorRange{{Building: "11", MinFloor: 10}}}
	for _, c := range []*dispatchv1.Courier{low, high} {
		if _, err := h.client.UpsertCourier(h.ctx, &dispatchv1.UpsertCourierRequest{RequestId: "c-" + c.GetCourierId(), Courier: c}); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := h.client.ListCouriers(h.ctx, &dispatchv1.ListCouriersRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.GetCouriers() {
		if c.GetCourierId() == low.GetCourierId() && !proto.Equal(c, low) {
			t.Fatalf("stored %v, want %v", c, low)
		}
	}
	// Courier 02 (anywhere) is off for this round: the tower is the floor couriers' alone.
	h.duty(t, am, "haixin-courier-02", false)
	var tower []*orderv1.Parcel
	for f := 3; f <= 18; f += 3 {
		tower = append(tower, h.orders.ready("11", "1", f))
	}
	h.checkIn(t, "in", tower...)
	// Without the high floors' courier the plan names the first floor nobody serves.
	h.duty(t, am, high.GetCourierId(), false)
	_, err = h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-1", RoundId: am})
	wantCode(t, err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "no on-duty courier serves floor 12 of building 11") {
		t.Fatalf("message %q", msg)
	}
	h.duty(t, am, high.GetCourierId(), true)
	plan := h.plan(t, "plan-1", am)
	for _, r := range plan.GetRoutes() {
		for _, s := range r.GetStops() {
			f := s.GetAddress().GetFloor()
			if r.GetCourierId() == low.GetCourierId() && f > 9 || r.GetCourierId() == high.GetCourierId() && f < 10 ||
				r.GetCourierId() == "haixin-courier-02" {
				t.Fatalf("%s got floor %d", r.GetCourierId(), f)
			}
		}
	}
	if len(plan.GetRoutes()) != 2 {
		t.Fatalf("routes %v, want the two floor couriers'", plan.GetRoutes())
	}

	// Duty can be set ahead for a day nobody listed yet; its courier and round must exist.
	if _, err := h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: "ahead", RoundId: "haixin-2026-03-05-pm",
		CourierId: "haixin-courier-03", OnDuty: true}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: "who", RoundId: am, CourierId: "haixin-courier-77"})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: "when", RoundId: "haixin-2026-03-05-noon",
		CourierId: "haixin-courier-03"})
	wantCode(t, err, codes.NotFound)
}

func TestOverridesNameBadFields(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	courier := func(edit func(c *dispatchv1.Courier)) *dispatchv1.UpsertCourierRequest {
		c := &dispatchv1.Courier{CourierId: "haixin-courier-01", Compound: "haixin", Name: "Lao Wang", MaxParcels: 10, MaxGrams: 20000,
			FloorRanges: []*dispatchv1.FloorRange{{Building: "11", MinFloor: 1, MaxFloor: 9}}}
		edit(c)
		return &dispatchv1.UpsertCourierRequest{RequestId: "c", Courier: c}
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"floor range building", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.FloorRanges[0].Building = "" }))
			return err
		}, "courier.floor_ranges[0].building"},
		{"floor range min", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.FloorRanges[0].MinFloor = -1 }))
			return err
		}, "courier.floor_ranges[0].min_floor"},
		{"floor range upside down", func() error {
			_, err := h.client.UpsertCourier(h.ctx, courier(func(c *dispatchv1.Courier) { c.FloorRanges[0].MinFloor = 12 }))
			return err
		}, "courier.floor_ranges[0].max_floor"},
		{"duty request id", func() error {
			_, err := h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RoundId: am, CourierId: "c"})
			return err
		}, "request_id"},
		{"duty round", func() error {
			_, err := h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: "r", RoundId: "am", CourierId: "c"})
			return err
		}, "round_id"},
		{"duty courier", func() error {
			_, err := h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: "r", RoundId: am})
			return err
		}, "courier_id"},
		{"move household", func() error {
			_, err := h.client.MoveStop(h.ctx, &dispatchv1.MoveStopRequest{RequestId: "r", RoundId: am, ToCourierId: "c"})
			return err
		}, "household_id"},
		{"move courier", func() error {
			_, err := h.client.MoveStop(h.ctx, &dispatchv1.MoveStopRequest{RequestId: "r", RoundId: am, HouseholdId: "haixin-1-1-101", ToCourierId: "a b"})
			return err
		}, "to_courier_id"},
		{"move round", func() error {
			_, err := h.client.MoveStop(h.ctx, &dispatchv1.MoveStopRequest{RequestId: "r", HouseholdId: "haixin-1-1-101", ToCourierId: "c"})
			return err
		}, "round_id"},
		{"reassign from", func() error {
			_, err := h.client.ReassignCourier(h.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "r", RoundId: am})
			return err
		}, "from_courier_id"},
		{"reassign to self", func() error {
			_, err := h.client.ReassignCourier(h.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "r", RoundId: am, FromCourierId: "c", ToCourierId: "c"})
			return err
		}, "to_courier_id"},
		{"reassign reason", func() error {
			_, err := h.client.ReassignCourier(h.ctx, &dispatchv1.ReassignCourierRequest{RequestId: "r", RoundId: am, FromCourierId: "c",
				Reason: strings.Repeat("病", 201)})
			return err
		}, "reason"},
		{"replan request id", func() error {
			_, err := h.client.ReplanRound(h.ctx, &dispatchv1.ReplanRoundRequest{RoundId: am})
			return err
		}, "request_id"},
		{"replan round", func() error {
			_, err := h.client.ReplanRound(h.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "r", RoundId: "haixin-2026-3-2-am"})
			return err
		}, "round_id"},
		{"close request id", func() error {
			_, err := h.client.CloseRound(h.ctx, &dispatchv1.CloseRoundRequest{RoundId: am})
			return err
		}, "request_id"},
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
}
