package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"google.golang.org/grpc/codes"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// The suppliers', dispatch's and the courier's events carry a parcel to the door, and the order's
// status follows its parcels.
func TestConsumerAppliesParcelLife(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())
	fresh, pharmacy := parcelOf(o, "freshmart"), parcelOf(o, "pharmacy")
	pub := func(p *orderv1.Parcel, st typesv1.ParcelState, role typesv1.Role, who string, fill func(*eventsv1.ParcelStateChanged)) {
		ev := parcelEvent(o, p, st, role, who, fill)
		e.publish(ev, ev.EventId)
	}

	// The butcher weighed 550 g instead of 500 g.
	pub(fresh, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.Role_ROLE_SUPPLIER, "freshmart", func(sc *eventsv1.ParcelStateChanged) {
		sc.ConfirmedLines = []*eventsv1.EventLine{{ItemId: "rice-5kg", Quantity: 2, AmountFen: 6000}, {ItemId: "pork", Quantity: 550, AmountFen: 1980}}
		sc.ConfirmedTotalFen = 7980
	})
	p := e.waitParcel(fresh.ParcelId, typesv1.ParcelState_PARCEL_STATE_CONFIRMED)
	if p.TotalFen != 7980 || p.WeightGrams != 10550 {
		t.Errorf("confirmed parcel total %d weight %d, want 7980 and 10550", p.TotalFen, p.WeightGrams)
	}
	if got := e.getOrder(o.OrderId).Status; got != orderv1.OrderStatus_ORDER_STATUS_PLACED {
		t.Errorf("status with a parcel still waiting for its supplier: %v", got)
	}
	pub(pharmacy, typesv1.ParcelState_PARCEL_STATE_REJECTED, typesv1.Role_ROLE_SUPPLIER, "pharmacy", func(sc *eventsv1.ParcelStateChanged) {
		sc.Reason = "masks sold out"
	})
	if p := e.waitParcel(pharmacy.ParcelId, typesv1.ParcelState_PARCEL_STATE_REJECTED); p.Reason != "masks sold out" {
		t.Errorf("rejected parcel reason %q", p.Reason)
	}
	if got := e.getOrder(o.OrderId); got.Status != orderv1.OrderStatus_ORDER_STATUS_IN_PROGRESS || got.TotalFen != 7980 {
		t.Errorf("order %v %d, want IN_PROGRESS 7980", got.Status, got.TotalFen)
	}

	pub(fresh, typesv1.ParcelState_PARCEL_STATE_READY, typesv1.Role_ROLE_SUPPLIER, "freshmart", nil)
	pub(fresh, typesv1.ParcelState_PARCEL_STATE_AT_GATE, typesv1.Role_ROLE_DISPATCHER, "gate-wang", func(sc *eventsv1.ParcelStateChanged) { sc.RoundId = "r1" })
	pub(fresh, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, typesv1.Role_ROLE_DISPATCHER, "dispatch", func(sc *eventsv1.ParcelStateChanged) {
		sc.RoundId, sc.RouteId, sc.CourierId = "r1", "route-1", "haixin-courier-01"
	})
	pub(fresh, typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, typesv1.Role_ROLE_COURIER, "haixin-courier-01", nil)
	pub(fresh, typesv1.ParcelState_PARCEL_STATE_DELIVERED, typesv1.Role_ROLE_COURIER, "haixin-courier-01", func(sc *eventsv1.ParcelStateChanged) {
		sc.DeliveryMethod = "left_at_door"
	})
	e.waitParcel(fresh.ParcelId, typesv1.ParcelState_PARCEL_STATE_DELIVERED)
	if got := e.getOrder(o.OrderId); got.Status != orderv1.OrderStatus_ORDER_STATUS_DELIVERED {
		t.Errorf("status %v, want DELIVERED", got.Status)
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1`, fresh.ParcelId); n != 7 {
		t.Errorf("%d transitions recorded, want 7 (placed + 6 moves)", n)
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1 AND to_state = 'DELIVERED'
		AND actor_role = 'COURIER' AND actor_id = 'haixin-courier-01' AND delivery_method = 'left_at_door' AND event_id IS NOT NULL`, fresh.ParcelId); n != 1 {
		t.Error("the delivery is not recorded with its courier, method and event")
	}
}

