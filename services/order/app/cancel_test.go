package app_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestCancelBeforeConfirmation(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())
	cancel := &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "ordered twice"}
	resp, err := e.client.CancelOrder(e.resident(hh), cancel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Order.Parcels {
		if p.State != typesv1.ParcelState_PARCEL_STATE_CANCELLED || p.Reason != "ordered twice" {
			t.Errorf("parcel %v", p)
		}
	}
	if resp.Order.Status != orderv1.OrderStatus_ORDER_STATUS_CLOSED || resp.Order.TotalFen != 0 {
		t.Errorf("status %v total %d, want CLOSED and 0", resp.Order.Status, resp.Order.TotalFen)
	}
	if got := e.sup.stock("rice-5kg"); got != 100 {
		t.Errorf("rice stock %d, want 100", got)
	}
	wantOnBehalfOf(t, e.sup.peerAuth, "ReleaseReservation", typesv1.Role_ROLE_RESIDENT, hh)
	for _, m := range e.waitStream("doorstep.haixin.parcel.cancelled", 2) {
		sc := m.event.GetParcelStateChanged()
		if m.msgID != m.event.EventId || sc.GetReason() != "ordered twice" || m.event.Actor.GetId() != hh || m.event.OrderId != o.OrderId {
			t.Errorf("parcel.cancelled %v", m.event)
		}
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE from_state = 'PLACED' AND to_state = 'CANCELLED' AND reason = 'ordered twice'`); n != 2 {
		t.Errorf("%d cancel transitions, want 2", n)
	}

	// A retry returns the result; the id reused for something else is refused; a new request finds
	// nothing left to cancel.
	again, err := e.client.CancelOrder(e.resident(hh), cancel)
	if err != nil || again.Order.Status != orderv1.OrderStatus_ORDER_STATUS_CLOSED {
		t.Errorf("retry: %v %v", again, err)
	}
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "changed mind"})
	wantCode(t, err, codes.AlreadyExists)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-2", OrderId: o.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-3", OrderId: o.OrderId,
		Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: "haixin-1-1-101"}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-4", OrderId: "0190f1f6-3c1e-7000-8000-000000000000"})
	wantCode(t, err, codes.NotFound)
}

func TestCancelAfterConfirmation(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())
	fresh, pharmacy := parcelOf(o, "freshmart"), parcelOf(o, "pharmacy")
	// The supermarket has confirmed; its event has not reached the order service yet.
	e.sup.confirm(fresh.ParcelId)

	resp, err := e.client.CancelOrder(e.worker, &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "too late?",
		Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := parcelOf(resp.Order, "freshmart"); p.State != typesv1.ParcelState_PARCEL_STATE_PLACED {
		t.Errorf("confirmed parcel was touched: %v", p)
	}
	if p := parcelOf(resp.Order, "pharmacy"); p.State != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		t.Errorf("pharmacy parcel %v", p)
	}
	if got := e.sup.releasedParcels(); len(got) != 1 || got[0] != pharmacy.ParcelId {
		t.Errorf("released %v", got)
	}
	wantOnBehalfOf(t, e.sup.peerAuth, "ReleaseReservation", typesv1.Role_ROLE_WORKER, "worker-li")

	// The confirmation arrives: the order is under way.
	e.publish(parcelEvent(o, fresh, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.Role_ROLE_SUPPLIER, "freshmart", nil), "confirm-1")
	e.waitParcel(fresh.ParcelId, typesv1.ParcelState_PARCEL_STATE_CONFIRMED)
	if got := e.getOrder(o.OrderId); got.Status != orderv1.OrderStatus_ORDER_STATUS_IN_PROGRESS || got.TotalFen != fresh.TotalFen {
		t.Errorf("order %v", got)
	}
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-2", OrderId: o.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
}

// A parcel that failed at the door goes back to the next round unless the household cancels
// (SPEC.md): cancelling withdraws it from dispatch's gate pool first, then records FAILED ->
// CANCELLED under the parcel.cancelled event dispatch published. Until dispatch has heard of the
// failure nothing changes and the caller is told to try again; if dispatch's answer is lost, its
// event makes the change; a parcel a later round has taken out again is not cancelled; parcels on
// their way are never touched.
func TestCancelAfterFailureAtTheDoor(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	failedOrder := func(requestID string) (o *orderv1.Order, failed *orderv1.Parcel) {
		t.Helper()
		o = e.place(requestID, hh, basket())
		fresh, pharmacy := parcelOf(o, "freshmart"), parcelOf(o, "pharmacy")
		e.drive(o, fresh, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.ParcelState_PARCEL_STATE_READY,
			typesv1.ParcelState_PARCEL_STATE_AT_GATE, typesv1.ParcelState_PARCEL_STATE_ASSIGNED,
			typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, typesv1.ParcelState_PARCEL_STATE_FAILED)
		e.drive(o, pharmacy, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.ParcelState_PARCEL_STATE_READY)
		e.waitParcel(fresh.ParcelId, typesv1.ParcelState_PARCEL_STATE_FAILED)
		e.waitParcel(pharmacy.ParcelId, typesv1.ParcelState_PARCEL_STATE_READY)
		return o, fresh
	}
	o, fresh := failedOrder("req-1")

	// Dispatch has not heard of the failure yet: try again, nothing changed.
	e.disp.answerWithdraw(fresh.ParcelId, codes.Aborted)
	cancel := &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "we bought it ourselves"}
	_, err := e.client.CancelOrder(e.resident(hh), cancel)
	wantCode(t, err, codes.Unavailable)
	if p := e.getOrder(o.OrderId); parcelOf(p, "freshmart").State != typesv1.ParcelState_PARCEL_STATE_FAILED {
		t.Fatalf("a cancellation dispatch refused for now changed the parcel: %v", parcelOf(p, "freshmart"))
	}

	// The retry of the same cancellation, once dispatch has heard.
	e.disp.answerWithdraw(fresh.ParcelId, codes.OK)
	resp, err := e.client.CancelOrder(e.resident(hh), cancel)
	if err != nil {
		t.Fatal(err)
	}
	if p := parcelOf(resp.Order, "freshmart"); p.State != typesv1.ParcelState_PARCEL_STATE_CANCELLED || p.Reason != "we bought it ourselves" {
		t.Errorf("failed parcel after cancelling: %v", p)
	}
	if p := parcelOf(resp.Order, "pharmacy"); p.State != typesv1.ParcelState_PARCEL_STATE_READY {
		t.Errorf("a parcel on its way was touched: %v", p)
	}
	ws := e.disp.withdrawn()
	if len(ws) != 2 || ws[0].GetRequestId() != ws[1].GetRequestId() || ws[1].GetParcelId() != fresh.ParcelId ||
		ws[1].GetFailedRoundId() != "r1" || ws[1].GetReason() != "we bought it ourselves" {
		t.Errorf("withdrawals %v: want two tries of one request, for the parcel that failed in r1", ws)
	}
	if len(e.sup.releasedParcels()) != 0 {
		t.Errorf("supplier asked to release %v: their goods were delivered to the gate", e.sup.releasedParcels())
	}
	wantOnBehalfOf(t, e.disp.peerAuth, "WithdrawParcel", typesv1.Role_ROLE_RESIDENT, hh)
	// Recorded under dispatch's event, in the round whose pool it left.
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1 AND from_state = 'FAILED' AND to_state = 'CANCELLED'
		AND actor_id = $2 AND event_id = $3 AND round_id = 'r2'`, fresh.ParcelId, hh, cancelledEventID(fresh.ParcelId)); n != 1 {
		t.Errorf("%d FAILED -> CANCELLED transitions under dispatch's event, want 1", n)
	}

	// A retry returns the result without asking dispatch again; nothing is left to cancel.
	if again, err := e.client.CancelOrder(e.resident(hh), cancel); err != nil ||
		parcelOf(again.Order, "freshmart").State != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		t.Errorf("retry: %v, %v", again, err)
	}
	if n := len(e.disp.withdrawn()); n != 2 {
		t.Errorf("a retry of a finished cancellation asked dispatch again (%d withdrawals)", n)
	}
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-2", OrderId: o.OrderId})
	wantCode(t, err, codes.FailedPrecondition)

	// A stray report of a next round's assignment does not bring it back: it is dead-lettered.
	late := parcelEvent(o, fresh, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, typesv1.Role_ROLE_DISPATCHER, "dispatch",
		func(sc *eventsv1.ParcelStateChanged) { sc.RoundId = "r2" })
	e.waitConsumed(e.publish(late, late.EventId))
	e.waitDeadLettered(late)
	if p := e.getOrder(o.OrderId); parcelOf(p, "freshmart").State != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		t.Errorf("after a late assignment the cancelled parcel is %v", parcelOf(p, "freshmart").State)
	}

	// Dispatch withdraws the next one, but its answer is lost: the cancellation fails, and
	// dispatch's event makes the change on its own.
	o2, fresh2 := failedOrder("req-2")
	e.disp.answerWithdraw(fresh2.ParcelId, codes.DeadlineExceeded)
	cancel2 := &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o2.OrderId, Reason: "too late now"}
	_, err = e.client.CancelOrder(e.resident(hh), cancel2)
	wantCode(t, err, codes.Unavailable)
	announced := parcelEvent(o2, fresh2, typesv1.ParcelState_PARCEL_STATE_CANCELLED, typesv1.Role_ROLE_RESIDENT, hh,
		func(sc *eventsv1.ParcelStateChanged) { sc.Reason, sc.RoundId = "too late now", "r2" })
	announced.EventId = cancelledEventID(fresh2.ParcelId)
	e.publish(announced, announced.EventId)
	if p := e.waitParcel(fresh2.ParcelId, typesv1.ParcelState_PARCEL_STATE_CANCELLED); p.Reason != "too late now" {
		t.Errorf("cancelled from dispatch's event: %v", p)
	}
	// The resident tries the same request again and finds it done.
	e.disp.answerWithdraw(fresh2.ParcelId, codes.OK)
	resp, err = e.client.CancelOrder(e.resident(hh), cancel2)
	if err != nil || parcelOf(resp.Order, "freshmart").State != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		t.Fatalf("retry after dispatch's event: %v, %v", resp, err)
	}
	// Another request finds nothing left to cancel.
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-2", OrderId: o2.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE parcel_id = $1 AND to_state = 'CANCELLED'`, fresh2.ParcelId); n != 1 {
		t.Errorf("%d CANCELLED transitions, want 1", n)
	}

	// A failed parcel that the next round has already put on a route: not cancelled.
	o3, fresh3 := failedOrder("req-3")
	e.disp.answerWithdraw(fresh3.ParcelId, codes.FailedPrecondition)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o3.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
	if p := e.getOrder(o3.OrderId); parcelOf(p, "freshmart").State != typesv1.ParcelState_PARCEL_STATE_FAILED {
		t.Errorf("a parcel dispatch would not withdraw is %v", parcelOf(p, "freshmart").State)
	}

	// The order service announced none of these cancellations itself: dispatch did. (Its later
	// events are on the stream, so an announcement of the first would be too.)
	e.waitStream("doorstep.haixin.order.placed", 3)
	for _, m := range e.stream() {
		if m.subject == "doorstep.haixin.parcel.cancelled" && m.event.GetEventId() != announced.EventId {
			t.Errorf("parcel.cancelled %v published besides dispatch's", m.event)
		}
	}
}