// drive publishes one event per state for p, in order, and returns them.
func (e *env) drive(o *orderv1.Order, p *orderv1.Parcel, states ...typesv1.ParcelState) []*eventsv1.Event {
	var evs []*eventsv1.Event
	for _, st := range states {
		ev := parcelEvent(o, p, st, typesv1.Role_ROLE_SYSTEM, "test", func(sc *eventsv1.ParcelStateChanged) { sc.RoundId = "r1" })
		e.publish(ev, ev.EventId)
		evs = append(evs, ev)
	}
	return evs
}

// A redelivered event (here: the same event id past the broker's duplicate window) is applied once,
// even where applying it again would be a legal move: FAILED -> ASSIGNED.
func TestConsumerAppliesRedeliveredEventOnce(t *testing.T) {
	t.Parallel()
	e := start(t)
	o := e.place("req-1", e.household(), basket())
	p := parcelOf(o, "freshmart")
	evs := e.drive(o, p, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.ParcelState_PARCEL_STATE_READY,
		typesv1.ParcelState_PARCEL_STATE_AT_GATE, typesv1.ParcelState_PARCEL_STATE_ASSIGNED,
		typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, typesv1.ParcelState_PARCEL_STATE_FAILED)
	e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_FAILED)

	assigned := evs[3]
	e.waitConsumed(e.publish(assigned, "redelivery-"+assigned.EventId))
	if got := e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_FAILED); got.State != typesv1.ParcelState_PARCEL_STATE_FAILED {
		t.Fatal("unreachable")
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1 AND to_state = 'ASSIGNED'`, p.ParcelId); n != 1 {
		t.Errorf("ASSIGNED recorded %d times, want 1", n)
	}
	// The next round's assignment is a new event and is applied.
	next := parcelEvent(o, p, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, typesv1.Role_ROLE_DISPATCHER, "dispatch",
		func(sc *eventsv1.ParcelStateChanged) { sc.RoundId = "r2" })
	e.publish(next, next.EventId)
	e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_ASSIGNED)
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1 AND to_state = 'ASSIGNED' AND from_state = 'FAILED' AND round_id = 'r2'`, p.ParcelId); n != 1 {
		t.Errorf("next round's assignment recorded %d times, want 1", n)
	}
	// A state the parcel is already in changes nothing (a second publisher's duplicate report).
	dup := parcelEvent(o, p, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, typesv1.Role_ROLE_DISPATCHER, "dispatch", nil)
	e.waitConsumed(e.publish(dup, dup.EventId))
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1`, p.ParcelId); n != 8 {
		t.Errorf("%d transitions, want 8", n)
	}
}

// A dispatcher's override moves an assigned parcel to another courier's route: dispatch publishes
// parcel.assigned again. The parcel stays ASSIGNED and the move is recorded with the new route
// and courier; the same assignment reported again records nothing; and the new courier takes it
// out.
func TestConsumerRecordsReassignment(t *testing.T) {
	t.Parallel()
	e := start(t)
	o := e.place("req-1", e.household(), basket())
	p := parcelOf(o, "freshmart")
	e.drive(o, p, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.ParcelState_PARCEL_STATE_READY, typesv1.ParcelState_PARCEL_STATE_AT_GATE)
	assign := func(route, courier, reason string) uint64 {
		ev := parcelEvent(o, p, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, typesv1.Role_ROLE_DISPATCHER, "gate-wang",
			func(sc *eventsv1.ParcelStateChanged) {
				sc.RoundId, sc.RouteId, sc.CourierId, sc.Reason = "r1", route, courier, reason
			})
		return e.publish(ev, ev.EventId)
	}
	assign("route-1", "haixin-courier-01", "")
	e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_ASSIGNED)
	e.waitConsumed(assign("route-2", "haixin-courier-02", "courier 01 is off sick"))
	e.waitConsumed(assign("route-2", "haixin-courier-02", "")) // a repeat of the assignment in force
	pickUp := parcelEvent(o, p, typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, typesv1.Role_ROLE_COURIER, "haixin-courier-02", nil)
	e.publish(pickUp, pickUp.EventId)
	e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY)

	rows, err := e.pool.Query(e.ctx, `SELECT coalesce(from_state, ''), to_state, route_id, courier_id, reason, actor_id
		FROM parcel_transitions WHERE parcel_id = $1 AND to_state IN ('ASSIGNED', 'OUT_FOR_DELIVERY') ORDER BY id`, p.ParcelId)
	if err != nil {
		t.Fatal(err)
	}
	var moves []string
	for rows.Next() {
		var from, to, route, courier, reason, actor string
		if err := rows.Scan(&from, &to, &route, &courier, &reason, &actor); err != nil {
			t.Fatal(err)
		}
		moves = append(moves, fmt.Sprintf("%s>%s %s %s %q by %s", from, to, route, courier, reason, actor))
	}
	want := []string{
		`AT_GATE>ASSIGNED route-1 haixin-courier-01 "" by gate-wang`,
		`ASSIGNED>ASSIGNED route-2 haixin-courier-02 "courier 01 is off sick" by gate-wang`,
		`ASSIGNED>OUT_FOR_DELIVERY   "" by haixin-courier-02`,
	}
	if fmt.Sprint(moves) != fmt.Sprint(want) {
		t.Errorf("moves\n%s\nwant\n%s", strings.Join(moves, "\n"), strings.Join(want, "\n"))
	}
}

// Events of different publishers arrive out of order: dispatch's check-in before the supplier's
// confirmation and ready. The early one is retried until it is legal.
func TestConsumerRetriesOutOfOrderEvent(t *testing.T) {
	t.Parallel()
	e := start(t)
	o := e.place("req-1", e.household(), basket())
	p := parcelOf(o, "pharmacy")
	atGate := parcelEvent(o, p, typesv1.ParcelState_PARCEL_STATE_AT_GATE, typesv1.Role_ROLE_DISPATCHER, "gate-wang", nil)
	e.publish(atGate, atGate.EventId)
	// Wait until the consumer has tried and refused it, so the order really is reversed.
	e.waitRedelivered()
	if got := e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_PLACED); got == nil {
		t.Fatal("unreachable")
	}
	e.drive(o, p, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.ParcelState_PARCEL_STATE_READY)
	e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_AT_GATE)
	rows, err := e.pool.Query(e.ctx, `SELECT coalesce(from_state, ''), to_state FROM parcel_transitions WHERE parcel_id = $1 ORDER BY id`, p.ParcelId)
	if err != nil {
		t.Fatal(err)
	}
	var moves []string
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			t.Fatal(err)
		}
		moves = append(moves, from+">"+to)
	}
	want := []string{">PLACED", "PLACED>CONFIRMED", "CONFIRMED>READY", "READY>AT_GATE"}
	if len(moves) != len(want) {
		t.Fatalf("moves %v, want %v", moves, want)
	}
	for i := range want {
		if moves[i] != want[i] {
			t.Fatalf("moves %v, want %v", moves, want)
		}
	}
}

// waitRedelivered waits until the consumer has been handed some message more than once.
func (e *env) waitRedelivered() {
	e.t.Helper()
	testkit.Eventually(e.t, 20*time.Second, func() error {
		c, err := e.js.Consumer(e.ctx, events.Stream, "order-parcels")
		if err != nil {
			return err
		}
		info, err := c.Info(e.ctx)
		if err != nil {
			return err
		}
		if info.NumRedelivered == 0 {
			return fmt.Errorf("nothing redelivered yet")
		}
		return nil
	})
}

// waitDeadLettered waits until the order service's consumer has dead-lettered ev.
func (e *env) waitDeadLettered(ev *eventsv1.Event) {
	e.t.Helper()
	subject, err := events.Subject(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	testkit.Eventually(e.t, 20*time.Second, func() error {
		s, err := e.js.Stream(e.ctx, events.DeadLetterStream)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(e.ctx, events.DeadLetterSubject+subject)
		if err != nil {
			return err
		}
		if m.Header.Get("Doorstep-Original-Msg-Id") != ev.GetEventId() || m.Header.Get("Doorstep-Consumer") != "order-parcels" {
			return fmt.Errorf("last dead letter on %s is %v", subject, m.Header)
		}
		return nil
	})
}

// A supplier can confirm a parcel before the order holding it has committed (the reservation
// comes first). The event for the not-yet-known parcel is retried until the order exists.
func TestConsumerRetriesEventForUnknownParcel(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	orderID := order.OrderID(hh, "req-1")
	early := &orderv1.Order{OrderId: orderID, HouseholdId: hh}
	p := &orderv1.Parcel{ParcelId: order.ParcelID(orderID, "freshmart", 0)}
	ev := parcelEvent(early, p, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.Role_ROLE_SUPPLIER, "freshmart", nil)
	e.publish(ev, ev.EventId)
	e.waitRedelivered()

	o := e.place("req-1", hh, basket())
	if got := parcelOf(o, "freshmart").ParcelId; got != p.ParcelId {
		t.Fatalf("parcel id %s, want the derived %s", got, p.ParcelId)
	}
	e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_CONFIRMED)
}

// A reservation its supplier did not confirm by the round's cutoff expires: the supplier's
// parcel.expired reaches the order like any other transition, so the resident sees it, and
// nothing moves an expired parcel again.
func TestConsumerAppliesExpiry(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())
	const why = "not confirmed by the cutoff of round haixin-2022-04-10-am"
	for _, p := range o.Parcels {
		ev := parcelEvent(o, p, typesv1.ParcelState_PARCEL_STATE_EXPIRED, typesv1.Role_ROLE_SYSTEM, "supplier",
			func(sc *eventsv1.ParcelStateChanged) { sc.Reason = why })
		e.publish(ev, ev.EventId)
	}
	for _, p := range o.Parcels {
		if got := e.waitParcel(p.ParcelId, typesv1.ParcelState_PARCEL_STATE_EXPIRED); got.Reason != why {
			t.Errorf("expired parcel reason %q", got.Reason)
		}
	}
	list, err := e.client.ListOrders(e.resident(hh), &orderv1.ListOrdersRequest{HouseholdId: hh})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Orders) != 1 || list.Orders[0].Status != orderv1.OrderStatus_ORDER_STATUS_CLOSED || list.Orders[0].TotalFen != 0 {
		t.Errorf("the resident's orders: %v", list.Orders)
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE from_state = 'PLACED' AND to_state = 'EXPIRED'
		AND actor_role = 'SYSTEM' AND actor_id = 'supplier' AND reason = $1 AND event_id IS NOT NULL`, why); n != 2 {
		t.Errorf("%d expiries recorded, want 2", n)
	}

	// A confirmation that comes too late is not applied: no retry could make it legal, so it is
	// dead-lettered at once, and the parcel stays expired.
	fresh := parcelOf(o, "freshmart")
	late := parcelEvent(o, fresh, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.Role_ROLE_SUPPLIER, "freshmart", nil)
	e.waitConsumed(e.publish(late, late.EventId))
	e.waitDeadLettered(late)
	e.waitParcel(fresh.ParcelId, typesv1.ParcelState_PARCEL_STATE_EXPIRED)
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1`, fresh.ParcelId); n != 2 {
		t.Errorf("%d transitions of the expired parcel, want 2", n)
	}
}

// The gate list is what the suppliers handed over (READY) and nobody has checked in yet, every
// such parcel once across pages, for the compound's own staff only.
func TestParcelsToCheckIn(t *testing.T) {
	t.Parallel()
	e := start(t)
	ready := typesv1.ParcelState_PARCEL_STATE_READY
	var want []string
	for i := range 3 {
		o := e.place(fmt.Sprintf("req-%d", i), e.household(), basket())
		fm, ph := parcelOf(o, "freshmart"), parcelOf(o, "pharmacy")
		e.drive(o, fm, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, ready)
		want = append(want, fm.ParcelId)
		switch i {
		case 0: // both handed over
			e.drive(o, ph, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, ready)
			want = append(want, ph.ParcelId)
		case 1: // handed over and checked in already
			e.drive(o, ph, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, ready, typesv1.ParcelState_PARCEL_STATE_AT_GATE)
			e.waitParcel(ph.ParcelId, typesv1.ParcelState_PARCEL_STATE_AT_GATE)
		} // case 2: the pharmacy has not confirmed yet
	}
	for _, id := range want {
		e.waitParcel(id, ready)
	}

	var got []string
	req := &orderv1.ListParcelsToCheckInRequest{Compound: "haixin", PageSize: 3}
	for pages := 1; ; pages++ {
		resp, err := e.client.ListParcelsToCheckIn(e.dispatcher, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.GetParcels() {
			if p.GetState() != ready || p.GetAddress().GetRoom() != "302" || len(p.GetLines()) == 0 {
				t.Errorf("listed %v", p)
			}
			got = append(got, p.GetParcelId())
		}
		if resp.GetNextPageToken() == "" {
			if pages != 2 {
				t.Errorf("%d pages of 3 for 4 parcels", pages)
			}
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	inOrder := slices.Clone(got) // longest waiting first
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("to check in %v; want the 4 READY parcels %v", got, want)
	}

	// The last parcel of a page checked in before the next page is asked for: the next page
	// still starts where that page ended, skipping nothing.
	first, err := e.client.ListParcelsToCheckIn(e.dispatcher, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin", PageSize: 2})
	if err != nil || len(first.GetParcels()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("first page of 2: %v, %v", first, err)
	}
	anchor := first.GetParcels()[1]
	o, err := e.client.GetOrder(e.worker, &orderv1.GetOrderRequest{OrderId: anchor.GetOrderId()})
	if err != nil {
		t.Fatal(err)
	}
	e.drive(o.GetOrder(), anchor, typesv1.ParcelState_PARCEL_STATE_AT_GATE)
	e.waitParcel(anchor.GetParcelId(), typesv1.ParcelState_PARCEL_STATE_AT_GATE)
	rest, err := e.client.ListParcelsToCheckIn(e.dispatcher, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin", PageSize: 2,
		PageToken: first.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	var restIDs []string
	for _, p := range rest.GetParcels() {
		restIDs = append(restIDs, p.GetParcelId())
	}
	if !slices.Equal(restIDs, inOrder[2:]) || rest.GetNextPageToken() != "" {
		t.Errorf("after the first page's last parcel was checked in, the next page is %v (token %q); want the 2 after it, %v, and no more",
			restIDs, rest.GetNextPageToken(), inOrder[2:])
	}

	_, err = e.client.ListParcelsToCheckIn(e.dispatcher, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin", PageToken: grpcx.PageToken("yuyuan", want[0])})
	wantField(t, err, "page_token")
	for _, key := range []string{want[0], "2026-04-10T08:00:00Z urn:uuid:" + want[0], "yesterday " + want[0]} {
		_, err = e.client.ListParcelsToCheckIn(e.dispatcher, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin", PageToken: grpcx.PageToken("haixin", key)})
		wantField(t, err, "page_token")
	}
	_, err = e.client.ListParcelsToCheckIn(e.dispatcher, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin", PageSize: -1})
	wantField(t, err, "page_size")
	_, err = e.client.ListParcelsToCheckIn(e.dispatcher, &orderv1.ListParcelsToCheckInRequest{Compound: "Haixin!"})
	wantField(t, err, "compound")
	far := e.as(typesv1.Role_ROLE_DISPATCHER, "gate-zhou", testkit.InCompound("yuyuan"))
	_, err = e.client.ListParcelsToCheckIn(far, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin"})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.ListParcelsToCheckIn(e.resident(e.household()), &orderv1.ListParcelsToCheckInRequest{Compound: "haixin"})
	wantCode(t, err, codes.PermissionDenied)
}