// A campaign's free pack that failed at the door goes out again: it is the community's, and the
// household's cancellation leaves it as it is.
func TestFreePackIsNotCancelledAfterFailure(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.campaignRoster()
	camp := e.waitLaunched(e.launch(e.createCampaign("packs-1", donatedPack, nil).CampaignId).CampaignId)
	r := e.roster(camp.CampaignId).Entries[0]
	orders, err := e.client.ListOrders(e.worker, &orderv1.ListOrdersRequest{HouseholdId: r.HouseholdId})
	if err != nil {
		t.Fatal(err)
	}
	o := orders.Orders[0]
	pack := o.Parcels[0]
	e.drive(o, pack, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.ParcelState_PARCEL_STATE_READY, typesv1.ParcelState_PARCEL_STATE_AT_GATE,
		typesv1.ParcelState_PARCEL_STATE_ASSIGNED, typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY,
		typesv1.ParcelState_PARCEL_STATE_FAILED)
	e.waitParcel(pack.ParcelId, typesv1.ParcelState_PARCEL_STATE_FAILED)

	_, err = e.client.CancelOrder(e.resident(r.HouseholdId), &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
	if n := len(e.disp.withdrawn()); n != 0 {
		t.Errorf("dispatch asked to withdraw a free pack %d times", n)
	}
	if st := e.roster(camp.CampaignId).Entries[0]; st.Status != orderv1.RosterStatus_ROSTER_STATUS_FAILED {
		t.Errorf("roster says %v, want FAILED (waiting for the next round)", st.Status)
	}
}
